"""The ``hw`` ops a mapping adds to a graph: removing an earlier mapping's, inserting new ones,
reading its ``hw.core`` ops back."""

from __future__ import annotations

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op


def clear_hw(graph: Graph) -> None:
    """Remove the hw ops of an earlier mapping (so a pass can run again)."""
    graph.ops = [op for op in graph.ops if op.dialect != "hw"]


def hw_insert(graph: Graph, ops: list[Op]) -> None:
    """Put hw ops, in order, right before ``ann.output`` (which stays last)."""
    at = len(graph.ops)
    if graph.ops and graph.ops[-1].KIND == "ann.output":
        at -= 1
    graph.ops[at:at] = ops


def mapped_cores(graph: Graph, hint: str) -> list[Op]:
    """The graph's ``hw.core`` ops in id order; NmcError when there are none (``hint``: which
    passes map the graph) or their ids are not 0..n-1, each once."""
    cores = sorted(graph.walk("hw.core"), key=lambda c: c.id)
    if not cores:
        raise NmcError(f"graph @{graph.name} is not mapped onto cores", hint=hint)
    if [c.id for c in cores] != list(range(len(cores))):
        raise NmcError(f"graph @{graph.name}: hw.core ids must be 0..{len(cores) - 1}, each once")
    return cores

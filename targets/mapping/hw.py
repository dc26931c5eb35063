"""The ``hw`` ops a mapping adds to a graph: removing an earlier mapping's, inserting new ones."""

from __future__ import annotations

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

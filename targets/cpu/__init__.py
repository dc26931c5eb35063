"""The CPU runtime: ``snn`` graphs compiled to native code with llvmlite (docs/design.md §6).

``prepare(artifact, cache=True, threads=None, kernels="auto", schedule="auto")`` returns ``execute(inputs, timesteps=None,
record=None) -> nmc.runner.RunResult``, bit-identical to :mod:`nmc.semantics` for integer
graphs and equal to float tolerance for float graphs.  Modules: :mod:`.plan` (what to emit:
layout, schedule, kernel choices; no llvmlite), :mod:`.tables` (constant tables, numpy),
:mod:`.kernels` (one module per family of projection kinds, registered by kind),
:mod:`.emit` (the LLVM function: loops, events, neurons), :mod:`.jit` (O3 + object cache),
:mod:`.execute` (host side, threads).
"""

from __future__ import annotations

from typing import Any

from nmc.diagnostics import UsageError
from nmc.ir.core import Graph


def prepare(artifact: Any, cache: bool = True, threads: int | None = None, kernels: str = "auto",
            schedule: str = "auto"):
    """The executor for ``artifact`` (a graph, or an image carrying its ``snn`` graph).

    ``kernels``: ``auto`` chooses per dense projection between event lists and the dense
    kernel from the source's known activity (:func:`.plan.dense_kernel`); ``event`` and
    ``dense`` force one for all (tests, measurements).  ``schedule``: ``auto`` runs each
    population over all steps of a sample before the next (``layer``, with the time-batched
    kernel for dense layers) when the network is feed-forward and has such a layer, else
    step by step (:func:`.plan.choose_schedule`); ``step`` and ``layer`` force one (``layer``
    raises ValueError on a network with recurrence)."""
    sections = getattr(artifact, "sections", None)
    if cache and isinstance(sections, dict) and isinstance(sections.get("graph"), bytes):
        return _prepare_image(artifact, sections["graph"], threads, kernels, schedule)
    graph = artifact if isinstance(artifact, Graph) else getattr(artifact, "graph", None)
    _check(graph)
    return _prepare_graph(graph, cache, threads, kernels, schedule)


def _check(graph) -> None:
    if graph is None:
        raise UsageError("the cpu backend runs a graph or an image that carries one")
    if not any(op.dialect == "snn" for op in graph.ops):
        raise UsageError(f"the cpu backend runs spiking graphs; @{graph.name} has no snn ops",
                         hint="convert it first (convert-to-spiking), or use --backend reference")


def _prepare_image(image: Any, text: bytes, threads, kernels: str, schedule: str):
    """An image's executor from the prepared cache (:mod:`.prepared`: no parsing, planning or
    compiling), else prepared from its graph and kept there."""
    from . import prepared
    from .plan import KERNELS, SCHEDULES
    from .shift import is_shift_graph

    if kernels not in KERNELS or schedule not in SCHEDULES:  # as plan() would refuse them
        raise ValueError(f"kernels must be one of {KERNELS} and schedule one of {SCHEDULES}")
    key = prepared.key(text, kernels, schedule)
    executor = prepared.load(key, threads, kernels, cache=True)
    if executor is None:
        graph = image.graph
        _check(graph)
        executor = _prepare_graph(graph, True, threads, kernels, schedule)
        if not is_shift_graph(graph):  # the shift lowering is not kept in the prepared cache
            prepared.store(key, executor)
    return executor


def _prepare_graph(graph: Graph, cache: bool, threads, kernels: str, schedule: str):
    """A graph's executor: the bit-shift lowering (:mod:`.shift`) for the edge class's
    neurons, else the general one (:mod:`.execute`)."""
    from .execute import prepare_graph
    from .shift import is_shift_graph, prepare_shift

    if is_shift_graph(graph):
        return prepare_shift(graph, cache=cache)
    return prepare_graph(graph, cache=cache, threads=threads, kernels=kernels, schedule=schedule)

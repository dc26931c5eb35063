"""Running a model or image on a backend: ``nmc.run`` and ``nmc run`` (docs/design.md §7).

A backend turns an artifact into something runnable (the time that takes is ``compile_s``)
and runs batches on it (``run_s``).  ``reference`` is the numpy semantics of
:mod:`nmc.semantics`; other backends (the CPU runtime, chip emulators) register themselves.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmc.diagnostics import UsageError
from nmc.ir.core import Graph


@dataclass
class Tally:
    """The additive counts behind a result's ``stats`` (integers and integer arrays, summed over
    the samples) and the function that derives the stats from them: results of parts of a batch
    merge into exactly the stats of the whole batch (``nmc.cluster.merge_results``).  ``derive``
    travels with the result, so it is a module-level function or a ``functools.partial`` of one."""

    counts: dict[str, Any]
    derive: Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class RunResult:
    """Outputs of a batch and what it cost.

    ``outputs``: one array per graph output, first axis samples.  ``voltages``: final voltage
    of each output's decoded population (spiking graphs), for tie-breaks.  ``recorded``:
    spike trains ``[samples, steps, ...]`` by population name.  ``population_spikes``: each
    population's spikes over the whole batch and run, by name (spiking graphs on the reference
    and CPU backends; no recording needed).  ``stats``: backend-specific
    figures (the emulator's energy and link loads); ``tally``: how those figures add up over
    parts of the batch (None: they do not depend on the batch)."""

    backend: str
    outputs: list[np.ndarray]
    voltages: list[np.ndarray | None] = field(default_factory=list)
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    population_spikes: dict[str, int] = field(default_factory=dict)
    timesteps: int | None = None
    steps: int | None = None
    spikes: int = 0
    synaptic_ops: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    tally: Tally | None = None

    def predictions(self) -> np.ndarray:
        """The class of each sample from the first output (ties broken by final voltage)."""
        from nmc.semantics import classify

        return classify(self.outputs[0], self.voltages[0] if self.voltages else None)


Prepare = Callable[[Any], Callable[..., RunResult]]
BACKENDS: dict[str, Prepare] = {}


def register_backend(name: str, prepare: Prepare) -> None:
    """``prepare(artifact)`` returns ``execute(inputs, timesteps=..., record=...) -> RunResult``."""
    BACKENDS[name] = prepare


def population_names(graph: Graph, record: str | None) -> list:
    """Populations to record: ``"output"`` (those feeding decodes), ``"all"``, or none."""
    if record is None:
        return []
    pops = graph.walk("snn.population")
    if record == "all":
        return pops
    return [d.x.owner for d in graph.walk("snn.decode")]


def _prepare_reference(artifact: Any):
    from nmc import semantics
    from nmc.ir.verifier import verify

    graph = artifact if isinstance(artifact, Graph) else getattr(artifact, "graph", None)
    if graph is None:
        raise UsageError("the reference backend runs a graph or an image that carries one")
    verify(graph)

    def execute(inputs: Sequence[np.ndarray], timesteps: int | None = None, record: str | None = None) -> RunResult:
        spiking = any(op.dialect == "snn" for op in graph.ops)
        if not spiking:
            res = semantics.run_ann(graph, inputs)
            return RunResult("reference", res.outputs)
        pops = population_names(graph, record)
        res = semantics.run_snn(graph, inputs, timesteps, record=pops)
        names = {id(p): p.result.name or f"population{i}" for i, p in enumerate(graph.walk("snn.population"))}
        return RunResult("reference", res.outputs, voltages=res.voltages,
                         recorded={names[id(p)]: s for p, s in res.spikes.items()},
                         population_spikes={names[id(p)]: int(c.sum()) for p, c in res.counts.items()},
                         timesteps=res.timesteps, steps=res.steps,
                         spikes=res.spike_count, synaptic_ops=res.synaptic_ops)

    return execute


register_backend("reference", _prepare_reference)
register_backend("cpu", lambda art: importlib.import_module("nmc.targets.cpu").prepare(art))
register_backend("emulator", lambda art: importlib.import_module("nmc.targets.classes").prepare_emulator(art))


def fastest_backend() -> str:
    """The CPU runtime when it is available, else the reference semantics."""
    if "cpu" in BACKENDS:
        try:
            import nmc.targets.cpu  # noqa: F401
            return "cpu"
        except ImportError:
            pass
    return "reference"


def load_artifact(path_or_graph: Any, **options) -> Any:
    """A graph or image from a path (a model file of any frontend, or an image), or as given."""
    if not isinstance(path_or_graph, str):
        return path_or_graph
    if path_or_graph.endswith(".nmb"):
        from nmc.targets.image import read_image

        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise UsageError(f"{', '.join(given)} apply to model files, not to the image {path_or_graph}")
        from nmc.targets.image_check import check_image

        image = read_image(path_or_graph)
        check_image(image)  # every section checked before anything runs, whatever the backend (issue 22)
        return image
    from nmc.frontends import load

    return load(path_or_graph, **options)


def get_backend(name: str) -> Prepare:
    """The ``prepare`` function of backend ``name`` (UsageError for an unknown name)."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'", hint="backends: " + ", ".join(sorted(BACKENDS)))
    return BACKENDS[name]


def prepare(artifact: Any, backend: str = "reference", **load_options) -> Callable[..., RunResult]:
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` for ``artifact`` (a path,
    graph or image) on ``backend``: what :func:`run` times as ``compile_s``."""
    return get_backend(backend)(load_artifact(artifact, **load_options))


def run(artifact: Any, inputs: np.ndarray | Sequence[np.ndarray], *, backend: str = "reference",
        timesteps: int | None = None, record: str | None = None, **load_options) -> RunResult:
    """Run ``artifact`` (a path, graph or image) on a batch.  ``record``: None, ``"output"``
    or ``"all"`` populations' spike trains."""
    get_backend(backend)
    start = time.perf_counter()
    artifact = load_artifact(artifact, **load_options)
    batch = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    # the run's memory, estimated before the backend prepares it (issue 22); an image's graph
    # only if already parsed, so that a cached CPU executor still starts without parsing it
    graph = artifact if isinstance(artifact, Graph) else vars(artifact).get("graph") if hasattr(artifact, "__dict__") else None
    if graph is not None:
        from nmc.limits import check_run, check_timesteps
        from nmc.semantics import is_spiking, latency_steps

        check_timesteps(timesteps or 0)
        steps = latency_steps(graph, timesteps or int(graph.meta.get("timesteps", 32))) if is_spiking(graph) else 1
        check_run(graph, int(np.shape(batch[0])[0]) if batch and np.ndim(batch[0]) else 0, steps, backend)
    execute = prepare(artifact, backend)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = execute(batch, timesteps=timesteps, record=record)
    result.run_s = time.perf_counter() - start
    result.compile_s = compile_s
    return result

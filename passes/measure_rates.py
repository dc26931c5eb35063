"""``measure-rates``: the spike rate of every source, measured by running the spiking graph on
calibration data, for the mapping passes' traffic model.

``place`` minimises Σ rate × hops and ``route`` reports link loads in spikes per step; both
read ``calib.rate`` from encoders and populations (:meth:`nmc.targets.mapping.netlist.Netlist.rates`)
and fall back to an assumed rate without it.  This pass runs the graph — with the fastest
backend (:func:`nmc.runner.fastest_backend`), bit-identical to the reference semantics — on the
first ``samples`` calibration inputs and records, on every ``snn.encode`` and
``snn.population``, its mean events per neuron per step over the whole run (``T`` plus the
latency steps); the encoders' events come from the neuron model (:func:`nmc.semantics.encode`).
"""

from __future__ import annotations

import numpy as np

from nmc import semantics
from nmc.ir.core import Graph
from nmc.passes.calibrate import calibration_batch
from nmc.passmanager import Pass, PassContext, register_pass

RATE = "calib.rate"


def encoder_rates(graph: Graph, x: np.ndarray, timesteps: int, steps: int) -> dict:
    """Mean events (non-zero values) per element per step of each encoder on batch ``x``."""
    encoders = graph.walk("snn.encode")
    host, batch = semantics.bind_inputs(graph, [x], semantics.train_inputs(graph))
    pre, _, _ = semantics.split_host(graph)
    semantics.host_ops(graph, host, pre, batch)
    out = {}
    for e in encoders:
        state: dict = {}
        events = sum(int(np.count_nonzero(semantics.encode(e, host[e.x], t, timesteps, state, True)))
                     for t in range(timesteps))
        out[e] = events / max(1, batch * steps * e.result.type.size)
    return out


STATE_BUDGET = 1 << 30
"""Bytes of run state (``samples × neurons``, :data:`nmc.limits.RUN_BYTES_PER_STATE` each)
one batch of the run may hold: the samples run in batches of at most this much."""


def batch_size(graph: Graph, samples: int, requested: int = 0) -> int:
    """Samples per batch: ``requested`` if > 0, else as many as keep the run's state within
    :data:`STATE_BUDGET` (at least 1, at most ``samples``)."""
    from nmc.limits import RUN_BYTES_PER_STATE

    if requested > 0:
        return min(requested, max(samples, 1))
    neurons = sum(p.result.type.size for p in graph.walk("snn.population"))
    return max(1, min(samples, STATE_BUDGET // max(1, neurons * RUN_BYTES_PER_STATE)))


@register_pass("measure-rates")
class MeasureRates(Pass):
    """Record ``calib.rate`` on every encoder and population (module docstring).

    Requires: a spiking graph with one input and ``ctx.calibration``.  Ensures: every
    ``snn.encode``/``snn.population`` carries ``calib.rate`` in [0, 1], rounded to 6 digits;
    nothing else changes.  The backend is prepared once and runs the samples in batches of
    ``batch`` (0: as many as keep the run's state within 1 GiB); only each population's spike
    count is kept, never the spike trains."""

    samples: int = 32
    batch: int = 0

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        from nmc.limits import check_run
        from nmc.runner import fastest_backend, prepare

        x = calibration_batch(ctx, graph, self.samples, "measure-rates")
        backend = fastest_backend()
        chunk = batch_size(graph, len(x), self.batch)
        timesteps = int(graph.meta.get("timesteps", 32))
        check_run(graph, chunk, semantics.latency_steps(graph, timesteps), backend)
        execute = prepare(graph, backend)
        spikes: dict[str, int] = {}
        for start in range(0, len(x), chunk):
            result = execute([x[start:start + chunk]])
            for name, n in result.population_spikes.items():
                spikes[name] = spikes.get(name, 0) + n
        rates = encoder_rates(graph, x, result.timesteps, result.steps)
        for i, pop in enumerate(graph.walk("snn.population")):
            name = pop.result.name or f"population{i}"
            rates[pop] = spikes.get(name, 0) / max(1, len(x) * result.steps * pop.result.type.size)
        for op, rate in rates.items():
            op.extra[RATE] = round(min(max(rate, 0.0), 1.0), 6)
        ctx.stat("sources", len(rates))
        ctx.stat("batches", -(-len(x) // chunk))
        busiest = max(rates, key=rates.get)
        ctx.remark(f"mean rate {np.mean(list(rates.values())):.4f} spikes per neuron per step; highest "
                   f"%{busiest.result.name} {rates[busiest]:.4f}")
        return True

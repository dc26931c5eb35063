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


@register_pass("measure-rates")
class MeasureRates(Pass):
    """Record ``calib.rate`` on every encoder and population (module docstring).

    Requires: a spiking graph with one input and ``ctx.calibration``.  Ensures: every
    ``snn.encode``/``snn.population`` carries ``calib.rate`` in [0, 1], rounded to 6 digits;
    nothing else changes."""

    samples: int = 32

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        from nmc.runner import fastest_backend, run

        x = calibration_batch(ctx, graph, self.samples, "measure-rates")
        result = run(graph, [x], backend=fastest_backend(), record="all")
        rates = encoder_rates(graph, x, result.timesteps, result.steps)
        for i, pop in enumerate(graph.walk("snn.population")):
            train = result.recorded[pop.result.name or f"population{i}"]
            rates[pop] = float(train.mean()) if train.size else 0.0
        for op, rate in rates.items():
            op.extra[RATE] = round(min(max(rate, 0.0), 1.0), 6)
        ctx.stat("sources", len(rates))
        busiest = max(rates, key=rates.get)
        ctx.remark(f"mean rate {np.mean(list(rates.values())):.4f} spikes per neuron per step; highest "
                   f"%{busiest.result.name} {rates[busiest]:.4f}")
        return True

"""The edge class's passes: ``xylo-convert`` (the class's neurons) and ``xylo-assign`` (the fit).

``xylo-convert`` turns integer populations with the linear leak into bit-shift neurons: each
decay ``d`` (the fraction ``d/4096`` lost per step) becomes the nearest shift ``s`` (the
fraction ``2^-s``: ``s = round(log2(4096/d))``, clipped to what the chip holds), and the
change of time constant τ = −1/ln(1 − fraction) is reported; hidden populations may emit up
to the chip's events per step, readout populations its readout limit.  It runs before the
image's graph is taken, so every executor runs the converted neurons.

``xylo-assign`` is the mapping pass: the neuron assignment and the design-rule check of
:func:`nmc.targets.edge.fabric.assign`; it changes no op.
"""

from __future__ import annotations

import math

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, param_array
from nmc.ir.snn import DECAY_ONE
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.edge.chip import max_dash


def nearest_shift(d: np.ndarray, largest: int) -> np.ndarray:
    """The shift whose fraction ``2^-s`` is nearest ``d/4096`` in log scale, in [0, largest]
    (no decay, ``d = 0``, becomes the slowest: ``largest``)."""
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(divide="ignore"):
        s = np.round(np.log2(DECAY_ONE / np.maximum(d, 1e-300)))
    return np.clip(np.where(d <= 0, largest, s), 0, largest).astype(np.int64)


def tau_steps(fraction: float) -> float:
    """The time constant, in steps, of losing ``fraction`` per step (inf when nothing decays)."""
    if fraction <= 0:
        return math.inf
    if fraction >= 1:
        return 0.0
    return -1.0 / math.log1p(-fraction)


def _as_param(values: np.ndarray, shape):
    flat = values.reshape(-1)
    if np.all(flat == flat[0]):
        return int(flat[0])
    return Blob(values.reshape(shape).astype(np.int32))


@register_pass("xylo-convert")
class XyloConvert(Pass):
    """Requires: an integer graph (after ``quantize``) and an edge-class target.  Ensures:
    every population has ``leak = shift`` with shifts the chip holds, ``max_spikes`` set to the
    chip's events per step (readout populations: the readout limit); populations already
    shifting keep their parameters.  Every population's inputs are put in the fabric's
    delivery order (input first, then source populations in graph order), which matters
    where a synaptic current saturates.  Remarks the τ error of each converted decay."""

    def run(self, graph, ctx: PassContext) -> bool:
        chip = ctx.target
        if chip is None or "fabric" not in chip.sections:
            raise NmcError("xylo-convert needs an edge-class target", hint="pass --target xylo-audio")
        fab, largest = chip.sections["fabric"], max_dash(chip)
        decoded = {d.x.owner for d in graph.walk("snn.decode")}
        changed = False
        for pop in graph.walk("snn.population"):
            synapse = pop.synapse or (0,) * len(pop.currents)
            # the fabric delivers input events first, then hidden neurons' in ascending order
            # (populations in graph order): the inputs in that order
            ranked = sorted(zip(pop.currents, synapse), key=lambda cs: graph.index(cs[0].owner.src.owner))
            if [c for c, _ in ranked] != list(pop.currents):
                new = pop.with_changes(currents=[c for c, _ in ranked],
                                       synapse=tuple(k for _, k in ranked) if pop.synapse else ())
                graph.replace(pop, new)
                pop, changed = new, True
            if pop.leak == "shift":
                continue
            if not pop.bits:
                raise NmcError("xylo-convert needs an integer population", pop.loc, hint="run quantize first")
            if pop.reset not in chip.formats.reset_modes:
                raise NmcError(f"%{pop.result.name or '?'} resets by '{pop.reset}'; the fabric's neurons reset by "
                               f"{', '.join(chip.formats.reset_modes)} in the step they fire", pop.loc)
            shape = pop.result.type.shape
            new = {}
            for field, into in (("du", "du"), ("dv", "dv")):
                d = param_array(getattr(pop, field), shape)
                s = nearest_shift(d, largest)
                worst, still = 0.0, bool(np.any(d <= 0))
                for dd, ss in {(float(a), int(b)) for a, b in zip(d.reshape(-1), s.reshape(-1))}:
                    want, got = tau_steps(dd / DECAY_ONE), tau_steps(2.0 ** -ss)
                    if math.isfinite(want) and want > 0:
                        worst = max(worst, abs(got - want) / want)
                new[into] = _as_param(s, shape)
                name = pop.result.name or "?"
                ctx.remark(f"%{name}: {field} → shift(s) {sorted(set(s.reshape(-1).tolist()))}; largest relative τ error "
                           f"{worst:.3g}" + (f" (no decay: the slowest leak, shift {largest})" if still else ""))
            limit = fab.max_output_events if pop in decoded else fab.max_hidden_events
            threshold = param_array(pop.threshold, shape)
            if np.any(threshold < 1):
                raise NmcError(f"%{pop.result.name or '?'} has thresholds below 1; bit-shift neurons need positive "
                               "thresholds", pop.loc)
            graph.replace(pop, pop.with_changes(leak="shift", du=new["du"], dv=new["dv"], du2=new["du"],
                                                max_spikes=limit))
            ctx.stat("populations converted")
            changed = True
        return changed


@register_pass("xylo-assign")
class XyloAssign(Pass):
    """Requires: a graph of bit-shift populations (``xylo-convert``).  Ensures: the network
    fits the target fabric (every design rule, :func:`nmc.targets.edge.fabric.assign`; all
    violations reported at once) and ``meta["xylo.hidden"]``, ``meta["xylo.outputs"]`` record
    its use.  Changes no op."""

    def run(self, graph, ctx: PassContext) -> bool:
        from nmc.targets.edge.fabric import assign

        config = assign(graph, ctx.target)
        graph.meta["xylo.hidden"] = config.hidden
        graph.meta["xylo.outputs"] = config.outputs
        ctx.stat("hidden neurons", config.hidden)
        ctx.stat("synapses", config.synapse_count())
        return True

"""The edge fabric's emulator: runs an image's ``xylo.config`` section and nothing else.

Per step ``t`` (the order of XyloSim's ``XyloLayer::evolve``): the input events of step
``t``, then the hidden neurons' events of step ``t − 1``, are delivered one source at a time
(saturating per event, :func:`nmc.neuron.deliver_in_order`), each weight matrix shifted
left by its shift, into the hidden neurons' synaptic currents; the hidden events of step
``t − 1`` into the readout neurons; then hidden and readout neurons advance
(:class:`nmc.neuron.ShiftNeuronState`, the arithmetic the reference semantics use too).  A
run lasts ``T + depth − 1`` steps.  Bit-identical to the reference semantics on the image's
graph: outputs, spike counts and synaptic operations (tests/test_edge.py).

No energy per operation is published for this class of chip (docs/edge-target.md), so the
report gives events and synaptic operations and no energy figure.
"""

from __future__ import annotations

import numpy as np

from nmc.binding import InputSpec, bind_arrays, resolve_timesteps
from nmc.diagnostics import NmcError
from nmc.neuron import ShiftNeuronState
from nmc.runner import RunResult
from nmc.targets.edge.fabric import Config


class Emulator:
    """A loaded configuration; :meth:`run` executes a batch."""

    def __init__(self, config: Config):
        self.c = config
        self.w_in = config.w_in << config.shift_in  # the weights as they arrive: shifted left
        self.w_rec = config.w_rec << config.shift_rec
        self.w_out = config.w_out << config.shift_out

    def _neurons(self, batch: int) -> tuple[ShiftNeuronState, ShiftNeuronState]:
        c = self.c
        zeros_h, zeros_o = np.zeros(c.hidden, np.int64), np.zeros(c.outputs, np.int64)
        du = np.concatenate([c.dash_syn, np.zeros((2 - c.synapses, c.hidden), np.int64)])
        hidden = ShiftNeuronState.initial(du=du, dv=c.dash_mem, threshold=c.threshold, bias=c.bias, v0=zeros_h,
                                          bits=c.state_bits, max_spikes=c.max_hidden_events, reset_zero=False,
                                          batch=batch)
        out = ShiftNeuronState.initial(du=np.stack([c.dash_syn_out, zeros_o]), dv=c.dash_mem_out,
                                       threshold=c.threshold_out, bias=c.bias_out, v0=zeros_o, bits=c.state_bits,
                                       max_spikes=c.max_output_events, reset_zero=False, batch=batch)
        return hidden, out

    def run(self, inputs, timesteps: int | None = None, record=None, trace: bool = False) -> RunResult:
        """Run a batch of event trains ``[samples, T, *input_shape]`` (counts per channel and
        step, at most ``max_input_events``).  ``record``: spike trains by population name
        (``"all"`` or true: every population).  ``trace``: also return the hidden and readout
        voltages and synaptic currents of every step in ``stats["trace"]`` (for comparisons
        with a vendor simulator)."""
        c = self.c
        (x,), B = bind_arrays(inputs, [InputSpec(tuple(c.input_shape), True)], "the image")
        T = resolve_timesteps([x.shape[1]], timesteps, c.timesteps, "image")
        x = np.asarray(x)
        if x.size and (np.any(x != np.round(x)) or x.min() < 0 or x.max() > c.max_input_events):
            raise NmcError(f"the input holds {x.min()}..{x.max()} events per channel and step; the chip takes whole "
                           f"counts in 0..{c.max_input_events}", hint="clip or rescale the event counts")
        x = x.astype(np.int64).reshape(B, T, c.inputs)
        steps = T + c.depth - 1
        hidden, out = self._neurons(B)
        prev = np.zeros((B, c.hidden), np.int64)
        counts_h, counts_o = np.zeros((B, c.hidden), np.int64), np.zeros((B, c.outputs), np.int64)
        rec_h = np.zeros((B, steps, c.hidden), np.int64) if record else None
        rec_o = np.zeros((B, steps, c.outputs), np.int64) if record else None
        traces = {k: [] for k in ("v", "i_syn", "i_syn2", "v_out", "i_syn_out")} if trace else None
        synaptic_ops = hw_ops = 0
        nz_in = (c.w_in != 0).sum(axis=(0, 1))
        nz_hid = (c.w_rec != 0).sum(axis=(0, 1)) + (c.w_out != 0).sum(axis=0)
        for t in range(steps):
            xt = x[:, t] if t < T else np.zeros((B, c.inputs), np.int64)
            synaptic_ops += int((xt != 0).sum(axis=0) @ c.fan_in_src + (prev != 0).sum(axis=0) @ c.fan_hid_src)
            hw_ops += int(xt.sum(axis=0) @ nz_in + prev.sum(axis=0) @ nz_hid)
            for k in range(c.synapses):
                hidden.deliver(k, xt, self.w_in[k])
                hidden.deliver(k, prev, self.w_rec[k])
            out.deliver(0, prev, self.w_out)
            prev = hidden.advance()
            fired_o = out.advance()
            counts_h += prev
            counts_o += fired_o
            if record:
                rec_h[:, t], rec_o[:, t] = prev, fired_o
            if trace:
                for k, v in (("v", hidden.v), ("i_syn", hidden.u[0]), ("i_syn2", hidden.u[1]), ("v_out", out.v),
                             ("i_syn_out", out.u[0])):
                    traces[k].append(v.copy())
        by_name = {p["name"]: p for p in c.populations}

        def part(arr, name):  # a population's slice of the hidden or readout axis (last axis)
            p = by_name[name]
            return arr[..., p["first"]:p["first"] + p["neurons"]]

        outputs, voltages = [], []
        for d in c.decodes:
            v = part(out.v, d["population"]).astype(np.float32)
            outputs.append(v if d["mode"] == "membrane" else part(counts_o, d["population"]).astype(np.float32))
            voltages.append(v)
        recorded = {}
        if record:
            for p in c.populations:
                arr = rec_o if p["role"] == "readout" else rec_h
                recorded[p["name"]] = part(arr, p["name"])
        stats = {"hardware_synaptic_ops": int(hw_ops),
                 "hidden_events": int(counts_h.sum()), "readout_events": int(counts_o.sum()),
                 "hidden_neurons": c.hidden, "synapses": c.synapse_count()}
        if trace:
            stats["trace"] = {k: np.stack(v, axis=1) for k, v in traces.items()}
        return RunResult("emulator", outputs, voltages=voltages, recorded=recorded, timesteps=T, steps=steps,
                         spikes=int(counts_h.sum() + counts_o.sum()), synaptic_ops=int(synaptic_ops), stats=stats)


def prepare(image):
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` for an image of this class."""
    from nmc.targets.chip import parse_chip
    from nmc.targets.edge.fabric import SECTION, load_config

    name = getattr(image, "filename", "<image>")
    chip = parse_chip(image.sections["chip"].decode("utf-8"), f"{name}[chip]")
    if SECTION not in image.sections:
        raise NmcError(f"{name}: the image has no '{SECTION}' section", hint="compile it again for this chip")
    emulator = Emulator(load_config(image.sections[SECTION], chip, f"{name}[{SECTION}]"))

    def execute(inputs, timesteps=None, record=None):
        return emulator.run(inputs, timesteps, record)

    return execute

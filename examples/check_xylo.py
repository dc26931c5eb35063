"""nmc's edge emulator against SynSense's bit-accurate Xylo simulator (xylosim), and against
nmc's reference semantics, on random networks within the Xylo Audio 2 limits.

For each random configuration (targets/edge/fabric.py: ``random_config``) and random input
events, the script runs:

* XyloSim: ``xylosim.v2.XyloLayer`` (the C++ simulator behind rockpool's
  ``rockpool.devices.xylo.syns61201.XyloSim``), built from the configuration exactly as
  rockpool 3.1.0's ``XyloSim.from_config`` builds it (xylo_sim.py lines 74-170: per
  presynaptic neuron its synapses to current 0 in target order, then to current 1);
* nmc's edge emulator on the compiled ``xylo-audio`` image, with per-step traces;
* nmc's reference semantics on the image's graph,

and compares hidden and readout spike rasters and the hidden/readout membrane potentials and
synaptic currents step by step.  It prints a Markdown table (docs/edge-target.md).

Setup (a separate venv: xylosim's sdist builds with g++ in about a minute)::

    python3.11 -m venv /work/venv-xylo
    /work/venv-xylo/bin/pip install xylosim rockpool
    /work/venv-xylo/bin/pip install -e .
    /work/venv-xylo/bin/python examples/check_xylo.py --networks 20
"""

from __future__ import annotations

import argparse

import numpy as np

import nmc
from nmc.compiler import compile_graph
from nmc.semantics import run_snn
from nmc.targets.chip import load_chip
from nmc.targets.edge.emulator import Emulator
from nmc.targets.edge.fabric import random_config, random_events, to_graph


def xylosim_layer(c):
    """(the synapse objects, a ``xylosim.v2.XyloLayer``) for configuration ``c``, as rockpool's
    XyloSim.from_config builds it; keep the first as long as the layer."""
    from xylosim.v2 import XyloLayer, XyloSynapse

    def synapses(mats):  # mats: [(synapse id, [targets, sources])]
        n_src = mats[0][1].shape[1]
        out = []
        for pre in range(n_src):
            row = []
            for k, m in mats:
                row += [XyloSynapse(int(post), k, int(m[post, pre])) for post in np.where(m[:, pre])[0]]
            out.append(row)
        return out

    S = c.synapses
    # the layer keeps raw pointers to the synapse objects: they must outlive it (rockpool
    # keeps them in XyloSim._xylo_sim_params)
    keep = (synapses([(k, c.w_in[k]) for k in range(S)]), synapses([(k, c.w_rec[k]) for k in range(S)]),
            synapses([(0, c.w_out)]))
    return keep, XyloLayer(
        synapses_in=keep[0], synapses_rec=keep[1], synapses_out=keep[2],
        aliases=[[] for _ in range(c.hidden)],
        threshold=c.threshold.tolist(), threshold_out=c.threshold_out.tolist(),
        has_bias=True, bias=c.bias.tolist(), bias_out=c.bias_out.tolist(),
        weight_shift_inp=c.shift_in, weight_shift_rec=c.shift_rec, weight_shift_out=c.shift_out,
        dash_mem=c.dash_mem.tolist(), dash_mem_out=c.dash_mem_out.tolist(),
        dash_syns=[list(c.dash_syn[:, h]) for h in range(c.hidden)],
        dash_syns_out=[[int(d)] for d in c.dash_syn_out], name="check_xylo")


def run_xylosim(c, x: np.ndarray) -> dict:
    """One sample ``x`` [T, inputs] through XyloSim: rasters and traces, [T, neurons] each."""
    keep, layer = xylosim_layer(c)
    out = np.array(layer.evolve(x.astype(np.uint8).tolist()), dtype=np.int64)
    return {"spikes_h": np.array(layer.rec_recurrent_spikes, dtype=np.int64), "spikes_o": out,
            "v": np.array(layer.rec_v_mem, dtype=np.int64).T, "i_syn": np.array(layer.rec_i_syn, dtype=np.int64).T,
            "i_syn2": np.array(layer.rec_i_syn2, dtype=np.int64).T,
            "v_out": np.array(layer.rec_v_mem_out, dtype=np.int64).T,
            "i_syn_out": np.array(layer.rec_i_syn_out, dtype=np.int64).T, "synapses": keep}


def compare(c, x: np.ndarray) -> dict:
    """Per sample of ``x`` [samples, T, inputs]: whether each recorded quantity agrees."""
    T = x.shape[1]
    graph = to_graph(c)
    image = compile_graph(graph, "xylo-audio")
    emu = Emulator(c).run([x], record="all", trace=True)
    ref_graph = image.graph
    pops = {p.result.name: p for p in ref_graph.walk("snn.population")}
    ref = run_snn(ref_graph, [x], record=list(pops.values()))
    image_run = nmc.run(image, x, backend="emulator")
    rows = []
    for n in range(len(x)):
        xs = run_xylosim(c, x[n])
        tr = {k: v[n, :T] for k, v in emu.stats["trace"].items()}
        ours = {"spikes_h": emu.recorded["h"][n, :T], "spikes_o": emu.recorded["o"][n, :T], **tr}
        rows.append({
            "rasters": bool(np.array_equal(ours["spikes_h"], xs["spikes_h"])
                            and np.array_equal(ours["spikes_o"], xs["spikes_o"])),
            "traces": all(np.array_equal(ours[k], xs[k]) for k in ("v", "i_syn", "i_syn2", "v_out", "i_syn_out")),
            "reference": bool(np.array_equal(ref.spikes[pops["h"]][n, :T], ours["spikes_h"])
                              and np.array_equal(ref.spikes[pops["o"]][n, :T], ours["spikes_o"])),
            "events": int(xs["spikes_h"].sum() + xs["spikes_o"].sum()),
            "saturated": bool(np.any(np.abs(xs["i_syn"]) >= 32767) or np.any(np.abs(xs["i_syn2"]) >= 32767)
                              or np.any(np.abs(xs["v"]) >= 32767)),
        })
    same_outputs = np.array_equal(image_run.outputs[0], ref.outputs[0]) and image_run.synaptic_ops == ref.synaptic_ops
    return {"rows": rows, "image_vs_reference": same_outputs}


REGIMES = {  # name -> random_config options
    "moderate": {"density": 0.2, "weight_scale": 60, "threshold_max": 2000},
    "dense, strong": {"density": 0.5, "weight_scale": 127, "threshold_max": 500},
    "saturating": {"density": 0.6, "weight_scale": 127, "threshold_max": 32767},
}


def write_fixture(path: str, chip, seed: int) -> None:
    """One network in the saturating regime (12 inputs, 40 hidden, 4 outputs, 60 steps, 2
    samples) with XyloSim's results, as an .npz of the configuration's bytes and arrays."""
    rng = np.random.default_rng(seed)
    c = random_config(rng, chip, inputs=12, hidden=40, outputs=4, timesteps=60, **REGIMES["saturating"])
    x = random_events(rng, c, 2, 60, rate=0.3)
    runs = [run_xylosim(c, x[n]) for n in range(len(x))]
    keys = ("spikes_h", "spikes_o", "v", "i_syn", "i_syn2", "v_out", "i_syn_out")
    np.savez_compressed(path, config=np.frombuffer(c.to_bytes(), np.uint8), x=x,
                        **{k: np.stack([r[k] for r in runs]) for k in keys})
    print(f"wrote {path}: {int(sum(r['spikes_h'].sum() for r in runs))} hidden events")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", type=int, default=10, help="random networks per regime")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-fixture", metavar="NPZ", help="write one saturating network, its input and XyloSim's "
                    "rasters and traces (tests/data/xylosim_fixture.npz: the tests check the emulator against it "
                    "without xylosim)")
    args = ap.parse_args()
    chip = load_chip("xylo-audio")
    if args.write_fixture:
        write_fixture(args.write_fixture, chip, args.seed)
        return
    rng = np.random.default_rng(args.seed)
    print("| regime | networks | samples | steps | events (XyloSim) | saturated samples | rasters identical "
          "| v, i_syn, i_syn2 traces identical | emulator = reference | image run = reference |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, options in REGIMES.items():
        rows, image_ok = [], 0
        for _ in range(args.networks):
            shape = {"inputs": int(rng.integers(1, 17)), "hidden": int(rng.integers(1, 201)),
                     "outputs": int(rng.integers(1, 9))}
            c = random_config(rng, chip, **shape, timesteps=args.steps, **options)
            x = random_events(rng, c, args.samples, args.steps)
            result = compare(c, x)
            rows += result["rows"]
            image_ok += result["image_vs_reference"]
        n = len(rows)
        print(f"| {name} | {args.networks} | {n} | {args.steps} | {sum(r['events'] for r in rows)} "
              f"| {sum(r['saturated'] for r in rows)} | {sum(r['rasters'] for r in rows)}/{n} "
              f"| {sum(r['traces'] for r in rows)}/{n} | {sum(r['reference'] for r in rows)}/{n} "
              f"| {image_ok}/{args.networks} |")


if __name__ == "__main__":
    main()

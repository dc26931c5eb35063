"""Cores against the lower bound on a multicast-class board (``python benchmarks/multicast_mapping.py``).

One row per network: converted with the default pipeline of the target (calibration data,
``measure-rates``), mapped by ``nmc.compile`` (``mc-partition,mc-place,mc-route``), then run
on the multicast emulator and the CPU runtime from the same image.  The networks and their
data are benchmarks/mapping.py's (``network_inputs``): ``mnist-8`` (the ONNX Model Zoo's
MNIST CNN, ``<data>/models/mnist-8.onnx``), ``cnn`` (the project's MNIST CNN,
``examples/mnist_cnn.onnx``), ``mlp`` and ``vgg`` (VGG-11 at channel width ×0.5 on 3x32x32
seeded random inputs, benchmarks/vgg.py).

Columns: neurons, synapses, cores, the lower bound (``mc-partition``'s
``hw.cores_lower_bound``: :func:`nmc.targets.multicast.passes.cores_lower_bound` of the whole
graph, docs/multicast-target.md) and cores / bound; the sum of every population's own bound
(the cores a mapping needs at least when no core mixes populations, as sPyNNaker maps) and
cores / that sum; chips, router entries before and after compression in all and the fullest
table against the router's entries, the busiest link (packets per step at the measured
rates), the busiest core's estimated cycles per step against the budget; then from the
emulator run: time per step of the busiest core (µs), whether every step kept real time,
dropped packets per sample, and whether the emulator's outputs equal the CPU runtime's bit for
bit.

    python benchmarks/multicast_mapping.py [--target spinnaker2-board] [--networks mnist-8,cnn,vgg]
        [--data ../shared/data] [--timesteps 16] [--calib 100] [--samples 4] [--seed 0]

Deterministic for ``--seed`` (the times vary).  Rows need ``--data`` for the MNIST models;
without it they are skipped with a note.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mapping import DEFAULT_DATA, MODELS, network_inputs  # noqa: E402

COLUMNS = ("network", "neurons", "synapses", "cores", "lower bound", "cores/lb", "Σ layer bounds", "cores/Σ", "chips", "entries", "compressed",
           "fullest table", "busiest link", "est. cycles/step", "budget", "compile s", "µs/step", "real time",
           "dropped/sample", "emulator == cpu")


def row(name: str, args) -> dict:
    import nmc
    from nmc.compiler import default_pipeline, resolve_target
    from nmc.targets.mapping.netlist import Netlist
    from nmc.targets.multicast.passes import cores_lower_bound, lower_bound_costs

    spec = {"label": name, "kind": "vgg" if name == "vgg" else "onnx", "width": args.vgg_width, "seed": args.seed,
            "calib": args.calib, "samples": args.samples, "data": str(args.data), "path": str(MODELS.get(name, ""))}
    graph, x_cal, x_run = network_inputs(spec)
    target = resolve_target(args.target)
    start = time.perf_counter()
    pipeline = default_pipeline(graph, target, 2, args.timesteps, args.seed, calibrated=True)
    front = pipeline[:pipeline.index("mc-partition")].rstrip(",")
    snn = nmc.optimize(graph, front, target=target.chip, calibration=x_cal, seed=args.seed)
    image = nmc.compile(snn, target=args.target, timesteps=args.timesteps, seed=args.seed)
    compile_s = time.perf_counter() - start
    res = image.manifest["resources"]
    layers = sum(cores_lower_bound(target.chip, [costs]) for costs in lower_bound_costs(target.chip, Netlist(snn)).values())
    out = {"network": name, "neurons": res["neurons"], "synapses": res["synapses"], "cores": res["cores"],
           "lower bound": res["cores_lower_bound"], "cores/lb": round(res["cores"] / res["cores_lower_bound"], 3),
           "Σ layer bounds": layers, "cores/Σ": round(res["cores"] / layers, 3),
           "chips": res["chips"], "entries": res["table_entries"], "compressed": res["table_entries_compressed"],
           "fullest table": f"{res['fullest_table']} of {res['router_entries']}", "busiest link": res["max_link_load"],
           "est. cycles/step": res["step_cycles"], "budget": res["step_cycle_budget"], "compile s": round(compile_s, 1)}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nmc-mc-") as tmp:
        path = str(Path(tmp) / "net.nmb")
        image.save(path)
        emu = nmc.run(path, x_run, backend="emulator")
        cpu = nmc.run(path, x_run, backend="cpu")
    out["µs/step"] = round(emu.stats["time_per_step_s"] * 1e6, 1)
    out["real time"] = "yes" if emu.stats["kept_real_time"] else "no"
    out["dropped/sample"] = emu.stats["dropped_packets"] / len(x_run)
    out["emulator == cpu"] = "yes" if all(np.array_equal(a, b) for a, b in zip(emu.outputs, cpu.outputs)) else "NO"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="spinnaker2-board")
    ap.add_argument("--networks", default="mnist-8,cnn,vgg")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--vgg-width", type=float, default=0.5)
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"target {args.target}, T = {args.timesteps}, {args.samples} samples emulated")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for name in args.networks.split(","):
        if name != "vgg" and not args.data.exists():
            print(f"| {name} | skipped: no data folder {args.data} |")
            continue
        r = row(name, args)
        print("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

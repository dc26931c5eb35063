"""Run a model, IR file or image on a batch of inputs.

An ANN graph runs as an ANN; a spiking graph runs for T steps (plus the steps its deepest
path needs to reach the output).  Prints a summary; -o, --record and --report write files.

examples:
  nmc run model.nmir --input x.npy -o out.npy
  nmc run snn.nmir --input data.npz --timesteps 32 --record spikes.npz --report run.json
  nmc run model.nmb --input data.npz --backend emulator --cluster auto -o out.npy
"""

from __future__ import annotations

import io
import json
import os

from nmc.commands.nir_options import add_nir_options, nir_options
from nmc.commands.cluster_option import add_cluster_option
from nmc.diagnostics import UsageError
from nmc.outputs import check_outputs, write_all


def add_arguments(p) -> None:
    from nmc.runner import BACKENDS

    p.add_argument("artifact", metavar="ARTIFACT", help="a model file, .nmir or image")
    p.add_argument("--input", required=True, metavar="X.npy|DATA.npz", help="inputs (first axis = samples)")
    p.add_argument("--backend", default="reference", help=f"executor: {', '.join(sorted(BACKENDS))} (default reference)")
    p.add_argument("--no-cache", action="store_true",
                   help="the cpu backend compiles afresh, neither reading nor writing its object cache (NMC_CACHE_DIR)")
    p.add_argument("--timesteps", type=int, metavar="N", help="steps during which input is presented (spiking graphs)")
    add_nir_options(p)
    p.add_argument("-o", "--output", metavar="OUT.npy", help="decoded outputs, one row per sample")
    p.add_argument("--record", metavar="SPIKES.npz", help="spike trains of the output population(s) [samples, steps, ...]")
    p.add_argument("--record-all", action="store_true", help="with --record: every population, keyed by name")
    p.add_argument("--report", metavar="R.json", help="a JSON report for pipelines")
    add_cluster_option(p)


def _npy(arr) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr))  # the same values give the same bytes, whatever the backend
    return buf.getvalue()


def run(args) -> int:
    import numpy as np

    from nmc.data import load_inputs
    from nmc.runner import run as run_artifact

    if args.no_cache:
        os.environ["NMC_NO_CACHE"] = "1"  # read by the CPU runtime's JIT (nmc.targets.cpu.jit)
    if args.timesteps is not None and args.timesteps < 1:
        raise UsageError(f"--timesteps must be at least 1, got {args.timesteps}")
    if args.record_all and not args.record:
        raise UsageError("--record-all needs --record SPIKES.npz")
    check_outputs([args.artifact, args.input], [("-o", args.output), ("--record", args.record),
                                                ("--report", args.report)])
    x, y = load_inputs(args.input)
    record = ("all" if args.record_all else "output") if args.record else None
    if args.cluster:
        from nmc.cluster import Cluster

        with Cluster(args.cluster) as cluster:
            result = cluster.run(args.artifact, x, backend=args.backend, timesteps=args.timesteps, record=record,
                                 **nir_options(args))
        print(cluster.summary())
    else:
        result = run_artifact(args.artifact, x, backend=args.backend, timesteps=args.timesteps, record=record,
                              **nir_options(args))
    writes = []  # every output file, all or nothing (issue 22)
    if args.output:
        if len(result.outputs) != 1:
            raise UsageError(f"the model has {len(result.outputs)} outputs; -o takes one", hint="use --report, or a model with one output")
        writes.append((args.output, _npy(result.outputs[0])))
    if args.record:
        arrays = result.recorded
        if not args.record_all and len(arrays) == 1:
            arrays = {"spikes": next(iter(arrays.values()))}
        writes.append((args.record, lambda f: np.savez_compressed(f, **arrays)))
    samples = len(x)
    accuracy = float(np.mean(result.predictions() == y)) if y is not None else None
    if args.report:
        report = {
            "backend": result.backend, "samples": samples, "timesteps": result.timesteps,
            "latency_steps": result.steps, "compile_s": result.compile_s, "run_s": result.run_s,
            "spikes": result.spikes, "synaptic_ops": result.synaptic_ops, **result.stats,
        }
        if accuracy is not None:
            report["accuracy"] = accuracy
        writes.append((args.report, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()))
    write_all(writes)
    _print_summary(result, samples, accuracy)
    return 0


def _print_chip_summary(stats: dict, samples: int) -> None:
    """The emulator's estimates in one glance; ``--report`` has every figure and link."""
    if "kept_real_time" in stats:  # a class whose cores have a real-time step budget
        budget = f"{'kept' if stats['kept_real_time'] else 'did NOT keep'} real time ({stats['real_time_step_s'] * 1e3:g} ms step)"
        print(f"energy/inference {stats['energy_per_inference_j'] * 1e6:.3g} µJ · "
              f"time/step {stats['time_per_step_s'] * 1e6:.3g} µs (busiest core), {budget}")
        print(f"dropped packets/sample {stats['dropped_packets'] / samples:.1f} · "
              f"router lookups/sample {stats['lookups'] / samples:.1f}")
    else:
        print(f"energy/inference {stats['energy_per_inference_j'] * 1e6:.3g} µJ · "
              f"time/step {stats['time_per_step_s'] * 1e9:.3g} ns (network latency bound)")
    line = (f"packets/sample {stats['packets'] / samples:.1f} · hops/sample {stats['hops'] / samples:.1f} "
            f"({stats['hops_between_chips'] / samples:.1f} between chips)")
    busiest = stats.get("busiest_link")
    if busiest:
        line += (f" · busiest link {tuple(busiest['from'])}->{tuple(busiest['to'])} ({busiest['kind']}) "
                 f"{busiest['spikes_per_step']:.3g} spikes/step")
    print(line)


def _print_summary(result, samples: int, accuracy: float | None) -> None:
    parts = [f"backend {result.backend}", f"{samples} samples"]
    if result.timesteps is not None:
        parts.append(f"T={result.timesteps} ({result.steps} steps with latency)")
    print(" · ".join(parts))
    if accuracy is not None:
        print(f"accuracy {100 * accuracy:.2f} %")
    if result.timesteps is not None:
        print(f"spikes/sample {result.spikes / samples:.1f} · synaptic ops/sample {result.synaptic_ops / samples:.1f}")
    if "energy_per_inference_j" in result.stats:
        _print_chip_summary(result.stats, samples)
    print(f"time: prepare {result.compile_s:.3f} s, run {result.run_s:.3f} s")

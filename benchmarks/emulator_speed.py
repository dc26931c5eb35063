"""Emulator throughput on compiled images, against another checkout's emulator and the CPU runtime
(``python benchmarks/emulator_speed.py``).

For each network (``--networks``; the networks of ``benchmarks/mapping.py``, compiled the same
way: its default conversion pipeline with calibration, then ``nmc.compile`` for a board of
``mesh-board-4`` chips — VGG-11 ×0.5 on 2×2 chips, the MNIST models on one — T = 16, seed
0), the image is compiled once (or read from ``--images DIR``, where compiled images are kept
between runs), prepared once per backend (``nmc.runner.prepare``: loading the image and the CPU
runtime's compilation excluded, as ``RunResult.run_s`` excludes them) and run on ``--samples``
samples (mapping.py's: seeded random images for VGG, the first ``heldout_idx`` MNIST images);
throughput is samples × steps / wall seconds, the median of ``--repeat`` runs, and for the
emulator also per second of this process's CPU time (``per CPU second``: what the run costs
when other jobs share the host, as they do here).

``--baseline PYTHON`` (e.g. ``/work/main/.venv/bin/python``, a venv with another checkout of
nmc installed): the same image and samples are also run by that interpreter's emulator, in a
child process, alternating with this checkout's runs so both see the same load; the table
gives the median ratio of the paired runs, and whether both emulators gave the same outputs, final voltages, spike
counts, synaptic ops, packets, hops, link loads and energy (``same stats``).  The CPU runtime
(``cpu`` backend) runs the same samples once per repeat; ``emulator = CPU`` compares its
outputs and the emulator's bit for bit.

``--fit`` instead measures the dense path and the compiled weight runs of every distinct
kernel of the networks that has both (convolutions with many outputs per group, dense
kernels; the others run through fan tables whatever the density) on random spikes at
densities 0.5–40% and batches 8 and 32, and fits the cost constants of
:mod:`nmc.targets.mesh.kernels` (``EVENT_COST``, ``DENSE_COST``), printing how often the
fitted prediction picks the faster path.

    python benchmarks/emulator_speed.py [--networks vgg,mnist-8,cnn] [--images DIR]
        [--baseline PYTHON] [--samples 8] [--repeat 3] [--data ../shared/data] [--fit]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, sys
import numpy as np
import nmc
from nmc.runner import prepare
path, xs, repeat, here = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, here)
from emulator_speed import digest, timed
x = np.load(xs)
execute = prepare(path, "emulator")
for _ in range(repeat):
    line = sys.stdin.readline()
    if not line:
        break
    r, wall, cpu = timed(execute, x)
    print(json.dumps({"rate": len(x) * r.steps / wall, "digest": digest(r)}), flush=True)
"""


def timed(execute, x) -> tuple:
    """(result, wall seconds, this process's CPU seconds) of one run of a prepared image."""
    wall, cpu = time.perf_counter(), time.process_time()
    r = execute([x])
    return r, time.perf_counter() - wall, time.process_time() - cpu


def digest(r) -> str:
    """A digest of everything a run reports: outputs, voltages, statistics."""
    h = hashlib.sha256()
    for a in list(r.outputs) + [v for v in (r.voltages or []) if v is not None]:
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(r.stats, sort_keys=True, default=str).encode())
    h.update(f"{r.spikes} {r.synaptic_ops}".encode())
    return h.hexdigest()[:16]


def compiled(name: str, args) -> tuple[str, np.ndarray]:
    """(image path, run samples) of one network, compiling it unless ``--images`` has it."""
    import math
    import re

    import mapping

    import nmc
    from nmc.compiler import default_pipeline, resolve_target

    folder = Path(args.images)
    folder.mkdir(parents=True, exist_ok=True)
    image, xs = folder / f"{name}.nmb", folder / f"{name}-x.npy"
    if image.exists() and xs.exists():
        return str(image), np.load(xs)
    spec = {"timesteps": 16, "seed": 0, "board": "mesh-board-4", "calib": args.calib, "samples": args.samples,
            "data": args.data}
    spec.update({"kind": "vgg", "width": 0.5} if name == "vgg" else {"kind": "mnist", "path": str(mapping.MODELS[name])})
    graph, x_cal, x_run = mapping.network_inputs(spec)
    chips = 4 if name == "vgg" else 1
    snn = None
    while True:
        text, _ = mapping.board_text(spec["board"], chips)
        board = folder / f"{name}-board.toml"
        board.write_text(text, encoding="utf-8")
        target = resolve_target(str(board))
        if snn is None:
            # binary spikes (burst=1, not the mesh chips' default): the speeds documented were measured with them
            pipeline = default_pipeline(graph, target, 2, 16, 0, calibrated=True, convert="burst=1")
            front = pipeline[:pipeline.index("partition")].rstrip(",")
            snn = nmc.optimize(graph, front, target=target.chip, calibration=x_cal, seed=0)
        try:
            img = nmc.compile(snn, target=str(board), timesteps=16, seed=0)
            break
        except nmc.NmcError as err:
            need = re.search(r"needs (\d+) cores", str(err))
            if not need:
                raise
            chips = math.ceil(int(need[1]) / (target.chip.mesh.cores_x * target.chip.mesh.cores_y))
    img.save(str(image))
    np.save(xs, x_run)
    return str(image), x_run


def measure(name: str, args) -> dict:

    path, x = compiled(name, args)
    row = {"network": name, "samples": len(x)}
    child = None
    if args.baseline:
        xs = str(Path(args.images) / f"{name}-x.npy")
        # run from the images folder: a checkout in the working directory would shadow the baseline
        # and without PYTHONPATH, which may point at this checkout
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        child = subprocess.Popen([args.baseline, "-c", CHILD, path, xs, str(args.repeat), str(HERE)], cwd=args.images,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    from nmc.runner import prepare

    emulator, runtime = prepare(path, "emulator"), prepare(path, "cpu")  # loading and compiling excluded
    ours, ours_cpu, theirs, cpu, same = [], [], [], [], True
    for _ in range(args.repeat):
        r, wall, used = timed(emulator, x)
        ours.append(len(x) * r.steps / wall)
        ours_cpu.append(len(x) * r.steps / used)
        d = digest(r)
        if child:
            child.stdin.write("\n")
            child.stdin.flush()
            got = json.loads(child.stdout.readline())
            theirs.append(got["rate"])
            same = same and got["digest"] == d
        c, wall, _ = timed(runtime, x)
        cpu.append(len(x) * c.steps / wall)
        row["identical"] = all(np.array_equal(a, b) for a, b in zip(r.outputs, c.outputs))
    if child:
        child.stdin.close()
        child.wait()
        row["baseline"] = float(np.median(theirs))
        row["ratio"] = float(np.median(np.array(ours) / np.array(theirs)))  # run by run, alternating
        row["same_stats"] = same
    row.update(steps=r.steps, emulator=float(np.median(ours)), emulator_cpu=float(np.median(ours_cpu)),
               cpu=float(np.median(cpu)), spike_rate=r.spikes / r.stats["neuron_updates"])
    return row


def fit(args) -> None:
    """Time both kernel paths and fit the cost constants (module docstring)."""
    from threadpoolctl import threadpool_limits

    from nmc.runner import load_artifact
    from nmc.targets.chip import parse_chip
    from nmc.targets.mesh.emulator import Emulator
    from nmc.targets.mesh.sections import load_sections

    def best(f, n=5) -> float:
        out = []
        for _ in range(n):
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
        return min(out)

    rng = np.random.default_rng(0)
    rows = []
    for name in args.networks:
        path, _ = compiled(name, args)
        image = load_artifact(path)
        chip = parse_chip(image.sections["chip"].decode(), "<chip>")
        kr = Emulator(load_sections(image.sections, chip), chip).kernels
        seen = set()
        with threadpool_limits(limits=1, user_api="blas"):
            for k, (kind, g, *_rest) in enumerate(kr.rows):
                plan = kr.plan(k)
                if plan.fan is not None or not plan.runs_events or (kind, g) in seen:
                    continue  # fan tables always run their events (KernelRunner.cheaper)
                seen.add((kind, g))
                n, n_tgt = int(np.prod(g.src)), int(np.prod(g.tgt))
                for B in (8, 32):
                    out = np.zeros((B, n_tgt), np.int64)
                    for density in (0.005, 0.02, 0.05, 0.1, 0.2, 0.4):
                        x = (rng.random((B, n)) < density).astype(np.int8)
                        b, j = np.nonzero(x)
                        v = np.ones(len(b), np.int64)
                        dense = best(lambda: kr.dense(k, out, x, 1))
                        event = best(lambda: plan.add(out, b, j, v, B, kr.rows[k][4]))
                        fe, fd = kr.features(k, len(b), B)
                        rows.append((dense, event, fe, fd))
    td = np.array([r[0] for r in rows])
    te = np.array([r[1] for r in rows])
    Fe, Fd = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    ce = np.linalg.lstsq(Fe / te[:, None], np.ones(len(te)), rcond=None)[0]
    cd = np.linalg.lstsq(Fd / td[:, None], np.ones(len(td)), rcond=None)[0]
    pick = Fe @ ce < Fd @ cd
    chosen = np.where(pick, te, td)
    print(f"EVENT_COST = {np.array2string(ce, precision=2)}  (s per multiply-add, entry, accumulator cell, call)")
    print(f"DENSE_COST = {np.array2string(cd, precision=2)}  (s per multiply-add, copied cell, call)")
    print(f"{len(rows)} cases: faster path chosen in {np.mean(pick == (te < td)):.0%}; total time chosen "
          f"{chosen.sum():.3f} s, best {np.minimum(te, td).sum():.3f} s, always dense {td.sum():.3f} s, "
          f"always events {te.sum():.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="vgg,mnist-8,cnn")
    ap.add_argument("--images", default=str(Path("/tmp") / "nmc-emulator-speed"))
    ap.add_argument("--baseline", help="python of another nmc checkout to compare against")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    args.networks = args.networks.split(",")
    if args.fit:
        fit(args)
        return
    print("| network | samples | steps | spike rate | emulator sample-steps/s | per CPU second | baseline emulator | "
          "ratio | same stats | CPU runtime sample-steps/s | emulator = CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.networks:
        r = measure(name, args)
        base = f"{r['baseline']:.1f} | {r['ratio']:.2f} | {'yes' if r['same_stats'] else 'NO'}" \
            if "baseline" in r else "- | - | -"
        print(f"| {name} | {r['samples']} | {r['steps']} | {r['spike_rate']:.2%} | {r['emulator']:.1f} | "
              f"{r['emulator_cpu']:.1f} | {base} | {r['cpu']:.1f} | "
              f"{'yes' if r['identical'] else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()

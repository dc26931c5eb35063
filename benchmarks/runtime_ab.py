"""Interleaved A/B of the CPU runtime between two source trees, for a machine shared with
other jobs: each round runs one workload of ``runtime.py`` in a fresh process per tree, in
turn (A, B, A, B, …), on the user's path (model file → ``compile_graph(..., "cpu")`` →
image → ``cpu`` backend), and reports the best wall time and the mean process CPU time of
``--runs`` calls; then each tree's median CPU time and the median of the per-round ratios
B/A.  CPU time is the figure to compare on a loaded machine: it leaves out time-slicing.

    python benchmarks/runtime_ab.py --a ../base-tree --b . --workload W2 --threads 1

W2's input is MNIST from ``--data`` when it has it (the default is ``runtime.py``'s, so that
both measure the same activity; seeded noise fires about four times as densely).

A tree is a checkout whose ``nmc`` package imports its own targets (what ``PYTHONPATH``
selects); each tree gets its own object cache folder, so both compile their own code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(workload: str, runs: int, threads: int, data: str | None) -> dict:
    """Best wall time and mean CPU time (s) of ``runs`` calls after one untimed call."""
    import time

    import numpy as np

    sys.path.insert(0, str(HERE))
    import runtime as R

    from nmc.runner import load_artifact
    from nmc.targets import cpu

    args = argparse.Namespace(data=data, quick=False)
    g, inputs, T, _, _ = R.workload(workload, args)
    with tempfile.TemporaryDirectory() as tmp:
        execute = cpu.prepare(load_artifact(str(R.user_path(g, Path(tmp)))), threads=threads)
    first = execute(inputs, timesteps=T)
    best, c0 = float("inf"), time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        res = execute(inputs, timesteps=T)
        best = min(best, time.perf_counter() - start)
    cpu_s = (time.process_time() - c0) / runs
    assert np.array_equal(res.outputs[0], first.outputs[0])
    return {"wall": best, "cpu": cpu_s, "synops": res.synaptic_ops}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", help="source tree A (the base)")
    ap.add_argument("--b", help="source tree B (the change)")
    ap.add_argument("--workload", default="W1-64")
    ap.add_argument("--runs", type=int, default=10, help="timed calls per process")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    shared = HERE.parents[1] / "shared" / "data"
    ap.add_argument("--data", default=str(shared) if shared.is_dir() else None,
                    help="folder with mnist/mnist_test.npz (as runtime.py's --data)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.workload, args.runs, args.threads, args.data)))
        return 0
    if not (args.a and args.b):
        ap.error("--a and --b name the two source trees")
    rows: dict[str, list[dict]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as caches:
        for _ in range(args.rounds):
            for name, tree in (("A", args.a), ("B", args.b)):
                env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()),
                       "NMC_CACHE_DIR": str(Path(caches) / name)}
                data = ["--data", args.data] if args.data else []
                out = subprocess.run([sys.executable, __file__, "--child", "--workload", args.workload, "--runs",
                                      str(args.runs), "--threads", str(args.threads), *data],
                                     capture_output=True, text=True, env=env, check=True).stdout
                rows[name].append(json.loads(out.splitlines()[-1]))
                r = rows[name][-1]
                print(f"{name} wall {r['wall'] * 1e3:9.3f} ms  cpu {r['cpu'] * 1e3:9.3f} ms", flush=True)
    if [r["synops"] for r in rows["A"]] != [r["synops"] for r in rows["B"]]:
        print("the trees' synaptic-operation counts differ")
    ratios = [b["cpu"] / a["cpu"] for a, b in zip(rows["A"], rows["B"])]
    print(f"{args.workload}, {args.threads} thread(s): median CPU time per call A "
          f"{statistics.median(r['cpu'] for r in rows['A']) * 1e3:.3f} ms, B "
          f"{statistics.median(r['cpu'] for r in rows['B']) * 1e3:.3f} ms; median ratio B/A "
          f"{statistics.median(ratios):.3f} over {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())

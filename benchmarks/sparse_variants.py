"""W3's sparse kernel variants against each other, paired, in one process.

    python benchmarks/sparse_variants.py [--rounds 15]

Builds W3 as ``benchmarks/runtime.py`` does (10,000 LIF neurons, 10**6 synapses, 1,000
steps, batch 1), compiles one executor per variant of the CPU runtime's sparse choices (the
network split into parts or not, :data:`targets/cpu/plan.SPLIT_SYNAPSES`; fixed rows or CSR
rows, ``tables.FIXED_SLOTS``; the row prefetch, ``emit.AHEAD``), checks that all give the
same counts, then calls them in turn, ``--rounds`` times, on one thread and prints each one's
thread CPU time per step (median) and the paired median of the first variant's time over
its own.  Thread CPU time rather than wall time, so that other jobs on a shared machine
weigh less (they still share its caches).

``split, 2 threads, no barrier`` runs the split network's two parts on two threads with the
wait for the other thread's step removed — its counts are not checked (a thread may read the other's
spike list of a step before it is complete) — and prints the larger of the two threads' CPU
times: the work each thread does per step, what a split run takes on two otherwise idle
cores, less the barrier's wait.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtime  # noqa: E402

from nmc.targets import cpu  # noqa: E402
from nmc.targets.cpu import emit, plan, tables  # noqa: E402

VARIANTS = {  # name: (split, fixed slots, events ahead)
    "unsplit, CSR rows, no prefetch": (False, (), 0),
    "unsplit, CSR rows": (False, (), 8),
    "unsplit, fixed rows, no prefetch": (False, tables.FIXED_SLOTS, 0),
    "unsplit, fixed rows": (False, tables.FIXED_SLOTS, 8),
    "split, CSR rows": (True, (), 8),
    "split, fixed rows": (True, tables.FIXED_SLOTS, 8),
}


def prepare(split: bool, slots: tuple, ahead: int):
    saved = plan.SPLIT_SYNAPSES, tables.FIXED_SLOTS, emit.AHEAD
    plan.SPLIT_SYNAPSES, tables.FIXED_SLOTS, emit.AHEAD = (0 if split else 10**18), slots, ahead
    try:
        ex = cpu.prepare(graph, cache=False, threads=1)
        ex._unsplit_version = None  # a split variant runs its own function on one thread too
        return ex
    finally:
        plan.SPLIT_SYNAPSES, tables.FIXED_SLOTS, emit.AHEAD = saved


def thread_times(ex, threads: int) -> list[float]:
    """Thread CPU time of each thread's call of the compiled function in one run."""
    fn, times = ex.fn, []

    def timed(*args):
        start = time.thread_time()
        fn(*args)
        times.append(time.thread_time() - start)

    ex.fn = timed
    try:
        ex([x], timesteps=STEPS, threads=threads)
    finally:
        ex.fn = fn
    return times


STEPS = 1000
rng = np.random.default_rng(1234)  # as runtime.workload draws W3: after W1 and W2
runtime.w1_graph(rng)
runtime.w2_graph(rng)
graph = runtime.w3_graph(rng, 10_000, 1_000_000)
x = (np.random.default_rng(9).random((1, STEPS, 1000)) < 0.02).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    runs = {name: prepare(*v) for name, v in VARIANTS.items()}
    ref = None
    for name, ex in runs.items():
        res = ex([x], timesteps=STEPS)
        got = (res.outputs[0].tobytes(), res.synaptic_ops)
        ref = ref or got
        assert got == ref, f"{name} differs"
    saved = emit.Lowering.wait
    emit.Lowering.wait = lambda self, k, threads, steps: None
    try:
        unsynced = prepare(True, tables.FIXED_SLOTS, 8)
    finally:
        emit.Lowering.wait = saved
    times: dict[str, list[float]] = {name: [] for name in [*runs, "split, 2 threads, no barrier"]}
    for _ in range(args.rounds):
        for name, ex in runs.items():
            times[name].append(thread_times(ex, 1)[0] / STEPS)
        times["split, 2 threads, no barrier"].append(max(thread_times(unsynced, 2)) / STEPS)
    first = np.array(times[next(iter(times))])
    for name, t in times.items():
        print(f"{name:34s} {np.median(t):.3e} s/step   paired ratio {np.median(first / np.array(t)):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

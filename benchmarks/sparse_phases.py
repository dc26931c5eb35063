"""Where a step of W3's split function goes: time-stamp counter ticks per phase and step.

    python benchmarks/sparse_phases.py [--rounds 9]

Builds W3 as ``benchmarks/sparse_variants.py`` does and compiles its split function (the
network in two parts, :func:`targets/cpu/plan.split_parts`) with ``rdtsc`` read around each
phase of each part's step: the input rows (projections from the encoder), the recurrent rows
(projections from spikes), the neuron update, and the wait for the other thread
(``Lowering.wait``).  The counts go to a buffer of this process whose address the code holds
as a constant (so the object is compiled without the cache).  It then runs the function
``--rounds`` times in each of three ways: both parts on one thread, the two parts on two
threads in lockstep (as a batch of one runs), and on two threads without the wait (the work
each thread does, as ``sparse_variants.py``'s last variant; its spike counts are not exact).

Each phase's figure is the median over a call's steps, then over the calls: a step in which
the thread was descheduled is an outlier a median leaves out, so on a shared machine these
figures say what a step costs when it runs, which whole-call times do not.  ``step`` is the
time from one step's first input row to the next one's (the phases plus what lies between
them); for the lockstep run also its 10th percentile (the steps in which both threads ran
at once, on a busy machine).  Ticks are the time-stamp counter's (``/proc/cpuinfo``'s
``tsc`` frequency: 2.596 GHz on the machine this was written on), not core cycles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from llvmlite import ir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparse_variants as sv  # noqa: E402  (builds W3 and its input)

from nmc.targets import cpu  # noqa: E402
from nmc.targets.cpu import emit, plan  # noqa: E402

PHASES = ("inputs", "recurrent", "update", "wait", "start")
TICKS = np.zeros((plan.PARTS, len(PHASES), sv.STEPS), np.int64)


def _stamp(lw):
    return lw.e.b.call(lw.e.intrinsic("llvm.readcyclecounter", emit.I64, []), [])


def _record(lw, part, phase: int, t0, absolute: bool = False):
    """Add the ticks since ``t0`` (or store ``t0``) at TICKS[part, phase, t]."""
    e, b = lw.e, lw.e.b
    base = b.inttoptr(ir.Constant(emit.I64, TICKS.ctypes.data), emit.PTR)
    index = b.add(b.mul(b.add(b.mul(part, e.i64(len(PHASES))), e.i64(phase)), e.i64(sv.STEPS)), lw.t)
    value = t0 if absolute else b.add(e.load(base, index, emit.I64), b.sub(_stamp(lw), t0))
    e.store(value, base, index, emit.I64)


def instrumented(wait: bool = True):
    """The split executor of W3 with its phases timed (without the wait when ``wait`` is False)."""
    saved = emit.Lowering.projection, emit.Lowering.update, emit.Lowering.wait

    def projection(self, p, pop, acc):
        if self.part is None:
            return saved[0](self, p, pop, acc)
        t0 = _stamp(self)
        if p.src.owner.KIND == "snn.encode":
            _record(self, self.part, PHASES.index("start"), t0, absolute=True)
        saved[0](self, p, pop, acc)
        _record(self, self.part, 0 if p.src.owner.KIND == "snn.encode" else 1, t0)

    def update(self, pop, acc, acc_st=None):
        if self.part is None:
            return saved[1](self, pop, acc, acc_st)
        t0 = _stamp(self)
        saved[1](self, pop, acc, acc_st)
        _record(self, self.part, PHASES.index("update"), t0)

    def waited(self, k, threads, steps):
        t0 = _stamp(self)
        saved[2](self, k, threads, steps)
        _record(self, k, PHASES.index("wait"), t0)

    emit.Lowering.projection, emit.Lowering.update = projection, update
    emit.Lowering.wait = waited if wait else (lambda self, k, threads, steps: None)
    try:
        ex = cpu.prepare(sv.graph, cache=False, threads=2)
    finally:
        emit.Lowering.projection, emit.Lowering.update, emit.Lowering.wait = saved
    ex._unsplit_version = None  # one thread runs the split function too, both parts in turn
    return ex


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    runs = {"one thread, both parts": (instrumented(), 1), "two threads, lockstep": (instrumented(), 2),
            "two threads, no wait": (instrumented(wait=False), 2)}
    medians = {name: [] for name in runs}
    steps = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (ex, threads) in runs.items():
            TICKS[...] = 0
            ex([sv.x], timesteps=sv.STEPS, threads=threads)
            medians[name].append(np.median(TICKS[:, :4], axis=2))
            start = TICKS[:, PHASES.index("start")]
            steps[name].append(np.diff(start[0] if threads == 1 else start, axis=-1))
    print(f"ticks per step (median over steps, then over {args.rounds} calls); part 0 | part 1")
    for name in runs:
        m = np.median(np.array(medians[name]), axis=0)
        s = np.concatenate(steps[name], axis=-1)
        cells = "  ".join(f"{phase} {m[0, i]:6.0f} |{m[1, i]:6.0f}" for i, phase in enumerate(PHASES[:4]))
        print(f"{name:24s} {cells}  step median {np.median(s):6.0f}, 10th percentile {np.percentile(s, 10):6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

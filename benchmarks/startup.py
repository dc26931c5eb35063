"""How quickly the ``nmc`` command starts: whole processes, as a user runs them (issue 17).

    python benchmarks/startup.py                        # the nmc next to this interpreter
    python benchmarks/startup.py --baseline OTHER/bin/nmc   # A/B against another install

Commands, each a fresh process run ``--runs`` times after one warm-up, in turn (A B A B ...):

* ``nmc --version``;
* ``nmc opt small.nmir --passes dce -o out.nmir`` on a four-op graph without arrays;
* the yardstick: ``python -c pass``, the interpreter alone (no command can start faster).

Each row is the median (and min, max) of the wall time and of the child's CPU time (user +
system, from ``getrusage``); CPU time is the steadier one on a busy machine.  With
``--baseline``, the same commands of the other install run interleaved and the ratio of the
medians is printed.  Then, from ``--runs`` fresh interpreters, the median CPU time of each phase
of ``nmc opt`` in-process (``time.process_time`` around the imports, loading lark's cached
parser tables, the first parse, then the command itself: its argument parsing, pipeline,
passes, verifier, printer and output), and the size of the IR grammar's tables.

Start-up depends on compiled bytecode: a user's ``pip install`` writes ``.pyc`` files, so the
children run without ``PYTHONDONTWRITEBYTECODE`` (after the warm-up has written them).  Measure
a non-editable install (``pip install .``) for the figures a user sees.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SMALL = ("graph @g\n%x = ann.input : tensor<4xf32>\n%r = ann.relu(%x) : tensor<4xf32>\n"
         "%t = ann.tanh(%x) : tensor<4xf32>\nann.output(%r)\n")

PHASES = r"""
import json, sys, time
clock = time.process_time
marks = [("start", clock())]
import nmc.cli
marks.append(("import nmc.cli", clock()))
import lark
marks.append(("import lark", clock()))
import nmc.ir.io, nmc.ir.parser as parser
marks.append(("import the IR modules", clock()))
tables = parser.lark_parser() if hasattr(parser, "lark_parser") else parser._parser()
marks.append(("load the parser tables", clock()))
parser.parse_ir(open(sys.argv[1]).read(), "small.nmir")
marks.append(("first parse", clock()))
nmc.cli.main(["opt", "small.nmir", "--passes", "dce", "-o", "out.nmir"])
marks.append(("the rest of nmc opt", clock()))  # argparse, pipeline, passes, verifier, printer, writing
print(json.dumps({b[0]: 1000 * (b[1] - a[1]) for a, b in zip(marks, marks[1:])}))
"""


def run_once(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands(nmc: str, python: str) -> dict[str, list[str]]:
    return {
        "nmc --version": [nmc, "--version"],
        "nmc opt small.nmir": [nmc, "opt", "small.nmir", "--passes", "dce", "-o", "out.nmir"],
        "python -c pass": [python, "-c", "pass"],
    }


def python_of(nmc: str) -> str:
    """The interpreter of an installed ``nmc`` script (its ``#!`` line)."""
    with open(nmc) as f:
        first = f.readline()
    return first[2:].strip() if first.startswith("#!") else sys.executable


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nmc", default=shutil.which("nmc", path=os.path.dirname(sys.executable)) or "nmc",
                    help="the nmc executable to measure (default: the one beside this interpreter)")
    ap.add_argument("--baseline", help="another nmc executable, run interleaved (A/B ratios)")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    installs = {"A": args.nmc} | ({"B": args.baseline} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "small.nmir"), "w") as f:
            f.write(SMALL)
        cmds = {k: commands(os.path.abspath(v), python_of(v)) for k, v in installs.items()}
        times = {(k, c): ([], []) for k in cmds for c in cmds[k]}
        phases = {k: [] for k in cmds}
        for i in range(args.runs + 1):  # the first round warms up (and writes .pyc files)
            for k, cs in cmds.items():
                for c, argv in cs.items():
                    wall, cpu = run_once(argv, tmp, env)
                    if i:
                        times[k, c][0].append(wall)
                        times[k, c][1].append(cpu)
                out = subprocess.run([python_of(installs[k]), "-c", PHASES, "small.nmir"], cwd=tmp, env=env,
                                     check=True, capture_output=True, text=True).stdout
                if i:
                    phases[k].append(json.loads(out.splitlines()[-1]))
    print(f"whole processes, {args.runs} runs each (median (min-max), seconds)")
    for k, nmc in installs.items():
        print(f"{k} = {nmc}")
    print(f"{'command':22s} {'':2s} {'wall s':>22s} {'cpu s':>22s}")
    for (k, c), (wall, cpu) in times.items():
        print(f"{c:22s} {k:2s} {fmt(wall):>22s} {fmt(cpu):>22s}")
    if args.baseline:
        print("A/B (ratio of medians)")
        for c in cmds["A"]:
            wa, ca = times["A", c]
            wb, cb = times["B", c]
            print(f"{c:22s}    wall {statistics.median(wa) / statistics.median(wb):.3f}"
                  f"   cpu {statistics.median(ca) / statistics.median(cb):.3f}")
    print(f"\nnmc opt in-process, median CPU ms of {args.runs} fresh interpreters")
    names = list(phases["A"][0])
    print(f"{'phase':26s}" + "".join(f"{k:>9s}" for k in installs))
    for name in [*names, "total"]:
        row = [statistics.median(sum(p.values()) if name == "total" else p[name] for p in phases[k]) for k in installs]
        print(f"{name:26s}" + "".join(f"{v:9.1f}" for v in row))
    size = subprocess.run([python_of(args.nmc), "-c", "import nmc.ir.parser as p; t = p.lark_parser(); "
                           "print(len(t.terminals), len(t.parser.parser.parser.parse_table.states))"],
                          env=env, check=True, capture_output=True, text=True).stdout.split()
    print(f"\nIR grammar (A): {size[0]} terminals, {size[1]} LALR states")


if __name__ == "__main__":
    main()

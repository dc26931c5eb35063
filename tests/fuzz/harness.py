"""Run one fuzz case through ``nmc.cli.main`` in-process and classify what happened (issue 22).

A case is a command line whose file arguments are written into a fresh directory first
(``{d}`` in an argument is that directory).  Outcomes: ``exit0``, ``exit1``, ``exit2``,
``exit70`` (an internal error), ``timeout`` (over the per-case limit), and two faults checked
on every case: ``left`` (a failed command left a file behind) and ``silent`` (a mutation of a
listed bad-input class exited 0), plus ``clobbered`` (an input file changed).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field

OUTCOMES = ("exit0", "exit1", "exit2", "exit70", "timeout", "other")
FAULTS = ("left", "silent", "clobbered")


@dataclass
class Case:
    kind: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    must_refuse: bool = False  # a mutation of a class the issue lists: exit 0 is silent acceptance
    label: str = ""


@dataclass
class Result:
    case: Case
    outcome: str
    faults: list[str]
    seconds: float
    stderr: str


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that nmc's handlers do not turn it into exit 70."""


def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(case: Case, timeout: float = 60.0) -> Result:
    d = tempfile.mkdtemp(prefix="nmc-fuzz-")
    cwd = os.getcwd()
    try:
        for name, data in case.files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        before = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
        argv = [a.replace("{d}", d) for a in case.argv]
        err = io.StringIO()
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        t0 = time.perf_counter()
        outcome = "other"
        try:
            from nmc.cli import main

            os.chdir(d)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    rc = main(argv)
                except SystemExit as e:  # argparse
                    rc = e.code if isinstance(e.code, int) else 2
            outcome = f"exit{rc}" if rc in (0, 1, 2, 70) else "other"
        except CaseTimeout:
            outcome = "timeout"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            os.chdir(cwd)
        seconds = time.perf_counter() - t0
        faults = []
        after = set(os.listdir(d))
        if outcome != "exit0" and after - set(before):
            faults.append("left")
        if any(n.startswith(".nmc-") for n in after):
            faults.append("left")
        if case.must_refuse and outcome == "exit0":
            faults.append("silent")
        for n, data in before.items():
            p = os.path.join(d, n)
            if not os.path.exists(p) or (os.path.isfile(p) and open(p, "rb").read() != data):
                faults.append("clobbered")
                break
        return Result(case, outcome, sorted(set(faults)), seconds, err.getvalue())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def table(results_by_kind: dict[str, list[Result]]) -> str:
    """The campaign's table: kind × outcome counts, faults last (Markdown)."""
    cols = list(OUTCOMES) + list(FAULTS) + ["max s"]
    lines = ["| kind | cases | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    total = {c: 0 for c in cols}
    total_cases = 0
    for kind, rs in results_by_kind.items():
        counts = {c: sum(r.outcome == c for r in rs) for c in OUTCOMES}
        counts.update({f: sum(f in r.faults for r in rs) for f in FAULTS})
        counts["max s"] = max((r.seconds for r in rs), default=0.0)
        for c in cols:
            total[c] = max(total[c], counts[c]) if c == "max s" else total[c] + counts[c]
        total_cases += len(rs)
        lines.append(f"| {kind} | {len(rs)} | " + " | ".join(
            f"{counts[c]:.1f}" if c == "max s" else str(counts[c]) for c in cols) + " |")
    lines.append(f"| **all** | {total_cases} | " + " | ".join(
        f"{total[c]:.1f}" if c == "max s" else str(total[c]) for c in cols) + " |")
    return "\n".join(lines)

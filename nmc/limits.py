"""Size limits checked before allocating or looping (issue 22).

An estimate over the limit is an NmcError giving the estimate and how to raise the limit:
``--max-memory`` or ``NMC_MAX_MEMORY`` (bytes; suffixes K, M, G accepted; default 4G) bounds any one array or state
nmc is asked to allocate from the input, and ``NMC_MAX_WORK`` (default 2e10) bounds the
element-steps of a run (samples × steps × neurons); ``NMC_MAX_TIMESTEPS`` (default 2**20)
bounds the presentation steps."""

from __future__ import annotations

import os
import re

from nmc.diagnostics import NmcError

DEFAULT_MEMORY = 4 << 30
DEFAULT_WORK = 2 * 10**10
MAX_TIMESTEPS = 1 << 20


def _parse(text: str, default: int) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1) if text else 1
    try:
        return int(float(text.rstrip("KMGTB") or "x") * scale)
    except ValueError:
        return default


def max_memory() -> int:
    return _parse(os.environ.get("NMC_MAX_MEMORY", ""), DEFAULT_MEMORY)


def max_timesteps() -> int:
    return _parse(os.environ.get("NMC_MAX_TIMESTEPS", ""), MAX_TIMESTEPS)


def max_work() -> int:
    return _parse(os.environ.get("NMC_MAX_WORK", ""), DEFAULT_WORK)


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def check_bytes(n: int, what: str, loc=None) -> None:
    """NmcError when ``what`` would need more than the memory limit."""
    limit = max_memory()
    if n > limit:
        raise NmcError(f"{what} would need {_human(n)}, over the limit of {_human(limit)}", loc,
                       hint="raise the limit with --max-memory 16G (or NMC_MAX_MEMORY) if the machine has the memory")


def check_work(samples: int, steps: int, neurons: int, what: str = "the run") -> None:
    """NmcError when a run of ``samples × steps × neurons`` neuron updates is over the limit."""
    limit = max_work()
    work = samples * steps * neurons
    if work > limit:
        raise NmcError(f"{what} would take {work:.3g} neuron updates ({samples} samples × {steps} steps × "
                       f"{neurons} neurons), over the limit of {limit:.3g}",
                       hint="use fewer --timesteps or samples, or raise the limit with NMC_MAX_WORK=<updates>")


MAX_NESTING = 200


def check_nesting(text: str, filename: str, limit: int = MAX_NESTING) -> None:
    """NmcError when brackets nest, or prefix signs repeat, deeper than ``limit`` (the parsers
    recurse on both; a deep input would exhaust the stack).  Comments (``//`` to the end of
    the line: IR, .nmd; ``#``: TOML) are skipped.  A run of prefix signs is broken by any
    other character that is not white space.

    Line by line, visiting only brackets and signs (a regular expression finds them): a
    3.4 MB base64 blob took 1.9 s one character at a time."""
    from nmc.diagnostics import Loc

    depth = run = 0
    for number, line in enumerate(text.split("\n"), start=1):
        ends = [i for i in (line.find("#"), line.find("//") + 1 if "//" in line else -1) if i >= 0]
        code = line[:min(ends)] if ends else line
        last = 0
        for m in _NESTING.finditer(code):
            i, ch = m.start(), m.group()
            if not code[last:i].isspace() and i > last:
                run = 0
            last = i + 1
            if ch in "([{":
                depth, run = depth + 1, 0
                if depth > limit:
                    break
            elif ch in ")]}":
                depth, run = max(depth - 1, 0), 0
            else:
                run += 1
                if run > limit:
                    break
        else:
            if code[last:].strip():
                run = 0
            continue
        raise NmcError(f"the text nests brackets or repeats prefix signs more than {limit} deep",
                       Loc(filename, number, i + 1),
                       hint="nmc reads inputs of at most this depth; flatten the expression")


_NESTING = re.compile(r"[(\[{)\]}\-+!~]")

"""Checks of output paths before anything runs (issue 22), and all-or-nothing writing.

An output may be a new path in an existing directory or an existing regular file; never a
directory, a device, a FIFO, nor the same file as one of the command's inputs (writing it would
destroy the input).  :func:`write_all` writes several outputs so that after a failure none of
them is left behind.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from typing import BinaryIO

from nmc.diagnostics import NmcError


class OutputError(NmcError, OSError):
    """An output path that cannot or must not be written (also an OSError, for callers that
    treat a failed write as such, e.g. the CPU runtime's object cache)."""


def check_output_path(path: str) -> None:
    """NmcError unless ``path`` is a new path in an existing directory or a regular file."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise OutputError(f"cannot write {path}: the directory {directory} does not exist",
                          hint="create the directory first, or choose another output path")
    if os.path.lexists(path):
        try:
            st = os.stat(path)
        except OSError:  # a dangling symbolic link: refuse rather than write through it
            raise OutputError(f"cannot write {path}: it is a broken symbolic link") from None
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
            raise OutputError(f"cannot write {path}: it is {kind}",
                              hint="an output must be a new path or an existing regular file")


def _same(a: str, b: str) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _with_sidecars(paths: Iterable[str]) -> list[str]:
    out = []
    for p in paths:
        out.append(p)
        if p.endswith(".nmir"):
            out.append(p + ".npz")  # the IR's blob sidecar is an input too
    return out


def check_outputs(inputs: Iterable[str | None], outputs: Iterable[tuple[str, str | None]]) -> None:
    """Refuse outputs (``(option, path)``) that are inputs, named twice, or not writable paths."""
    ins = [p for p in _with_sidecars(p for p in inputs if p and p != "-") if os.path.exists(p)]
    seen: list[tuple[str, str]] = []
    for option, path in outputs:
        if not path or path == "-":
            continue
        for inp in ins:
            if _same(path, inp):
                raise NmcError(f"the output {path} ({option}) is the input {inp}; writing it would destroy the input",
                               hint="choose another output path")
        for other_option, other in seen:
            if _same(path, other):
                raise NmcError(f"{option} and {other_option} name the same file {path}",
                               hint="give each output its own path")
        check_output_path(path)
        seen.append((option, path))
        if option in ("-o", "--output") and path.endswith(".nmir"):
            seen.append((option, path + ".npz"))


def write_all(items: list[tuple[str, bytes | Callable[[BinaryIO], object]]]) -> None:
    """Write every ``(path, content)`` to a temporary file beside it, then rename them all: after
    a failure while writing, no output is left (earlier temporaries are removed)."""
    from nmc.fileio import write_beside

    temps: list[tuple[str, str]] = []
    try:
        for path, content in items:
            temps.append((write_beside(path, content), path))
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise

"""Output files appear whole or not at all: write to a temporary name beside, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_beside(path: str, content: bytes | Callable[[BinaryIO], object]) -> str:
    """Write ``content`` (bytes, or a function that writes to a binary file) to a new temporary
    file in ``path``'s directory, with the permissions a plain ``open(path, "w")`` would give;
    returns its name (the caller renames it over ``path``).  On failure nothing is left."""
    from nmc.outputs import OutputError, check_output_path

    check_output_path(path)  # a missing directory or a device: exit 1 naming the path (issue 22)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nmc-", suffix=".tmp", dir=directory)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}") from None
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, bytes | bytearray):
                f.write(content)
            else:
                content(f)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return tmp


def atomic_write(path: str, content: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``content`` to ``path`` whole or not at all (:func:`write_beside`, then rename).

    On any failure the temporary file is removed and ``path`` is left as it was."""
    tmp = write_beside(path, content)
    try:
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

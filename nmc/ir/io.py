"""Reading and writing ``.nmir`` files with their blob sidecar (``FILE.nmir.npz``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from nmc.diagnostics import NmcError
from nmc.fileio import atomic_write
from nmc.ir.core import Graph
from nmc.ir.parser import CASE_SEPARATOR, parse_ir_cases
from nmc.ir.printer import Printer
from nmc.lazy import lazy_import

np = lazy_import("numpy")


def sidecar_path(path: str) -> str:
    return path + ".npz"


def sidecar_loader(path: str) -> Callable[[str], np.ndarray | None]:
    """A lookup of blob contents in ``PATH.npz``, read on first use (None: no such blob)."""
    loaded: dict[str, np.ndarray] | None = None

    def lookup(name: str) -> np.ndarray | None:
        nonlocal loaded
        if loaded is None:
            import zipfile  # (numpy's npz reader imports it anyway; `nmc opt` on a graph without blobs never does)

            loaded = {}
            if os.path.exists(sidecar_path(path)):
                try:
                    with np.load(sidecar_path(path), allow_pickle=False) as npz:
                        loaded = {k: npz[k] for k in npz.files}
                except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
                    raise NmcError(f"cannot read blob sidecar {sidecar_path(path)}: {err}",
                                   hint="the .npz beside the IR file is damaged; write the IR again") from None
        return loaded.get(name)

    return lookup


def read_text(path: str) -> str:
    """The text of an IR file (``-``: standard input)."""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise NmcError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}",
                       hint="expected a UTF-8 .nmir text file") from None


def read_ir(path: str, verify: bool = True) -> list[Graph]:
    """Every graph (``// -----`` case) of an ``.nmir`` file; blobs declared without contents
    come from ``PATH.npz``."""
    return parse_ir_cases(read_text(path), path, sidecar_loader(path), verify)


def format_ir(graphs: Sequence[Graph], *, debuginfo: bool = False, print_blobs: bool = False) -> tuple[str, dict[str, np.ndarray]]:
    """The text of ``graphs`` (joined by ``// -----``) and the sidecar arrays it refers to."""
    texts, sidecar = [], {}
    for g in graphs:
        p = Printer(g, debuginfo=debuginfo, print_blobs=print_blobs)
        texts.append(p.text())
        for name, arr in p.sidecar.items():
            if name in sidecar and sidecar[name] is not arr:
                raise NmcError(f"two cases of one file both name a blob @{name}; print them with --print-blobs")
            sidecar[name] = arr
    return f"\n{CASE_SEPARATOR}\n\n".join(texts), sidecar


def write_ir(graphs: Graph | Sequence[Graph], path: str, *, debuginfo: bool = False, print_blobs: bool = False) -> None:
    """Write ``PATH`` (and ``PATH.npz`` when large blobs print by name), atomically."""
    if isinstance(graphs, Graph):
        graphs = [graphs]
    text, sidecar = format_ir(graphs, debuginfo=debuginfo, print_blobs=print_blobs)
    if sidecar:
        atomic_write(sidecar_path(path), lambda f: np.savez(f, **sidecar))
    elif os.path.exists(sidecar_path(path)):
        os.remove(sidecar_path(path))
    atomic_write(path, text.encode())

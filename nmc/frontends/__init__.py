"""Frontends: every model format nmc reads, chosen by the file's content, then its extension.

Each frontend registers a name, its extensions, a ``sniff(head)`` test on the first bytes of a
file, and ``load(path, **options) -> Graph``.  :func:`load` is ``nmc.load`` and ``nmc import``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from nmc.diagnostics import NmcError, UsageError
from nmc.ir.core import Graph


@dataclass(frozen=True)
class Frontend:
    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    load: Callable[..., Graph]
    options: tuple[str, ...] = ()  # keyword options it understands (e.g. dt, reset)
    verifies: bool = False  # its load returns a verified graph (so load() does not verify it twice)


FRONTENDS: list[Frontend] = []


def register_frontend(frontend: Frontend) -> Frontend:
    FRONTENDS.append(frontend)
    return frontend


def _load_nmir(path: str) -> Graph:
    from nmc.ir.io import read_ir

    graphs = read_ir(path)
    if len(graphs) != 1:
        raise NmcError(f"{path} holds {len(graphs)} graphs separated by '// -----'; expected one",
                       hint="split the file, or use 'nmc opt --split-input-file'")
    return graphs[0]


def _looks_like_text_ir(head: bytes) -> bool:
    text = head.lstrip()
    return text.startswith((b"graph @", b"%", b"//", b"blob @"))


def _lazy(module: str, function: str) -> Callable[..., Graph]:
    """A loader that imports its frontend module on first use (keeps ``nmc`` quick to start)."""

    def load_with(path: str, **options) -> Graph:
        return getattr(importlib.import_module(module), function)(path, **options)

    return load_with


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

register_frontend(Frontend("nmir", (".nmir",), _looks_like_text_ir, _load_nmir, verifies=True))
register_frontend(Frontend("nir", (".nir",), lambda head: head.startswith(_HDF5_MAGIC),
                           _lazy("nmc.frontends.nir", "load_nir"), options=("dt", "reset", "convention"), verifies=True))
# ONNX is protobuf: exporters write field 1 (ir_version, a small varint) first, then a string field.
register_frontend(Frontend("onnx", (".onnx",), lambda head: len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 16
                           and head[2] in b"\x12\x1a\x22\x2a\x32\x3a\x42", _lazy("nmc.frontends.onnx", "load_onnx")))
register_frontend(Frontend("nmd", (".nmd",), lambda head: False, _lazy("nmc.frontends.nmd", "load_nmd"),
                           verifies=True))


def choose_frontend(path: str) -> Frontend:
    """The frontend for ``path``: by content first, then by extension."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as err:
        raise NmcError(f"cannot open {path}: {err.strerror}") from None
    for fe in FRONTENDS:
        if fe.sniff(head):
            return fe
    ext = os.path.splitext(path)[1].lower()
    for fe in FRONTENDS:
        if ext in fe.extensions:
            return fe
    known = ", ".join(e for fe in FRONTENDS for e in fe.extensions)
    raise NmcError(f"{path}: not a model file nmc can read", hint=f"nmc reads {known}")


def load(path: str, **options) -> Graph:
    """Read a model file into a graph.  Options a frontend does not take are refused."""
    fe = choose_frontend(path)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(fe.options))
    if unknown:
        raise UsageError(f"option{'s' if len(unknown) > 1 else ''} {', '.join('--' + u for u in unknown)} "
                         f"do{'' if len(unknown) > 1 else 'es'} not apply to {fe.name} files")
    graph = fe.load(path, **given)
    from nmc.ir.verifier import check_finite, verify

    if not fe.verifies:  # every frontend's graph is checked at the boundary, once, its weights too (issue 22)
        verify(graph)
    check_finite(graph)
    return graph

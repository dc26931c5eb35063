"""Starting an image's executor without parsing or compiling it: the prepared cache.

``nmc run IMAGE --backend cpu`` on an image it has run before should start in well under a
tenth of a second.  The object cache (:mod:`.jit`) alone does not get there: before it can
look the object code up, the graph section must be parsed (1.5 s for W1's float graph of
3.4 MB, the lexer reading its base64 blobs), the network planned and its IR emitted (0.07 s)
and the host's op lists worked out (networkx's import, 0.25 s).

So a prepared executor is kept too, in the object cache's folder (``NMC_CACHE_DIR``), as
``<key>.prep``: a pickle of what :class:`.execute.Executor` holds — the graph, the network and
its :class:`.plan.Layout`, the host plan (:func:`.execute.host_plan`), the object code and the
external constants it links to.  ``key`` is a SHA-256 of the graph section's bytes, the
kernel and schedule choices, the host (CPU, features, llvmlite) and a fingerprint of nmc's
own code (:func:`code_fingerprint`), so that any
change to the image, the host or nmc makes a new entry.  A file is written whole or not at
all and carries a checksum of its payload; a damaged or unreadable one is ignored (and the
image prepared as if none existed).  The folder is trusted as the object cache is: its
object code is run, and its pickles are loaded.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from nmc.fileio import atomic_write

from .jit import cache_dir, host_key, load_object

_MAGIC = b"NMC-PREP1"
_FINGERPRINT: list[str] = []


def code_fingerprint() -> str:
    """A digest of the nmc code a prepared executor depends on (path, size and modification
    time of each file): the CPU runtime's package, which plans and emits it, and nmc's own
    top-level modules and IR package (the graph's classes, the semantics and the host side
    it runs with).  Worked out once per process; a changed source file gives new keys."""
    if not _FINGERPRINT:
        import nmc

        top = Path(nmc.__file__).parent
        files = [*Path(__file__).parent.rglob("*.py"), *top.glob("*.py"), *(top / "ir").glob("*.py")]
        h = hashlib.sha256()
        for path in sorted(files):
            st = path.stat()
            h.update(f"{path} {st.st_size} {st.st_mtime_ns}\n".encode())
        _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


def key(graph_text: bytes, kernels: str, schedule: str) -> str:
    h = hashlib.sha256()
    for part in (_MAGIC, host_key().encode(), code_fingerprint().encode(), kernels.encode(), schedule.encode()):
        h.update(part + b"\0")
    h.update(graph_text)
    return h.hexdigest()


def _path(k: str) -> Path | None:
    folder = cache_dir()
    return folder / f"{k}.prep" if folder is not None else None


def load(k: str, threads: int | None, kernels: str, cache: bool):
    """The executor stored under ``k``, or None (no entry, a damaged one, caching disabled)."""
    from .execute import Executor, step_version
    from .plan import FUNCTION_NAME

    path = _path(k)
    try:
        data = path.read_bytes() if path is not None else b""
    except OSError:
        return None
    head = len(_MAGIC) + 32
    payload = data[head:]
    if len(data) <= head or not data.startswith(_MAGIC) or hashlib.sha256(payload).digest() != data[len(_MAGIC):head]:
        return None
    try:
        net, layout, host, obj, symbols = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - any unreadable entry is only a miss
        return None
    compiled = load_object(obj, FUNCTION_NAME, symbols)
    return Executor(net, layout, compiled, threads, step_version=step_version(net, kernels, cache), host=host)


def store(k: str, executor) -> None:
    """Keep ``executor`` under ``k`` (an unwritable folder only costs the next start)."""
    path = _path(k)
    if path is None:
        return
    c = executor.compiled
    payload = pickle.dumps((executor.net, executor.layout, executor.host, c.obj, c.symbols),
                           protocol=pickle.HIGHEST_PROTOCOL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(str(path), _MAGIC + hashlib.sha256(payload).digest() + payload)
    except OSError:
        pass

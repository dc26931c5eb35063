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
all and carries a CRC32 of its payload; a damaged or unreadable one is ignored (and the
image prepared as if none existed).  The folder is trusted as the object cache is: its
object code is run, and its pickles are loaded.

The payload is a pickle (protocol 5) whose arrays — the graph's blobs and the external
tables, megabytes for a network of a million synapses — lie after it out of band, each at a
64-byte boundary: a start reads the file once into a ``bytearray`` and the arrays are views
of it, not copies.  (W3, 10,000 neurons and 10**6 synapses: a 9.5 MB entry; a SHA-256 of it
and the copies out of the pickle were about a quarter of its start.)
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import zlib
from pathlib import Path

from nmc.fileio import atomic_write

from .jit import cache_dir, host_key, load_object

_MAGIC = b"NMC-PREP2"
#: After the magic: the payload's CRC32, the pickle's length and the number of out-of-band
#: buffers; then the pickle, then each buffer (its length, then its bytes at a 64-byte boundary).
_HEAD = struct.Struct("<IQQ")
_LEN = struct.Struct("<Q")
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
    from .tables import aligned_empty

    path = _path(k)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:  # read once, into memory the arrays will view (tables on 64 bytes)
            data = memoryview(aligned_empty(os.fstat(f.fileno()).st_size))
            if f.readinto(data) != len(data):
                return None
        entry = _unpack(data)
    except Exception:  # noqa: BLE001 - any missing, damaged or unreadable entry is only a miss
        return None
    if entry is None:
        return None
    net, layout, host, obj, symbols = entry
    compiled = load_object(obj, FUNCTION_NAME, symbols)
    return Executor(net, layout, compiled, threads, step_version=step_version(net, kernels, cache), host=host,
                    unsplit_version=step_version(net, kernels, cache, split=False))


def store(k: str, executor) -> None:
    """Keep ``executor`` under ``k`` (an unwritable folder only costs the next start)."""
    path = _path(k)
    if path is None:
        return
    c = executor.compiled
    data = _pack((executor.net, executor.layout, executor.host, c.obj, c.symbols))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(str(path), data)
    except OSError:
        pass


def _pack(value) -> bytes:
    """``value`` as an entry: magic, head, pickle, out-of-band buffers (module docstring)."""
    buffers: list[pickle.PickleBuffer] = []
    pickled = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    parts = [pickled]
    at = len(_MAGIC) + _HEAD.size + len(pickled)
    for buf in buffers:
        raw = buf.raw()
        pad = -(at + _LEN.size) % 64
        parts += [bytes(pad), _LEN.pack(raw.nbytes), raw]
        at += pad + _LEN.size + raw.nbytes
    payload = b"".join(parts)
    return _MAGIC + _HEAD.pack(zlib.crc32(payload), len(pickled), len(buffers)) + payload


def _unpack(data: bytearray):
    """The value of an entry (its arrays views of ``data``), or None when it is damaged."""
    head = len(_MAGIC) + _HEAD.size
    if len(data) < head or data[:len(_MAGIC)] != _MAGIC:
        return None
    crc, size, count = _HEAD.unpack_from(data, len(_MAGIC))
    view = memoryview(data)
    if zlib.crc32(view[head:]) != crc:
        return None
    buffers, at = [], head + size
    for _ in range(count):
        at += -(at + _LEN.size) % 64
        (n,) = _LEN.unpack_from(data, at)
        at += _LEN.size
        buffers.append(view[at:at + n])
        at += n
    return pickle.loads(view[head:head + size], buffers=buffers)

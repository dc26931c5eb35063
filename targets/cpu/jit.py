"""Compiling LLVM IR for the host CPU, with an on-disk object cache.

:func:`compile_module` turns IR text into a callable function address.  Object code is cached
in ``$NMC_CACHE_DIR`` (default ``~/.cache/nmc``) under a hash of the IR text, the host CPU
name and features and the llvmlite version; ``NMC_NO_CACHE=1`` (or ``cache=False``) disables
the cache.  :data:`STATS` counts real compilations (``compiled``) and cache hits (``loaded``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from nmc.fileio import atomic_write

STATS = {"compiled": 0, "loaded": 0}
#: Part of every cache key: what turns the IR into object code (change it with the pipeline).
PIPELINE = "O3 loop-vectorize slp-vectorize no-unroll mcjit v1"
_MAGIC = b"NMC-OBJ1"
_LOCK = threading.Lock()
_STATE: dict = {}


def _target_machine() -> llvm.TargetMachine:
    """A new host target machine: host CPU and features, static relocation, JIT code model,
    so that vector code uses the full AVX width.  A new one each time, because an execution
    engine takes ownership of (and frees) the target machine it is given."""
    if "host" not in _STATE:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        _STATE["cpu"] = (cpu, features)
        _STATE["host"] = f"{llvm.get_process_triple()} {cpu} {features} llvmlite {llvmlite.__version__}"
    cpu, features = _STATE["cpu"]
    return llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=3, reloc="static", codemodel="jitdefault", jit=True)


def host_features() -> set[str]:
    """The host CPU's enabled features (``avx2``, ...), as LLVM names them."""
    if "host" not in _STATE:
        _target_machine()
    return {f[1:] for f in _STATE["cpu"][1].split(",") if f.startswith("+")}


def cache_dir() -> Path | None:
    """The object cache folder, or None when caching is disabled by ``NMC_NO_CACHE``."""
    if os.environ.get("NMC_NO_CACHE", "") not in ("", "0"):
        return None
    return Path(os.environ.get("NMC_CACHE_DIR") or Path.home() / ".cache" / "nmc")


@dataclass
class Compiled:
    """A JIT-compiled module: ``address`` of its entry function; keeps the engine alive.
    ``obj``: its object code (what :func:`load_object` loads again)."""

    engine: llvm.ExecutionEngine
    address: int
    key: str
    from_cache: bool
    symbols: dict
    obj: bytes = b""


def host_key() -> str:
    """The host part of every cache key: process triple, CPU name and features, llvmlite version."""
    if "host" not in _STATE:
        _target_machine()
    return _STATE["host"]


def cache_key(ir_text: str) -> str:
    h = hashlib.sha256()
    h.update(host_key().encode())
    h.update(b"\0" + PIPELINE.encode() + b"\0")
    h.update(ir_text.encode())
    return h.hexdigest()


def _read_cached(path: Path) -> bytes | None:
    """The object code cached at ``path``, or None if absent or damaged (its checksum, written
    with it, must match: a damaged object must never reach the JIT linker)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + 32
    if len(data) <= head or not data.startswith(_MAGIC):
        return None
    obj = data[head:]
    return obj if hashlib.sha256(obj).digest() == data[len(_MAGIC):head] else None


def compile_module(ir_text: str, function: str, cache: bool = True, symbols: dict | None = None) -> Compiled:
    """Optimise (O3, loop and SLP vectorisation) and JIT-compile ``ir_text``; returns the
    address of ``function``.  A cached object skips optimisation and code generation.

    ``symbols`` binds the module's external constants to host arrays (kept alive by the
    result); their names must identify their contents, since the cache key is the IR."""
    key = cache_key(ir_text)
    tm = _target_machine()
    folder = cache_dir() if cache else None
    path = folder / f"{key}.o" if folder is not None else None
    cached = _read_cached(path) if path is not None else None
    with _LOCK:
        mod = llvm.parse_assembly(ir_text)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        if cached is None:
            optimise(mod, tm)
        engine, address, obj = _link(mod, tm, cached, function, symbols)
        if cached is None:
            STATS["compiled"] += 1
        else:
            STATS["loaded"] += 1
    if cached is None and path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(str(path), _MAGIC + hashlib.sha256(obj).digest() + obj)
        except OSError:
            pass  # an unwritable cache only costs the next run a compilation
    return Compiled(engine, address, key, cached is not None, dict(symbols or {}), obj)


def optimise(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """Run :data:`PIPELINE`'s optimisation on ``mod`` in place: O3 with loop and SLP
    vectorisation, no unrolling."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def _link(mod, tm, cached: bytes | None, function: str, symbols: dict | None):
    """An MCJIT engine for ``mod`` (its object code ``cached`` when given, else generated), the
    address of ``function`` and the object code; ``symbols`` bound first (module docstring)."""
    engine = llvm.create_mcjit_compiler(mod, tm)
    produced: list[bytes] = []

    def notify(_module, data: bytes):
        produced.append(bytes(data))

    def getbuffer(_module):
        return cached

    engine.set_object_cache(notify, getbuffer)
    for name, array in (symbols or {}).items():
        llvm.add_symbol(name, array.ctypes.data)
    engine.finalize_object()
    return engine, engine.get_function_address(function), cached if cached is not None else produced[-1]


def load_object(obj: bytes, function: str, symbols: dict | None = None) -> Compiled:
    """Object code made by :func:`compile_module` (on this host, with this llvmlite), linked
    again without its IR: an empty module stands in for it, and the object cache hands MCJIT
    ``obj`` (a start from :mod:`.prepared` parses and optimises nothing)."""
    tm = _target_machine()
    with _LOCK:
        mod = llvm.parse_assembly("")
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        engine, address, _ = _link(mod, tm, obj, function, symbols)
        STATS["loaded"] += 1
    return Compiled(engine, address, "", True, dict(symbols or {}), obj)

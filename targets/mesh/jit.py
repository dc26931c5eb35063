"""The emulator's compiled loops: a spike's synapses added in one pass of machine code.

An event path in numpy (:mod:`.scatter`) builds sparse matrices and slabs for every kernel and
step; these loops instead walk the events once and add each one's weights where they land,
so a step costs the synaptic operations of its events and little else.  They are the
emulator's own (LLVM IR written here, compiled once per process with llvmlite for the host
CPU), independent of the CPU runtime.  The event loops:

* :class:`FanTable`: each source has a list of (target, weight) pairs (a CSR table by source,
  ``start`` [sources + 1], ``target``, ``weight``, int64); an event ``(b, j, v)`` adds
  ``v · weight`` to ``out[b · stride + target]`` for each pair of source ``j``.  For
  kernels with few targets per source (pools, depthwise convolutions, one-to-one): scalar.
* :class:`RunTable`: the convolution of a kernel row with ``o_group`` output channels per
  group, into an accumulator ``acc`` laid out ``[B, G, L, o_group]`` (channel last): an event
  of source channel ``c`` at position ``q`` adds, for each kernel cell ``t`` that reaches a
  target position ``p = table[q, t]``, the weight row ``weight[c, t, :]`` times ``v`` to
  ``acc[b, c // c_group, p, :]`` — a contiguous run that LLVM vectorises.  A dense kernel is
  the case of one position, one cell and one group.

and :class:`Neurons`, the neuron update of :mod:`nmc.neuron` for integer neurons whose step fits
int32, in one pass, then the spikes' indices by a compaction that skips silent 8-byte words.

Integers only: the int64 loops wrap modulo 2**64 as numpy's int64 arithmetic does (the
reference semantics' sums), and the int32 loop is used only where the caller has proved that
no partial sum reaches 2**31 (the kernel's largest ``|weight|`` × fan-in × ``|value|`` ×
2**exponent: :class:`.kernels.EventPlan`), so every result is the same integer.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np

_I64P = ctypes.c_void_p

FAN = """
define void @fan_scatter(i64 %E, ptr noalias %b, ptr noalias %j, ptr noalias %v, ptr noalias %start,
                         ptr noalias %tgt, ptr noalias %w, ptr noalias %out, i64 %stride) {
entry:
  %any = icmp sgt i64 %E, 0
  br i1 %any, label %ev, label %done
ev:
  %e = phi i64 [0, %entry], [%e1, %ev_next]
  %pb = getelementptr i64, ptr %b, i64 %e
  %be = load i64, ptr %pb
  %pj = getelementptr i64, ptr %j, i64 %e
  %je = load i64, ptr %pj
  %pv = getelementptr i64, ptr %v, i64 %e
  %ve = load i64, ptr %pv
  %row = mul i64 %be, %stride
  %ps0 = getelementptr i64, ptr %start, i64 %je
  %s0 = load i64, ptr %ps0
  %je1 = add i64 %je, 1
  %ps1 = getelementptr i64, ptr %start, i64 %je1
  %s1 = load i64, ptr %ps1
  %has = icmp slt i64 %s0, %s1
  br i1 %has, label %syn, label %ev_next
syn:
  %s = phi i64 [%s0, %ev], [%s_1, %syn]
  %pt = getelementptr i64, ptr %tgt, i64 %s
  %t = load i64, ptr %pt
  %pw = getelementptr i64, ptr %w, i64 %s
  %ww = load i64, ptr %pw
  %m = mul i64 %ww, %ve
  %at = add i64 %row, %t
  %po = getelementptr i64, ptr %out, i64 %at
  %o = load i64, ptr %po
  %o1 = add i64 %o, %m
  store i64 %o1, ptr %po
  %s_1 = add i64 %s, 1
  %more = icmp slt i64 %s_1, %s1
  br i1 %more, label %syn, label %ev_next
ev_next:
  %e1 = add i64 %e, 1
  %end = icmp eq i64 %e1, %E
  br i1 %end, label %done, label %ev
done:
  ret void
}
"""

CONV = """
define void @conv_scatter_{T}(i64 %E, ptr noalias %b, ptr noalias %j, ptr noalias %v, i64 %HW, i64 %T,
                              ptr noalias %table, i64 %cg, i64 %G, i64 %L, i64 %og, ptr noalias %w,
                              ptr noalias %acc) {{
entry:
  %any = icmp sgt i64 %E, 0
  br i1 %any, label %ev, label %done
ev:
  %e = phi i64 [0, %entry], [%e1, %ev_next]
  %pb = getelementptr i64, ptr %b, i64 %e
  %be = load i64, ptr %pb
  %pj = getelementptr i64, ptr %j, i64 %e
  %je = load i64, ptr %pj
  %pv = getelementptr i64, ptr %v, i64 %e
  %ve64 = load i64, ptr %pv
  %ve = {CAST}
  %c = udiv i64 %je, %HW
  %q = urem i64 %je, %HW
  %g = udiv i64 %c, %cg
  %bg = mul i64 %be, %G
  %bgg = add i64 %bg, %g
  %base = mul i64 %bgg, %L
  %qT = mul i64 %q, %T
  %cT = mul i64 %c, %T
  br label %cell
cell:
  %t = phi i64 [0, %ev], [%t1, %cell_next]
  %qt = add i64 %qT, %t
  %pp = getelementptr i64, ptr %table, i64 %qt
  %p = load i64, ptr %pp
  %reach = icmp sge i64 %p, 0
  br i1 %reach, label %run, label %cell_next
run:
  %pos = add i64 %base, %p
  %doff = mul i64 %pos, %og
  %dst = getelementptr {T}, ptr %acc, i64 %doff
  %ct = add i64 %cT, %t
  %woff = mul i64 %ct, %og
  %src = getelementptr {T}, ptr %w, i64 %woff
  br label %axpy
axpy:
  %o = phi i64 [0, %run], [%o1, %axpy]
  %ps = getelementptr {T}, ptr %src, i64 %o
  %wo = load {T}, ptr %ps
  %pd = getelementptr {T}, ptr %dst, i64 %o
  %ao = load {T}, ptr %pd
  %m = mul {T} %wo, %ve
  %s = add {T} %ao, %m
  store {T} %s, ptr %pd
  %o1 = add i64 %o, 1
  %orun = icmp slt i64 %o1, %og
  br i1 %orun, label %axpy, label %cell_next
cell_next:
  %t1 = add i64 %t, 1
  %tmore = icmp slt i64 %t1, %T
  br i1 %tmore, label %cell, label %ev_next
ev_next:
  %e1 = add i64 %e, 1
  %end = icmp eq i64 %e1, %E
  br i1 %end, label %done, label %ev
done:
  ret void
}}
"""

NEURONS = """
define void @neuron_step(i64 %B, i64 %N, ptr noalias %current, ptr noalias %v, ptr noalias %spikes,
                         ptr noalias %bias, ptr noalias %threshold, ptr noalias %zero, i64 %lo, i64 %hi) {
entry:
  %any = icmp sgt i64 %N, 0
  %rows = icmp sgt i64 %B, 0
  %go = and i1 %any, %rows
  br i1 %go, label %row, label %done
row:
  %r = phi i64 [0, %entry], [%r1, %row_next]
  %base = mul i64 %r, %N
  %cur = getelementptr i64, ptr %current, i64 %base
  %vr = getelementptr i32, ptr %v, i64 %base
  %sr = getelementptr i8, ptr %spikes, i64 %base
  br label %loop
loop:
  %k = phi i64 [0, %row], [%k1, %loop]
  %pc = getelementptr i64, ptr %cur, i64 %k
  %c = load i64, ptr %pc
  store i64 0, ptr %pc
  %c1 = call i64 @llvm.smax.i64(i64 %c, i64 %lo)
  %u = call i64 @llvm.smin.i64(i64 %c1, i64 %hi)
  %pv = getelementptr i32, ptr %vr, i64 %k
  %v32 = load i32, ptr %pv
  %v0 = sext i32 %v32 to i64
  %pb = getelementptr i32, ptr %bias, i64 %k
  %b32 = load i32, ptr %pb
  %bb = sext i32 %b32 to i64
  %s0 = add i64 %v0, %u
  %s1 = add i64 %s0, %bb
  %s2 = call i64 @llvm.smax.i64(i64 %s1, i64 %lo)
  %s3 = call i64 @llvm.smin.i64(i64 %s2, i64 %hi)
  %pt = getelementptr i32, ptr %threshold, i64 %k
  %t32 = load i32, ptr %pt
  %th = sext i32 %t32 to i64
  %fired = icmp sgt i64 %s3, %th
  %pz = getelementptr i8, ptr %zero, i64 %k
  %z8 = load i8, ptr %pz
  %z = icmp ne i8 %z8, 0
  %sub = sub i64 %s3, %th
  %reset = select i1 %z, i64 0, i64 %sub
  %after = select i1 %fired, i64 %reset, i64 %s3
  %a32 = trunc i64 %after to i32
  store i32 %a32, ptr %pv
  %f8 = zext i1 %fired to i8
  %ps = getelementptr i8, ptr %sr, i64 %k
  store i8 %f8, ptr %ps
  %k1 = add i64 %k, 1
  %more = icmp slt i64 %k1, %N
  br i1 %more, label %loop, label %row_next
row_next:
  %r1 = add i64 %r, 1
  %rmore = icmp slt i64 %r1, %B
  br i1 %rmore, label %row, label %done
done:
  ret void
}
declare i64 @llvm.smax.i64(i64, i64)
declare i64 @llvm.smin.i64(i64, i64)

define i64 @compact(i64 %n, ptr noalias %s, ptr noalias %out) {
entry:
  %nw = lshr i64 %n, 3
  br label %wloop
wloop:
  %w = phi i64 [0, %entry], [%w1, %wnext]
  %k = phi i64 [0, %entry], [%kw, %wnext]
  %wmore = icmp ult i64 %w, %nw
  br i1 %wmore, label %wbody, label %tail
wbody:
  %i0 = shl i64 %w, 3
  %pw = getelementptr i8, ptr %s, i64 %i0
  %word = load i64, ptr %pw, align 1
  %none = icmp eq i64 %word, 0
  br i1 %none, label %wnext, label %bytes
bytes:
  %b = phi i64 [0, %wbody], [%b1, %bytes]
  %kb = phi i64 [%k, %wbody], [%kb1, %bytes]
  %i = add i64 %i0, %b
  %pb = getelementptr i8, ptr %s, i64 %i
  %sb = load i8, ptr %pb
  %po = getelementptr i64, ptr %out, i64 %kb
  store i64 %i, ptr %po
  %nz = icmp ne i8 %sb, 0
  %inc = zext i1 %nz to i64
  %kb1 = add i64 %kb, %inc
  %b1 = add i64 %b, 1
  %bdone = icmp eq i64 %b1, 8
  br i1 %bdone, label %wnext, label %bytes
wnext:
  %kw = phi i64 [%k, %wbody], [%kb1, %bytes]
  %w1 = add i64 %w, 1
  br label %wloop
tail:
  %t0 = shl i64 %nw, 3
  br label %tloop
tloop:
  %t = phi i64 [%t0, %tail], [%t1, %tbody]
  %kt = phi i64 [%k, %tail], [%kt1, %tbody]
  %tmore = icmp ult i64 %t, %n
  br i1 %tmore, label %tbody, label %done
tbody:
  %pt = getelementptr i8, ptr %s, i64 %t
  %st = load i8, ptr %pt
  %pot = getelementptr i64, ptr %out, i64 %kt
  store i64 %t, ptr %pot
  %nzt = icmp ne i8 %st, 0
  %inct = zext i1 %nzt to i64
  %kt1 = add i64 %kt, %inct
  %t1 = add i64 %t, 1
  br label %tloop
done:
  ret i64 %kt
}
"""

UNPACK = """
define void @unpack_{T}(i64 %B, i64 %G, i64 %L, i64 %og, ptr noalias %acc, ptr noalias %out, i64 %stride) {{
entry:
  %R = mul i64 %B, %G
  %r0 = icmp sgt i64 %R, 0
  %o0 = icmp sgt i64 %og, 0
  %l0 = icmp sgt i64 %L, 0
  %ro = and i1 %r0, %o0
  %go = and i1 %ro, %l0
  br i1 %go, label %row, label %done
row:
  %r = phi i64 [0, %entry], [%r1, %row_next]
  %b = udiv i64 %r, %G
  %g = urem i64 %r, %G
  %rowacc = mul i64 %r, %L
  %ob = mul i64 %b, %stride
  %gog = mul i64 %g, %og
  br label %chan
chan:
  %o = phi i64 [0, %row], [%o1, %chan_next]
  %gout = add i64 %gog, %o
  %gl = mul i64 %gout, %L
  %obase = add i64 %ob, %gl
  br label %pos
pos:
  %l = phi i64 [0, %chan], [%l1, %pos]
  %al = add i64 %rowacc, %l
  %ai0 = mul i64 %al, %og
  %ai = add i64 %ai0, %o
  %pa = getelementptr {T}, ptr %acc, i64 %ai
  %a = load {T}, ptr %pa
  store {T} 0, ptr %pa
  %a64 = {EXT}
  %oi = add i64 %obase, %l
  %po = getelementptr i64, ptr %out, i64 %oi
  %x = load i64, ptr %po
  %y = add i64 %x, %a64
  store i64 %y, ptr %po
  %l1 = add i64 %l, 1
  %lmore = icmp slt i64 %l1, %L
  br i1 %lmore, label %pos, label %chan_next
chan_next:
  %o1 = add i64 %o, 1
  %omore = icmp slt i64 %o1, %og
  br i1 %omore, label %chan, label %row_next
row_next:
  %r1 = add i64 %r, 1
  %rmore = icmp slt i64 %r1, %R
  br i1 %rmore, label %row, label %done
done:
  ret void
}}
"""


def compile_loops() -> None:
    """Compile the loops now (they are compiled once per process, on first use)."""
    _compiled()


@lru_cache(maxsize=None)
def _compiled():
    """The loops, compiled for the host CPU (once per process): name -> ctypes function."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                      opt=3, reloc="static", codemodel="jitdefault", jit=True)
    text = FAN + NEURONS + "".join(CONV.format(T=t, CAST=cast) + UNPACK.format(T=t, EXT=ext) for t, cast, ext in (
        ("i64", "add i64 %ve64, 0", "add i64 %a, 0"), ("i32", "trunc i64 %ve64 to i32", "sext i32 %a to i64")))
    module = llvm.parse_assembly(text)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(tm.target_data)
    module.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)
    engine = llvm.create_mcjit_compiler(module, tm)
    engine.finalize_object()
    i64 = ctypes.c_int64
    fan = ctypes.CFUNCTYPE(None, i64, *[_I64P] * 7, i64)(engine.get_function_address("fan_scatter"))
    conv_args = [i64, _I64P, _I64P, _I64P, i64, i64, _I64P, i64, i64, i64, i64, _I64P, _I64P]
    conv = {np.dtype(t): ctypes.CFUNCTYPE(None, *conv_args)(engine.get_function_address(f"conv_scatter_{name}"))
            for t, name in ((np.int64, "i64"), (np.int32, "i32"))}
    unpack = {np.dtype(t): ctypes.CFUNCTYPE(None, i64, i64, i64, i64, _I64P, _I64P, i64)(
        engine.get_function_address(f"unpack_{name}")) for t, name in ((np.int64, "i64"), (np.int32, "i32"))}
    neurons = ctypes.CFUNCTYPE(None, i64, i64, *[_I64P] * 6, i64, i64)(engine.get_function_address("neuron_step"))
    compact = ctypes.CFUNCTYPE(i64, i64, _I64P, _I64P)(engine.get_function_address("compact"))
    return {"engine": engine, "fan": fan, "conv": conv, "unpack": unpack, "neurons": neurons, "compact": compact}


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _events(b, j, v):
    return (np.ascontiguousarray(b, np.int64), np.ascontiguousarray(j, np.int64), np.ascontiguousarray(v, np.int64))


class FanTable:
    """A CSR table by source, ``start`` [sources + 1], ``target``, ``weight`` (int64): :meth:`add`
    adds ``v · weight`` to ``out[b, target]`` for each (target, weight) of each event's source
    ``j``, modulo 2**64."""

    def __init__(self, start: np.ndarray, target: np.ndarray, weight: np.ndarray):
        self.arrays = tuple(np.ascontiguousarray(a, np.int64) for a in (start, target, weight))
        self.start, self.target, self.weight = self.arrays
        if len(self.target) != len(self.weight) or self.start[-1] != len(self.target):
            raise ValueError("a fan table's start, target and weight disagree")
        self._ptrs = tuple(_ptr(a) for a in self.arrays)

    def __len__(self) -> int:
        return len(self.target)

    def add(self, out: np.ndarray, b, j, v) -> None:
        """``out`` [B, > every target] int64 with contiguous rows (a column slice of a larger
        array is fine); events (sample, source, value) with sources below ``len(start) − 1``."""
        if out.dtype != np.int64 or out.strides[1] != 8:
            raise ValueError("a fan table adds into int64 rows")
        b, j, v = _events(b, j, v)
        if len(b):
            _compiled()["fan"](len(b), _ptr(b), _ptr(j), _ptr(v), *self._ptrs, _ptr(out), out.strides[0] // 8)


class RunTable:
    """A convolution's weight runs (module docstring): ``table`` [H·W, cells] int64 (the target
    position each source position reaches through each kernel cell, −1 for none), ``c_group``
    input channels per group, ``weight`` [C, cells, o_group] (int32 or int64).  :meth:`add`
    adds events ``(b, j = c · H·W + q, v)`` into an accumulator [B, G, L, o_group] of the
    weights' type; int32 only where no partial sum reaches 2**31."""

    def __init__(self, table: np.ndarray, c_group: int, weight: np.ndarray):
        self.table = np.ascontiguousarray(table, np.int64)
        self.weight = np.ascontiguousarray(weight)
        if self.weight.dtype not in (np.int32, np.int64) or self.weight.shape[1] != self.table.shape[1]:
            raise ValueError("run weights are int32 or int64 [C, cells, o_group]")
        self.c_group = c_group
        self._ptrs = (_ptr(self.table), _ptr(self.weight))

    def add(self, acc: np.ndarray, b, j, v) -> None:
        B, G, L, og = acc.shape
        HW, T = self.table.shape
        if not (acc.flags.c_contiguous and acc.dtype == self.weight.dtype and og == self.weight.shape[2]):
            raise ValueError("the accumulator is contiguous [B, G, L, o_group] in the weights' type")
        b, j, v = _events(b, j, v)
        if len(b) and T and og:
            _compiled()["conv"][acc.dtype](len(b), _ptr(b), _ptr(j), _ptr(v), HW, T, self._ptrs[0], self.c_group, G,
                                           L, og, self._ptrs[1], _ptr(acc))


def unpack(acc: np.ndarray, out: np.ndarray) -> None:
    """Add the accumulator ``acc`` [B, G, L, o_group] (C-contiguous, int32 or int64) into ``out``
    [B, G·o_group·L] (int64, contiguous rows; channel first, as the targets are numbered) and
    clear it for the next step."""
    B, G, L, og = acc.shape
    if not (acc.flags.c_contiguous and acc.dtype in (np.int32, np.int64) and out.dtype == np.int64
            and out.shape == (B, G * og * L) and (out.strides[1] == 8 or out.shape[1] <= 1)):
        raise ValueError("unpack takes a contiguous accumulator and int64 rows of its targets")
    _compiled()["unpack"][acc.dtype](B, G, L, og, _ptr(acc), _ptr(out), out.strides[0] // 8)


class Neurons:
    """Integer neurons whose step fits int32 (:meth:`nmc.neuron.NeuronState.narrowable`: at most
    30 bits, no decay, so ``u`` is the saturated current) with one saturation range for all:
    :meth:`step` is :meth:`~nmc.neuron.NeuronState.step`'s arithmetic in one compiled pass
    (saturate the current, integrate with the bias, saturate, threshold, reset), which also
    clears the current for the next step.  ``v`` [B, neurons] int32; ``fired_at`` as there."""

    def __init__(self, params, batch: int):
        from nmc.neuron import NeuronState

        if not self.fits(params):
            raise ValueError("these neurons do not fit the compiled int32 step")
        q = params.uniform
        self.lo, self.hi = (int(x) for x in q["limits"])
        n = len(params.v0)
        self.bias, self.threshold = (np.ascontiguousarray(np.broadcast_to(a, n), np.int32) for a in (params.bias, params.threshold))
        self.zero = np.ascontiguousarray(np.broadcast_to(params.reset_zero, n), np.int8)
        self.v = NeuronState.initial(params, batch, narrow=True).v
        self.spikes = np.zeros((batch, n), np.int8)
        self._fired = np.empty(batch * n, np.int64)  # the compaction's scratch: every index fits
        self._ptrs = tuple(_ptr(a) for a in (self.v, self.spikes, self.bias, self.threshold, self.zero, self._fired))

    @staticmethod
    def fits(params) -> bool:
        from nmc.neuron import NeuronState

        return NeuronState.narrowable(params) and np.ndim(params.uniform["limits"][0]) == 0

    def step(self, current: np.ndarray) -> np.ndarray:
        """Integrate ``current`` [B, neurons] int64 (C-contiguous; left all zero); returns this
        step's spikes (0/1 int8, a new array) and sets ``fired_at``, their flat indices."""
        B, n = self.v.shape
        if current.shape != (B, n) or current.dtype != np.int64 or not current.flags.c_contiguous:
            raise ValueError("the current is a contiguous int64 [batch, neurons] array")
        loops = _compiled()
        loops["neurons"](B, n, _ptr(current), *self._ptrs[:5], self.lo, self.hi)
        # the spikes' flat indices: a compiled pass that skips 8 silent neurons at a time
        self.fired_at = self._fired[:loops["compact"](B * n, self._ptrs[1], self._ptrs[5])].copy()
        return self.spikes.copy()

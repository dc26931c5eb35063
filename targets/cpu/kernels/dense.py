"""Kernels of ``dense`` projections (DESIGN §6): event driven (a row of the transposed
weights per event), the dense kernel (one dot product per target over the step's whole source
vector: :func:`project_dense_rows`; with int8 weights on AVX2, :func:`dense_bytes`), and the
time-batched kernel of the ``layer`` schedule (:func:`tiled_currents`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import F64, I8, I16, I32, I64
from ..plan import TILE, TILE16, byte_kernel, list_stride, tile_columns, unit_bound, unit_events
from ..tables import int_weights
from . import kernel
from .common import flush, private

if TYPE_CHECKING:
    from ..emit import Lowering


def tiled_currents(lw: Lowering, p: Op, pop: Op, first: bool):
    """The time-batched kernel: the currents dense projection ``p`` delivers to ``pop`` at
    every step of the sample, into ``pop``'s current matrix ``[steps, tile_columns]`` (i32;
    ``first``: stored, else added).  For each tile of :data:`TILE` output columns and each
    step, the tile's pieces of the weight rows (transposed, zero-padded to the matrix's
    columns) of the step's events are summed in a vector of registers: the tile's weights
    (at most ``inputs × 64`` of them) serve every step, and no accumulator is loaded or
    stored per event.  Every event has value 1 here (population spikes, or encoder values
    checked by :meth:`..emit.Lowering.lower`) and the population's accumulator is i32 because no
    such sum can leave i32 (:func:`..plan.narrow_accumulator`), so i32 sums are exact in any order.
    When no step's sum into a column can leave i16 (:func:`..plan.unit_bound` below ``2**15``;
    W1's layers: at most 5,500), tiles are :data:`TILE16` columns summed in i16 (an event
    then costs half the sign extensions and adds per column), widened as they are stored."""
    e, b = lw.e, lw.e.b
    src = p.src.owner
    out, inp = p.weight.shape
    cols = tile_columns(out)
    wd = int_weights(p)
    padded = np.zeros((inp, cols), dtype=wd.dtype)
    padded[:, :out] = wd.T
    # a step's sum into one column is at most unit_bound(p) in magnitude (each source lists
    # once per step): below 2**15 the tile sums in i16, twice the columns per register
    at = I16 if unit_bound(p) < 2**15 else I32
    span = TILE16 if at == I16 else TILE
    whole, rest = divmod(cols, span)
    # tile-major: a tile's weights are one block of inputs × width (fewer pages to reach)
    starts = [k * span for k in range(whole)] + ([whole * span] if rest else [])
    g, wt = e.const_array(np.concatenate([padded[:, c:c + span].reshape(-1) for c in starts]), "tiled")
    size = src.result.type.size
    if src.KIND == "snn.encode":  # presented at pt, integrated at pt + delay - 1
        idx_area, cnt_area = lw.area[("eidx", src)], lw.area[("ecnt", src)]
        shift, limit, stride = e.i64(p.delay - 1), lw.T, size
    else:
        idx_area, cnt_area = lw.area[("ring_idx", src)], lw.area[("ring_cnt", src)]
        shift, limit, stride = e.i64(p.delay), lw.steps, list_stride(src)
    cur = lw.area[("cur", pop)]
    events = e.var(I64, 0)  # counted in every tile (a separate loop cost compile time)

    def tile(col, width: int):
        vw, va, vi = ir.VectorType(wt, width), ir.VectorType(at, width), ir.VectorType(I32, width)
        with e.loop(0, lw.steps, "tt") as t:
            dst = b.gep(cur, [b.add(b.mul(t, e.i64(cols)), col)], source_etype=I32)
            vacc = e.var(va, ir.Constant(va, [0] * width))
            st = b.sub(t, shift)
            valid = b.and_(b.icmp_signed(">=", st, e.i64(0)), b.icmp_signed("<", st, limit))
            with e.when(valid):
                cnt = b.sext(e.load(cnt_area, st, I32), I64)
                b.store(b.add(b.load(events, typ=I64), cnt), events)
                lst = b.gep(idx_area, [b.mul(st, e.i64(stride))], source_etype=I32)
                with e.loop(0, cnt, "k") as k:
                    j = b.sext(e.load(lst, k, I32), I64)
                    at_j = b.add(b.mul(col, e.i64(inp)), b.mul(j, e.i64(width)))  # tile-major table
                    wv = b.load(b.gep(g, [at_j], source_etype=wt), typ=vw, align=1)
                    wv = wv if wt == at else b.sext(wv, va)
                    b.store(b.add(b.load(vacc, typ=va), wv), vacc)
            total = b.load(vacc, typ=va)
            total = total if at == I32 else b.sext(total, vi)
            b.store(total if first else b.add(b.load(dst, typ=vi, align=4), total), dst, align=4)

    if whole:
        with e.loop(0, whole, "tile") as k:
            tile(b.mul(k, e.i64(span)), span)
    if rest:  # a multiple of TILE, or the power of two of a small population
        tile(e.i64(whole * span), rest)
    # synaptic operations: every event drives `out` targets (each tile counted them all)
    events = b.udiv(b.load(events, typ=I64), e.i64(whole + (rest > 0)))
    b.store(b.add(b.load(lw.synops, typ=I64), b.mul(events, e.i64(out))), lw.synops)


@kernel("dense")
def project_dense(lw: Lowering, p: Op, pop: Op, acc):
    """A dense projection: the dense kernel (:func:`project_dense_rows`) when the plan chose
    it (:func:`..plan.dense_kernel`), else each event adds its row of the transposed weights,
    into an i32 private accumulator when there is one (:func:`..plan.private_accumulator`)."""
    if p in lw.lay.dense:
        return project_dense_rows(lw, p, pop)
    e, b = lw.e, lw.e.b
    w = p.weight.data
    out, inp = w.shape
    priv = private(lw, p)
    if priv is None and pop in lw.lay.narrow and unit_events(p) and out <= SMALL_DENSE:
        return dense_in_registers(lw, p, pop)
    g, wt = lw.weights(p, np.ascontiguousarray(w.T), "dense")

    def body(j, x):
        if priv and x is None:
            b.store(ir.Constant(I8, 1), priv[2])
            into = priv[:2]
        else:  # events of other values than 1 are not bounded: not into the private one
            into = lw.target(pop, x)
        row = b.gep(g, [b.mul(j, e.i64(out))], source_etype=wt)
        with e.loop(0, out, "o") as o:
            lw.accumulate(pop, into, o, e.load(row, o, wt), wt, x)

    lw.events(p, pop, body)
    if priv:
        flush(lw, pop, acc, priv, out)


#: Largest number of targets of an event-driven dense projection whose sums stay in registers
#: over a step (:func:`dense_in_registers`).
SMALL_DENSE = 64


def dense_in_registers(lw: Lowering, p: Op, pop: Op):
    """A small event-driven dense projection (at most :data:`SMALL_DENSE` targets, events of
    value 1) into an i32 population accumulator: the accumulator is loaded into registers once
    per step, each event adds its weight row (zero-padded to a multiple of 16 targets, which
    the accumulator's 64-byte-rounded area holds), and it is stored once.  (Loaded and stored
    per event, through a masked store the next load could not forward from, W2's 800 → 10
    layer took 6 % of its time.)  Integer sums: exact in i32 (:func:`..plan.narrow_accumulator`)."""
    e, b = lw.e, lw.e.b
    out, inp = p.weight.shape
    pad = (out + 15) // 16 * 16
    table = np.zeros((inp, pad), dtype=p.weight.data.dtype)
    table[:, :out] = p.weight.data.T
    g, wt = lw.weights(p, table, "dense")
    vw, vi = ir.VectorType(wt, pad), ir.VectorType(I32, pad)
    acc = lw.area[("acc", pop)]
    vacc = e.var(vi, b.load(acc, typ=vi, align=4))

    def body(j, x):
        wv = b.load(b.gep(g, [b.mul(j, e.i64(pad))], source_etype=wt), typ=vw, align=1)
        b.store(b.add(b.load(vacc, typ=vi), wv if wt == I32 else b.sext(wv, vi)), vacc)

    lw.events(p, pop, body)
    b.store(b.load(vacc, typ=vi), acc, align=4)


def project_dense_rows(lw: Lowering, p: Op, pop: Op):
    """The dense kernel (:func:`..plan.dense_kernel`).  Integer: ``acc[o] += Σ_j w[o, j] · x[j]``,
    one dot product per target over the step's whole source vector, summed in i32 when the
    source emits 0 or 1 and no row can leave i32 (:func:`..plan.unit_bound`), else in i64 (into
    the side accumulator of an i32 population accumulator).  Float: for every source ``j``
    in increasing order ``acc[:] += w[:, j] · x[j]``, the event path's order of sums with
    the zero terms added too (exact), vectorised over targets."""
    e, b = lw.e, lw.e.b
    w = p.weight.data
    out, inp = w.shape
    unit = unit_events(p)
    with lw.source_vector(p) as (row, xt, events):
        b.store(b.add(b.load(lw.synops, typ=I64), b.mul(events, e.i64(out))), lw.synops)
        if not pop.bits:
            g, wt = lw.weights(p, np.ascontiguousarray(w.T), "dense")
            into = lw.area[("acc", pop)], F64
            with e.loop(0, inp, "j") as j:
                x = lw.widen(pop, e.load(row, j, xt), xt, F64)
                wrow = b.gep(g, [b.mul(j, e.i64(out))], source_etype=wt)
                with e.loop(0, out, "o") as o:
                    lw.accumulate(pop, into, o, e.load(wrow, o, wt), wt, x)
            return
        if unit:
            dense_unit(lw, p, pop, row, xt)
        else:
            dense_values(lw, p, pop, row, xt)


def dot(lw: Lowering, g, wt, row, xt, n, st, unit: bool):
    """``Σ_{j<n} g[j] · row[j]`` in type ``st`` (``unit``: row holds 0 or 1, selected)."""
    e, b = lw.e, lw.e.b
    total = e.var(st, 0)
    with e.loop(0, n, "j") as j:
        wj = lw.widen(None, e.load(g, j, wt), wt, st)
        x = e.load(row, j, xt)
        if unit:
            term = b.select(b.icmp_signed("!=", x, ir.Constant(xt, 0)), wj, ir.Constant(st, 0))
        else:
            term = b.mul(wj, lw.widen(None, x, xt, st))
        b.store(b.add(b.load(total, typ=st), term), total)
    return b.load(total, typ=st)


def add_row_sum(lw: Lowering, pop: Op, into, o, total, st):
    """``acc[o] += total`` (of type ``st``) into ``into`` = (pointer, element type)."""
    e, b = lw.e, lw.e.b
    acc_p, acc_t = into
    old = e.load(acc_p, o, acc_t)
    e.store(b.add(old, lw.widen(pop, total, st, acc_t)), acc_p, o, acc_t)


def dense_bytes(lw: Lowering, p: Op, pop: Op, g, row, into, xt=I8):
    """``acc[o] += Σ_j w[o, j] · x[j]`` for int8 weights ``g`` and bytes ``0 <= x <= 127``:
    32 synapses per ``vpmaddubsw`` (x as unsigned bytes times the signed weights, pairs
    summed to i16: at most 2·127·128 < 2**15, no saturation) and ``vpmaddwd`` (pairs to
    i32; the caller has checked that no row sum leaves i32)."""
    e, b = lw.e, lw.e.b
    out, inp = p.weight.shape
    blocks, tail = divmod(inp, 32)
    v32i8, v16i16, v8i32 = ir.VectorType(I8, 32), ir.VectorType(I16, 16), ir.VectorType(I32, 8)
    maddubs = lw.e.intrinsic("llvm.x86.avx2.pmadd.ub.sw", v16i16, [v32i8, v32i8])
    maddwd = lw.e.intrinsic("llvm.x86.avx2.pmadd.wd", v8i32, [v16i16, v16i16])
    reduce = lw.e.intrinsic("llvm.vector.reduce.add.v8i32", I32, [v8i32])
    ones = ir.Constant(v16i16, [1] * 16)
    with e.loop(0, out, "o") as o:
        wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=I8)
        vacc = e.var(v8i32, ir.Constant(v8i32, [0] * 8))
        with e.loop(0, blocks, "blk") as k:
            off = b.mul(k, e.i64(32))
            wv = b.load(b.gep(wrow, [off], source_etype=I8), typ=v32i8, align=1)
            sv = b.load(b.gep(row, [off], source_etype=I8), typ=v32i8, align=1)
            pairs = b.call(maddubs, [sv, wv])
            b.store(b.add(b.load(vacc, typ=v8i32), b.call(maddwd, [pairs, ones])), vacc)
        total = b.call(reduce, [b.load(vacc, typ=v8i32)])
        if tail:
            base = e.i64(blocks * 32)
            rest = dot(lw, b.gep(wrow, [base], source_etype=I8), I8, b.gep(row, [base], source_etype=I8),
                       I8, tail, I32, False)
            total = b.add(total, rest)
        add_row_sum(lw, pop, into, o, total, I32)


def int_weight_constant(lw: Lowering, p: Op):
    """``p``'s integer weights (:func:`..tables.int_weights`) as a constant: (global, type)."""
    return lw.e.const_array(int_weights(p), "dense")


def dense_unit(lw: Lowering, p: Op, pop: Op, row, xt):
    """Integer dense kernel for sources of 0 or 1 (bytes): :func:`dense_bytes` with int8
    weights and AVX2, else a generic dot product (LLVM vectorises it)."""
    e, b = lw.e, lw.e.b
    out, inp = p.weight.shape
    g, wt = int_weight_constant(lw, p)
    st = I32 if unit_bound(p) < 2**31 else I64
    into = lw.target(pop, None)
    if st == I32 and byte_kernel(p, lw.lay.features):
        return dense_bytes(lw, p, pop, g, row, into)
    with e.loop(0, out, "o") as o:
        wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=wt)
        add_row_sum(lw, pop, into, o, dot(lw, wrow, wt, row, xt, inp, st, True), st)


def dense_values(lw: Lowering, p: Op, pop: Op, row, xt):
    """Integer dense kernel for sources of any values (spike counts, integer currents).
    The step's values are first narrowed (to bytes and to i16), noting their range; then,
    with ``Σ|w|`` the largest row sum (:func:`..plan.unit_bound`), the dot products run on bytes
    (:func:`dense_bytes`) when ``0 <= x <= 127`` and ``127 · Σ|w| < 2**31``, else on i16
    values in i32 when ``max |x| · Σ|w| < 2**31``, else on the i64 values in i64."""
    e, b = lw.e, lw.e.b
    out, inp = p.weight.shape
    g, wt = int_weight_constant(lw, p)
    into = lw.target(pop, True)
    bound = max(unit_bound(p), 1)
    limit = min(2**15 - 1, (2**31 - 1) // bound)
    use_bytes = byte_kernel(p, lw.lay.features) and 127 * bound < 2**31
    small = lw.area[("xn", p)]
    tiny = b.gep(small, [e.i64(2 * inp)], source_etype=I8)  # the byte copy, after the i16 one
    big, notbyte = e.var(I64, 0), e.var(I64, 0)
    with e.loop(0, inp, "xn") as j:
        x = lw.widen(None, e.load(row, j, xt), xt, I64)
        ax = b.select(b.icmp_signed("<", x, e.i64(0)), b.neg(x), x)  # |INT64_MIN| stays negative: unsigned test
        b.store(b.or_(b.load(big, typ=I64), b.zext(b.icmp_unsigned(">", ax, e.i64(limit)), I64)), big)
        e.store(b.trunc(x, I16), small, j, I16)
        if use_bytes:  # not in [0, 127]
            b.store(b.or_(b.load(notbyte, typ=I64), b.zext(b.icmp_unsigned(">", x, e.i64(127)), I64)), notbyte)
            e.store(b.trunc(x, I8), tiny, j, I8)

    def generic(values, vt, st):
        with e.loop(0, out, "o") as o:
            wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=wt)
            add_row_sum(lw, pop, into, o, dot(lw, wrow, wt, values, vt, inp, st, False), st)

    fits = b.icmp_signed("==", b.load(big, typ=I64), e.i64(0))
    with b.if_else(fits) as (narrow, wide):
        with narrow:
            if use_bytes:
                with b.if_else(b.icmp_signed("==", b.load(notbyte, typ=I64), e.i64(0))) as (byte, short):
                    with byte:
                        dense_bytes(lw, p, pop, g, tiny, into)
                    with short:
                        generic(small, I16, I32)
            else:
                generic(small, I16, I32)
        with wide:
            generic(row, xt, I64)

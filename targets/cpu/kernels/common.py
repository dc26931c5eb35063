"""Helpers shared by several projection kernels: private accumulators flushed into the
population's (:func:`private`, :func:`flush`: dense and conv2d), and window tables walked per event
(:func:`window_targets`, conv2d and pool).  Registers no kind."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import BLOCK, I8, I16, I32, I64, ir_type
from ..tables import single_window_table, window_table

if TYPE_CHECKING:
    from ..emit import Lowering

#: Cells and channels per register block when an i16 private accumulator is flushed
#: (:func:`flush_blocks`): one 256-bit vector per row, half the shuffles per element of 8.
WIDE_BLOCK = 16


def private(lw: Lowering, p: Op):
    """(pointer, element type, touched flag) of ``p``'s private accumulator
    (:func:`..plan.private_accumulator`), or None when it has none; the flag (an i8 variable,
    0 here) is for the events to set and :func:`flush` to test."""
    kind = lw.lay.private.get(p)
    if kind is None:
        return None
    touched = lw.e.var(I8, 0)
    return lw.area[("pacc", p)], ir_type(kind), touched


def flush(lw: Lowering, pop: Op, acc, priv, size: int, cells: int = 1, first: bool = False, halo=None,
          shared: bool = False):
    """Add the private accumulator (``[cells, size/cells]``, channel-last when ``cells > 1``)
    into the population's (channel-first) and clear it, if any event touched it.  ``first``:
    nothing was added to the population's accumulator yet this step, so an integer result
    is stored rather than added; the update does not clear such an accumulator
    (``overwritten``), so when no event touched the private one it is zeroed instead.
    ``halo`` = ``(OW, OWp, offset)``: output cell ``i`` is the private accumulator's cell
    ``i + (i // OW)·(OWp - OW) + offset`` (:func:`..plan.conv_halo`; read from a table).  A
    channel-last one whose channels are a multiple of :data:`..emit.BLOCK` is transposed in
    ``BLOCK × BLOCK`` register blocks (:func:`flush_blocks`; strided scalar reads cost W2 a
    tenth of its time), an i16 one with a multiple of :data:`WIDE_BLOCK` channels first in
    ``WIDE_BLOCK × WIDE_BLOCK`` blocks, the cells after the last whole block one by one.
    ``shared`` (a conv's, with others of its signature): the cells are flushed by a function
    shared with them (:func:`flush_cells`)."""
    e, b = lw.e, lw.e.b
    pacc, pt, touched = priv

    def cells_():
        if not shared:
            flush_cells(lw, pop, acc, pacc, pt, size, cells, first, halo)
            return
        key = (size, cells, str(pt), str(lw.acc_store_type(pop)), bool(pop.bits), first, halo)
        b.call(lw.shared_function("flush", key, 2, lambda to, fro: flush_cells(lw, pop, to, fro, pt, size, cells,
                                                                                 first, halo)), [acc, pacc])

    cond = b.icmp_unsigned("!=", b.load(touched, typ=I8), ir.Constant(I8, 0))
    if first and pop.bits and pop in lw.lay.overwritten:  # untouched: the step's currents start at 0
        with b.if_else(cond) as (then, otherwise):
            with otherwise:
                with e.loop(0, size, "zero") as i:
                    e.store(ir.Constant(lw.acc_store_type(pop), 0), acc, i, lw.acc_store_type(pop))
            with then:
                cells_()
    else:
        with e.when(cond):
            cells_()


def flush_cells(lw: Lowering, pop: Op, acc, pacc, pt: ir.Type, size: int, cells: int, first: bool, halo):
    """The body of :func:`flush` once an event touched the private accumulator ``pacc``:
    every cell added (or stored) into ``acc`` and cleared.  Shared by convs of one signature,
    it is a function of its own for all of them (:meth:`..emit.Lowering.shared_function`; its
    code depends on nothing else)."""
    e, b = lw.e, lw.e.b
    chans = size // cells
    if halo is not None:  # each cell's place, from a table (arithmetic per row cost registers)
        ow, owp, offset = halo
        i = np.arange(cells)
        places = e.opaque(e.const_array((i + i // ow * (owp - ow) + offset).astype(np.int32), "fplace")[0])

    def place(cell):
        return cell if halo is None else b.sext(e.load(places, cell, I32), I64)

    done = 0  # cells flushed in blocks
    if cells > 1 and pt == I16 and chans % WIDE_BLOCK == 0:
        done = flush_blocks(lw, pop, acc, pacc, pt, cells, chans, first, place, WIDE_BLOCK)
    if cells > 1 and chans % BLOCK == 0:
        done = flush_blocks(lw, pop, acc, pacc, pt, cells, chans, first, place, BLOCK, done)
    if done == cells:
        return
    # the rest (every cell without blocks): contiguous stores, strided reads
    with e.loop(0, chans, "ch") as ch:
        with e.loop(done, cells, "cell") as cell:
            src = b.add(b.mul(place(cell), e.i64(chans)), ch)
            dst = b.add(b.mul(ch, e.i64(cells)), cell)
            flush_value(lw, pop, acc, dst, e.load(pacc, src, pt), pt, first)
            e.store(ir.Constant(pt, 0), pacc, src, pt)


def flush_value(lw: Lowering, pop: Op, acc, dst, val, pt: ir.Type, first: bool):
    """``acc[dst] (+)= val`` for a scalar or vector ``val`` of element type ``pt``."""
    b = lw.e.b
    acc_t = lw.acc_store_type(pop)
    vec = isinstance(val.type, ir.VectorType)
    typ = ir.VectorType(acc_t, val.type.count) if vec else acc_t
    if pt != acc_t:  # an i32 private accumulator into an i64 one
        val = b.sext(val, typ)
    ptr = b.gep(acc, [dst], source_etype=acc_t, inbounds=True)
    align = min(4, acc_t.width // 8) if isinstance(acc_t, ir.IntType) else 4
    if not (first and pop.bits):
        old = b.load(ptr, typ=typ, align=align)
        val = b.add(old, val) if pop.bits else b.fadd(old, val)
    b.store(val, ptr, align=align)


def flush_blocks(lw: Lowering, pop: Op, acc, pacc, pt: ir.Type, cells: int, chans: int, first: bool, place,
                 block: int = BLOCK, start: int = 0) -> int:
    """The whole ``block × block`` blocks of :func:`flush` from cell ``start`` on; returns the
    first cell after them.  For each block of cells and of channels, load one vector per cell
    (its channels, at ``place(cell)``), clear them, transpose the block in registers
    (:func:`transpose`) and add one vector per channel (its cells) into the population's
    accumulator.  Every element is added once, as by the scalar loop, so the results are
    the same.  No whole block: nothing is emitted (code that never runs costs compile time)."""
    e, b = lw.e, lw.e.b
    vt = ir.VectorType(pt, block)
    zero = ir.Constant(vt, None)
    count = (cells - start) // block
    if count == 0:
        return start
    with e.loop(0, count, "fcb") as cb:
        cell0 = b.add(b.mul(cb, e.i64(block)), e.i64(start))
        with e.loop(0, chans // block, "fch") as chb:
            rows = []
            for r in range(block):
                ptr = b.gep(pacc, [b.add(b.mul(place(b.add(cell0, e.i64(r))), e.i64(chans)), b.mul(chb, e.i64(block)))],
                            source_etype=pt, inbounds=True)
                rows.append(b.load(ptr, typ=vt, align=2 if pt == I16 else 4))
                b.store(zero, ptr, align=2 if pt == I16 else 4)
            for k, col in enumerate(transpose(b, rows)):
                ch = b.add(b.mul(chb, e.i64(block)), e.i64(k))
                flush_value(lw, pop, acc, b.add(b.mul(ch, e.i64(cells)), cell0), col, pt, first)
    return start + count * block


@functools.cache
def shuffle_mask(idx: tuple[int, ...]) -> ir.Constant:
    """The ``shufflevector`` mask ``idx``, one constant per mask (its text is formatted once:
    building and printing a vector constant per shuffle was a tenth of W2's IR printing)."""
    return ir.Constant(ir.VectorType(I32, len(idx)), list(idx))


def transpose(b: ir.IRBuilder, rows: list) -> list:
    """The columns of the square block whose rows are the vectors ``rows`` (8 or 16 of them).
    8: shuffles of 32-bit pairs, 64-bit pairs and 128-bit halves.  16 (i16 lanes,
    :data:`WIDE_BLOCK`): four rounds of zips, ``r'[2i] = lo(r[i], r[i+8])``, ``r'[2i+1] =
    hi(r[i], r[i+8])`` (lo/hi: the first/second halves' lanes interleaved), which transpose
    any ``2**k`` rows in ``k`` rounds."""
    n = len(rows)

    def shuffle(x, y, idx):
        return b.shuffle_vector(x, y, shuffle_mask(tuple(idx)))

    if n == 16:
        for _ in range(4):
            lo = [v for i in range(8) for v in (i, i + 16)]
            hi = [v for i in range(8, 16) for v in (i, i + 16)]
            rows = [shuffle(rows[i // 2], rows[i // 2 + 8], lo if i % 2 == 0 else hi) for i in range(16)]
        return rows
    t = [shuffle(rows[i & ~1], rows[i | 1], [0, 8, 1, 9, 4, 12, 5, 13] if i % 2 == 0 else
                 [2, 10, 3, 11, 6, 14, 7, 15]) for i in range(BLOCK)]
    # t[2q]: rows 2q, 2q+1 interleaved at channels 0,1 | 4,5; t[2q+1]: channels 2,3 | 6,7
    s_ = []
    for q in range(2):  # rows 0-3, rows 4-7
        a0, a1, a2, a3 = t[4 * q:4 * q + 4]
        s_ += [shuffle(a0, a2, [0, 1, 8, 9, 4, 5, 12, 13]), shuffle(a0, a2, [2, 3, 10, 11, 6, 7, 14, 15]),
               shuffle(a1, a3, [0, 1, 8, 9, 4, 5, 12, 13]), shuffle(a1, a3, [2, 3, 10, 11, 6, 7, 14, 15])]
    # s_[k] (k < 4): channels k and k+4 of rows 0-3; s_[4+k]: the same of rows 4-7
    return [shuffle(s_[k % 4], s_[4 + k % 4], [0, 1, 2, 3, 8, 9, 10, 11] if k < 4 else [4, 5, 6, 7, 12, 13, 14, 15])
            for k in range(BLOCK)]


def window_targets(lw: Lowering, j, src_shape, kernel, strides, pads, dils, out_hw, scale, visit):
    """For source cell ``j`` of ``[C, H, W]``: call ``visit(c, k, o)`` for each output
    cell whose window covers it, with ``k = (ky · kw + kx) · scale[0]`` (the kernel cell)
    and ``o = (oy · OW + ox) · scale[1]`` (the output cell, in its channel's plane).

    One table (:func:`..tables.window_table`) lists these pairs per source position ``(y, x)``:
    one loop per event, with no tests that strides would make unpredictable and no
    arithmetic on coordinates (a table per axis, looped over in two nested loops with
    the offsets computed per pair, cost W2 a tenth of its time in its pooling layer)."""
    e, b = lw.e, lw.e.b
    C, H, W = src_shape
    starts, pairs = window_table((H, W), kernel, strides, pads, dils, out_hw, scale)
    c = b.udiv(j, e.i64(H * W))  # j >= 0: unsigned division by a constant is cheapest
    pos = b.sub(j, b.mul(c, e.i64(H * W)))
    if np.diff(starts).max(initial=0) <= 1:  # windows that do not overlap (pooling): no loop
        gp = e.const_array(single_window_table(starts, pairs), "wsingle")[0]
        o = b.sext(e.load(gp, b.add(b.shl(pos, e.i64(1)), e.i64(1)), I32), I64)
        with e.when(b.icmp_signed(">=", o, e.i64(0))):
            visit(c, b.sext(e.load(gp, b.shl(pos, e.i64(1)), I32), I64), o)
        return
    gs = e.const_array(starts, "wstart")[0]
    gp = e.const_array(pairs, "wpairs")[0]
    lo = b.sext(e.load(gs, pos, I32), I64)
    hi = b.sext(e.load(gs, b.add(pos, e.i64(1)), I32), I64)
    with e.loop(lo, hi, "win") as a:
        a2 = b.shl(a, e.i64(1))
        visit(c, b.sext(e.load(gp, a2, I32), I64), b.sext(e.load(gp, b.add(a2, e.i64(1)), I32), I64))

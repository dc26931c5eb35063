"""The ``pool`` kernels (DESIGN §6): event driven through the window table, or, for integer
pools of a population's spikes without overlaps or pads, summed from its byte spike vector."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Blob, Op

from ..emit import I8, I32, I64
from ..plan import pool_out
from ..tables import narrow_int
from . import kernel
from .common import window_targets

if TYPE_CHECKING:
    from ..emit import Lowering


@kernel("pool")
def project_pool(lw: Lowering, p: Op, pop: Op, acc):
    """A pool projection: from the source's byte spike vector (:func:`project_pool_rows`) when
    the plan chose it (:func:`..plan.dense_pool`), else each event adds the weight of every
    output cell whose window covers it (the window table, :func:`.common.window_targets`)."""
    if p in lw.lay.dense:
        return project_pool_rows(lw, p, pop)
    e, b = lw.e, lw.e.b
    C = p.src.type.shape[0]
    OH, OW = pool_out(p)
    data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    g, wt = lw.weights(p, np.broadcast_to(data, (C, OH, OW)).reshape(-1), "pool")

    def body(j, x):
        def visit(c, k, o):
            target = b.add(b.mul(c, e.i64(OH * OW)), o)
            lw.accumulate(pop, lw.target(pop, x), target, e.load(g, target, wt), wt, x)

        window_targets(lw, j, p.src.type.shape, p.kernel, p.strides, p.pads, (1, 1), (OH, OW), (0, 1), visit)

    lw.events(p, pop, body)


def project_pool_rows(lw: Lowering, p: Op, pop: Op):
    """A pool without overlaps or pads (:func:`..plan.dense_pool`) from its source's byte spike
    vector, 8 outputs of a row at a time (then the row's rest as one shorter vector): per
    window row, the bytes the outputs cover are loaded at once and the window's columns
    picked out by shuffles and summed (as bytes while a window holds at most 255 cells: the
    window's rows first, then its columns); the sums times the weight are added into the
    accumulator.  The synaptic operations are the summed spikes (a covered spike drives
    exactly one target: the source's count when the windows tile it, else summed per lane)."""
    e, b = lw.e, lw.e.b
    C, H, W = p.src.type.shape
    OH, OW = pool_out(p)
    (ky, kx), (sy, sx) = p.kernel, p.strides
    data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    wd = np.broadcast_to(np.asarray(data, np.int64) << p.exponent, (C, OH, OW)).reshape(-1)
    acc, acc_t = lw.target(pop, None)
    uniform = bool(wd.size) and bool(np.all(wd == wd[0]))
    table = None if uniform else lw.e.const_array(wd.astype(narrow_int(wd)), "pool")

    def chunk(first, out, ox0, V):
        """Outputs ``ox0 .. ox0+V-1`` of the row whose first window starts at ``first``."""
        vi, va = ir.VectorType(I32, V), ir.VectorType(acc_t, V)
        nbytes = (V - 1) * sx + kx  # the last window's last column: inside the row
        at = b.add(first, b.mul(ox0, e.i64(sx)))
        raws = [b.load(b.gep(row, [b.add(at, e.i64(dy * W))], source_etype=I8), typ=ir.VectorType(I8, nbytes), align=1)
                for dy in range(ky)]

        def columns(raw, dx):  # the window column dx of each output
            return b.shuffle_vector(raw, ir.Constant(raw.type, None),
                                    ir.Constant(ir.VectorType(I32, V), [dx + i * sx for i in range(V)]))

        if ky * kx <= 255:  # 0/1 bytes: every sum stays a byte; the window rows first, then columns
            rows = raws[0]
            for raw in raws[1:]:
                rows = b.add(rows, raw)
            total8 = columns(rows, 0)
            for dx in range(1, kx):
                total8 = b.add(total8, columns(rows, dx))
            total = b.zext(total8, vi)
        else:
            total = None
            for raw in raws:
                for dx in range(kx):
                    x = b.zext(columns(raw, dx), vi)
                    total = x if total is None else b.add(total, x)
        if V in covered:  # the covered spikes, summed per lane (reduced after the rows)
            b.store(b.add(b.load(covered[V], typ=vi), total), covered[V])
        o = b.add(out, ox0)
        if uniform:
            w = ir.Constant(va, [int(wd[0])] * V)
        else:
            wv = b.load(b.gep(table[0], [o], source_etype=table[1]), typ=ir.VectorType(table[1], V), align=1)
            w = wv if table[1] == acc_t else b.sext(wv, va)
        term = b.mul(total if acc_t == I32 else b.sext(total, va), w)
        ptr = b.gep(acc, [o], source_etype=acc_t, inbounds=True)
        b.store(b.add(b.load(ptr, typ=va, align=4), term), ptr, align=4)

    # windows that tile the whole source cover every spike: the step's count is the synaptic
    # operations; else the covered spikes are summed per lane as the rows go
    whole = OH * sy == H and OW * sx == W and ky == sy and kx == sx
    with lw.source_vector(p) as (row, _typ, cnt):
        with e.when(b.icmp_signed(">", cnt, e.i64(0))):
            widths = [V for V in (8 if OW >= 8 else 0, OW % 8) if V and not whole]
            covered = {V: e.var(ir.VectorType(I32, V), ir.Constant(ir.VectorType(I32, V), None)) for V in widths}
            with e.loop(0, C * OH, "prow") as r:  # r = c · OH + oy
                c = b.udiv(r, e.i64(OH))
                first = b.add(b.mul(c, e.i64(H * W)), b.mul(b.sub(r, b.mul(c, e.i64(OH))), e.i64(sy * W)))
                out = b.mul(r, e.i64(OW))
                if OW >= 8:
                    with e.loop(0, OW // 8, "pcol") as q:
                        chunk(first, out, b.mul(q, e.i64(8)), 8)
                if OW % 8:
                    chunk(first, out, e.i64(OW // 8 * 8), OW % 8)
            ops = cnt if whole else e.i64(0)
            for V, var in covered.items():
                red = e.intrinsic(f"llvm.vector.reduce.add.v{V}i32", I32, [ir.VectorType(I32, V)])
                ops = b.add(ops, b.zext(b.call(red, [b.load(var, typ=ir.VectorType(I32, V))]), I64))
            b.store(b.add(b.load(lw.synops, typ=I64), ops), lw.synops)

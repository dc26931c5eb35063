"""The ``sparse`` kernel (DESIGN §6): CSR synapses by presynaptic neuron, each synapse's target
and weight stored together (:func:`..tables.synapse_table`); when the network is split into
parts (:func:`..plan.split_parts`), one CSR row per source and target part, part-major
(:func:`..tables.split_synapse_table`); short rows padded to a fixed number of slots
(:func:`..tables.fixed_rows`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import I16, I32, I64, ir_type
from ..plan import PARTS
from ..tables import HALVES, fixed_rows, split_synapse_table, synapse_table
from . import kernel

if TYPE_CHECKING:
    from ..emit import Lowering

#: Synapses per iteration of a row's loop (the rest one by one): W3 ran 3–6 % faster than
#: one per iteration (the pipeline does not unroll loops).
UNROLL = 4
#: Rows at least this long on average are prefetched as they are walked: their first
#: :data:`STREAM` bytes when an event reaches them, then :data:`STREAM` bytes ahead of the
#: synapse being read (W3's input rows: 900 synapses, 3.6 KB).
LONG_ROWS = 64
STREAM = 1024
#: Bytes of each of the next step's long rows from an encoder prefetched after this step's
#: events (the encoder's values are all known): they arrive during the rest of the step.
NEXT = 512


def owned(p: Op, bounds: list[int] | None, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """For each row, the range of targets its thread owns, as ``(first, count)`` arrays (the
    whole population when not split; a row's part when split, rows part-major:
    :func:`..tables.split_synapse_table`), where a fixed row's unused slots add their zeros
    (:func:`..tables.fixed_rows`); None when some part has no neurons."""
    size = p.result.type.size
    if bounds is None:
        return np.zeros(rows, np.int64), np.full(rows, max(size, 1), np.int64)
    lo, hi = np.asarray(bounds[:-1], np.int64), np.asarray(bounds[1:], np.int64)
    if np.any(hi <= lo):
        return None
    part = np.arange(rows) // max(rows // PARTS, 1)
    return lo[part], (hi - lo)[part]


@kernel("sparse")
def project_sparse(lw: Lowering, p: Op, pop: Op, acc):
    """Each event walks its CSR row of synapses (:func:`..tables.synapse_table`: target and
    weight in one word, or side by side) and counts them as synaptic operations; in a split
    network (``lw.part`` set), the row of the part being run.  Short rows of an integer
    projection are fixed rows (:func:`..tables.fixed_rows`): straight-line code over the
    slots, the rest of a longer row from the overflow table."""
    e, b = lw.e, lw.e.b
    table, bits, wdtype = synapse_table(p)
    indptr = p.indptr.data
    bounds = None if lw.part is None else lw.lay.parts[pop]
    if bounds is not None:
        table, indptr = split_synapse_table(p, table, bounds)
    wt = ir_type(wdtype)

    sources = p.src.type.size

    def row_of(j):
        return j if lw.part is None else b.add(b.mul(lw.part, e.i64(sources)), j)

    def synapse(g, gt, s, into, x):
        if bits == HALVES:  # the word's halves: target (unsigned), weight; two 16-bit loads
            s2 = b.shl(s, e.i64(1))
            target = b.zext(e.load(g, s2, I16), I64)
            lw.accumulate(pop, into, target, e.load(g, b.add(s2, e.i64(1)), I16), I16, x)
            return
        if bits:  # one word: weight << bits | target
            word = e.load(g, s, gt)
            target = b.zext(b.and_(word, ir.Constant(gt, (1 << bits) - 1)), I64)
            w = b.ashr(word, ir.Constant(gt, bits))
        else:  # (target, weight) side by side: one cache line serves both
            s2 = b.shl(s, e.i64(1))
            target = e.load(g, s2, gt)
            target = b.sext(target, I64) if gt != I64 else target
            w = e.load(g, b.add(s2, e.i64(1)), gt)
            w = b.bitcast(w, wt) if wt != gt else w
        lw.accumulate(pop, into, target, w, wt, x)

    def count(n):
        b.store(b.add(b.load(lw.synops, typ=I64), n), lw.synops)

    own = owned(p, bounds, indptr.size - 1) if p.is_integer else None
    fixed = fixed_rows(table, bits, indptr, own) if own is not None else None
    if fixed is not None:
        slots, rows, counts, over_starts, over = fixed
        gf, gt = e.const_array(rows, "fixed")
        gc, ct = e.const_array(counts, "rowlen")
        go = e.const_array(over, "over")[0]
        gos, ost = e.const_array(over_starts.astype(np.int32 if over_starts[-1] < 2**31 else np.int64), "overptr")

        # rows with an overflow, listed as spikes reach them and walked after the events: no
        # branch per event (W3's split rows: 7 % of them overflow, each a mispredicted branch)
        deferred = lw.area[("defer", p)]
        if lw.part is not None:
            deferred = b.gep(deferred, [b.mul(lw.part, e.i64(sources))], source_etype=I32)
        listed = e.var(I64, 0)

        def overflow(row, into, x):
            lo = b.sext(e.load(gos, row, ost), I64)
            hi = b.sext(e.load(gos, b.add(row, e.i64(1)), ost), I64)
            with e.loop(lo, hi, "so") as s:
                synapse(go, gt, s, into, x)

        def body(j, x):
            row = row_of(j)
            n = b.zext(e.load(gc, row, ct), I64)
            count(n)
            into = lw.target(pop, x)
            first = b.mul(row, e.i64(slots))
            for u in range(slots):
                synapse(gf, gt, b.add(first, e.i64(u)), into, x)
            over = b.icmp_unsigned(">", n, e.i64(slots))
            if x is None:  # a spike: its row listed (the list's next entry, kept if it overflows)
                m = b.load(listed, typ=I64)
                e.store(b.trunc(row, I32), deferred, m, I32)
                b.store(b.add(m, b.zext(over, I64)), listed)
            else:  # other values (rare) add their overflow now, multiplied
                with e.when(over):
                    overflow(row, into, x)

        def ahead(j):  # a later event's row: its cache line is on the way
            e.prefetch(b.gep(gf, [b.mul(row_of(j), e.i64(slots))], source_etype=gt))

        lw.events(p, pop, body, counted=True, ahead=ahead)
        with e.loop(0, b.load(listed, typ=I64), "deferred") as i:
            overflow(b.sext(e.load(deferred, i, I32), I64), lw.target(pop, None), None)
        return

    ip_t = np.int32 if indptr[-1] < 2**31 else np.int64
    ip, ipt = e.const_array(indptr.astype(ip_t), "indptr")
    g, gt = e.const_array(table, "synapses")

    stride = table.itemsize * (1 if bits else 2)  # bytes per synapse
    long = indptr.size > 1 and indptr[-1] >= LONG_ROWS * (indptr.size - 1)

    def body(j, x):
        row = row_of(j)
        lo = b.sext(e.load(ip, row, ipt), I64)
        hi = b.sext(e.load(ip, b.add(row, e.i64(1)), ipt), I64)
        count(b.sub(hi, lo))
        into = lw.target(pop, x)
        start = b.gep(g, [lo if bits else b.shl(lo, e.i64(1))], source_etype=gt)
        if long:  # the row's first lines, then the line STREAM bytes ahead, per iteration
            for line in range(0, STREAM, 64):
                e.prefetch(b.gep(start, [e.i64(line)], source_etype=ir.IntType(8)))
        whole = b.udiv(b.sub(hi, lo), e.i64(UNROLL))
        with e.loop(0, whole, "s4") as k:
            s0 = b.add(lo, b.mul(k, e.i64(UNROLL)))
            if long:
                e.prefetch(b.gep(start, [b.add(b.mul(k, e.i64(UNROLL * stride)), e.i64(STREAM))], source_etype=ir.IntType(8)))
            for u in range(UNROLL):
                synapse(g, gt, b.add(s0, e.i64(u)), into, x)
        with e.loop(b.add(lo, b.mul(whole, e.i64(UNROLL))), hi, "s") as s:
            synapse(g, gt, s, into, x)

    def ahead(j):  # the first synapse of a later event's row: its cache line is on the way
        first = b.sext(e.load(ip, row_of(j), ipt), I64)
        e.prefetch(b.gep(g, [first if bits else b.shl(first, e.i64(1))], source_etype=gt))

    lw.events(p, pop, body, counted=True, ahead=ahead)
    if long and NEXT and p.src.owner.KIND == "snn.encode":
        def soon(j, x):  # the next step's event j: its row's first lines
            first = b.sext(e.load(ip, row_of(j), ipt), I64)
            start = b.gep(g, [first if bits else b.shl(first, e.i64(1))], source_etype=gt)
            for line in range(0, NEXT, 64):
                e.prefetch(b.gep(start, [e.i64(line)], source_etype=ir.IntType(8)))

        now = lw.t
        lw.t = b.add(now, e.i64(1))
        lw.events(p, pop, soon, counted=True)
        lw.t = now

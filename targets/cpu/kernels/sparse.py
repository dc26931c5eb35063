"""The ``sparse`` kernel (DESIGN §6): CSR synapses by presynaptic neuron, each synapse's target
and weight stored together (:func:`..tables.synapse_table`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import I64, ir_type
from ..tables import synapse_table
from . import kernel

if TYPE_CHECKING:
    from ..emit import Lowering


@kernel("sparse")
def project_sparse(lw: Lowering, p: Op, pop: Op, acc):
    """Each event walks its CSR row of synapses (:func:`..tables.synapse_table`: target and
    weight in one word, or side by side) and counts them as synaptic operations."""
    e, b = lw.e, lw.e.b
    indptr = p.indptr.data
    ip_t = np.int32 if indptr[-1] < 2**31 else np.int64
    ip, ipt = e.const_array(indptr.astype(ip_t), "indptr")
    table, bits, wdtype = synapse_table(p)
    wt = ir_type(wdtype)
    g, gt = e.const_array(table, "synapses")

    def body(j, x):
        lo = b.sext(e.load(ip, j, ipt), I64)
        hi = b.sext(e.load(ip, b.add(j, e.i64(1)), ipt), I64)
        b.store(b.add(b.load(lw.synops, typ=I64), b.sub(hi, lo)), lw.synops)
        into = lw.target(pop, x)
        with e.loop(lo, hi, "s") as s:
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

    lw.events(p, pop, body, counted=True)

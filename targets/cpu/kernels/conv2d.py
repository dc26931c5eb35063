"""The ``conv2d`` kernel (DESIGN §6): each event scatters one kernel, channel-last, into the
projection's private accumulator, flushed into the population's after the step (with a halo,
:func:`..plan.conv_halo`, as straight-line vector adds; else through the window table); or,
where the plan allows it (:func:`..plan.direct_conv`), the direct convolution of
:mod:`.conv_direct`, in the steps with at least the planned number of events."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import I8, I32, I64
from ..plan import conv_halo, conv_out, conv_weights_dtype, host_features
from ..tables import int_weights
from . import kernel
from .common import flush, private, window_targets
from .conv_direct import project_direct

if TYPE_CHECKING:
    from ..emit import Lowering


@kernel("conv2d")
def project_conv2d(lw: Lowering, p: Op, pop: Op, acc):
    """The step's sums of ``p`` in its channel-last private accumulator, then flushed into
    the population's: by the direct convolution (:func:`.conv_direct.project_direct`) when
    the plan chose it for every step (:attr:`..plan.Layout.direct` 0: forced, or an encoder's
    calibrated rate) or in a step whose source population's spike list has at least the
    planned number of events; else by the event kernel (:func:`scatter`).  The direct sums
    and the flush are functions shared with the other convs of ``p``'s signature when it has
    any (:func:`repeated`)."""
    least = lw.lay.direct.get(p)
    shared = repeated(lw, p)
    priv = private(lw, p)  # channel-last [OH, OW, O] (with a halo: [OHp, OWp, O])
    halo = conv_halo(p, lw.lay.private[p])
    if least is None:
        scatter(lw, p, pop, priv, halo)
    elif least == 0 or p.src.owner.KIND != "snn.population":
        project_direct(lw, p, pop, priv, halo, shared)
    else:
        e, b = lw.e, lw.e.b
        src = p.src.owner
        st = b.sub(lw.t, e.i64(p.delay))
        live = b.icmp_signed(">=", st, e.i64(0))
        slot = lw.ring_slot(src, b.select(live, st, e.i64(0)))
        cnt = b.sext(e.load(lw.area[("ring_cnt", src)], slot, I32), I64)
        with b.if_else(b.and_(live, b.icmp_signed(">=", cnt, e.i64(least)))) as (direct, events):
            with direct:
                project_direct(lw, p, pop, priv, halo, shared)
            with events:
                scatter(lw, p, pop, priv, halo)
    OH, OW = conv_out(p)
    O = p.weight.shape[0]
    flush(lw, pop, acc, priv, O * OH * OW, OH * OW, first=lw.first_current,
          halo=(OW, halo[3], halo[0] * halo[3] + halo[1]) if halo else None, shared=shared)


def signature(lw: Lowering, p: Op) -> tuple:
    """What conv2d ``p``'s shape-dependent code (direct sums, flush) depends on, but for its
    target's accumulator: shapes, strides, pads, dilations, groups, private accumulator type."""
    return (p.weight.shape, p.src.type.shape, tuple(p.strides), tuple(p.pads), tuple(p.dilations), p.groups,
            lw.lay.private.get(p))


def repeated(lw: Lowering, p: Op) -> bool:
    """Whether another conv2d of the network has ``p``'s :func:`signature`: then its direct
    sums and flush are shared functions (:meth:`..emit.Lowering.shared_function`, compiled
    once for all of them); a conv of its own keeps them inline (a function of its own, called
    once, cost W2's compile about a tenth more)."""
    if "conv2d signatures" not in lw.memo:
        lw.memo["conv2d signatures"] = Counter(signature(lw, q) for q in lw.net.projections if q.kind == "conv2d")
    return lw.memo["conv2d signatures"][signature(lw, p)] > 1


def scatter(lw: Lowering, p: Op, pop: Op, priv, halo):
    """Each event adds, per kernel cell, the weights of its input channel to the output
    channels of the cell it reaches, in the channel-last private accumulator ``priv``
    (:func:`.common.private`).  With a halo (``halo``, :func:`..plan.conv_halo`) every kernel
    cell lands inside the accumulator, so an event is straight-line code: per kernel cell,
    whole vectors of channels at constant offsets from the event's first cell (one table
    load per event).  Weights are widened to the accumulator's type where
    :func:`..plan.conv_weights_dtype` says.  Otherwise the cells come from the window table
    (:func:`.common.window_targets`)."""
    e, b = lw.e, lw.e.b
    w = p.weight.data
    O, cg, kh, kw = w.shape
    groups = p.groups
    og = O // groups
    OH, OW = conv_out(p)
    C, H, W = p.src.type.shape
    # [c_in_group, kh, kw, O]: one event walks contiguous output channels per kernel cell
    pacc, pt, touched = priv
    wide = conv_weights_dtype(p, lw.lay.private[p])
    if wide is not None:  # the accumulator's type: no sign extension per add
        g, wt = lw.e.const_array(int_weights(p).transpose(1, 2, 3, 0).astype(wide), "conv")
    else:
        g, wt = lw.weights(p, np.ascontiguousarray(w.transpose(1, 2, 3, 0)), "conv")

    def group_of(c):
        if groups == 1:
            return e.i64(0), c
        return b.udiv(c, e.i64(cg)), b.urem(c, e.i64(cg))

    if halo:
        hy, hx, _, OWp = halo
        dy, dx = p.dilations
        V = 256 // pt.width
        feats = lw.lay.features if lw.lay.features is not None else host_features()
        if "avx512bw" in feats and og % (2 * V) == 0:  # one 512-bit register per kernel cell
            V *= 2
        vt = ir.VectorType(pt, V)
        ys, xs = np.divmod(np.arange(H * W), W)  # the event's cell for kernel cell (0, 0), · O
        hbase = e.const_array((((ys + p.pads[0] + hy) * OWp + xs + p.pads[1] + hx) * O).astype(np.int32),
                              "hbase")[0]

        g = lw.e.opaque(g)  # kernel cells at displacements from one register, not 18 movabs

        def body(j, x):  # x is None: an i16/i32 private accumulator takes only 0/1 events
            b.store(ir.Constant(I8, 1), touched)
            c = b.udiv(j, e.i64(H * W))  # j >= 0: unsigned division by a constant is cheapest
            base = b.sext(e.load(hbase, b.sub(j, b.mul(c, e.i64(H * W))), I32), I64)
            grp, ci = group_of(c)
            wfirst = b.add(b.mul(ci, e.i64(kh * kw * O)), b.mul(grp, e.i64(og)))
            first = b.add(base, b.mul(grp, e.i64(og)))
            for ky in range(kh):
                for kx in range(kw):
                    wk = b.add(wfirst, e.i64((ky * kw + kx) * O))
                    ok = b.sub(first, e.i64((ky * dy * OWp + kx * dx) * O))
                    for q in range(og // V):
                        wv = b.load(b.gep(g, [b.add(wk, e.i64(q * V))], source_etype=wt), typ=ir.VectorType(wt, V),
                                    align=1)
                        wv = wv if wt == pt else b.sext(wv, vt)
                        ptr = b.gep(pacc, [b.add(ok, e.i64(q * V))], source_etype=pt)
                        b.store(b.add(b.load(ptr, typ=vt, align=2), wv), ptr, align=2)

        lw.events(p, pop, body)
        return

    def body(j, x):
        b.store(ir.Constant(I8, 1), touched)

        def visit(c, k, o):  # k: kernel cell · O, o: output cell · O (channel-last)
            grp, ci = group_of(c)
            wfirst = b.add(b.add(b.mul(ci, e.i64(kh * kw * O)), k), b.mul(grp, e.i64(og)))
            first = b.add(o, b.mul(grp, e.i64(og)))
            with e.loop(0, og, "oc") as oc:
                lw.accumulate(pop, (pacc, pt), b.add(first, oc), e.load(g, b.add(wfirst, oc), wt), wt, x)

        window_targets(lw, j, p.src.type.shape, (kh, kw), p.strides, p.pads, p.dilations, (OH, OW),
                             (O, O), visit)

    lw.events(p, pop, body)

"""The ``maxgate`` kernel (max-pool gate, DESIGN §6): running counts per source neuron
(per-thread scratch, reset at the start of every sample), and in a step with events, each
output cell receives the value of its window's input with the largest count."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Blob, Op

from ..emit import I8, I64
from ..plan import pool_out, unit_events
from . import kernel

if TYPE_CHECKING:
    from ..emit import Lowering


def reset_gate(lw: Lowering, p: Op):
    """Zero the running counts (and delivered values) of ``maxgate`` projection ``p``: a
    sample's run starts from no counts (:func:`nmc.semantics.project`)."""
    e = lw.e
    with e.loop(0, p.src.type.size, "greset") as j:
        for area in ("gcount", "gval"):
            e.store(e.i64(0), lw.area[(area, p)], j, I64)  # all-zero bits: 0 and 0.0


@kernel("maxgate", sample_start=reset_gate)
def project_maxgate(lw: Lowering, p: Op, pop: Op, acc):
    """The max-pool gate (:class:`nmc.ir.snn.Project`, kind ``maxgate``), as
    :func:`nmc.semantics.project` computes it: each event adds its value to its source's
    running count and notes it in ``gval``; if there were any, each output cell scans its
    window in row-major order for the real cell of the largest count (strictly larger
    replaces, so ties keep the first) and receives ``weight · gval[winner]``; then the
    events clear their ``gval`` entries again.  Counts and values are i64 (f64 in float
    graphs), summed in the reference's order (one addition per delivery)."""
    e, b = lw.e, lw.e.b
    C, H, W = p.src.type.shape
    OH, OW = pool_out(p)
    kh, kw = p.kernel
    sh, sw = p.strides
    ph, pw = p.pads[0], p.pads[1]
    data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    g, wt = lw.weights(p, np.broadcast_to(data, (C, OH, OW)).reshape(-1), "maxgate")
    ct = lw.acc_type(pop)
    integer = bool(pop.bits)
    counts = lw.area[("gcount", p)]
    vals = lw.area[("gval", p)]
    one = ir.Constant(ct, 1 if integer else 1.0)
    zero = ir.Constant(ct, 0 if integer else 0.0)
    touched = e.var(I8, 0)
    unit = unit_events(p)

    def deliver(j, x):
        b.store(ir.Constant(I8, 1), touched)
        value = one if x is None else x
        old = e.load(counts, j, ct)
        e.store(b.add(old, value) if integer else b.fadd(old, value), counts, j, ct)
        e.store(value, vals, j, ct)

    lw.events(p, pop, deliver)
    with e.when(b.icmp_unsigned("!=", b.load(touched, typ=I8), ir.Constant(I8, 0))):
        best = e.var(ct, zero)
        win = e.var(I64, -1)
        with e.loop(0, C, "gc") as c:
            with e.loop(0, OH, "goy") as oy:
                with e.loop(0, OW, "gox") as ox:
                    b.store(e.i64(-1), win)
                    y0 = b.sub(b.mul(oy, e.i64(sh)), e.i64(ph))
                    x0 = b.sub(b.mul(ox, e.i64(sw)), e.i64(pw))
                    with e.loop(0, kh, "gky") as ky:
                        y = b.add(y0, ky)
                        with e.when(b.and_(b.icmp_signed(">=", y, e.i64(0)), b.icmp_signed("<", y, e.i64(H)))):
                            with e.loop(0, kw, "gkx") as kx:
                                x = b.add(x0, kx)
                                inside = b.and_(b.icmp_signed(">=", x, e.i64(0)), b.icmp_signed("<", x, e.i64(W)))
                                with e.when(inside):  # pad cells never win
                                    j = b.add(b.mul(b.add(b.mul(c, e.i64(H)), y), e.i64(W)), x)
                                    cnt = e.load(counts, j, ct)
                                    larger = b.icmp_signed(">", cnt, b.load(best, typ=ct)) if integer \
                                        else b.fcmp_ordered(">", cnt, b.load(best, typ=ct))
                                    first = b.icmp_signed("<", b.load(win, typ=I64), e.i64(0))
                                    with e.when(b.or_(first, larger)):
                                        b.store(cnt, best)
                                        b.store(j, win)
                    w_idx = b.load(win, typ=I64)
                    with e.when(b.icmp_signed(">=", w_idx, e.i64(0))):
                        value = e.load(vals, w_idx, ct)
                        nz = b.icmp_signed("!=", value, zero) if integer else b.fcmp_unordered("!=", value, zero)
                        with e.when(nz):
                            target = b.add(b.mul(b.add(b.mul(c, e.i64(OH)), oy), e.i64(OW)), ox)
                            x = None if unit else value
                            lw.accumulate(pop, lw.target(pop, x), target, e.load(g, target, wt), wt, x)
        lw.events(p, pop, lambda j, x: e.store(zero, vals, j, ct), counted=True)

# -- neuron update ---------------------------------------------------------------------------

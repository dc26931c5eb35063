"""The direct convolution of ``conv2d`` projections (:func:`..plan.direct_conv`): every
output summed from the step's whole input, whatever its firing rate.  Registers no kind:
:func:`.conv2d.project_conv2d` calls :func:`project_direct`.

The step's events are written as bytes of 1 into a zeroed input plane, channel-last and
padded (:func:`..plan.direct_geometry`: ``[cells, groups · K4]``, each group's channels
padded to a multiple of 4).  Then, for each block of output cells of a row and 16 or 32 output
channels (at most :data:`..plan.DIRECT_SUMS` vectors of 16 sums), the sums stay in registers while, for each kernel cell
and group of 4 input channels, one ``vpdpbusd`` per cell and 16 output channels adds
``Σ_{4 channels} input byte · weight`` (the 4 input bytes broadcast; the weights ``[16 out,
4 in]`` int8, one 512-bit vector) into 16 i32 sums.  Every product is 0 or a weight and every
sum is bounded by :func:`..plan.unit_bound` below ``2**31``, so the i32 sums are exact in any
order.  The sums are stored (narrowed, exactly) into the event kernel's channel-last private
accumulator, which :func:`.conv2d.project_conv2d` flushes into the population's whichever
kernel ran.  The sums are a function of their own (:func:`direct_sums`), shared by every
projection of the same shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from nmc.ir.core import Op

from ..emit import I8, I32, I64
from ..plan import conv_out, direct_geometry
from ..tables import int_weights
from .common import shuffle_mask

if TYPE_CHECKING:
    from ..emit import Lowering

V16 = ir.VectorType(I32, 16)
ZERO16 = ir.Constant(V16, None)
V64 = ir.VectorType(I8, 64)
#: Kernel cells × groups of 4 input channels up to which a block's loop is unrolled whole
#: (beyond, a loop over the groups of 4 channels, the kernel cells unrolled in it).
UNROLL = 16


def direct_weights(p: Op) -> np.ndarray:
    """``p``'s int8 weights as ``[groups, kh·kw, K4/4, og/16, 16, 4]``: for each group, kernel
    cell and 4 input channels, one 64-byte vector per 16 output channels (the 4 inputs of an
    output adjacent, as ``vpdpbusd`` pairs them); padded channels have weight 0."""
    co, cpg, kh, kw = p.weight.shape
    G = p.groups
    og = co // G
    k4 = direct_geometry(p).depth // G
    w = np.zeros((G, og, k4, kh * kw), np.int8)
    w[:, :, :cpg] = int_weights(p).reshape(G, og, cpg, kh * kw)
    return np.ascontiguousarray(w.reshape(G, og // 16, 16, k4 // 4, 4, kh * kw).transpose(0, 5, 3, 1, 2, 4))


def project_direct(lw: Lowering, p: Op, pop: Op, priv, halo, shared: bool = False):
    """Emit the direct convolution of ``p`` for this step into its private accumulator
    ``priv`` (:func:`.common.private`, i16 or i32, with the halo ``halo`` of
    :func:`..plan.conv_halo`): every output cell's sums are stored (module docstring), by
    the shared function :func:`direct_sums` when ``shared``, else inline.  Synaptic
    operations are counted per event, as by the event kernel."""
    e, b = lw.e, lw.e.b
    cpg = p.weight.shape[1]
    C, H, W = p.src.type.shape
    _, wp, cells, depth, _, _, _ = direct_geometry(p)
    k4 = depth // p.groups
    cin = lw.area[("cin", p)]
    pacc, pt, touched = priv

    size = (cells * depth + 63) // 64  # the plan reserves whole 64-byte lines
    with e.loop(0, size, "cz") as k:
        b.store(ir.Constant(V64, None), b.gep(cin, [b.shl(k, e.i64(6))], source_etype=I8), align=64)
    # each source neuron's byte in the plane: its cell's first byte plus its channel's lane
    c, ys, xs = np.unravel_index(np.arange(C * H * W), (C, H, W))
    place = ((ys + p.pads[0]) * wp + xs + p.pads[1]) * depth + c // cpg * k4 + c % cpg
    at = e.const_array(place.astype(np.int32), "dpos")[0]

    def event(j, x):  # x is None: the plan admits 0/1 events only
        e.store(ir.Constant(I8, 1), cin, b.sext(e.load(at, j, I32), I64), I8)

    lw.events(p, pop, event)

    weights = e.const_array(direct_weights(p), "dweight")[0]
    if shared:
        b.call(direct_sums(lw, p, halo, pt), [cin, weights, pacc])
    else:  # weights at displacements from one register, not a movabs each
        _sums(e, p, halo, pt, cin, e.opaque(weights), pacc)
    b.store(ir.Constant(I8, 1), touched)


def direct_sums(lw: Lowering, p: Op, halo, pt: ir.IntType) -> ir.Function:
    """The function ``void (ptr cin, ptr weights, ptr pacc)`` that sums conv2d ``p``'s outputs
    from its input plane ``cin`` (:func:`..plan.direct_geometry`) and weights
    (:func:`direct_weights`) into its private accumulator ``pacc`` (element type ``pt``, with
    the halo ``halo``): module docstring.  Its code depends only on the shapes, so projections
    of one shape share it (:meth:`..emit.Lowering.shared_function`)."""
    key = (direct_geometry(p), tuple(p.weight.shape), p.groups, tuple(p.dilations), conv_out(p), tuple(halo),
           pt.width)
    return lw.shared_function("direct", key, 3, lambda cin, wg, pacc: _sums(lw.e, p, halo, pt, cin, wg, pacc))


def _sums(e, p: Op, halo, pt: ir.IntType, cin, wg, pacc):
    """The sums of :func:`direct_sums`, emitted with ``e`` into the current function."""
    b = e.b
    co, cpg, kh, kw = p.weight.shape
    G = p.groups
    og = co // G
    OH, OW = conv_out(p)
    hp, wp, cells, depth, owr, run, pair = direct_geometry(p)
    k4 = depth // G
    quads = k4 // 4
    dy, dx = p.dilations
    taps = [(ky * dy * wp + kx * dx) * depth for ky in range(kh) for kx in range(kw)]
    hy, hx, _, owp = halo
    vpdp = e.intrinsic("llvm.x86.avx512.vpdpbusd.512", V16, [V16, V16, V16])
    blocks = og // 16
    unrolled = len(taps) * quads <= UNROLL

    def splat(ptr):  # 4 input bytes, broadcast to the 16 lanes
        word = b.load(ptr, typ=I32, align=1)
        return b.shuffle_vector(b.insert_element(ZERO16, word, ir.Constant(I32, 0)), ZERO16, shuffle_mask((0,) * 16))

    with e.loop(0, G, "dg") as g:
        with e.loop(0, blocks // pair, "dob") as ob:
            with e.loop(0, OH, "doy") as oy:
                with e.loop(0, owr // run, "dox") as xb:
                    # unrolled: the sums as values (no variables for LLVM to promote); else loop-carried
                    sums = [[ZERO16 if unrolled else e.var(V16, None) for _ in range(pair)] for _ in range(run)]

                    def get(c, k):
                        return sums[c][k] if unrolled else b.load(sums[c][k], typ=V16)

                    def put(c, k, value):
                        if unrolled:
                            sums[c][k] = value
                        else:
                            b.store(value, sums[c][k])

                    cell0 = b.add(b.mul(oy, e.i64(wp)), b.mul(xb, e.i64(run)))
                    first = b.add(b.mul(cell0, e.i64(depth)), b.mul(g, e.i64(k4)))
                    def quad(q):  # one group of 4 input channels, every kernel cell
                        for t, off in enumerate(taps):
                            row = b.mul(b.add(b.mul(b.add(b.mul(g, e.i64(len(taps))), e.i64(t)), e.i64(quads)), q),
                                        e.i64(blocks))
                            ws = [b.load(b.gep(wg, [b.shl(b.add(row, b.add(b.mul(ob, e.i64(pair)), e.i64(k))),
                                                          e.i64(6))], source_etype=I8), typ=V16, align=64)
                                  for k in range(pair)]
                            for c in range(run):
                                x = splat(b.gep(cin, [b.add(b.add(first, b.shl(q, e.i64(2))), e.i64(off + c * depth))],
                                                source_etype=I8))
                                for k in range(pair):
                                    put(c, k, b.call(vpdp, [get(c, k), x, ws[k]]))

                    if unrolled:
                        for q in range(quads):
                            quad(e.i64(q))
                    else:
                        with e.loop(0, quads, "dq") as q:
                            quad(q)
                    for c in range(run):
                        ox = b.add(b.mul(xb, e.i64(run)), e.i64(c))
                        cell = b.add(b.mul(b.add(oy, e.i64(hy)), e.i64(owp)), b.add(ox, e.i64(hx)))
                        real = ir.Constant(ir.IntType(1), 1) if owr - run + c < OW else b.icmp_signed("<", ox, e.i64(OW))
                        with e.when(real):  # the cells of the last run past OW are not stored
                            for k in range(pair):
                                ch = b.add(b.mul(g, e.i64(og)), b.mul(b.add(b.mul(ob, e.i64(pair)), e.i64(k)), e.i64(16)))
                                dst = b.gep(pacc, [b.add(b.mul(cell, e.i64(co)), ch)], source_etype=pt)
                                total = get(c, k)
                                total = total if pt == I32 else b.trunc(total, ir.VectorType(pt, 16))  # |sum| < 2**15
                                b.store(total, dst, align=2)

"""Constant tables of the CPU lowering, built with numpy (DESIGN §6).

Everything here is a function of the graph's constants only: weights with their exponent
folded in, as narrow as they stay exact (:func:`int_weights`, :func:`weight_table`), the CSR
synapse records of sparse projections (:func:`synapse_table`), the per-position window
tables of convolutions and pools (:func:`window_table`, from :func:`nmc.windows.window_cells`)
and the spike-list lookup table (:data:`SPIKE_LUT`).  The emitter (:mod:`.emit`) turns them
into LLVM constants; nothing here imports llvmlite.
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Op
from nmc.windows import window_cells

#: For each byte ``m``, the indices of its set bits in increasing order, padded to 8 with 0
#: (:meth:`.emit.Lowering.list8`).
SPIKE_LUT = np.array([[i for i in range(8) if m >> i & 1] + [0] * (8 - bin(m).count("1")) for m in range(256)],
                     dtype=np.int8)


def narrow_int(data: np.ndarray) -> np.dtype:
    """The narrowest of int8, int16, int32, int64 that holds every value of ``data``."""
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def int_weights(p: Op) -> np.ndarray:
    """Integer weights of ``p`` with the exponent folded in, as narrow as they stay exact."""
    wd = p.weight.data.astype(np.int64) << p.exponent
    return np.ascontiguousarray(wd.astype(narrow_int(wd)))


def weight_table(p: Op, data: np.ndarray) -> np.ndarray:
    """``data`` (weights of ``p``, in any arrangement) with ``p``'s exponent folded in, stored
    as narrow as they stay exact: the narrowest integer type (integer projections), else f32
    when every value is exact in f32, else f64."""
    if p.is_integer:
        w = data.astype(np.int64) << p.exponent
        return w.astype(narrow_int(w))
    w = data.astype(np.float64) * 2.0 ** p.exponent
    w32 = w.astype(np.float32)
    exact = np.array_equal(w32.astype(np.float64), w, equal_nan=True)
    return w32 if exact else w


def synapse_table(p: Op) -> tuple[np.ndarray, int, np.dtype]:
    """The synapses of sparse projection ``p`` in CSR order, as ``(table, bits, weight dtype)``.

    ``bits > 0``: one i32 word per synapse, ``weight << bits | target`` (integer weights that
    fit the ``32 - bits`` bits the targets leave).  ``bits == 0``: ``[nnz, 2]`` records of
    (target, weight bit pattern), 32-bit when the weight is exact in 32 bits (int32 or
    float32), else 64-bit (int64, float64: the weight dtype says how to read the pattern).
    Both keep a synapse's target and weight in one cache line."""
    data, targets = p.weight.data, p.indices.data.astype(np.int64)
    if p.is_integer:
        w = data.astype(np.int64) << p.exponent
        bits = max(int(p.result.type.size - 1).bit_length(), 1)
        if w.size == 0 or -2**(31 - bits) <= w.min() and w.max() < 2**(31 - bits):
            return (w << bits | targets).astype(np.int32), bits, np.dtype(np.int32)
        narrow = w.size == 0 or -2**31 <= w.min() and w.max() < 2**31
        wbits, wt = (w.astype(np.int32), np.int32) if narrow else (w, np.int64)
    else:
        w = data.astype(np.float64) * 2.0 ** p.exponent
        w32 = w.astype(np.float32)
        narrow = np.array_equal(w32.astype(np.float64), w, equal_nan=True)
        wbits, wt = (w32.view(np.int32), np.float32) if narrow else (w.view(np.int64), np.float64)
    table = np.empty((data.size, 2), dtype=wbits.dtype)
    table[:, 0] = targets
    table[:, 1] = wbits
    return table, 0, np.dtype(wt)


def window_table(hw, kernel, strides, pads, dils, out_hw, scale=(1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """For each source position ``y · W + x`` of a ``[H, W]`` plane, the output cells whose
    window covers it, as CSR arrays ``(starts [H·W + 1], pairs [n, 2])`` of i32: pair
    ``((ky · kw + kx) · scale[0], (oy · OW + ox) · scale[1])`` for kernel offset ``(ky, kx)``
    and output cell ``(oy, ox)``, ``y = oy · stride - pad + ky · dilation`` (likewise x).
    Pairs are ordered by position, then kernel cell (a position and a kernel cell fix the
    output cell).  ``pairs`` has one all-zero row when no cell is covered.

    Built on :func:`nmc.windows.window_cells` (ordered by kernel cell, then output cell),
    sorted stably by source position."""
    H, W = hw
    k, pos, out = window_cells(hw, kernel, strides, pads, dils, out_hw)
    order = np.argsort(pos, kind="stable")  # by position, then kernel cell
    starts = np.zeros(H * W + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=H * W), out=starts[1:])
    table = np.stack([k[order] * scale[0], out[order] * scale[1]], axis=1) if pos.size \
        else np.zeros((1, 2), np.int64)
    if starts[-1] >= 2**31 or table.max(initial=0) >= 2**31:
        raise NmcError("a convolution or pooling window table does not fit i32 offsets")
    return starts.astype(np.int32), table.astype(np.int32)


def single_window_table(starts: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A :func:`window_table` in which no position has more than one pair, as ``[H·W, 2]``
    i32 rows: a position's pair, or ``(-1, -1)`` where no window covers it."""
    counts = np.diff(starts)
    single = np.full((counts.size, 2), -1, dtype=np.int32)
    single[counts == 1] = pairs[:int(starts[-1])]
    return single

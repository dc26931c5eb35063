"""Constant tables of the CPU lowering, built with numpy (DESIGN §6).

Everything here is a function of the graph's constants only: weights with their exponent
folded in, as narrow as they stay exact (:func:`int_weights`, :func:`weight_table`), the CSR
synapse records of sparse projections (:func:`synapse_table`), the per-position window
tables of convolutions and pools (:func:`window_table`, from :func:`nmc.windows.window_cells`)
and the spike-list lookup table (:data:`SPIKE_LUT`).  The emitter (:mod:`.emit`) turns them
into LLVM constants; nothing here imports llvmlite.
"""

from __future__ import annotations

import sys

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Op
from nmc.windows import window_cells

#: For each byte ``m``, the indices of its set bits in increasing order, padded to 8 with 0
#: (:meth:`.emit.Lowering.list8`).
SPIKE_LUT = np.array([[i for i in range(8) if m >> i & 1] + [0] * (8 - bin(m).count("1")) for m in range(256)],
                     dtype=np.int8)


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of ``nbytes`` that starts on a 64-byte boundary: for the tables bound to
    the compiled code, whose rows of 64 bytes (W3's fixed rows) then each fill one cache line,
    which one prefetch brings (numpy's and Python's buffers start on 16 or 32 bytes)."""
    buf = np.empty(nbytes + 63, dtype=np.uint8)
    start = -buf.ctypes.data % 64
    return buf[start:start + nbytes]


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


#: The ``bits`` of a synapse word whose halves are its target and its weight (:func:`synapse_table`).
HALVES = 16


def synapse_table(p: Op) -> tuple[np.ndarray, int, np.dtype]:
    """The synapses of sparse projection ``p`` in CSR order, as ``(table, bits, weight dtype)``.

    ``bits > 0``: one i32 word per synapse, ``weight << bits | target`` (integer weights that
    fit the ``32 - bits`` bits the targets leave).  ``bits`` is :data:`HALVES` (16) when the
    targets and the weights each fit 16 bits, on a little-endian host: target and weight are
    then the word's two halves, each read by one 16-bit load (no mask, no shift: W3's rows
    ran 20 % faster), else the fewest bits that hold every target.  ``bits == 0``: ``[nnz, 2]``
    records of (target, weight bit pattern), 32-bit when the weight is exact in 32 bits (int32 or
    float32), else 64-bit (int64, float64: the weight dtype says how to read the pattern).
    Both keep a synapse's target and weight in one cache line."""
    data, targets = p.weight.data, p.indices.data.astype(np.int64)
    if p.is_integer:
        w = data.astype(np.int64) << p.exponent
        bits = max(int(p.result.type.size - 1).bit_length(), 1)
        if bits <= HALVES and sys.byteorder == "little" and (w.size == 0 or -2**15 <= w.min() and w.max() < 2**15):
            bits = HALVES
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


def split_synapse_table(p: Op, table: np.ndarray, bounds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``table`` (:func:`synapse_table`'s records of sparse projection ``p``) with each source's
    row split by target part (part ``k``: targets in ``[bounds[k], bounds[k+1])``), as
    ``(table, indptr)``: CSR over the rows ``r = k · sources + source``, part-major: the thread
    running part ``k`` reads only its own stretch of the table, so that its core's cache holds
    half of it (W3 on two threads: 26 % less time per step than with a source's parts side by
    side, whose lines each thread pulled in whole).  Within a row synapses keep their order, so
    every target receives its synapses in the order the unsplit table gives them."""
    indptr, targets = p.indptr.data.astype(np.int64), p.indices.data.astype(np.int64)
    parts, n = len(bounds) - 1, indptr.size - 1
    part = np.searchsorted(np.asarray(bounds[1:-1], np.int64), targets, side="right")
    rows = part * n + np.repeat(np.arange(n), np.diff(indptr))
    key = rows.astype(np.uint16) if n * parts <= 1 << 16 else rows  # 16-bit keys: a radix sort
    order = np.argsort(key, kind="stable")  # by part, then source, then as before
    starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n * parts))])
    return table[order], starts


#: Slot counts a sparse projection's short rows may be padded to (:func:`fixed_rows`).
FIXED_SLOTS = (4, 8, 16)
#: Largest share of rows longer than the slots (their rest goes through an overflow table).
FIXED_OVERFLOW = 0.1


def fixed_rows(table: np.ndarray, bits: int, starts: np.ndarray, owned: tuple[np.ndarray, np.ndarray]):
    """Short CSR rows of packed synapse words (``bits > 0``, :func:`synapse_table`) as rows
    of a fixed number of slots, or None when they are not short.  A row is then walked by
    straight-line code, without the mispredicted loop exit that dominated a row of ~10
    synapses (W3's recurrent events).  ``slots`` is the first of :data:`FIXED_SLOTS` that at
    most :data:`FIXED_OVERFLOW` of the rows exceed, when the mean row fills at least a third
    of it.  A row's unused slot adds weight 0 to a target spread by a multiplicative hash of
    (row, slot) over ``owned`` (``(first, count)`` per row: the targets the thread running
    the row owns): its add then waits on no other add in flight, where padding with the
    row's own targets made each a read of a store just issued (W3: 9–11 % less time in its
    recurrent rows, on one thread).

    Returns ``(slots, fixed [rows, slots] i32, counts [rows], over_starts [rows + 1],
    over [n] i32)``: the synapses after a row's first ``slots`` are CSR rows of ``over``;
    ``counts`` is every row's length, unsigned in the narrowest type (viewed as the signed type
    of its width: read it zero-extended)."""
    counts = np.diff(starts)
    rows = counts.size
    if not bits or rows == 0:
        return None
    slots = next((k for k in FIXED_SLOTS if np.mean(counts > k) <= FIXED_OVERFLOW), None)
    if slots is None or counts.mean() * 3 < slots:
        return None
    first, count = owned
    with np.errstate(over="ignore"):  # (wraps)
        key = np.arange(rows * slots, dtype=np.uint64).reshape(rows, slots) * np.uint64(0x9E3779B97F4A7C15)
    spread = (key >> np.uint64(32)) % count[:, None].astype(np.uint64)
    fixed = (first[:, None] + spread.astype(np.int64)).astype(np.int32)
    kept = np.minimum(counts, slots)
    row_of = np.repeat(np.arange(rows), counts)
    within = np.arange(int(starts[-1])) - np.repeat(starts[:-1], counts)
    head = within < slots
    fixed[row_of[head], within[head]] = table[head]
    over_counts = counts - kept
    over_starts = np.concatenate([[0], np.cumsum(over_counts)])
    over = table[~head] if (~head).any() else np.zeros(1, np.int32)
    count_t = np.uint8 if counts.max() < 256 else np.uint16 if counts.max() < 2**16 else np.uint32
    return slots, fixed, counts.astype(count_t).view(count_t().dtype.str.replace("u", "i")), over_starts, over


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

"""Event-driven kernel currents: each non-zero source value scatters its kernel.

The dense path (:class:`.kernels.KernelRunner`) computes a kernel's current as one
convolution or product over its whole source population, so it costs the *structural*
multiply-adds whatever the activity.  Here only the events (non-zero source values) cost:

* ``conv2d`` / ``pool``: an event of source channel ``c`` at position ``q`` reaches, through
  each kernel cell ``t`` that lands inside the target, one target position
  (:func:`window_table`).  Each such (event, cell) pair is one entry of a sparse matrix whose
  rows are ``(sample, group, target position)`` and whose columns are ``(c, t)``; one product
  with the kernel's weights ``[(c, t), output channel in group]`` gives the current
  (``scipy.sparse`` COO times dense: one pass over the entries, ``o_group`` multiply-adds
  each — the synaptic operations of the events).  A pool's weight is per target neuron: its
  matrix has one column of ones and the sums are multiplied by the weights after.
  A convolution with many output channels per group (``o_group`` ≥ :data:`SHIFT_MIN_OUTPUTS`)
  instead takes one entry per event: rows ``(sample, group, source position)``, columns the
  source channels, times the weights ``[c, (t, output channel)]``, which gives each source
  position's contribution through every kernel cell at once (``kh·kw·o_group`` multiply-adds
  per entry, one contiguous run); each cell's slab is then added, shifted, into the targets
  its cell reaches (:func:`cell_spans`: strided slices of source and target positions).
  Windows that do not overlap, one channel each (pools, depthwise convolutions such as a
  max-pool's tournament), give each event one target: their events are summed per target
  (:func:`numpy.bincount`) with the cell's weight.
* ``dense``: the events' rows of the weight matrix, summed per sample (the same product).

The sums are exact integers: in int64 (they wrap as the dense path's int64 products and the
reference semantics' sums do), or in float32 / float64 where the caller's bound on every
partial sum (:func:`.kernels.exact_dtype`) says the type holds them exactly; so the result
equals the dense path's bit for bit.  A kernel's ``<< exponent`` is applied in int64 after
(:meth:`Scatter.add`), as on the dense path.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nmc.targets.mapping.shapes import Geometry


#: Seconds per unit of :meth:`Scatter.features` (event path: multiply-add, entry, slab cell,
#: call; dense path: multiply-add, copied cell, call): a least-squares fit (relative error) by
#: ``benchmarks/emulator_speed.py --fit`` over the kernels of VGG-11 x0.5, mnist-8 and the
#: CNN at densities 0.5-40% and batches 8 and 32 on this 2-core host (one BLAS thread, under
#: heavy load from other jobs); the prediction chose the faster path in 81% of the 252 cases,
#: its total time 6% over the best choice's (always dense: 55% over, always events: 3.9x).
EVENT_COST = (1.07e-10, 4.72e-09, 7.72e-10, 6.40e-06)
DENSE_COST = (3.00e-11, 1.72e-09, 4.23e-06)
#: Output channels per group from which a convolution's events take the shifted path.
SHIFT_MIN_OUTPUTS = 8


def cell_spans(n: int, out: int, k: int, s: int, p: int, d: int) -> list:
    """Along one axis (``n`` sources, ``out`` targets, kernel ``k``, stride ``s``, padding
    ``p``, dilation ``d``): per kernel cell ``i``, ``(source slice, target slice)`` of the
    sources ``y = o·s − p + i·d`` and their targets ``o``, or None when the cell reaches none."""
    spans = []
    for i in range(k):
        lo = max(0, -(-(p - i * d) // s))  # first o with y >= 0
        hi = min(out, (n - 1 + p - i * d) // s + 1)  # past the last o with y < n
        if hi <= lo:
            spans.append(None)
            continue
        y0 = lo * s - p + i * d
        spans.append((slice(y0, y0 + (hi - lo - 1) * s + 1, s), slice(lo, hi)))
    return spans


def window_table(g: Geometry) -> np.ndarray:
    """``[H·W, kh·kw]``: for each source position and kernel cell, the flat target position the
    cell reaches (``oy·OW + ox`` with ``oy·sh − pad_top + i·dh = y`` and likewise along x), or −1
    where no target position lies there."""
    (_, H, W), (_, OH, OW) = g.src, g.tgt

    def axis(n, out, k, s, p, d):
        num = np.arange(n)[:, None] + p - np.arange(k)[None, :] * d  # [n, k]: o·s for the cell
        o = num // s
        return np.where((num >= 0) & (num % s == 0) & (o < out), o, -1)

    oy = axis(H, OH, g.kernel[0], g.strides[0], g.pads[0], g.dilations[0])  # [H, kh]
    ox = axis(W, OW, g.kernel[1], g.strides[1], g.pads[1], g.dilations[1])  # [W, kw]
    ok = (oy[:, None, :, None] >= 0) & (ox[None, :, None, :] >= 0)  # [H, W, kh, kw]
    flat = oy[:, None, :, None] * OW + ox[None, :, None, :]
    return np.where(ok, flat, -1).reshape(H * W, -1).astype(np.int64)


class Scatter:
    """The event path of one kernel row: ``current(b, j, v, B)`` for events of sample ``b``,
    source index ``j`` (flat in the source population) and value ``v``, all int64."""

    def __init__(self, kind: str, g: Geometry, w: np.ndarray):
        self.kind, self.g = kind, g
        self.n_tgt = n_tgt = int(np.prod(g.tgt))
        self._cache: dict = {}
        n_src = int(np.prod(g.src))
        self.shift, self.slab = kind == "conv2d" and g.o_group >= SHIFT_MIN_OUTPUTS, 0.0
        if kind == "dense":
            self.cells, self.vec, self.dense_macs, self.dense_cells = 1.0, n_tgt, n_src * n_tgt, n_src
        else:
            cells = g.kernel[0] * g.kernel[1]
            self.dense_macs = n_tgt * g.c_group * cells if kind == "conv2d" else n_tgt * cells
            self.dense_cells = n_tgt // g.o_group * g.c_group * cells  # im2col: (group, c, t, position)
            self.vec = g.o_group if kind == "conv2d" else 1
        if kind == "dense":
            self.other = np.ascontiguousarray(w.T)  # [sources, targets]
        elif kind in ("conv2d", "pool"):
            self.table = window_table(g)
            self.cells = float((self.table >= 0).sum()) / len(self.table)  # cells per event, on average
            G, og, T = n_tgt // g.o_group // (g.tgt[1] * g.tgt[2]), g.o_group, cells
            if self.shift:  # w [G, o_group, c_group·kh·kw] -> [c, (t, o_group)]
                self.other = np.ascontiguousarray(w.reshape(G, og, g.c_group, T).transpose(0, 2, 3, 1)).reshape(-1, T * og)
                self.spans = [cell_spans(n, o, k, st, pd, d) for n, o, k, st, pd, d in
                              zip(g.src[1:], g.tgt[1:], g.kernel, g.strides, g.pads, g.dilations)]
                self.cells, self.vec = 1.0, T * og  # one entry per event, all cells at once
                self.slab = float(G * g.src[1] * g.src[2] * T * og)  # the slab's cells per sample
            elif kind == "conv2d":  # w [G, o_group, c_group·kh·kw] -> [(c, t), o_group]
                self.other = np.ascontiguousarray(w.reshape(G, og, -1).transpose(0, 2, 1)).reshape(-1, og)
            else:
                self.other = np.ones((1, 1), np.int64)
                self.weight = w.reshape(-1)  # per target neuron
            self.single = None
            if og == 1 and g.c_group == 1 and (self.table >= 0).sum(axis=1).max(initial=0) <= 1:
                self._single(w)
        else:
            raise ValueError(f"no event path for {kind!r} kernels")

    def _single(self, w: np.ndarray) -> None:
        """Windows that do not overlap, one channel each (pools, depthwise convolutions): every
        source reaches at most one target, through one cell, so its events sum per target
        (:func:`numpy.bincount`) with the cell's weight (a pool's: per target, after)."""
        (C, H, W), (_, OH, OW) = self.g.src, self.g.tgt
        reach = self.table >= 0
        cell = np.argmax(reach, axis=1)  # [H·W]
        pos = np.where(reach.any(axis=1), self.table[np.arange(H * W), cell], -1)
        target = np.arange(C)[:, None] * (OH * OW) + pos[None]  # [C, H·W]
        self.single = np.where(pos[None] >= 0, target, -1).reshape(-1)
        self.uncovered = bool((pos < 0).any())
        self.single_weight = None if self.kind == "pool" else \
            w.reshape(C, -1)[np.arange(C)[:, None], cell[None]].reshape(-1).astype(np.float64)
        self.cells, self.vec, self.slab = 1.0, 1.0, float(self.n_tgt)  # the sums' array per sample

    def features(self, n_events: int, B: int) -> tuple[np.ndarray, np.ndarray]:
        """Work of the two paths for ``n_events`` events in a batch of ``B``: (event: multiply-
        adds, entries, slab cells, 1), (dense: multiply-adds, copied cells, 1)."""
        return (np.array([n_events * self.cells * self.vec, n_events * self.cells, B * self.slab, 1.0]),
                np.array([B * self.dense_macs, B * self.dense_cells, 1.0]))

    def cheaper(self, n_events: int, B: int) -> bool:
        """Whether scattering ``n_events`` events is predicted faster than the dense product
        for a batch of ``B`` (:data:`EVENT_COST`, :data:`DENSE_COST`)."""
        (em, ee, es, ec), (dm, dc, dk) = EVENT_COST, DENSE_COST
        entries = n_events * self.cells
        return entries * (self.vec * em + ee) + B * self.slab * es + ec \
            < B * (self.dense_macs * dm + self.dense_cells * dc) + dk

    def _other(self, dtype):
        if dtype not in self._cache:
            self._cache[dtype] = self.other.astype(dtype)
        return self._cache[dtype]

    def add(self, out: np.ndarray, b, j, v, B: int, dtype, exponent: int) -> None:
        """Add the current the events give the kernel's targets, ``<< exponent``, to ``out``
        [B, targets] (int64), computing in ``dtype`` (the caller chooses a float type only
        where every partial sum is an exact integer)."""
        y = self.current(b, j, v, B, dtype, flat=True)
        y = y.astype(np.int64) if y.dtype != np.int64 else y
        if exponent:
            y <<= exponent
        if self.kind == "conv2d":  # y [(b, g, position), o_group]
            g = self.g
            G, L = g.tgt[0] // g.o_group, g.tgt[1] * g.tgt[2]
            np.reshape(out, (B, G, g.o_group, L), copy=False)[...] += y.reshape(B, G, L, g.o_group).transpose(0, 1, 3, 2)
        else:
            out += y

    def current(self, b: np.ndarray, j: np.ndarray, v: np.ndarray, B: int, dtype=np.int64,
                flat: bool = False) -> np.ndarray:
        """``[B, targets]`` in ``dtype``: the current the events give the kernel's targets, before
        its exponent (``flat``: a convolution's as ``[(b, group, position), o_group]``)."""
        v = v.astype(dtype, copy=False)
        if self.kind == "dense":
            m = sp.coo_matrix((v, (b, j)), shape=(B, self.other.shape[0]))
            return m @ self._other(dtype)
        g = self.g
        if self.single is not None and dtype is not np.int64:  # float64 sums exact (the caller's bound)
            return self._summed(b, j, v, B, flat)
        (C, H, W), (n_out, OH, OW) = g.src, g.tgt
        L, HW, T = OH * OW, H * W, self.table.shape[1]
        c, q = np.divmod(j, HW)
        if self.shift:
            return self._shifted(b, c, q, v, B, dtype, flat)
        reach = self.table[q]  # [E, T]
        e, t = np.nonzero(reach >= 0)
        pos = reach[e, t]
        if self.kind == "pool":  # groups are the channels; one column of ones
            rows = (b[e] * C + c[e]) * L + pos
            y = sp.coo_matrix((v[e], (rows, np.zeros_like(rows))), shape=(B * n_out * L, 1)) @ self._other(dtype)
            return y.reshape(B, n_out * L).astype(np.int64) * self.weight[None]
        G, og = n_out // g.o_group, g.o_group
        rows = (b[e] * G + c[e] // g.c_group) * L + pos
        m = sp.coo_matrix((v[e], (rows, c[e] * T + t)), shape=(B * G * L, C * T))
        y = m @ self._other(dtype)  # [(b, g, position), o_group]
        if flat:
            return y
        return y.reshape(B, G, L, og).transpose(0, 1, 3, 2).reshape(B, n_out * L)

    def _shifted(self, b, c, q, v, B: int, dtype, flat: bool) -> np.ndarray:
        """The shifted path (module docstring): the slab ``[B, G, H, W, cell, o_group]`` of
        every source position's contribution through every cell, added cell by cell into the
        targets the cell reaches."""
        g = self.g
        (C, H, W), (n_out, OH, OW) = g.src, g.tgt
        G, og, kw = n_out // g.o_group, g.o_group, g.kernel[1]
        rows = (b * G + c // g.c_group) * (H * W) + q
        m = sp.coo_matrix((v, (rows, c)), shape=(B * G * H * W, C))
        slab = (m @ self._other(dtype)).reshape(B, G, H, W, -1, og)
        y = np.zeros((B, G, OH, OW, og), dtype)
        for ky, sy in enumerate(self.spans[0]):
            for kx, sx in enumerate(self.spans[1]):
                if sy is not None and sx is not None:
                    y[:, :, sy[1], sx[1]] += slab[:, :, sy[0], sx[0], ky * kw + kx]
        if flat:
            return y.reshape(B * G * OH * OW, og)
        return y.reshape(B, G, OH * OW, og).transpose(0, 1, 3, 2).reshape(B, n_out * OH * OW)

    def _summed(self, b, j, v, B: int, flat: bool) -> np.ndarray:
        """The non-overlapping path (:meth:`_single`): per event its one target, summed."""
        t = self.single[j]
        if self.uncovered:  # sources no window covers
            keep = t >= 0
            b, j, v, t = b[keep], j[keep], v[keep], t[keep]
        weights = v if self.single_weight is None else v * self.single_weight[j]
        y = np.bincount(b * self.n_tgt + t, weights=weights, minlength=B * self.n_tgt).astype(np.int64)
        y = y.reshape(B, self.n_tgt)
        if self.single_weight is None:
            y *= self.weight[None]
        return y.reshape(-1, 1) if flat and self.kind == "conv2d" else y

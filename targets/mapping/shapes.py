"""Projections by shape: what a box of target neurons reads, without expanding synapses.

A *box* is a block ``[c0, c1) × [y0, y1) × [x0, x1)`` of a population viewed as ``[C, H, W]``
(:func:`view3`: a 1-D population ``[n]`` is ``[1, 1, n]``).  For the projections whose
connectivity follows from their geometry — ``conv2d`` and ``pool`` (a window, with groups),
``one_to_one`` and ``dense`` — :class:`Geometry` answers, for any box of its targets:

* the *receptive field*: the source neurons any target of the box reads, as a product
  ``channels × rows × columns`` of index sets (exact: a window reads rows and columns
  independently, :func:`axis_reads`);
* the synapses (structural, zero weights included, as :mod:`~nmc.targets.mapping.netlist`
  counts them) and their memory, with or without shared weights.

Mapping counts input axons, synapse memory and routes from these; only irregular (``sparse``)
projections are expanded into explicit lists.  Time and memory are O(neurons + routes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nmc.ir.core import Op
from nmc.targets.mapping.netlist import distinct, require_stateless, weight_bits

SHAPED = ("conv2d", "pool", "one_to_one", "dense")


def view3(shape) -> tuple[int, int, int]:
    """A population shape as ``(C, H, W)``: leading axes fold into C, a 1-D shape is ``(1, 1, n)``."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1, 1
    if len(shape) == 1:
        return 1, 1, shape[0]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return math.prod(shape[:-2]), shape[-2], shape[-1]


@lru_cache(maxsize=1 << 16)
def axis_reads(n_in: int, o0: int, o1: int, k: int, s: int, pad: int, d: int) -> np.ndarray:
    """Sorted distinct input indices in ``[0, n_in)`` that outputs ``o0..o1-1`` of a window axis read."""
    idx = (np.arange(o0, o1, dtype=np.int64)[:, None] * s - pad + np.arange(k, dtype=np.int64)[None, :] * d).ravel()
    out = distinct(idx[(idx >= 0) & (idx < n_in)])
    out.flags.writeable = False
    return out


@lru_cache(maxsize=1 << 16)
def axis_synapses(n_in: int, o0: int, o1: int, k: int, s: int, pad: int, d: int) -> int:
    """Valid (output, kernel offset) pairs of outputs ``o0..o1-1`` on a window axis."""
    idx = np.arange(o0, o1, dtype=np.int64)[:, None] * s - pad + np.arange(k, dtype=np.int64)[None, :] * d
    return int(np.count_nonzero((idx >= 0) & (idx < n_in)))


@dataclass(frozen=True)
class Geometry:
    """The connectivity of one shaped projection (module docstring)."""

    kind: str  # "window", "one_to_one" or "dense"
    src: tuple  # (C, H, W) of the source
    tgt: tuple  # (C, H, W) of the target
    kernel: tuple = (1, 1)
    strides: tuple = (1, 1)
    pads: tuple = (0, 0)  # top, left
    dilations: tuple = (1, 1)
    c_group: int = 1  # input channels per group
    o_group: int = 1  # output channels per group

    def channels(self, c0: int, c1: int) -> tuple[int, int]:
        """Source channels ``[a, b)`` that target channels ``[c0, c1)`` read."""
        if self.kind == "window":
            return (c0 // self.o_group) * self.c_group, ((c1 - 1) // self.o_group + 1) * self.c_group
        if self.kind == "one_to_one":
            return c0, c1
        return 0, self.src[0]

    def rows(self, y0: int, y1: int) -> np.ndarray:
        if self.kind == "window":
            return axis_reads(self.src[1], y0, y1, self.kernel[0], self.strides[0], self.pads[0], self.dilations[0])
        return np.arange(y0, y1, dtype=np.int64) if self.kind == "one_to_one" else np.arange(self.src[1])

    def cols(self, x0: int, x1: int) -> np.ndarray:
        if self.kind == "window":
            return axis_reads(self.src[2], x0, x1, self.kernel[1], self.strides[1], self.pads[1], self.dilations[1])
        return np.arange(x0, x1, dtype=np.int64) if self.kind == "one_to_one" else np.arange(self.src[2])

    def field(self, box) -> tuple[int, int, np.ndarray, np.ndarray]:
        """The receptive field of ``box``: ``(channel lo, channel hi, rows, columns)`` of the source."""
        c0, c1, y0, y1, x0, x1 = box
        a, b = self.channels(c0, c1)
        return a, b, self.rows(y0, y1), self.cols(x0, x1)

    def synapses(self, box) -> int:
        """Structural synapses into the targets of ``box``."""
        c0, c1, y0, y1, x0, x1 = box
        n = (c1 - c0) * (y1 - y0) * (x1 - x0)
        if self.kind == "one_to_one":
            return n
        if self.kind == "dense":
            return n * self.src[0] * self.src[1] * self.src[2]
        ys = axis_synapses(self.src[1], y0, y1, self.kernel[0], self.strides[0], self.pads[0], self.dilations[0])
        xs = axis_synapses(self.src[2], x0, x1, self.kernel[1], self.strides[1], self.pads[1], self.dilations[1])
        return (c1 - c0) * self.c_group * ys * xs

    def fanin(self) -> np.ndarray:
        """Synapses reaching each target neuron, flat ``[C·H·W]`` int64."""
        C, H, W = self.tgt
        if self.kind != "window":
            return np.full(C * H * W, 1 if self.kind == "one_to_one" else int(np.prod(self.src)), np.int64)
        ys = [axis_synapses(self.src[1], y, y + 1, self.kernel[0], self.strides[0], self.pads[0], self.dilations[0])
              for y in range(H)]
        xs = [axis_synapses(self.src[2], x, x + 1, self.kernel[1], self.strides[1], self.pads[1], self.dilations[1])
              for x in range(W)]
        return np.tile(np.outer(ys, xs).reshape(-1), C).astype(np.int64) * self.c_group

    def fanout(self) -> np.ndarray:
        """Synapses leaving each source neuron, flat ``[C·H·W]`` int64 (as ``semantics.fanout``)."""
        C, H, W = self.src
        if self.kind == "one_to_one":
            return np.ones(C * H * W, np.int64)
        if self.kind == "dense":
            return np.full(C * H * W, self.tgt[0] * self.tgt[1] * self.tgt[2], np.int64)
        per_axis = []
        for axis, n_in, n_out in ((0, H, self.tgt[1]), (1, W, self.tgt[2])):
            idx = (np.arange(n_out, dtype=np.int64)[:, None] * self.strides[axis] - self.pads[axis]
                   + np.arange(self.kernel[axis], dtype=np.int64)[None, :] * self.dilations[axis]).ravel()
            per_axis.append(np.bincount(idx[(idx >= 0) & (idx < n_in)], minlength=n_in))
        plane = np.outer(per_axis[0], per_axis[1]).reshape(-1)
        return np.tile(plane, C) * self.o_group


def geometry(p: Op) -> Geometry | None:
    """The :class:`Geometry` of projection ``p``; None for an irregular (``sparse``) one."""
    require_stateless(p)
    if p.kind not in SHAPED:
        return None
    src, tgt = view3(p.src.type.shape), view3(p.result.type.shape)
    if p.kind == "dense":
        return Geometry("dense", src, tgt)
    if p.kind == "one_to_one":
        return Geometry("one_to_one", src, tgt) if src == tgt else None
    if p.kind == "conv2d":
        n_out, groups = p.weight.shape[0], p.groups
        return Geometry("window", src, tgt, tuple(p.weight.shape[2:]), tuple(p.strides), tuple(p.pads[:2]),
                        tuple(p.dilations), src[0] // groups, n_out // groups)
    return Geometry("window", src, tgt, tuple(p.kernel), tuple(p.strides), tuple(p.pads[:2]), (1, 1), 1, 1)


def shared_bits_per_channel(p: Op) -> int:
    """Synapse memory a shaped window projection costs per output channel with shared weights."""
    per_channel = int(np.prod(p.weight.shape[1:])) if p.kind == "conv2d" else 1
    return per_channel * weight_bits(p)


def box_bits(p: Op, g: Geometry, box, shared: bool, word_bits: int = 0) -> int:
    """Synapse memory of ``box``'s incoming synapses of ``p``: the kernel once per output
    channel present when weights are shared, else weight bits (``word_bits`` when not 0) per
    synapse."""
    if shared and g.kind == "window":
        return (box[1] - box[0]) * shared_bits_per_channel(p)
    return g.synapses(box) * (word_bits or weight_bits(p))


def box_ids(box, shape3) -> np.ndarray:
    """Flat C-order indices of a box of a ``(C, H, W)`` array."""
    C, H, W = shape3
    c0, c1, y0, y1, x0, x1 = box
    return ((np.arange(c0, c1, dtype=np.int64)[:, None, None] * H + np.arange(y0, y1, dtype=np.int64)[None, :, None]) * W
            + np.arange(x0, x1, dtype=np.int64)[None, None, :]).reshape(-1)


def field_ids(field, shape3) -> np.ndarray:
    """Flat source indices of a receptive field ``(a, b, rows, cols)``."""
    C, H, W = shape3
    a, b, ys, xs = field
    return ((np.arange(a, b, dtype=np.int64)[:, None, None] * H + ys[None, :, None]) * W + xs[None, None, :]).reshape(-1)


def box_runs(box, shape3) -> list[tuple[int, int]]:
    """A box as ascending runs ``[a, b)`` of consecutive flat indices (merged where they touch)."""
    C, H, W = shape3
    c0, c1, y0, y1, x0, x1 = box
    if x0 == 0 and x1 == W:
        if y0 == 0 and y1 == H:
            return [(c0 * H * W, c1 * H * W)]
        return [(c * H * W + y0 * W, c * H * W + y1 * W) for c in range(c0, c1)]
    return [(c * H * W + y * W + x0, c * H * W + y * W + x1) for c in range(c0, c1) for y in range(y0, y1)]


def run_boxes(a: int, b: int, shape3) -> list[tuple]:
    """A run ``[a, b)`` of flat indices as at most five boxes (partial row, full rows, full
    channels, full rows, partial row)."""
    C, H, W = shape3
    out = []

    def plane(c, p, q):  # [p, q) within channel c's plane, 0 <= p < q <= H*W
        y0, x0 = divmod(p, W)
        y1, x1 = divmod(q, W)
        if y0 == y1:
            out.append((c, c + 1, y0, y0 + 1, x0, x1))
            return
        if x0:
            out.append((c, c + 1, y0, y0 + 1, x0, W))
            y0 += 1
        if y1 > y0:
            out.append((c, c + 1, y0, y1, 0, W))
        if x1:
            out.append((c, c + 1, y1, y1 + 1, 0, x1))

    HW = H * W
    ca, pa = divmod(a, HW)
    cb, pb = divmod(b, HW)
    if ca == cb:
        plane(ca, pa, pb)
        return out
    if pa:
        plane(ca, pa, HW)
        ca += 1
    if cb > ca:
        out.append((ca, cb, 0, H, 0, W))
    if pb:
        plane(cb, 0, pb)
    return out


def block_run_boxes(a: int, b: int, shape3, block) -> list[tuple]:
    """Cells ``[a, b)`` of a ``(C, H, W)`` array in *block order* as boxes: blocks of size
    ``block = (bc, bh, bw)`` as a box grid in tile order (row bands outermost, then column
    blocks, then channel blocks; edge blocks smaller), and inside a block its positions in row
    order with the channels innermost — so a run of a block's cells reads the receptive field of
    a few positions (a partial position, a partial row, full rows, a partial row, a partial
    position: at most five boxes per block)."""
    C, H, W = shape3
    bc, bh, bw = block
    out = []
    while a < b:
        iy = min(a // (C * W * bh), -(-H // bh) - 1)
        y0 = iy * bh
        hh = min(bh, H - y0)
        r = a - C * W * y0
        ix = r // (C * hh * bw)
        x0 = ix * bw
        ww = min(bw, W - x0)
        r -= C * hh * x0
        ic = r // (bc * hh * ww)
        c0 = ic * bc
        cc = min(bc, C - c0)
        i = r - c0 * hh * ww
        j = min(cc * hh * ww, i + b - a)
        _block_cells(out, (c0, cc, y0, x0, ww), i, j)
        a += j - i
    return out


def _block_cells(out: list, blk, i: int, j: int) -> None:
    """Cells ``[i, j)`` of one block (positions in row order, channels innermost) as boxes."""
    c0, cc, y0, x0, ww = blk
    p, ci = divmod(i, cc)
    q, cj = divmod(j, cc)

    def position(k, lo, hi):
        y, x = divmod(k, ww)
        out.append((c0 + lo, c0 + hi, y0 + y, y0 + y + 1, x0 + x, x0 + x + 1))

    if p == q:
        if cj > ci:
            position(p, ci, cj)
        return
    if ci:
        position(p, ci, cc)
        p += 1
    if q > p:  # whole positions [p, q): a partial row, full rows, a partial row
        ya, xa = divmod(p, ww)
        yb, xb = divmod(q, ww)
        if ya == yb:
            out.append((c0, c0 + cc, y0 + ya, y0 + ya + 1, x0 + xa, x0 + xb))
        else:
            if xa:
                out.append((c0, c0 + cc, y0 + ya, y0 + ya + 1, x0 + xa, x0 + ww))
                ya += 1
            if yb > ya:
                out.append((c0, c0 + cc, y0 + ya, y0 + yb, x0, x0 + ww))
            if xb:
                out.append((c0, c0 + cc, y0 + yb, y0 + yb + 1, x0, x0 + xb))
    if cj:
        position(q, 0, cj)


def merge_boxes(boxes: list[tuple]) -> list[tuple]:
    """Fewer boxes covering the same cells: rows joined within a channel, then channels."""
    def join(items, lo, hi, same):
        items = sorted(items, key=lambda b: (tuple(b[i] for i in same), b[lo]))
        out = []
        for b in items:
            if out and all(out[-1][i] == b[i] for i in same) and out[-1][hi] == b[lo]:
                last = list(out[-1])
                last[hi] = b[hi]
                out[-1] = tuple(last)
            else:
                out.append(b)
        return out

    boxes = join(boxes, 2, 3, (0, 1, 4, 5))
    return join(boxes, 0, 1, (2, 3, 4, 5))


def runs_to_boxes(runs: list[tuple[int, int]], shape3) -> list[tuple]:
    """Runs of flat indices (disjoint) as few boxes covering exactly their cells."""
    if runs:  # the usual case: the runs of one box (box_runs), from its first cell to its last
        C, H, W = shape3
        c0, rest = divmod(runs[0][0], H * W)
        y0, x0 = divmod(rest, W)
        c1, rest = divmod(runs[-1][1] - 1, H * W)
        y1, x1 = divmod(rest, W)
        box = (c0, c1 + 1, y0, y1 + 1, x0, x1 + 1)
        if c1 >= c0 and y1 >= y0 and x1 >= x0 and box_runs(box, shape3) == [tuple(r) for r in runs]:
            return [box]
    boxes = [box for a, b in runs for box in run_boxes(a, b, shape3)]
    return merge_boxes(boxes) if len(boxes) > 1 else boxes


def synapse_count(p: Op) -> int:
    """Structural synapses of a projection (shaped: from its geometry; sparse: its index list)."""
    g = geometry(p)
    if g is None:
        if p.kind == "one_to_one":
            return int(p.src.type.size)
        return int(p.indices.data.size)
    C, H, W = g.tgt
    return g.synapses((0, C, 0, H, 0, W))

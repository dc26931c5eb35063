"""Fan-in splitting: a neuron whose inputs do not fit one core, split across cores.

A chip whose description says ``[fanin] mechanism = "partial-sums"`` can give a population
more inputs per neuron than one core receives (input axons) or stores (synapse memory).  The
inputs of such a *split* population are cut into **parts**; each part is a list of *pieces*
``(i, lo, hi)``: current operand ``i`` of the population (one projection) restricted to units
``[lo, hi)`` of its split axis —

* a ``conv2d`` with one group: input channels ``[lo, hi)`` (the part is a convolution over
  those channels with the kernel's slice ``w[:, lo:hi]``);
* a ``dense`` projection: flat source neurons ``[lo, hi)`` (the columns ``W[:, lo:hi]``);
* anything else (pooling, one-to-one, grouped convolution, whose fan-in is a window): whole,
  ``(i, 0, 1)``.

The population's neurons are cut into boxes of one size (as :mod:`.partition` cuts shaped
populations).  For each box and part a **dendrite core** holds the part's synapses into the
box and one accumulator (a dendrite compartment) per neuron of the box; every step it sums
``Σ_pieces (Σ w·s) << e`` for each compartment and sends it, one graded message of
``partial_bits`` signed bits, to the **soma core** that holds the box's neurons, which adds
the parts to the neuron's input current in the same step.  The sum of the parts is exactly
the current of docs/design.md §5: every partial sum fits ``partial_bits`` (checked here from
the weights: Σ|w|·2^e over a part, its sources emitting 0 or 1), so the only saturation is
the neuron's own, on the soma.  Soma cores hold consecutive boxes, ``K`` partial-sum axons
per neuron for ``K`` parts.

The box size and the parts are searched together: for every box size (the distinct
``⌈n / k⌉`` per axis, as the partition does), parts are filled greedily in operand order up
to the input axons, synapse memory and partial-sum range of one core (worst box), and the
size giving the fewest cores (``boxes × K`` dendrites + soma cores) wins, then the fewest
input axons.

Only populations all of whose projections are shaped and read spike sources (populations,
``rate`` or ``poisson`` encoders) are split; others keep the single-neuron error.
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, Op
from nmc.targets.mapping.netlist import weight_bits
from nmc.targets.mapping.shapes import (Geometry, axis_synapses, box_bits, box_runs, field_ids, geometry,
                                        shared_bits_per_channel, view3)

MECHANISM = "partial-sums"
HINT = ('a chip with fan-in splitting ([fanin] mechanism = "partial-sums": dendrite cores forward '
        'partial sums to the neuron\'s core) splits such a neuron across cores')


def _abs_weights(p: Op) -> np.ndarray:
    w = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    return np.abs(np.asarray(w).astype(np.int32 if np.asarray(w).dtype.itemsize <= 4 else np.int64))


def split_axis(p: Op, g: Geometry) -> int:
    """Units of the axis a projection's inputs are split along (1: not splittable)."""
    if p.kind == "conv2d" and p.groups == 1:
        return g.src[0]
    if p.kind == "dense":
        return int(np.prod(g.src))
    return 1


def unit_bounds(p: Op, g: Geometry) -> np.ndarray:
    """Per unit of the split axis, an upper bound of ``Σ|w|`` into any one target neuron."""
    w = _abs_weights(p)
    if p.kind == "conv2d" and p.groups == 1:
        return w.reshape(w.shape[0], w.shape[1], -1).sum(axis=2).max(axis=0)
    if p.kind == "dense":
        return w.reshape(int(np.prod(g.tgt)), -1).max(axis=0)
    if p.kind == "conv2d":
        return np.array([int(w.reshape(w.shape[0], -1).sum(axis=1).max()) if w.size else 0])
    if p.kind == "pool":
        return np.array([int(w.max()) * g.kernel[0] * g.kernel[1] if w.size else 0])
    return np.array([int(w.max()) if w.size else 0])


def piece_geometry(g: Geometry, kind: str, lo: int, hi: int, axis: int) -> tuple[Geometry, int]:
    """The geometry of piece ``[lo, hi)`` of a projection and its first source (flat, within
    the projection's source): a convolution over channels ``[lo, hi)``, a dense projection from
    sources ``[lo, hi)``, or the whole projection."""
    if axis == 1:
        return g, 0
    C, H, W = g.src
    if kind == "conv2d":
        return Geometry("window", (hi - lo, H, W), g.tgt, g.kernel, g.strides, g.pads, g.dilations,
                        hi - lo, g.o_group), lo * H * W
    return Geometry("dense", (1, 1, hi - lo), g.tgt), lo


class SplitUnit:
    """The cut of one split population (module docstring): boxes, parts, soma groups."""

    split = True

    def __init__(self, net, pop: Op, limits, chip_name: str, name: str):
        self.net, self.pop, self.pops, self.limits, self.chip_name, self.name = net, pop, [pop], limits, chip_name, name
        self.shape = view3(pop.result.type.shape)
        self.items = []
        for i, c in enumerate(pop.currents):
            p = c.owner
            g = geometry(p)
            if g is None:
                raise NmcError(f"population %{name} needs fan-in splitting, which covers shaped projections; "
                               f"projection %{p.result.name or '?'} is {p.kind}", p.loc,
                               hint="fewer inputs per neuron in this layer")
            src = p.src.owner
            if src.KIND == "snn.encode" and src.encoding not in ("rate", "poisson"):
                raise NmcError(f"population %{name} needs fan-in splitting, whose partial sums are bounded only "
                               f"for spike inputs; it reads encoder %{src.result.name or '?'} "
                               f"({src.encoding} encoding)", p.loc, hint="fewer inputs per neuron in this layer")
            axis = split_axis(p, g)
            bound = unit_bounds(p, g) << p.exponent
            self.items.append((i, p, g, axis, weight_bits(p), np.concatenate([[0], np.cumsum(bound)])))
        self.max_bound = (1 << (limits.partial_bits - 1)) - 1
        self._cache: dict = {}
        self.best = None

    # ---------------------------------------------------------------- per-box worst cases

    def _axis(self, g: Geometry, what: str, size: int) -> int:
        key = (g, what, size)
        if key not in self._cache:
            C, H, W = self.shape
            k, st, pd, dl = g.kernel, g.strides, g.pads, g.dilations
            if what == "y":
                v = max(len(g.rows(y, min(y + size, H))) for y in range(0, H, size))
            elif what == "x":
                v = max(len(g.cols(x, min(x + size, W))) for x in range(0, W, size))
            elif what == "c":
                v = max(b - a for a, b in (g.channels(c, min(c + size, C)) for c in range(0, C, size)))
            elif what == "sy":
                v = max(axis_synapses(g.src[1], y, min(y + size, H), k[0], st[0], pd[0], dl[0]) for y in range(0, H, size))
            else:
                v = max(axis_synapses(g.src[2], x, min(x + size, W), k[1], st[1], pd[1], dl[1]) for x in range(0, W, size))
            self._cache[key] = v
        return self._cache[key]

    def _costs(self, item, tc: int, th: int, tw: int) -> tuple[int, int]:
        """(input axons, synapse bits) per unit of the split axis — or of the whole projection
        when it is not split — for the worst box of size ``(tc, th, tw)``."""
        _, p, g, axis, wb, _ = item
        n = tc * th * tw
        if g.kind == "dense":
            return (1, n * wb) if axis > 1 else (int(np.prod(g.src)), n * int(np.prod(g.src)) * wb)
        if g.kind == "one_to_one":
            return n, n * wb
        rows_cols = self._axis(g, "y", th) * self._axis(g, "x", tw)
        shared = self.limits.shared_weights
        if axis > 1:  # one conv2d input channel
            bits = tc * g.kernel[0] * g.kernel[1] * wb if shared else tc * self._axis(g, "sy", th) * self._axis(g, "sx", tw) * wb
            return rows_cols, bits
        bits = tc * shared_bits_per_channel(p) if shared else \
            tc * g.c_group * self._axis(g, "sy", th) * self._axis(g, "sx", tw) * wb
        return self._axis(g, "c", tc) * rows_cols, bits

    def parts_for(self, tc: int, th: int, tw: int) -> list[list[tuple]] | None:
        """Parts (lists of pieces ``(i, lo, hi)``) filled greedily for boxes of this size, each
        within one core's input axons, synapse memory and the partial-sum range; None when
        some piece cannot fit an empty part."""
        A, M, Q = self.limits.input_axons, self.limits.synapse_memory_bits, self.max_bound
        parts, cur, used = [], [], [0, 0, 0]
        self.axons = 0  # input axons over the parts (worst box), for the tie-break
        for item in self.items:
            i, _, _, axis, _, cum = item
            ax, bits = self._costs(item, tc, th, tw)
            lo = 0
            while lo < axis:
                room = min((A - used[0]) // max(ax, 1), (M - used[1]) // max(bits, 1))
                # the most units whose weight bound still fits what is left of the range
                room = min(room, int(np.searchsorted(cum, cum[lo] + Q - used[2], side="right")) - 1 - lo, axis - lo)
                if room <= 0:
                    if not cur:
                        return None
                    parts.append(cur)
                    cur, used = [], [0, 0, 0]
                    continue
                cur.append((i, lo, lo + room))
                used = [used[0] + room * ax, used[1] + room * bits, used[2] + int(cum[lo + room] - cum[lo])]
                self.axons += room * ax
                lo += room
        if cur:
            parts.append(cur)
        return parts

    def _search(self, cap: int):
        C, H, W = self.shape
        A = self.limits.input_axons
        best = None
        for th in _heights(H):
            for tw in _heights(W):
                for tc in _heights(C):
                    n = tc * th * tw
                    if n > cap:
                        continue
                    parts = self.parts_for(tc, th, tw)
                    if parts is None:
                        continue
                    K = len(parts)
                    per_soma = min(cap // n, A // (K * n))  # boxes per soma core
                    if per_soma < 1:
                        continue
                    boxes = -(-C // tc) * -(-H // th) * -(-W // tw)
                    key = (boxes * K + -(-boxes // per_soma), boxes * self.axons, -tw)
                    if best is None or key < best[0]:
                        best = (key, (tc, th, tw), parts, per_soma)
        return best

    def tiles(self, cap: int) -> list[tuple]:
        """Soma groups: each a list of boxes (rows outermost, then columns, then channels)."""
        best = self._search(cap)
        if best is None:
            raise NmcError(f"population %{self.name} does not fit chip '{self.chip_name}' even with fan-in "
                           f"splitting: one piece of its inputs (one input channel or source) exceeds a core's "
                           f"input axons, synapse memory or the {self.limits.partial_bits}-bit partial-sum range",
                           self.pop.loc, hint="fewer weight bits or a smaller kernel in this layer")
        _, (tc, th, tw), self.parts, per_soma = best
        C, H, W = self.shape
        boxes = [(c0, min(c0 + tc, C), y0, min(y0 + th, H), x0, min(x0 + tw, W))
                 for y0 in range(0, H, th) for x0 in range(0, W, tw) for c0 in range(0, C, tc)]
        return [boxes[k:k + per_soma] for k in range(0, len(boxes), per_soma)]

    # ------------------------------------------------------------------------- exact usage

    def part_bits(self, part, box) -> int:
        return sum(piece_bits(self.pop, piece, box, self.limits.shared_weights) for piece in part)

    def total_bits(self) -> int:
        C, H, W = self.shape
        return sum(box_bits(p, g, (0, C, 0, H, 0, W), self.limits.shared_weights) for _, p, g, *_ in self.items)

    def binding(self) -> str:
        return f"input axons or synapse memory of one neuron: fan-in split into {len(self.parts)} parts"


def piece_bits(pop: Op, piece: tuple, box, shared: bool) -> int:
    """Synapse memory of one piece's synapses into ``box``."""
    i, lo, hi = piece
    p = pop.currents[i].owner
    g = geometry(p)
    axis = split_axis(p, g)
    sub, _ = piece_geometry(g, p.kind, lo, hi, axis)
    if axis == 1:
        return box_bits(p, g, box, shared)
    wb = weight_bits(p)
    if sub.kind == "window" and shared:
        return (box[1] - box[0]) * (hi - lo) * g.kernel[0] * g.kernel[1] * wb
    return sub.synapses(box) * wb


def part_fields(pop: Op, part, box) -> list[tuple]:
    """What a dendrite core computing ``part`` for ``box`` reads: ``[(source op, field)]`` with
    each field a product ``(channel lo, channel hi, rows, columns)`` of the source's ``(C, H,
    W)`` view, or for a dense piece the flat source indices it reads (an int64 range)."""
    out = []
    for i, lo, hi in part:
        p = pop.currents[i].owner
        g = geometry(p)
        sub, first = piece_geometry(g, p.kind, lo, hi, split_axis(p, g))
        f = sub.field(box)
        H, W = g.src[1:]
        if sub.src[1:] == (H, W) and first % (H * W) == 0:  # the whole projection, or a conv's channels
            shift = first // (H * W)
            out.append((p.src.owner, (f[0] + shift, f[1] + shift, f[2], f[3])))
        else:
            out.append((p.src.owner, first + field_ids(f, sub.src)))
    return out


def part_sources(net, pop: Op, part, box) -> np.ndarray:
    """Global source ids (with repeats) a dendrite core computing ``part`` for ``box`` reads."""
    out = []
    for src, f in part_fields(pop, part, box):
        ids = f if isinstance(f, np.ndarray) else field_ids(f, view3(src.result.type.shape))
        out.append(net.source_offset[src] + ids)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def part_fanin(pop: Op, part) -> int:
    """Synapses into one neuron from a part (its largest, for traffic estimates)."""
    n = 0
    for i, lo, hi in part:
        p = pop.currents[i].owner
        g = geometry(p)
        axis = split_axis(p, g)
        n += (hi - lo) * (g.kernel[0] * g.kernel[1] if g.kind == "window" else 1) if axis > 1 else int(g.fanin().max())
    return n


def box_neuron_runs(pop: Op, box) -> list[tuple[int, int]]:
    return box_runs(box, view3(pop.result.type.shape))


def _heights(n: int) -> list[int]:
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def triples(part) -> tuple:
    return tuple(x for piece in part for x in piece)


def parse_partial(partial: tuple) -> tuple[int, list[tuple]]:
    """``(soma core id, pieces)`` of a dendrite core's ``partial`` attribute."""
    rest = partial[1:]
    return int(partial[0]), [tuple(rest[k:k + 3]) for k in range(0, len(rest), 3)]

"""The flat view of an integer ``snn`` graph that mapping and emission share.

* :func:`synapses` expands one projection into its structural synapses ``(src, tgt, w)``
  (flat source and target indices; zero weights kept, since a synapse costs memory and a
  synaptic operation whatever its weight — exactly the fan-out :mod:`nmc.semantics` counts).
* :class:`Netlist` numbers every *source* (encoder elements, then population neurons, in
  graph order) and every population neuron, and gathers each population's incoming synapses
  sorted by target.
* :class:`Board` is the mesh of cores of a chip description: board-wide coordinates,
  hop distances (an inter-chip hop weighs ``chip_hop_j / spike_hop_j`` on-chip hops) and
  dimension-order (X then Y) paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, Graph, Op
from nmc.windows import window_cells


def _weights(p: Op) -> np.ndarray:
    w = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    return np.asarray(w).astype(np.int64)


def _window(p: Op, src_shape, weight_of):
    """Synapses of a conv2d/pool projection, in any order.  ``weight_of(k, tgt)`` gives the
    weights of kernel cell ``k`` (row-major) for targets ``tgt`` [out channels, in channels
    per group, positions]."""
    c_in, h, w = src_shape
    if p.kind == "conv2d":
        kernel = p.weight.shape[2:]
        n_out, groups, dil = p.weight.shape[0], p.groups, p.dilations
    else:
        kernel = p.kernel
        n_out, groups, dil = c_in, c_in, (1, 1)
    oh, ow = p.result.type.shape[1:]
    k, cell, out = window_cells((h, w), kernel, p.strides, p.pads, dil, (oh, ow))
    c_group, o_group = c_in // groups, n_out // groups
    o = np.arange(n_out, dtype=np.int64)[:, None, None]
    channel = (o // o_group) * c_group + np.arange(c_group, dtype=np.int64)[None, :, None]
    srcs, tgts, ws = [], [], []
    for kk in np.unique(k):
        sel = k == kk
        src = channel * (h * w) + cell[sel][None, None, :]
        tgt = np.broadcast_to(o * (oh * ow) + out[sel][None, None, :], src.shape)
        srcs.append(src.reshape(-1))
        tgts.append(tgt.reshape(-1))
        ws.append(np.broadcast_to(weight_of(int(kk), tgt), src.shape).reshape(-1))
    if not srcs:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(srcs), np.concatenate(tgts), np.concatenate(ws)


#: How to convert max pooling for a chip whose synapses keep no state.
STATELESS_HINT = "convert with --convert maxpool=tree (a tournament of IF neurons the mesh chip can run)"


def require_stateless(p: Op, chip_name: str = "mesh") -> None:
    """Refuse a stateful projection (``maxgate``: running spike counts per window), which the
    mesh chips' synapses (a weight table and an accumulator) cannot hold."""
    if p.kind == "maxgate":
        name = p.result.name if p.result is not None and p.result.name else "?"
        raise NmcError(f"projection %{name} is a max-pool gate (kind maxgate), which keeps running spike counts; "
                       f"the synapses of chip '{chip_name}' are stateless", p.loc, hint=STATELESS_HINT)


def synapses(p: Op) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structural synapses of projection ``p``: int64 ``(src, tgt, weight)`` sorted by
    (tgt, src), flat C-order indices; the delivered current is ``Σ weight·s << exponent``."""
    require_stateless(p)
    src_shape = tuple(p.src.type.shape)
    n_src, n_tgt = int(np.prod(src_shape)), int(np.prod(p.result.type.shape))
    w = _weights(p)
    if p.kind == "dense":
        tgt, src = np.divmod(np.arange(n_tgt * n_src, dtype=np.int64), n_src)
        weight = w.reshape(-1)
    elif p.kind == "one_to_one":
        src = tgt = np.arange(n_src, dtype=np.int64)
        weight = np.broadcast_to(w, src_shape).reshape(-1)
    elif p.kind == "sparse":
        src = np.repeat(np.arange(n_src, dtype=np.int64), np.diff(p.indptr.data))
        tgt = p.indices.data.astype(np.int64)
        weight = w.reshape(-1)
    elif p.kind == "conv2d":
        src, tgt, weight = _window(p, src_shape, lambda k, t: w.reshape(*w.shape[:2], -1)[:, :, k][:, :, None])
    else:  # pool: the weight broadcasts over the output
        flat = np.broadcast_to(w, p.result.type.shape).reshape(-1)
        src, tgt, weight = _window(p, src_shape, lambda k, t: flat[t])
    order = np.lexsort((src, tgt))
    return src[order].astype(np.int64), tgt[order].astype(np.int64), np.asarray(weight, np.int64)[order]


def distinct(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-D array, as ``np.unique`` gives them, by sorting
    (numpy 2's hash-based ``np.unique`` is tens of times slower on large integer arrays)."""
    s = np.sort(a)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


def weight_bits(p: Op) -> int:
    """Signed bits the weights of ``p`` need (at least 1)."""
    w = _weights(p)
    if w.size == 0:
        return 1
    lo, hi = int(w.min()), int(w.max())
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def pop_name(pop: Op, i: int) -> str:
    """A population's name as the runner records it (``%name``, else ``population<i>``)."""
    return pop.result.name or f"population{i}"


@dataclass
class Incoming:
    """A population's incoming synapses, sorted by target: global source ids, per-synapse
    weight, exponent, delay, weight bits and the projection index (into ``projections``)."""

    ptr: np.ndarray  # [size + 1] offsets by target neuron
    src: np.ndarray
    weight: np.ndarray
    exponent: np.ndarray
    delay: np.ndarray
    bits: np.ndarray
    proj: np.ndarray
    projections: list[Op] = field(default_factory=list)


class Netlist:
    """Global numbering of an integer snn graph's sources and neurons (module docstring).

    ``source_offset[op]``: first global source id of an encoder or population; encoders come
    first.  ``neuron_offset[pop]``: first global neuron id of a population."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.encoders = graph.walk("snn.encode")
        self.populations = graph.walk("snn.population")
        if not self.populations:
            raise NmcError(f"graph @{graph.name} has no populations to map")
        self.source_offset: dict[Op, int] = {}
        n = 0
        for op in self.encoders + self.populations:
            self.source_offset[op] = n
            n += op.result.type.size
        self.n_sources = n
        self.n_ports = sum(e.result.type.size for e in self.encoders)
        self.neuron_offset: dict[Op, int] = {}
        m = 0
        for pop in self.populations:
            self.neuron_offset[pop] = m
            m += pop.result.type.size
        self.n_neurons = m
        self._incoming: dict[Op, Incoming] = {}

    def source_of_neuron(self, gid: np.ndarray) -> np.ndarray:
        """Global source ids of global neuron ids."""
        return np.asarray(gid) + self.n_ports

    def incoming(self, pop: Op) -> Incoming:
        if pop not in self._incoming:
            parts = []
            projections = [c.owner for c in pop.currents]
            for k, p in enumerate(projections):
                s, t, w = synapses(p)
                n = len(s)
                parts.append((t, s + self.source_offset[p.src.owner], w, np.full(n, p.exponent), np.full(n, p.delay),
                              np.full(n, weight_bits(p)), np.full(n, k)))
            size = pop.result.type.size
            if parts:
                cols = [np.concatenate([part[i] for part in parts]).astype(np.int64) for i in range(7)]
            else:
                cols = [np.zeros(0, np.int64) for _ in range(7)]
            order = np.lexsort((cols[6], cols[1], cols[0]))
            cols = [c[order] for c in cols]
            ptr = np.zeros(size + 1, np.int64)
            np.add.at(ptr, cols[0] + 1, 1)
            self._incoming[pop] = Incoming(np.cumsum(ptr), *cols[1:], projections=projections)
        return self._incoming[pop]

    def rates(self, default: float) -> np.ndarray:
        """Mean spikes per step of every source: a population's ``calib.rate`` (or ``calib.p``,
        its normalised activation) clipped to [0, 1] when the graph carries it, else ``default``."""
        r = np.full(self.n_sources, float(default))
        for op in self.encoders + self.populations:
            given = op.extra.get("calib.rate", op.extra.get("calib.p"))
            if isinstance(given, int | float):
                a = self.source_offset[op]
                r[a:a + op.result.type.size] = min(max(float(given), 0.0), 1.0)
        return r


# ------------------------------------------------------------------------------- the board


class Board:
    """The board's cores on one grid: board x = chip x · cores_x + x (same for y).  The host
    attaches west of board core (0, 0); a host spike takes one extra hop to reach it."""

    def __init__(self, chip):
        m = chip.mesh
        self.cx, self.cy, self.nx, self.ny = m.cores_x, m.cores_y, m.chips_x, m.chips_y
        self.width, self.height = self.cx * self.nx, self.cy * self.ny
        self.slots = self.width * self.height
        e = chip.energy
        self.chip_weight = (e.chip_hop_j / e.spike_hop_j) if e.spike_hop_j > 0 else 1.0

    def xy(self, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Board coordinates of slots numbered chip-major, then row-major within the chip."""
        slot = np.asarray(slot)
        chip, local = np.divmod(slot, self.cx * self.cy)
        chy, chx = np.divmod(chip, self.nx)
        y, x = np.divmod(local, self.cx)
        return chx * self.cx + x, chy * self.cy + y

    def slot(self, bx: int, by: int) -> int:
        chx, x = divmod(bx, self.cx)
        chy, y = divmod(by, self.cy)
        return (chy * self.nx + chx) * self.cx * self.cy + y * self.cx + x

    def serpentine(self) -> np.ndarray:
        """Slots in the constructive order: chips along a serpentine (east on even chip rows,
        west on odd ones) and within each chip its columns in the same direction, each column
        up or down in turn, so consecutive slots are neighbours and a chip is left next to the
        chip entered next (for an even ``cores_x``)."""
        out, up = [], True
        for chy in range(self.ny):
            east = chy % 2 == 0
            for chx in (range(self.nx) if east else reversed(range(self.nx))):
                for x in (range(self.cx) if east else reversed(range(self.cx))):
                    ys = range(self.cy) if up else reversed(range(self.cy))
                    out.extend(self.slot(chx * self.cx + x, chy * self.cy + y) for y in ys)
                    up = not up
        return np.asarray(out, np.int64)

    def crossings(self, a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
        """Chip boundaries crossed between board coordinates ``a`` and ``b`` along one axis."""
        return np.abs(np.asarray(a) // n - np.asarray(b) // n)

    def distance(self, sa, sb) -> np.ndarray:
        """Weighted hops between slots (equal to the shortest path in :meth:`graph`)."""
        ax, ay = self.xy(sa)
        bx, by = self.xy(sb)
        hops = np.abs(ax - bx) + np.abs(ay - by)
        chips = self.crossings(ax, bx, self.cx) + self.crossings(ay, by, self.cy)
        return hops + (self.chip_weight - 1.0) * chips

    def host_distance(self, s) -> np.ndarray:
        """Weighted hops from the host port to slots: one hop onto board core (0, 0), then on."""
        return 1.0 + self.distance(np.zeros_like(np.asarray(s)), s)

    def graph(self) -> nx.Graph:
        """The board as a networkx grid over board coordinates, edge ``weight`` = hop cost."""
        g = nx.grid_2d_graph(self.width, self.height)
        for (a, b) in g.edges:
            crosses = a[0] // self.cx != b[0] // self.cx or a[1] // self.cy != b[1] // self.cy
            g.edges[a, b]["weight"] = self.chip_weight if crosses else 1.0
            g.edges[a, b]["inter_chip"] = crosses
        return g

    def is_inter_chip(self, a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] // self.cx != b[0] // self.cx or a[1] // self.cy != b[1] // self.cy

    def xy_tree(self, a: tuple[int, int], dests: list[tuple[int, int]]) -> set:
        """The union of the X-then-Y paths from ``a`` to every destination, built directly: the
        row of ``a`` out to the westmost and eastmost destination columns, then in each
        destination column from ``a``'s row to its lowest and highest destination."""
        sx, sy = a
        xs = [d[0] for d in dests]
        links = set()
        for x in range(sx, max(xs)):
            links.add(((x, sy), (x + 1, sy)))
        for x in range(sx, min(xs), -1):
            links.add(((x, sy), (x - 1, sy)))
        columns: dict[int, list[int]] = {}
        for x, y in dests:
            columns.setdefault(x, []).append(y)
        for x, ys in columns.items():
            for y in range(sy, max(ys)):
                links.add(((x, y), (x, y + 1)))
            for y in range(sy, min(ys), -1):
                links.add(((x, y), (x, y - 1)))
        return links

    def xy_path(self, a: tuple[int, int], b: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Directed links of the dimension-order route from ``a`` to ``b``: X first, then Y."""
        links = []
        x, y = a
        while x != b[0]:
            nxt = x + (1 if b[0] > x else -1)
            links.append(((x, y), (nxt, y)))
            x = nxt
        while y != b[1]:
            nxt = y + (1 if b[1] > y else -1)
            links.append(((x, y), (x, nxt)))
            y = nxt
        return links


HOST = (-1, 0)  # the host port's position: west of board core (0, 0)

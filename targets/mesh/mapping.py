"""A mapped graph read back from its ``hw`` ops, and the traffic and routes it implies.

:class:`Mapping` is what ``place``, ``route`` and the emitter share: which core each neuron
is on (``core_of``), the hardware numbering of neurons (cores in id order, each core's slices
in order), each core's slot on the board, the spike traffic between cores and the
dimension-order multicast routes (docs/mesh-target.md).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.targets.mapping.hw import mapped_cores
from nmc.targets.mapping.netlist import Netlist, distinct
from nmc.targets.mapping import fanin
from nmc.targets.mapping.partition import core_pieces, source_core_pairs
from nmc.targets.mapping.shapes import runs_to_boxes, view3
from nmc.targets.mesh.board import HOST, Board, tree_chunks

LINKS_PER_RANGE = 1 << 22  # tree links handled at a time (numbering, loads): bounds the temporaries
_FINGERPRINT = np.random.default_rng(20240607).integers(0, 2**63, size=1 << 16, dtype=np.int64)


class _Derived:
    """What a graph's ``hw.core`` ops imply, kept with the graph for the next pass (place,
    route, the emitter and the resource summary each build a :class:`Mapping`) while the
    sources and the cores' slices stay the same: ``key`` (:func:`_signature`), the objects it
    names by id (kept alive so no id is reused), the neuron tables, the (source, core) pairs,
    the traffic's grouping and the routes' trees per placement."""

    def __init__(self, key: tuple, alive: list):
        self.key, self.alive = key, alive
        self.tables = self.pairs = None
        self.structure: dict = {}  # rate-independent parts of the traffic (Mapping._structure)
        self.routes: dict = {}  # (board, slots) -> _Trees


# graph -> _Derived
_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(net: Netlist, cores: list) -> tuple[tuple, list]:
    """What the neuron tables and (source, core) pairs depend on: the sources in order and each
    core's population slices and partial-sum parts (objects by id, kept alive beside the
    signature so no id is reused)."""
    alive = net.encoders + net.populations + [v for c in cores for v in c.pops]
    key = (tuple((id(op), op.result.type.size) for op in net.encoders + net.populations),
           tuple((tuple(map(id, c.pops)), c.slices, tuple(c.partial)) for c in cores))
    return key, alive


def _derived(graph: Graph, net: Netlist, cores: list) -> _Derived:
    key, alive = _signature(net, cores)
    known = _KNOWN.get(graph)
    if known is None or known.key != key:
        known = _KNOWN[graph] = _Derived(key, alive)
    return known


def remember_pairs(graph: Graph, pairs: np.ndarray) -> None:
    """Record the (source, core) pairs partition computed for the graph's ``hw.core`` ops."""
    _derived(graph, Netlist(graph), sorted(graph.walk("hw.core"), key=lambda c: c.id)).pairs = pairs


class Mapping:
    """The ``hw.core`` ops of a partitioned graph (placement optional: unplaced cores take the
    naive slots 0, 1, 2, ... in id order)."""

    def __init__(self, graph: Graph, chip, net: Netlist | None = None):
        self.graph, self.chip = graph, chip
        self.net = net or Netlist(graph)
        self.board = Board(chip)
        cores = mapped_cores(graph, hint="run partition,place,route first (the default pipeline of a mesh target does)")
        self.cores = cores
        self._xy = None  # board coordinates of each core's slot, once asked
        self.dendrites = [c for c in cores if c.partial]  # fan-in splitting: cores holding partial sums
        self._split = {d.pops[0].owner for d in self.dendrites}  # populations with dendrite cores
        self._known = _derived(graph, self.net, cores)
        if self._known.tables is None:
            self._known.tables = self._tables()
        self.core_start, self.core_of, self.hw_of = self._known.tables
        placed = [len(c.chip) == 2 for c in cores]
        if any(placed) and not all(placed):
            raise NmcError(f"graph @{graph.name}: some hw.core ops are placed and some are not", hint="run place again")
        self.placed = all(placed)
        if self.placed:
            self.slots = np.array([self.board.slot(c.chip[0] * self.board.cx + c.xy[0],
                                                   c.chip[1] * self.board.cy + c.xy[1]) for c in cores], np.int64)
        else:
            self.slots = np.arange(len(cores), dtype=np.int64)

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(core_start, core_of, hw_of)``: every slice in hardware order (cores by id, each
        core's slices in order; dendrite cores hold no neurons)."""
        net = self.net
        core, lo, hi = [], [], []
        for c in self.cores:
            if c.partial:
                continue
            for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]):
                off = net.neuron_offset[v.owner]
                core.append(c.id)
                lo.append(off + a)
                hi.append(off + b)
        core, lo, hi = (np.asarray(x, np.int64) for x in (core, lo, hi))
        size = hi - lo
        by = np.argsort(lo, kind="stable")
        if np.any(lo[by][1:] < hi[by][:-1]):
            self._overlap()
        core_start = np.zeros(len(self.cores) + 1, np.int64)
        core_start[1:] = np.cumsum(np.bincount(core, weights=size, minlength=len(self.cores))).astype(np.int64)
        gid = np.repeat(lo - (np.cumsum(size) - size), size) + np.arange(int(size.sum()), dtype=np.int64)
        core_of = np.full(net.n_neurons, -1, np.int64)
        hw_of = np.full(net.n_neurons, -1, np.int64)  # graph neuron id -> hardware neuron id
        core_of[gid] = np.repeat(core, size)
        hw_of[gid] = np.arange(len(gid), dtype=np.int64)
        if np.any(core_of < 0):
            missing = int(np.flatnonzero(core_of < 0)[0])
            pop = next(p for p in net.populations if net.neuron_offset[p] + p.result.type.size > missing)
            raise NmcError(f"neuron {missing - net.neuron_offset[pop]} of %{pop.result.name} is on no core",
                           pop.loc, hint="run partition again")
        return core_start, core_of, hw_of

    def _overlap(self) -> None:
        """Raise the error for the first slice (in hardware order) over neurons an earlier one holds."""
        held = np.zeros(self.net.n_neurons, bool)
        for c in self.cores:
            for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]) if not c.partial else ():
                off = self.net.neuron_offset[v.owner]
                if held[off + a:off + b].any():
                    raise c.error(f"holds neurons [{a}, {b}) of %{v.name}, which another core holds too")
                held[off + a:off + b] = True

    # ------------------------------------------------------------------------ connectivity

    def core_of_source(self) -> np.ndarray:
        """Core of each global source (-1 for the host's encoder ports)."""
        return np.concatenate([np.full(self.net.n_ports, -1, np.int64), self.core_of])

    def source_dests(self) -> np.ndarray:
        """Unique (global source, destination core) pairs, sorted: from the geometry of shaped
        projections (:mod:`nmc.targets.mapping.shapes`), explicit lists only for sparse ones.
        Kept with the graph for the next pass while its sources and cores' slices are the same
        (:func:`remember_pairs`)."""
        known = self._known
        if known.pairs is None:
            known.pairs = source_core_pairs(self.net, [self.pieces(c) for c in self.cores])
        return known.pairs

    def pieces(self, core) -> list[tuple]:
        """``(pop, piece)`` of a core: a dendrite core's part per box, a split population's
        neurons as soma pieces (their inputs reach the dendrites), else the partition's pieces."""
        if core.partial:
            _, part = fanin.parse_partial(core.partial)
            pop = core.pops[0].owner
            runs = list(zip(core.slices[::2], core.slices[1::2]))
            return [(pop, ("part", tuple(part), box)) for box in runs_to_boxes(runs, view3(pop.result.type.shape))]
        split = self._split
        out = []
        for pop, piece in core_pieces(self.net, core.pops, core.slices):
            if pop in split:  # a shaped population: core_pieces gives its boxes
                out.append((pop, ("soma", piece)))
            else:
                out.append((pop, piece))
        return out

    def _streams(self) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
        """(dendrite core, soma core, compartments, [(fan-in, source offset) per piece])."""
        out = []
        for c in self.dendrites:
            soma, part = fanin.parse_partial(c.partial)
            pop = c.pops[0].owner
            pieces = [(fanin.part_fanin(pop, [(i, lo, hi)]), self.net.source_offset[pop.currents[i].owner.src.owner])
                      for i, lo, hi in part]
            out.append((c.id, soma, c.neurons, pieces))
        return out

    def partial_streams(self, rates: np.ndarray) -> list[tuple[int, int, float]]:
        """(dendrite core, soma core, partial sums per step) of every dendrite core: each of its
        compartments sends one message in a step where any of its inputs spiked, estimated as
        ``min(1, fan-in × mean source rate)`` of the part."""
        out = []
        for d, soma, neurons, pieces in self._structure("streams", self._streams):
            rate = 0.0
            for n, src in pieces:
                rate += n * float(rates[src])
            out.append((d, soma, neurons * min(1.0, rate)))
        return out

    def _structure(self, name: str, build):
        """A rate-independent part of the traffic or routes, built once per graph and cores."""
        known = self._known.structure
        if name not in known:
            known[name] = build()
        return known[name]

    def _traffic_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sources of the core-to-core pairs, each pair's index in ``uniq``, ``uniq``: the
        distinct (source core + 1) × width + destination keys, then the dendrites' streams)."""
        pairs = self.source_dests()
        width = len(self.cores) + 1
        # (source core, destination) as one integer: int32 while it fits (ResNet-50: 22k cores,
        # 5·10^7 pairs), which halves the sort's and the search's memory traffic
        dt = np.int32 if width * width < 2**31 else np.int64
        key = self.core_of_source().astype(dt)[pairs[:, 0]]  # the source's core
        keep = key != pairs[:, 1]
        key = key[keep]
        key += 1
        key *= dt(width)
        key += pairs[keep, 1]
        streams = self._structure("streams", self._streams)
        if streams:  # partial sums travel from each dendrite core to its soma core
            s = np.array([st[:2] for st in streams], dt)
            key = np.concatenate([key, (s[:, 0] + 1) * dt(width) + s[:, 1]])
        uniq, index = _group(key, width)
        return pairs[keep, 0], index, uniq.astype(np.int64), width

    def traffic(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source core or -1, destination core, spikes per step) aggregated over neurons."""
        srcs, index, uniq, width = self._structure("groups", self._traffic_groups)
        weight = rates[srcs]
        streams = self.partial_streams(rates)
        if streams:
            weight = np.concatenate([weight, np.array([s[2] for s in streams], np.float64)])
        load = np.bincount(index, weights=weight, minlength=len(uniq))
        return uniq // width - 1, uniq % width, load

    def position(self, core: int) -> tuple[int, int]:
        """Board coordinates of a core (the host port for -1)."""
        if core < 0:
            return HOST
        if self._xy is None:
            xs, ys = self.board.xy(self.slots)
            self._xy = list(zip(xs.tolist(), ys.tolist()))
        return self._xy[core]

    def routes(self, rates: np.ndarray) -> Routes:
        """Dimension-order multicast routes, one tree per (source core, destination set), and
        each link's load at ``rates``; the trees are kept for the placement (:class:`_Derived`)."""
        b = self.board
        place = (b.cx, b.cy, b.nx, b.ny, self.slots.tobytes())
        if place not in self._known.routes:
            self._known.routes = {place: self._trees()}  # one placement kept: the newest
        t = self._known.routes[place]
        group_rate = np.bincount(t.group_of[t.ids], weights=rates[t.ids], minlength=len(t.group_core))
        stream_rate = np.array([s[2] for s in self.partial_streams(rates)], np.float64)
        # per link, Σ over the trees that use it in tree order, then the paths in dendrite order
        # (as a loop over the trees and paths adds; np.add.at adds in that order, a range of
        # trees at a time)
        load = np.zeros(len(t.ends))
        size = np.diff(t.link_start)
        for t0, t1 in tree_chunks(t.link_start, LINKS_PER_RANGE):
            np.add.at(load, t.link_of[t.link_start[t0]:t.link_start[t1]], np.repeat(group_rate[t0:t1], size[t0:t1]))
        np.add.at(load, t.path_links, np.repeat(stream_rate, np.diff(t.path_start)))
        return Routes(t.group_of, t.group_core, t.dest_start, t.dests, t.link_start, t.link_of, t.ends,
                      t.kind, load, t.partial)

    def _trees(self) -> _Trees:
        net = self.net
        pairs = self.source_dests()
        n = net.n_sources
        src_core = self.core_of_source()
        # a set fingerprint per source (sum of random words of its destinations) groups the
        # sources of one core that reach the same cores
        at = np.concatenate([[0], np.cumsum(np.bincount(pairs[:, 0], minlength=n))])  # pairs of source s: at[s]:at[s+1]
        ids = np.flatnonzero(at[1:] > at[:-1])
        fp = np.zeros(n, np.int64)
        if len(ids):  # integer sums wrap: the same words whatever the order
            cores = np.arange(len(self.cores), dtype=np.int64)
            word = _FINGERPRINT[cores % len(_FINGERPRINT)] + cores  # each destination's word, looked up once
            fp[ids] = np.add.reduceat(word[pairs[:, 1]], at[ids])
        # groups: equal (source core, fingerprint); a stable sort keeps each group's first source first
        by = np.lexsort((fp[ids], src_core[ids]))
        kc, kf = src_core[ids][by], fp[ids][by]
        starts = np.flatnonzero(np.r_[True, (kc[1:] != kc[:-1]) | (kf[1:] != kf[:-1])])
        inv = np.empty(len(ids), np.int64)
        inv[by] = np.cumsum(np.r_[True, (kc[1:] != kc[:-1]) | (kf[1:] != kf[:-1])]) - 1 if len(ids) else by
        first = by[starts]
        group_of = np.full(n, -1, np.int64)
        group_of[ids] = inv
        order = np.argsort(first, kind="stable")  # groups numbered by their first source
        renumber = np.empty(len(order), np.int64)
        renumber[order] = np.arange(len(order))
        group_of[ids] = renumber[group_of[ids]]
        rep = ids[first[order]]  # each group's first source, whose destinations it has
        group_core = src_core[rep]
        count = at[rep + 1] - at[rep]
        dest_start = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        dests = pairs[np.repeat(at[rep] - dest_start[:-1], count) + np.arange(dest_start[-1]), 1]
        xs, ys = self.board.xy(self.slots)
        sx = np.where(group_core < 0, HOST[0], xs[np.maximum(group_core, 0)])
        sy = np.where(group_core < 0, HOST[1], ys[np.maximum(group_core, 0)])
        b = self.board
        link_start, link_of = b.xy_trees(sx, sy, dest_start, xs[dests], ys[dests])
        # the X-then-Y path of each dendrite core's partial sums to its soma core, as one more tree
        streams = self._structure("streams", self._streams)
        d = np.array([s[0] for s in streams], np.int64)
        soma = np.array([s[1] for s in streams], np.int64)
        path_start, path_key = b.xy_trees(xs[d], ys[d], np.arange(len(d) + 1), xs[soma], ys[soma])
        # links numbered in key order over all trees and paths: the keys used, then each key
        # replaced by its number in place, a range of trees at a time
        used = np.zeros(4 * (b.width + 1) * b.height, bool)
        chunks = list(tree_chunks(link_start, LINKS_PER_RANGE))
        for t0, t1 in chunks:
            used[link_of[link_start[t0]:link_start[t1]]] = True
        used[path_key] = True
        keys = np.flatnonzero(used)
        number = np.zeros(len(used), link_of.dtype)
        number[keys] = np.arange(len(keys))
        for t0, t1 in chunks:
            part = link_of[link_start[t0]:link_start[t1]]
            part[:] = number[part]
        path_links = number[path_key].astype(np.int64)
        ends = b.link_ends(keys)
        inter = (ends[:, 0] // b.cx != ends[:, 2] // b.cx) | (ends[:, 1] // b.cy != ends[:, 3] // b.cy)
        host = (ends[:, 0] == HOST[0]) & (ends[:, 1] == HOST[1])
        kind = np.where(host, 2, inter.astype(np.int64))
        listed = path_links.tolist()
        partial = [(int(d[k]), int(soma[k]), listed[path_start[k]:path_start[k + 1]]) for k in range(len(d))]
        return _Trees(ids, group_of, group_core, dest_start, dests, link_of, link_start, path_links, path_start,
                      ends, kind, partial)


def _group(key: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(the sorted distinct values of ``key`` = row × ``width`` + column, each key's index among
    them).  With rows and columns below 2^16, two stable 16-bit sorts (numpy sorts those by
    radix: linear), columns then rows, order the keys — no search of every key; positions
    int32 while they fit."""
    if width > 1 << 16:
        uniq = distinct(key)
        return uniq, np.searchsorted(uniq, key)
    dt = np.int32 if len(key) < 2**31 else np.int64
    order = np.argsort((key % width).astype(np.uint16), kind="stable").astype(dt)
    order = order[np.argsort((key[order] // width).astype(np.uint16), kind="stable")]
    ordered = key[order]
    first = np.empty(len(key), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    rank = np.cumsum(first, dtype=dt)
    rank -= 1
    index = np.empty(len(key), dt)
    index[order] = rank
    return ordered[first], index


@dataclass
class _Trees:
    """The rate-independent part of :class:`Routes`: ``ids`` the sources with destinations;
    group ``g``'s tree is links ``link_of[link_start[g]:link_start[g + 1]]`` (ascending;
    int32 while the link ids fit: VGG-19's 674,449 trees hold 258 M links), dendrite ``k``'s
    path to its soma ``path_links[path_start[k]:path_start[k + 1]]``."""

    ids: np.ndarray
    group_of: np.ndarray
    group_core: np.ndarray
    dest_start: np.ndarray
    dests: np.ndarray
    link_of: np.ndarray
    link_start: np.ndarray
    path_links: np.ndarray
    path_start: np.ndarray
    ends: np.ndarray
    kind: np.ndarray
    partial: list


@dataclass
class Routes:
    """``group_of[source]``: its route group (-1: no destination); per group ``g`` its source
    core (``group_core``, -1 for the host), its destination cores
    ``dests[dest_start[g]:dest_start[g + 1]]`` and its tree's link ids
    ``group_links[link_start[g]:link_start[g + 1]]`` (ascending); ``ends[i]``: directed board
    link ``i`` as (x0, y0, x1, y1), links sorted; ``kind``: 0 on-chip, 1 between chips, 2 host
    port; ``load``: spikes per step on each link from the rates."""

    group_of: np.ndarray
    group_core: np.ndarray
    dest_start: np.ndarray
    dests: np.ndarray
    link_start: np.ndarray
    group_links: np.ndarray
    ends: np.ndarray
    kind: np.ndarray
    load: np.ndarray
    partial: list = None  # fan-in splitting: (dendrite core, soma core, link ids of its path)

    @property
    def links(self) -> list:
        """The links as ``((x0, y0), (x1, y1))``."""
        return [((a, b), (c, d)) for a, b, c, d in self.ends.tolist()]

    def capacity(self, chip) -> np.ndarray:
        """Spikes per step each link holds; -1 for the host link, which the chip description
        does not limit (its load is reported, not checked)."""
        on, off = chip.noc.link_capacity, chip.noc.chip_link_capacity
        return np.where(self.kind == 0, on, np.where(self.kind == 1, off, -1)).astype(np.int64)

    def link_name(self, i: int) -> str:
        x0, y0, x1, y1 = self.ends[i].tolist()
        return f"({x0},{y0})->({x1},{y1})"


def placement_cost(board: Board, src: np.ndarray, dst: np.ndarray, load: np.ndarray, slots: np.ndarray) -> float:
    """Σ spikes per step × weighted hops over the core-to-core traffic (``src`` -1: the host)."""
    host = src < 0
    d = np.empty(len(src))
    d[~host] = board.distance(slots[src[~host]], slots[dst[~host]])
    d[host] = board.host_distance(slots[dst[host]])
    return float(np.dot(load, d))

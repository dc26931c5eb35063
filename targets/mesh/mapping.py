"""A mapped graph read back from its ``hw`` ops, and the traffic and routes it implies.

:class:`Mapping` is what ``place``, ``route`` and the emitter share: which core each neuron
is on (``core_of``), the hardware numbering of neurons (cores in id order, each core's slices
in order), each core's slot on the board, the spike traffic between cores and the
dimension-order multicast routes (docs/mesh-target.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.targets.mapping.netlist import Netlist, distinct
from nmc.targets.mapping import fanin
from nmc.targets.mapping.partition import core_pieces, source_core_pairs
from nmc.targets.mapping.shapes import runs_to_boxes, view3
from nmc.targets.mesh.board import HOST, Board

_FINGERPRINT = np.random.default_rng(20240607).integers(0, 2**63, size=1 << 16, dtype=np.int64)


class Mapping:
    """The ``hw.core`` ops of a partitioned graph (placement optional: unplaced cores take the
    naive slots 0, 1, 2, ... in id order)."""

    def __init__(self, graph: Graph, chip, net: Netlist | None = None):
        self.graph, self.chip = graph, chip
        self.net = net or Netlist(graph)
        self.board = Board(chip)
        cores = sorted(graph.walk("hw.core"), key=lambda c: c.id)
        if not cores:
            raise NmcError(f"graph @{graph.name} is not mapped onto cores",
                           hint="run partition,place,route first (the default pipeline of a mesh target does)")
        if [c.id for c in cores] != list(range(len(cores))):
            raise NmcError(f"graph @{graph.name}: hw.core ids must be 0..{len(cores) - 1}, each once")
        self.cores = cores
        self._pairs = None
        self._xy = None  # board coordinates of each core's slot, once asked
        net = self.net
        self.core_of = np.full(net.n_neurons, -1, np.int64)
        self.hw_of = np.full(net.n_neurons, -1, np.int64)  # graph neuron id -> hardware neuron id
        self.core_start = np.zeros(len(cores) + 1, np.int64)
        h = 0
        self.dendrites = [c for c in cores if c.partial]  # fan-in splitting: cores holding partial sums
        self._split = {d.pops[0].owner for d in self.dendrites}  # populations with dendrite cores
        for c in cores:
            if c.partial:
                self.core_start[c.id + 1] = h
                continue
            for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]):
                off = net.neuron_offset[v.owner]
                if np.any(self.core_of[off + a:off + b] >= 0):
                    raise c.error(f"holds neurons [{a}, {b}) of %{v.name}, which another core holds too")
                self.core_of[off + a:off + b] = c.id
                self.hw_of[off + a:off + b] = np.arange(h, h + b - a)
                h += b - a
            self.core_start[c.id + 1] = h
        if np.any(self.core_of < 0):
            missing = int(np.flatnonzero(self.core_of < 0)[0])
            pop = next(p for p in net.populations if net.neuron_offset[p] + p.result.type.size > missing)
            raise NmcError(f"neuron {missing - net.neuron_offset[pop]} of %{pop.result.name} is on no core",
                           pop.loc, hint="run partition again")
        placed = [len(c.chip) == 2 for c in cores]
        if any(placed) and not all(placed):
            raise NmcError(f"graph @{graph.name}: some hw.core ops are placed and some are not", hint="run place again")
        self.placed = all(placed)
        if self.placed:
            self.slots = np.array([self.board.slot(c.chip[0] * self.board.cx + c.xy[0],
                                                   c.chip[1] * self.board.cy + c.xy[1]) for c in cores], np.int64)
        else:
            self.slots = np.arange(len(cores), dtype=np.int64)

    # ------------------------------------------------------------------------ connectivity

    def core_of_source(self) -> np.ndarray:
        """Core of each global source (-1 for the host's encoder ports)."""
        return np.concatenate([np.full(self.net.n_ports, -1, np.int64), self.core_of])

    def source_dests(self) -> np.ndarray:
        """Unique (global source, destination core) pairs, sorted: from the geometry of shaped
        projections (:mod:`nmc.targets.mapping.shapes`), explicit lists only for sparse ones."""
        if self._pairs is None:
            self._pairs = source_core_pairs(self.net, [self.pieces(c) for c in self.cores])
        return self._pairs

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

    def partial_streams(self, rates: np.ndarray) -> list[tuple[int, int, float]]:
        """(dendrite core, soma core, partial sums per step) of every dendrite core: each of its
        compartments sends one message in a step where any of its inputs spiked, estimated as
        ``min(1, fan-in × mean source rate)`` of the part."""
        out = []
        for c in self.dendrites:
            soma, part = fanin.parse_partial(c.partial)
            pop = c.pops[0].owner
            rate = 0.0
            for i, lo, hi in part:
                src = pop.currents[i].owner.src.owner
                rate += fanin.part_fanin(pop, [(i, lo, hi)]) * float(rates[self.net.source_offset[src]])
            out.append((c.id, soma, c.neurons * min(1.0, rate)))
        return out

    def traffic(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source core or -1, destination core, spikes per step) aggregated over neurons."""
        pairs = self.source_dests()
        src_core = self.core_of_source()[pairs[:, 0]]
        keep = src_core != pairs[:, 1]
        width = len(self.cores) + 1
        key = (src_core[keep] + 1) * width + pairs[keep, 1]  # (source core, destination) as one int64
        weight = rates[pairs[keep, 0]]
        streams = self.partial_streams(rates)
        if streams:  # partial sums travel from each dendrite core to its soma core
            s = np.array(streams, np.float64)
            key = np.concatenate([key, (s[:, 0].astype(np.int64) + 1) * width + s[:, 1].astype(np.int64)])
            weight = np.concatenate([weight, s[:, 2]])
        uniq = distinct(key)
        load = np.bincount(np.searchsorted(uniq, key), weights=weight, minlength=len(uniq))
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
        """Dimension-order multicast routes, one tree per (source core, destination set)."""
        net = self.net
        pairs = self.source_dests()
        n = net.n_sources
        src_core = self.core_of_source()
        # a set fingerprint per source (sum of random words of its destinations) groups the
        # sources of one core that reach the same cores
        fp = np.zeros(n, np.int64)
        with np.errstate(over="ignore"):
            np.add.at(fp, pairs[:, 0], _FINGERPRINT[pairs[:, 1] % len(_FINGERPRINT)] + pairs[:, 1])
        has = np.zeros(n, bool)
        has[pairs[:, 0]] = True
        ids = np.flatnonzero(has)
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
        starts = np.searchsorted(pairs[:, 0], np.arange(n + 1))
        groups = []
        for g in order:
            s = ids[first[g]]
            groups.append((int(src_core[s]), [int(d) for d in pairs[starts[s]:starts[s + 1], 1]]))
        link_ids: dict = {}
        group_links = []
        for src, dests in groups:
            tree = self.board.xy_tree(self.position(src), [self.position(d) for d in dests])
            group_links.append(sorted(tree))
            for link in tree:
                link_ids.setdefault(link, None)
        streams = self.partial_streams(rates)
        paths = []  # the X-then-Y path of each dendrite core's partial sums to its soma core
        for d, soma, _ in streams:
            path = sorted(self.board.xy_tree(self.position(d), [self.position(soma)]))
            paths.append(path)
            for link in path:
                link_ids.setdefault(link, None)
        links = sorted(link_ids)
        index = {link: i for i, link in enumerate(links)}
        group_rate = np.bincount(group_of[ids], weights=rates[ids], minlength=len(groups))
        load = np.zeros(len(links))
        for g, tree in enumerate(group_links):
            for link in tree:
                load[index[link]] += group_rate[g]
        for (_, _, rate), path in zip(streams, paths):
            for link in path:
                load[index[link]] += rate
        kind = np.array([2 if a == HOST else int(self.board.is_inter_chip(a, b)) for a, b in links], np.int64)
        return Routes(group_of, groups, [[index[lk] for lk in t] for t in group_links], links, kind, load,
                      [(d, soma, [index[lk] for lk in path]) for (d, soma, _), path in zip(streams, paths)])


@dataclass
class Routes:
    """``group_of[source]``: its route group (-1: no destination); ``groups[g]``: (source
    core or -1 for the host, destination cores); ``group_links[g]``: link ids of its tree;
    ``links``: directed board links ((x0, y0), (x1, y1)); ``kind``: 0 on-chip, 1 between
    chips, 2 host port; ``load``: spikes per step on each link from the rates."""

    group_of: np.ndarray
    groups: list
    group_links: list
    links: list
    kind: np.ndarray
    load: np.ndarray
    partial: list = None  # fan-in splitting: (dendrite core, soma core, link ids of its path)

    def capacity(self, chip) -> np.ndarray:
        """Spikes per step each link holds; -1 for the host link, which the chip description
        does not limit (its load is reported, not checked)."""
        on, off = chip.noc.link_capacity, chip.noc.chip_link_capacity
        return np.where(self.kind == 0, on, np.where(self.kind == 1, off, -1)).astype(np.int64)

    def link_name(self, i: int) -> str:
        (x0, y0), (x1, y1) = self.links[i]
        return f"({x0},{y0})->({x1},{y1})"


def placement_cost(board: Board, src: np.ndarray, dst: np.ndarray, load: np.ndarray, slots: np.ndarray) -> float:
    """Σ spikes per step × weighted hops over the core-to-core traffic (``src`` -1: the host)."""
    host = src < 0
    d = np.empty(len(src))
    d[~host] = board.distance(slots[src[~host]], slots[dst[~host]])
    d[host] = board.host_distance(slots[dst[host]])
    return float(np.dot(load, d))

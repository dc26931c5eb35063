"""A multicast mapping read back from a placed graph: vertices and their keys, multicast
trees, router tables, master population tables (docs/multicast-target.md).

Everything here is a pure function of the graph's ``hw.core`` ops and the chip, so the
``mc-route`` pass, the emitter and :func:`router_tables` compute the same tables; within one
compile they share one :class:`McMapping` (:func:`mapping_of`), which computes each of its
parts (destinations, trees, tables, compressed tables) once.

* A **vertex** is what one key range names: a host encoder (its elements), or the neurons of
  one population on one core, in hardware order (cores in id order, each core's slices in
  order).  Vertex ``v`` of ``n`` neurons gets the key range ``base .. base + 2^k − 1``,
  ``2^k ≥ n``, mask ``~(2^k − 1)``: one entry covers it.  Vertices are allocated largest
  first, then in order, so every base is aligned; neuron ``i`` of the vertex sends key
  ``base + i``.
* A vertex's **destinations** are the cores holding a target of any of its neurons
  (:func:`nmc.targets.mapping.partition.source_core_pairs`, by shape); its **tree** is the
  union of the shortest paths from its chip (host vertices start at chip (0, 0), where the
  host's Ethernet link is) to the destinations' chips, taken from one breadth-first tree of
  the board (networkx ``single_source_shortest_path``), so paths share their common prefix.
* Each chip on a tree gets one **entry** (key, mask, route): the links to its children on the
  tree and the processors of destination cores on that chip.  An entry is *defaultable* when
  the packet arrives by exactly one link ``L``, leaves by exactly ``opposite(L)`` and goes to
  no processor here: default routing would do the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import networkx as nx
import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.ir.printer import Printer
from nmc.targets.mapping.hw import mapped_cores
from nmc.targets.mapping.netlist import Netlist
from nmc.targets.mapping.partition import core_pieces, source_core_pairs
from nmc.targets.multicast.board import Board
from nmc.targets.multicast.table import RouteTables, core_bit, link_bit, opposite

HOST_CHIP = (0, 0)


@dataclass(frozen=True)
class Vertex:
    """A key range: ``core`` -1 for a host encoder; ``sources``: its netlist source ids in key order."""

    core: int
    chip: tuple[int, int]
    sources: np.ndarray
    base: int = 0
    bits: int = 0

    def mask(self, key_bits: int) -> int:
        return ((1 << key_bits) - 1) & ~((1 << self.bits) - 1)


class McMapping:
    """The ``hw.core`` ops of a partitioned (and normally placed) graph, read back.  Each part
    is computed on first use and kept: what a method returns is shared, not to be modified."""

    def __init__(self, graph: Graph, chip, net: Netlist | None = None):
        self.graph, self.chip = graph, chip
        self.net = net or Netlist(graph)
        self.board = Board(chip)
        cores = mapped_cores(graph, hint="run mc-partition,mc-place,mc-route first (the default pipeline of a multicast target does)")
        self.cores = cores
        net = self.net
        self.core_of = np.full(net.n_neurons, -1, np.int64)
        self.hw_of = np.full(net.n_neurons, -1, np.int64)
        self.core_start = np.zeros(len(cores) + 1, np.int64)
        h = 0
        for c in cores:
            for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]):
                off = net.neuron_offset[v.owner]
                if np.any(self.core_of[off + a:off + b] >= 0):
                    raise c.error(f"holds neurons [{a}, {b}) of %{v.name}, which another core holds too")
                self.core_of[off + a:off + b] = c.id
                self.hw_of[off + a:off + b] = np.arange(h, h + b - a)
                h += b - a
            self.core_start[c.id + 1] = h
        if np.any(self.core_of < 0):
            raise NmcError(f"graph @{graph.name}: a neuron is on no core", hint="run mc-partition again")
        self.placed = all(len(c.chip) == 2 for c in cores)
        if self.placed:
            self.core_chip = [tuple(c.chip) for c in cores]
            self.core_proc = [int(c.xy[0]) for c in cores]
            for c in cores:
                if tuple(c.chip) not in self.board.index:
                    raise c.error(f"is placed on chip {list(c.chip)}, which the board of chip '{chip.name}' does not have",
                                  hint="run mc-place again")
        else:  # naive: cores fill the chips in board order
            P = self.board.processors
            self.core_chip = [self.board.chips[min(k // P, len(self.board.chips) - 1)] for k in range(len(cores))]
            self.core_proc = [k % P for k in range(len(cores))]
        self._pairs = None
        self._vertices = None
        self._destinations = None
        self._trees = None
        self._tables = None
        self._compressed = None

    # ------------------------------------------------------------------------ connectivity

    def pairs(self) -> np.ndarray:
        """Distinct (netlist source, destination core) pairs."""
        if self._pairs is None:
            self._pairs = source_core_pairs(self.net, [core_pieces(self.net, c.pops, c.slices) for c in self.cores])
        return self._pairs

    def vertices(self) -> list[Vertex]:
        """Every key range with its allocated base (module docstring)."""
        if self._vertices is not None:
            return self._vertices
        net = self.net
        out = []
        for e in net.encoders:
            a = net.source_offset[e]
            out.append(Vertex(-1, HOST_CHIP, np.arange(a, a + e.result.type.size, dtype=np.int64)))
        hw_source = np.empty(net.n_neurons, np.int64)  # hardware neuron -> netlist source
        hw_source[self.hw_of] = net.source_of_neuron(np.arange(net.n_neurons))
        pop_of_source = np.empty(net.n_sources, np.int64)
        for i, op in enumerate(net.encoders + net.populations):
            a = net.source_offset[op]
            pop_of_source[a:a + op.result.type.size] = i
        for c in self.cores:
            src = hw_source[self.core_start[c.id]:self.core_start[c.id + 1]]
            pops = pop_of_source[src]
            for p in dict.fromkeys(pops.tolist()):
                out.append(Vertex(c.id, self.core_chip[c.id], src[pops == p]))
        bits = [max(0, int(len(v.sources) - 1).bit_length()) for v in out]
        order = sorted(range(len(out)), key=lambda i: (-bits[i], i))
        base, key_bits = 0, self.chip.router.key_bits
        based = [None] * len(out)
        for i in order:
            based[i] = Vertex(out[i].core, out[i].chip, out[i].sources, base, bits[i])
            base += 1 << bits[i]
        if base > 1 << key_bits:
            raise NmcError(f"the graph needs {base} keys; chip '{self.chip.name}' has {key_bits}-bit keys "
                           f"({1 << key_bits} keys)", hint="a chip with wider keys, or fewer neurons")
        self._vertices = based
        return based

    def vertex_of(self) -> np.ndarray:
        """The vertex (index into :meth:`vertices`) of every netlist source."""
        out = np.empty(self.net.n_sources, np.int64)
        for i, v in enumerate(self.vertices()):
            out[v.sources] = i
        return out

    def source_keys(self) -> np.ndarray:
        """The key of every netlist source."""
        keys = np.zeros(self.net.n_sources, np.int64)
        for v in self.vertices():
            keys[v.sources] = v.base + np.arange(len(v.sources))
        return keys

    def destinations(self) -> list[list[int]]:
        """Per vertex, the cores that hold a target of any of its sources (sorted)."""
        if self._destinations is not None:
            return self._destinations
        vertex_of = self.vertex_of()
        pairs, C = self.pairs(), len(self.cores)
        vc = np.unique(vertex_of[pairs[:, 0]] * C + pairs[:, 1]) if len(pairs) else np.zeros(0, np.int64)
        ends = np.cumsum(np.bincount(vc // C, minlength=len(self.vertices())))
        cores = (vc % C).tolist()  # distinct (vertex, core) codes in order: each vertex's cores, sorted
        self._destinations = [cores[a:b] for a, b in zip([0, *ends[:-1].tolist()], ends.tolist())]
        return self._destinations

    def trees(self) -> list[dict]:
        """Per vertex its multicast tree: ``{chip: (children chips, destination processors)}``
        over the chips it visits (module docstring)."""
        if self._trees is not None:
            return self._trees
        paths: dict = {}
        out = []
        for v, dests in zip(self.vertices(), self.destinations()):
            if v.chip not in paths:
                paths[v.chip] = nx.single_source_shortest_path(self.board.graph, v.chip)
            tree: dict = {}
            for core in dests:
                target = self.core_chip[core]
                path = paths[v.chip].get(target)
                if path is None:
                    raise NmcError(f"chip {target} cannot be reached from chip {v.chip} on the board of '{self.chip.name}'")
                for a, b in zip(path, path[1:]):
                    tree.setdefault(a, (set(), set()))[0].add(b)
                tree.setdefault(target, (set(), set()))[1].add(self.core_proc[core])
            tree.setdefault(v.chip, (set(), set()))
            out.append({c: (sorted(ch), sorted(pr)) for c, (ch, pr) in sorted(tree.items())})
        self._trees = out
        return out

    def tables(self) -> RouteTables:
        """Each chip's uncompressed table as columns (:class:`~.table.RouteTables`): chips
        (``(x, y)``) in order, each table's entries in key order, with their defaultable flags;
        chips no tree visits have none."""
        if self._tables is not None:
            return self._tables
        key_bits = self.chip.router.key_bits
        chip_of, keys, masks, routes, flags = [], [], [], [], []
        for v, tree in zip(self.vertices(), self.trees()):
            parent = {ch: c for c, (children, _) in tree.items() for ch in children}
            mask = v.mask(key_bits)
            for c, (children, procs) in tree.items():
                if c == v.chip and not children and not procs:
                    continue  # a vertex with no destination: its packets are dropped at its router
                route = 0
                for ch in children:
                    route |= link_bit(self.board.link_between(c, ch))
                for p in procs:
                    route |= core_bit(p)
                defaultable = False
                if c in parent and len(children) == 1 and not procs:
                    arrival = opposite(self.board.link_between(parent[c], c))
                    defaultable = route == link_bit(opposite(arrival))
                chip_of.append(c)
                keys.append(v.base)
                masks.append(mask)
                routes.append(route)
                flags.append(defaultable)
        chips = sorted(set(chip_of))
        rank = {c: i for i, c in enumerate(chips)}
        table_of = np.array([rank[c] for c in chip_of], np.int64)
        order = np.lexsort((np.array(keys, np.uint64), table_of))  # a chip's keys are distinct
        self._tables = RouteTables.from_rows(np.bincount(table_of, minlength=len(chips)),
                                             np.array(keys, np.uint64)[order], np.array(masks, np.uint64)[order],
                                             [routes[i] for i in order.tolist()], np.array(flags, bool)[order], chips)
        return self._tables

    def compressed_tables(self) -> RouteTables:
        """:meth:`tables` after compression (:func:`compressed_tables`)."""
        if self._compressed is None:
            self._compressed = compressed_tables(self.tables(), self.chip)
        return self._compressed

    def link_loads(self, rates: np.ndarray) -> dict:
        """Packets per step on every directed link used, ``{(chip, link): load}``."""
        loads: dict = {}
        for v, tree in zip(self.vertices(), self.trees()):
            r = float(rates[v.sources].sum())
            for c, (children, _) in tree.items():
                for ch in children:
                    key = (c, self.board.link_between(c, ch))
                    loads[key] = loads.get(key, 0.0) + r
        return dict(sorted(loads.items()))


def _ops_digest(graph: Graph) -> str:
    """SHA-256 of ``graph``'s ops but its ``hw.route`` ops: their exact text (blobs by name
    and type) and then each named blob's bytes, in the text's order (hashed where they lie,
    not printed)."""
    ops = Graph(graph.name)
    ops.ops = [op for op in graph.ops if op.KIND != "hw.route"]
    printer = Printer(ops)
    h = hashlib.sha256(printer.text().encode())
    for data in printer.sidecar.values():
        h.update(np.ascontiguousarray(data).data)
    return h.hexdigest()


_LAST: list = []  # [(graph, ops digest, chip digest, McMapping)]: the one mapping mapping_of keeps


def mapping_of(graph: Graph, chip) -> McMapping:
    """The :class:`McMapping` of ``graph`` on ``chip``, shared: the last one built is returned
    again while it is asked for the same graph object whose ops (its ``hw.route`` ops aside)
    print to the same text with the same blob contents (compared by SHA-256 at every call:
    :func:`_ops_digest`) on a chip of the same digest.  It cannot go stale: a mapping reads
    nothing but those ops (their text is exact and blobs are read-only) and the chip, so equal
    text means an equal mapping; ``hw.route`` ops are what ``mc-route`` adds from the
    mapping, and no part of it reads them.  The same object is required too, since the
    mapping's ``cores`` are that graph's ops.  Holds that one mapping (and its graph) until a
    different one is asked for."""
    digest = _ops_digest(graph)
    if _LAST and _LAST[0][0] is graph and _LAST[0][1:3] == (digest, chip.digest):
        return _LAST[0][3]
    m = McMapping(graph, chip)
    _LAST[:] = [(graph, digest, chip.digest, m)]
    return m


def router_tables(graph: Graph, chip) -> RouteTables:
    """Every chip's uncompressed router table of a placed graph with its defaultable flags,
    as the compiler builds them (for the routing benchmark)."""
    return McMapping(graph, chip).tables()


def compressed_tables(tables: RouteTables, chip) -> RouteTables:
    """Every chip's table after compression (same chips), the one call site of
    table compression (:func:`~nmc.targets.multicast.compress.compress_tables`: default-route
    removal, then order-exploiting minimisation as far as it goes, every table of the board in
    one compiled call); NmcError naming the chip whose table still exceeds its router."""
    from nmc.targets.multicast.compress import compress_tables

    chips = [f"{chip.name} ({x}, {y})" for x, y in tables.chips]
    return compress_tables(tables, chip.router.entries, chips=chips, target_length=0)

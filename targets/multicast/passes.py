"""The multicast class's mapping passes: ``mc-partition``, ``mc-place``, ``mc-route``
(docs/multicast-target.md).

* ``mc-partition`` cuts the populations into core slices with the class-neutral partitioner
  (:func:`nmc.targets.mapping.partition.partition`, by shape), under the core's neuron limit
  and its memory: the synaptic rows (a header per source neuron with a synapse on the core and
  one word per synapse) in the SDRAM share or the local memory, the neuron state and the
  master population table in local memory.  The partitioner counts these bytes itself
  (:func:`core_limits`: a word per synapse, a header per input axon, the state per neuron);
  the master-table entries are counted after the cut, and should a core exceed its memory the
  cut is made again charging each core the entries seen per source population it reads
  (rows in local memory), then with the budget tightened, until every core's exact bytes fit.
* ``mc-place`` puts the cores on (chip, processor) slots: chips filled nearest-first from
  chip (0, 0), where the host's link is, then (on boards of at most ``MAX_ANNEAL_SLOTS``
  slots) simulated annealing over Σ traffic × chip hops.
* ``mc-route`` allocates keys, builds the multicast trees and every router's table, flags and
  removes what default routing does, compresses, and checks tables, links and the real-time
  budget (:mod:`.mapping`, :mod:`.timing`).
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph
from nmc.ir.hw import Core, Route
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.classes import class_target
from nmc.targets.mapping.anneal import anneal
from nmc.targets.mapping.hw import clear_hw, hw_insert
from nmc.targets.mapping.netlist import Netlist
from nmc.targets.mapping.partition import CoreLimits, core_pieces, partition, source_core_pairs
from nmc.targets.mapping.shapes import geometry, synapse_count
from nmc.targets.multicast.board import Board
from nmc.targets.multicast.mapping import HOST_CHIP, McMapping, mapping_of

DEFAULT_RATE = 0.25
MAX_ANNEAL_SLOTS = 4096
MAX_ROUNDS = 30
HINT = "a larger board (more chips), fewer neurons or inputs in the layer, or fewer weight bits"


def mc_chip(ctx: PassContext, name: str):
    """The target chip of a mapping pass, required to be of this class."""
    return class_target(ctx, name, "multicast", "spinnaker2")


def core_synapses(net: Netlist, pieces: list) -> int:
    """Synapses into a core's neurons (by shape for shaped projections)."""
    n = 0
    for pop, piece in pieces:
        if len(piece) == 6:
            n += sum(geometry(c.owner).synapses(piece) for c in pop.currents)
        else:
            inc = net.incoming(pop)
            n += int(inc.ptr[piece[1]] - inc.ptr[piece[0]])
    return n


def core_memory(chip, neurons: int, axons: int, synapses: int, entries: int) -> tuple[int, int]:
    """(local memory bytes, SDRAM row bytes) of a core: neuron state and master table entries
    in local memory; rows (a header per source neuron with synapses here, a word per synapse)
    in local memory or in the SDRAM share (``[core] rows_in``)."""
    c = chip.core
    rows = axons * c.row_header_bytes + synapses * c.synapse_bytes
    local = neurons * c.neuron_bytes + entries * c.master_entry_bytes
    return (local + rows, 0) if c.rows_in == "local" else (local, rows)


def layer_costs(pop, most: dict | None = None) -> tuple:
    """``(neurons, synapses, sources, entries)`` of a population for :func:`cores_lower_bound`:
    with only shaped projections, per neuron (int64 arrays): its synapses, the distinct sources
    it reads at least (the most over its projections: a window, a dense or a one-to-one
    projection reads each of its sources once) and the master-table entries a core holding it
    needs at least: for each source op ``S``, ``⌈F_i(S) / most[S]⌉`` with ``F_i(S)`` the most
    sources of ``S`` it reads by one projection and ``most[S]`` the most neurons of ``S`` one
    vertex holds (:func:`vertex_most`; without an entry, ``S``'s size).  With an irregular
    projection: the total synapses, and the fewest distinct sources and entries any neuron
    needs by its shaped projections (0 for none)."""
    geoms = [(c.owner.src.owner, geometry(c.owner)) for c in pop.currents]
    n = pop.result.type.size
    zero = np.zeros(n, np.int64)
    per_source: dict = {}
    for src, g in geoms:
        if g is not None:
            per_source[src] = np.maximum(per_source.get(src, zero), g.fanin())
    entries = sum((-(-f // (most or {}).get(src, src.result.type.size)) for src, f in per_source.items()), zero)
    if all(g is not None for _, g in geoms):
        fanins = [g.fanin() for _, g in geoms]
        return n, sum(fanins, zero), np.max(fanins, axis=0) if fanins else zero, entries
    fewest = max((int(g.fanin().min()) for _, g in geoms if g is not None), default=0)
    return n, sum(synapse_count(c.owner) for c in pop.currents), fewest, int(entries.min()) if n else 0


def vertex_most(chip, costs: tuple) -> int:
    """The most neurons of a population given by :func:`layer_costs` that one core — hence
    one vertex — holds: ``[core] neurons``, and as many of its cheapest neurons as fit the
    memory that holds the rows beside the fewest row headers any of them needs (with rows in
    SDRAM, also as many neurons' state as fit local memory)."""
    c = chip.core
    n, syn, fanin = costs[:3]
    most = min(c.neurons, n)
    if not np.ndim(syn):
        return most
    local = c.rows_in == "local"
    memory = (c.local_memory_bytes if local else c.row_memory_bytes) - int(np.min(fanin)) * c.row_header_bytes
    words = np.sort(np.asarray(syn, np.int64) * c.synapse_bytes + (c.neuron_bytes if local else 0))
    most = min(most, int(np.searchsorted(np.cumsum(words), memory, side="right")))
    if not local:
        most = min(most, c.local_memory_bytes // c.neuron_bytes)
    return max(1, most)


def lower_bound_costs(chip, net: Netlist) -> dict:
    """``{population: layer_costs}`` of every population, its master-table entries counted
    against the most neurons one vertex of each source population holds (:func:`vertex_most`;
    a host encoder is one vertex)."""
    plain = {pop: layer_costs(pop) for pop in net.populations}
    most = {pop: vertex_most(chip, costs) for pop, costs in plain.items()}
    return {pop: layer_costs(pop, most) for pop in net.populations}


def cores_lower_bound(chip, layers: list[tuple]) -> int:
    """Cores that populations given as :func:`layer_costs` need at least, whatever the cut
    (docs/multicast-target.md, "Partitioning"): every core holds at most ``[core] neurons``
    neurons; a core holding a neuron that reads ``F`` distinct sources from ``E`` vertices at
    least holds a row header for each source and a master-table entry for each vertex, so of
    the memory that holds the rows (``M``) at most ``M - F × row_header_bytes - E ×
    master_entry_bytes`` is left for the synapse words (and, rows in local memory, neuron
    state) of all its neurons (rows in SDRAM: the entries are in local memory, beside the neuron
    state).  Charging each neuron its words over what its own ``F_i`` and ``E_i`` leave
    therefore charges every core at most 1, and the charges add up to at most the cores.  A
    layer given by totals counts its fewest ``F`` and ``E`` for every neuron; a layer given as
    ``(neurons, synapses, sources)`` has ``E = 0``."""
    from fractions import Fraction
    from math import ceil

    c = chip.core
    local = c.rows_in == "local"
    memory = c.local_memory_bytes if local else c.row_memory_bytes
    neurons = sum(layer[0] for layer in layers)
    bound = -(-neurons // c.neurons)
    share, state = Fraction(0), Fraction(0)
    for n, syn, fanin, *rest in layers:
        entries = rest[0] if rest else 0
        if np.ndim(syn):  # per neuron
            words = np.asarray(syn, np.int64) * c.synapse_bytes + (c.neuron_bytes if local else 0)
        else:  # totals: every neuron with the same F and E
            words = np.asarray([int(syn) * c.synapse_bytes + (n * c.neuron_bytes if local else 0)])
        size = len(words)
        fanin = np.broadcast_to(np.asarray(fanin, np.int64), size)
        entries = np.broadcast_to(np.asarray(entries, np.int64), size)
        if not local:  # local memory: neuron state beside the master table
            for e in np.unique(entries):
                room = c.local_memory_bytes - int(e) * c.master_entry_bytes
                if room > 0:
                    state += Fraction(int(np.count_nonzero(entries == e)) * (n // size) * c.neuron_bytes, room)
        pairs = np.unique(np.stack([fanin, entries if local else np.zeros(size, np.int64)]), axis=1)
        for f, e in pairs.T.tolist():
            room = memory - f * c.row_header_bytes - e * c.master_entry_bytes
            if room > 0:
                share += Fraction(int(words[(fanin == f) & (entries == e if local else True)].sum()), room)
    return max(bound, ceil(share), ceil(state))


def core_limits(chip, budget_bits: int, source_entries: dict | None = None) -> CoreLimits:
    """The partitioner's limits for a core of ``chip`` (:func:`core_memory` in its terms):
    ``budget_bits`` of the memory that holds the rows; each synapse a word, each input axon a
    row header, and each neuron its state when the rows share local memory.  The master
    table's entries depend on where the sources land: :func:`master_entries` counts them
    after the cut; with the rows in local memory, ``source_entries`` (source op → entries, from
    an earlier cut) charges a core that many entries for each source population it reads."""
    c = chip.core
    local = c.rows_in == "local"
    per_source = tuple((op, 8 * c.master_entry_bytes * n) for op, n in (source_entries or {}).items()) if local else ()
    return CoreLimits(neurons=c.neurons, input_axons=1 << 30, output_axons=1 << 30, synapse_memory_bits=budget_bits,
                      shared_weights=False, synapse_word_bits=8 * c.synapse_bytes, axon_bits=8 * c.row_header_bytes,
                      neuron_bits=8 * c.neuron_bytes if local else 0, source_bits=per_source)


def master_entries(net: Netlist, runs: list[list[tuple]], pieces: list[list[tuple]]) -> tuple[np.ndarray, dict]:
    """Per core, its master population table's entries: one per vertex that sends to it — a
    host encoder, or the slice of a population on one core (docs/multicast-target.md); and per
    source op (encoder or population), the most entries a core spends on its vertices.  Core
    ``k`` holds the flat neurons ``[a, b)`` of ``pop`` for every ``(pop, a, b)`` in
    ``runs[k]``; ``pieces[k]`` is the same as ``(pop, piece)`` (:func:`core_pieces`)."""
    owners = net.encoders + net.populations
    owner = np.repeat(np.arange(len(owners)), [op.result.type.size for op in owners])  # per global source
    core_of = np.full(net.n_sources, -1, np.int64)
    for k, core in enumerate(runs):
        for pop, a, b in core:
            core_of[net.source_offset[pop] + a:net.source_offset[pop] + b] = k
    pairs = source_core_pairs(net, pieces)
    if not len(pairs):
        return np.zeros(len(runs), np.int64), {}
    vertices = (len(runs) + 1) * len(owners)
    vertex = (core_of[pairs[:, 0]] + 1) * len(owners) + owner[pairs[:, 0]]
    per_core = np.unique(pairs[:, 1] * vertices + vertex)  # distinct (core, vertex)
    core, owner_of = per_core // vertices, per_core % vertices % len(owners)
    keys, counts = np.unique(core * len(owners) + owner_of, return_counts=True)  # entries per (core, owner)
    most = np.zeros(len(owners), np.int64)
    np.maximum.at(most, keys % len(owners), counts)
    return np.bincount(core, minlength=len(runs)), {owners[o]: int(n) for o, n in enumerate(most) if n}


def memory_limits(chip) -> tuple[int, int]:
    return chip.core.local_memory_bytes, (chip.core.row_memory_bytes if chip.core.rows_in == "sdram" else 0)


@register_pass("mc-partition")
class McPartition(Pass):
    """Cut every population into core slices for the target multicast chip (module docstring).

    Requires: ``ctx.target`` a multicast-class chip; an integer snn graph within the chip's
    formats and delays.  Ensures: one ``hw.core`` per core (ids 0.., in graph order) with
    ``synapse_bits`` the core's memory in bits (local memory, plus SDRAM rows), every core
    within the neuron limit and both memories, no more cores than the board's application
    processors; ``meta["hw.board"]`` = [app processors, 1, chips x, chips y] and
    ``meta["hw.cores_lower_bound"]`` (:func:`cores_lower_bound` of the whole graph).  Errors name the layer, the limit and by how much."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mc_chip(ctx, "mc-partition")
        clear_hw(graph)
        for p in graph.walk("snn.project"):
            if p.delay > chip.core.max_delay:
                raise NmcError(f"projection %{p.result.name or '?'} has delay {p.delay}; chip '{chip.name}' holds "
                               f"delays up to {chip.core.max_delay} steps", p.loc, hint="shorter delays")
        net = Netlist(graph)
        local_limit, row_limit = memory_limits(chip)
        budget = (row_limit if chip.core.rows_in == "sdram" else local_limit) * 8  # entries: counted after the cut
        source_entries: dict = {}
        for _ in range(MAX_ROUNDS):
            plan = partition(graph, chip.formats, core_limits(chip, max(1, budget), source_entries), chip.name)
            runs = [core[0] for core in plan["cores"]]
            pieces = [core_pieces(net, [pop.result for pop, _, _ in r], tuple(x for _, a, b in r for x in (a, b)))
                      for r in runs]
            entries, most = master_entries(net, runs, pieces)
            usage = [core_memory(chip, n, axons, core_synapses(net, p), int(e))
                     for (_, n, axons, *_), p, e in zip(plan["cores"], pieces, entries)]
            over = max(max(lo / local_limit, (ro / row_limit) if row_limit else 0.0) for lo, ro in usage)
            if over <= 1.0:
                break
            seen = {op: max(n, source_entries.get(op, 0)) for op, n in most.items()}
            if chip.core.rows_in == "local" and seen != source_entries:
                source_entries = seen  # charge the entries seen, then cut again
                continue
            budget = int(budget / over) - 1
            if budget < 1:
                break
        else:
            over = 2.0
        if over > 1.0:
            worst = max(range(len(usage)), key=lambda k: max(usage[k][0] / local_limit, usage[k][1] / max(row_limit, 1)))
            pop = plan["cores"][worst][0][0][0]
            raise NmcError(f"population %{plan['names'][pop]} does not fit chip '{chip.name}': a core of it needs "
                           f"{usage[worst][0]} bytes of local memory (of {local_limit}) and {usage[worst][1]} bytes "
                           f"of synaptic rows (of {row_limit})", pop.loc, hint=HINT)
        board = Board(chip)
        available = len(board.chips) * board.processors
        if len(plan["cores"]) > available:
            layers, names = plan["layers"], plan["names"]
            worst = max(layers, key=lambda p: layers[p][0])
            raise NmcError(f"the graph needs {len(plan['cores'])} cores; chip '{chip.name}' has {available} "
                           f"({len(board.chips)} chip(s) of {board.processors} application processors), "
                           f"{len(plan['cores']) - available} too many; the largest layer %{names[worst]} takes "
                           f"{layers[worst][0]} cores (limited by {layers[worst][2]})", worst.loc, hint=HINT)
        hw_insert(graph, [Core(pops=[pop.result for pop, _, _ in runs], id=k,
                               slices=tuple(x for _, a, b in runs for x in (a, b)), neurons=n, axons=axons,
                               synapse_bits=8 * sum(usage[k]), outputs=0)
                          for k, (runs, n, axons, *_) in enumerate(plan["cores"])])
        b = chip.board
        layers = lower_bound_costs(chip, net)
        own = {pop: cores_lower_bound(chip, [layer]) for pop, layer in layers.items()}
        lower = cores_lower_bound(chip, list(layers.values()))
        graph.meta["hw.board"] = [board.processors, 1, b.chips_x, b.chips_y]
        graph.meta["hw.cores_lower_bound"] = lower
        ctx.stat("cores", len(plan["cores"]))
        ctx.stat("cores-lower-bound", lower)
        for pop, (used, _, limit) in plan["layers"].items():
            ctx.remark(f"%{plan['names'][pop]}: {used} core(s) (lower bound {own[pop]}), limited by "
                       f"{'memory' if limit == 'synapse memory' else limit}")
        return True


def chip_order(board: Board) -> list[int]:
    """Chip indices nearest-first from the host's chip (ties in board order)."""
    start = board.index.get(HOST_CHIP, 0)
    return sorted(range(len(board.chips)), key=lambda i: (board.distances[start, i], i))


@register_pass("mc-place")
class McPlace(Pass):
    """Place the cores on (chip, processor) slots (module docstring).

    Requires: ``ctx.target`` a multicast-class chip; ``hw.core`` ops (run mc-partition first).
    Ensures: every ``hw.core`` has ``chip`` = [x, y] of a chip of the board and ``xy`` =
    [processor, 0], no two on one slot; ``meta["hw.placement_cost"]`` (packets per step × chip
    hops) no more than the constructive start's; deterministic for ``seed``."""

    seed: int = 0
    iterations: int = 20000

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mc_chip(ctx, "mc-place")
        graph.ops = [op for op in graph.ops if op.KIND != "hw.route"]
        m = McMapping(graph, chip)
        board = m.board
        P, C = board.processors, len(m.cores)
        order = chip_order(board)
        S = len(board.chips) * P
        start = np.array([order[k // P] * P + k % P for k in range(C)], np.int64)  # slot = chip index * P + processor
        pairs = m.pairs()
        rates = m.net.rates(DEFAULT_RATE)
        src_core = np.concatenate([np.full(m.net.n_ports, -1, np.int64), m.core_of])[pairs[:, 0]] if len(pairs) else np.zeros(0, np.int64)
        keep = src_core != pairs[:, 1] if len(pairs) else np.zeros(0, bool)
        key = (src_core[keep] + 1) * (C + 1) + pairs[keep, 1]
        uniq, inv = np.unique(key, return_inverse=True)
        load = np.bincount(inv, weights=rates[pairs[keep, 0]], minlength=len(uniq))
        src, dst = uniq // (C + 1) - 1, uniq % (C + 1)
        chip_of_slot = np.repeat(np.arange(len(board.chips)), P)
        host = board.index.get(HOST_CHIP, 0)

        def cost(slots):
            a = np.where(src < 0, host, chip_of_slot[slots[np.maximum(src, 0)]])
            return float(np.sum(load * board.distances[a, chip_of_slot[slots[dst]]]))

        slots = start
        if self.iterations > 0 and C and len(load) and S <= MAX_ANNEAL_SLOTS:
            D = np.zeros((S + 1, S + 1))
            D[:S, :S] = board.distances[chip_of_slot[:, None], chip_of_slot[None, :]]
            D[S, :S] = D[:S, S] = board.distances[host, chip_of_slot]
            dist = D.tolist()

            def near(slot: int, k: int) -> int:  # a processor of the slot's chip (the host's: its chip)
                return (host if slot == S else slot // P) * P + k % P

            slots = anneal(lambda s, t: dist[s][t], near, S, src, dst, load, start, self.iterations, self.seed)
            if cost(slots) > cost(start):
                slots = start
        placed = {id(core): core.with_changes(chip=board.chips[int(s) // P], xy=(int(s) % P, 0))
                  for core, s in zip(m.cores, slots.tolist())}
        graph.ops = [placed.get(id(op), op) for op in graph.ops]
        graph.meta["hw.placement_cost"] = round(cost(slots), 6)
        graph.meta["hw.placement_cost_naive"] = round(cost(start), 6)
        ctx.stat("cost", int(round(cost(slots))))
        ctx.remark(f"placement cost {cost(slots):.6g} packet-hops per step (nearest-first start {cost(start):.6g})")
        return True


@register_pass("mc-route")
class McRoute(Pass):
    """Keys, multicast trees and router tables of a placed graph (module docstring).

    Requires: ``ctx.target`` a multicast-class chip; placed ``hw.core`` ops.  Ensures: one
    ``hw.route`` per vertex with destinations (its source core, -1 for the host; its
    destination cores; packets per step; links of its tree); every chip's compressed table
    within the router's entries, every link within its packets per step, else an error naming
    the chip or link; ``meta["hw.max_link_load"]``, ``meta["hw.rate"]``,
    ``meta["hw.table_entries"]`` (the fullest table after compression) and
    ``meta["hw.step_cycles"]`` (the busiest core's estimated cycles per step); a remark when a
    core cannot keep real time at the assumed rates."""

    rate: float = DEFAULT_RATE

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        from nmc.targets.multicast.timing import estimated_cycles

        chip = mc_chip(ctx, "mc-route")
        if not 0.0 <= self.rate <= 1.0:
            raise NmcError(f"mc-route: rate={self.rate} must lie in [0, 1] (spikes per step per neuron)")
        graph.ops = [op for op in graph.ops if op.KIND != "hw.route"]
        m = mapping_of(graph, chip)
        if not m.placed:
            raise NmcError(f"graph @{graph.name} has cores but no placement", hint="run mc-place before mc-route")
        rates = m.net.rates(self.rate)
        routes = []
        for v, dests, tree in zip(m.vertices(), m.destinations(), m.trees()):
            if dests:
                routes.append(Route(src=v.core, dests=tuple(dests), load=round(float(rates[v.sources].sum()), 6),
                                    links=sum(len(ch) for ch, _ in tree.values())))
        hw_insert(graph, routes)
        tables = m.tables()
        compressed = m.compressed_tables()
        before = int(tables.sizes().max(initial=0))
        after = int(compressed.sizes().max(initial=0))
        capacity = chip.links.packets_per_s * chip.core.step_s
        loads = m.link_loads(rates)
        over = {k: v for k, v in loads.items() if v > capacity}
        if over:
            (c, link), load = max(over.items(), key=lambda kv: kv[1])
            from nmc.targets.multicast.table import LINKS

            raise NmcError(f"link {LINKS[link]} of chip {c} carries {load:.6g} packets per step; its capacity is "
                           f"{capacity:.6g} (over by {load - capacity:.6g}); {len(over)} link(s) over capacity",
                           hint="a larger board, lower firing rates, or fewer neurons per layer")
        cycles = estimated_cycles(m, rates)
        budget = chip.core.clock_hz * chip.core.step_s
        peak = float(max(loads.values(), default=0.0))
        graph.meta["hw.max_link_load"] = round(peak, 6)
        graph.meta["hw.rate"] = float(self.rate)
        graph.meta["hw.table_entries"] = after
        graph.meta["hw.step_cycles"] = round(float(cycles.max()) if len(cycles) else 0.0, 3)
        ctx.stat("vertices", len(m.vertices()))
        ctx.stat("entries", len(tables.key))
        ctx.stat("entries-compressed", len(compressed.key))
        ctx.remark(f"{len(m.vertices())} key ranges; router tables: {len(tables.key)} entries "
                   f"on {len(tables)} chip(s), {len(compressed.key)} after compression "
                   f"(fullest {before} -> {after} of {chip.router.entries})")
        if len(cycles) and cycles.max() > budget:
            k = int(np.argmax(cycles))
            ctx.remark(f"core {k} cannot keep real time: about {cycles[k]:.6g} cycles per step at the assumed rates, "
                       f"the budget is {budget:.6g} ({chip.core.step_s * 1e3:g} ms at {chip.core.clock_hz / 1e6:g} MHz)")
        else:
            ctx.remark(f"keeps real time on average: the busiest core needs about {cycles.max() if len(cycles) else 0:.6g} "
                       f"of {budget:.6g} cycles per step at the assumed mean rates (a step with more spikes may "
                       f"not; nmc run reports the busiest)")
        return True

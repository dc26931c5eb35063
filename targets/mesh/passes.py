"""The mesh class's mapping passes: ``partition``, ``place`` and ``route`` (docs/mesh-target.md).

* ``partition`` cuts every population into runs and packs them onto cores
  (:func:`nmc.targets.mapping.partition.partition`), then checks the board has enough cores.
* ``place`` puts the cores on the board's mesh of chips.  Objective: Σ over core pairs of
  (spikes per step from one to the other) × (hops between their slots), an inter-chip hop
  weighing ``chip_hop_j / spike_hop_j`` on-chip hops and the host's input port sitting west of
  board core (0, 0).  Rates are the graph's calibration statistics when populations carry them
  (``calib.rate``), else uniform.  A constructive start — cores in id order (populations in
  graph order) along a serpentine over the chips and over each chip's cores, so consecutive
  layers sit side by side — then annealing (:func:`nmc.targets.mapping.anneal.anneal`), moves
  "near" a partner landing on the board cells around it.  The naive placement (cores in id
  order filling chip after chip, row by row) is reported for comparison.
* ``route``: dimension-order multicast routes between the placed cores, and link loads.  Each
  source neuron's spikes go to the cores that hold its targets.  Sources of one core (or of the
  host's input port) that reach the same set of cores share one multicast tree: the union of
  the X-then-Y paths from the source core to each destination (the host port enters west of
  board core (0, 0)).  A link's load is Σ, over the trees that use it, of the spikes per step
  their sources send (rates as in ``place``; ``rate`` when the graph carries no calibration).
  On-chip links hold ``noc.link_capacity`` spikes per step, links between chips
  ``noc.chip_link_capacity`` (the host's input link is not limited by the description: its
  load is reported only); a link over capacity is an error naming it.
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
from nmc.targets.mapping.partition import CoreLimits, partition
from nmc.targets.mesh.board import Board
from nmc.targets.mesh.mapping import Mapping, placement_cost, remember_pairs

DEFAULT_RATE = 0.25
BOARD_HINT = ("use a larger board (more chips: chips_x/chips_y), fewer channels or neurons in the layer, "
              "or fewer weight bits (quantize{weight-bits=N})")


def mesh_chip(ctx: PassContext, name: str):
    """The target chip of a mapping pass, required to be of this class."""
    return class_target(ctx, name, "mesh", "mesh")


def core_limits(chip) -> CoreLimits:
    c = chip.core
    return CoreLimits(neurons=c.neurons, input_axons=c.input_axons, output_axons=c.output_axons,
                      synapse_memory_bits=c.synapse_memory_bits, shared_weights=c.shared_weights,
                      fanin=chip.fanin.mechanism, partial_bits=chip.fanin.partial_bits)


@register_pass("partition")
class Partition(Pass):
    """Cut every population into runs and pack them onto the cores of the target mesh chip
    (:mod:`nmc.targets.mapping.partition`).

    Requires: ``ctx.target`` a mesh-class chip; an integer snn graph whose state widths, reset
    modes, weight bits and exponents the chip holds.  Ensures: one ``hw.core`` per core (ids
    0.., in graph order of their first population) before ``ann.output``, every neuron on
    exactly one core, every core within the chip's four limits, no more cores than the board
    has; earlier hw ops removed; the snn ops unchanged; ``meta["hw.board"]`` and
    ``meta["hw.cores_lower_bound"]`` (⌈neurons / core neurons⌉ or ⌈synapse bits / core
    memory⌉, whichever is larger).  Fails with a diagnostic naming the layer, the limit and by
    how much when something cannot fit."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mesh_chip(ctx, "partition")
        clear_hw(graph)
        plan = partition(graph, chip.formats, core_limits(chip), chip.name)
        m = chip.mesh
        available = m.cores_x * m.cores_y * m.chips_x * m.chips_y
        if len(plan["cores"]) > available:
            layers, names = plan["layers"], plan["names"]
            worst = max(layers, key=lambda p: layers[p][0])
            raise NmcError(f"the graph needs {len(plan['cores'])} cores; chip '{chip.name}' has {available} "
                           f"({m.chips_x}x{m.chips_y} chips of {m.cores_x}x{m.cores_y} cores), "
                           f"{len(plan['cores']) - available} too many; the largest layer %{names[worst]} takes "
                           f"{layers[worst][0]} cores (limited by {layers[worst][2]})", worst.loc,
                           hint=BOARD_HINT)
        hw_insert(graph, [Core(pops=[pop.result for pop, _, _ in runs], id=k,
                               slices=tuple(x for _, a, b in runs for x in (a, b)), neurons=n, axons=axons,
                               synapse_bits=bits, outputs=outs, partial=partial)
                          for k, (runs, n, axons, bits, outs, partial) in enumerate(plan["cores"])])
        remember_pairs(graph, plan["pairs"])
        graph.meta["hw.board"] = [m.cores_x, m.cores_y, m.chips_x, m.chips_y]
        graph.meta["hw.cores_lower_bound"] = plan["lower_bound"]
        ctx.stat("cores", len(plan["cores"]))
        ctx.stat("cores-lower-bound", plan["lower_bound"])
        ctx.stat("neurons", sum(core[1] for core in plan["cores"] if not core[5]))
        ctx.stat("dendrite-cores", sum(1 for core in plan["cores"] if core[5]))
        for pop, (used, own, limit) in plan["layers"].items():
            ctx.remark(f"%{plan['names'][pop]}: {used} core(s) (lower bound {own}), limited by {limit}")
        return True


def slot_distance(board: Board):
    """``distance(s, t)``: weighted hops between two slots, the host port as slot
    ``board.slots`` (as :meth:`Board.distance` and :meth:`Board.host_distance`)."""
    every = np.arange(board.slots)
    bx, by = board.xy(every)
    x, y = bx.tolist() + [0], by.tolist() + [0]  # the host enters at board core (0, 0), one hop more
    cx, cy = (bx // board.cx).tolist() + [0], (by // board.cy).tolist() + [0]
    extra = [0.0] * board.slots + [1.0]
    weight = board.chip_weight - 1.0

    def distance(s: int, t: int) -> float:
        return (abs(x[s] - x[t]) + abs(y[s] - y[t]) + weight * (abs(cx[s] - cx[t]) + abs(cy[s] - cy[t]))
                + extra[s] + extra[t])

    return distance


def near_on_board(board: Board):
    """``near(slot, k)``: the slot at offset ``(k // 3 - 1, k % 3 - 1)`` from a slot (or from
    board core (0, 0) for the host), clamped to the board."""
    every = np.arange(board.slots)
    bx, by = (v.tolist() + [0] for v in board.xy(every))  # the host at index slots: (0, 0)
    W, H = board.width, board.height

    def near(slot: int, k: int) -> int:
        return board.slot(min(max(bx[slot] + k // 3 - 1, 0), W - 1), min(max(by[slot] + k % 3 - 1, 0), H - 1))

    return near


@register_pass("place")
class Place(Pass):
    """Place the cores of a partitioned graph on the board's mesh of chips (module docstring).

    Requires: ``ctx.target`` a mesh-class chip; ``hw.core`` ops (run partition first).
    Ensures: every ``hw.core`` has ``chip`` and ``xy`` inside the board, no two on one slot;
    ``meta["hw.placement_cost"]`` ≤ the constructive start's cost and
    ``meta["hw.placement_cost_naive"]`` (spikes per step × weighted hops); deterministic for
    ``seed``.  ``iterations``: annealing moves (0 keeps the constructive placement)."""

    seed: int = 0
    iterations: int = 20000

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mesh_chip(ctx, "place")
        graph.ops = [op for op in graph.ops if op.KIND != "hw.route"]
        m = Mapping(graph, chip)
        rates = m.net.rates(DEFAULT_RATE)
        src, dst, load = m.traffic(rates)
        C = len(m.cores)
        naive = np.arange(C, dtype=np.int64)
        start = m.board.serpentine()[:C]
        cost_of = lambda s: placement_cost(m.board, src, dst, load, s)  # noqa: E731
        if cost_of(naive) < cost_of(start):
            start = naive
        slots = start.copy()
        if self.iterations > 0 and C and len(load):
            slots = anneal(slot_distance(m.board), near_on_board(m.board), m.board.slots, src, dst, load, start,
                           self.iterations, self.seed)
        if cost_of(slots) > cost_of(start):
            slots = start
        bx, by = m.board.xy(slots)
        placed = {id(core): core.with_changes(chip=(x // m.board.cx, y // m.board.cy), xy=(x % m.board.cx, y % m.board.cy))
                  for core, x, y in zip(m.cores, bx.tolist(), by.tolist())}
        graph.ops = [placed.get(id(op), op) for op in graph.ops]
        cost, naive_cost = cost_of(slots), cost_of(naive)
        graph.meta["hw.placement_cost"] = round(cost, 6)
        graph.meta["hw.placement_cost_naive"] = round(naive_cost, 6)
        ctx.stat("cost", int(round(cost)))
        ctx.stat("cost-naive", int(round(naive_cost)))
        ctx.remark(f"placement cost {cost:.6g} spike-hops per step (naive {naive_cost:.6g}, "
                   f"{(1 - cost / naive_cost) * 100 if naive_cost else 0:.1f}% less)")
        return True


@register_pass("route")
class RoutePass(Pass):
    """Route the spikes of a placed graph (module docstring).

    Requires: ``ctx.target`` a mesh-class chip; placed ``hw.core`` ops (partition, place).
    Ensures: one ``hw.route`` per (source core or host, destination set) with its destination
    cores, load (spikes per step) and tree size in links; earlier routes replaced;
    ``meta["hw.max_link_load"]`` and ``meta["hw.rate"]``; every link within its capacity, or
    an error naming the link, its load and its capacity.  ``rate``: assumed spikes per step
    per neuron where the graph has no calibration statistics."""

    rate: float = 0.25

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mesh_chip(ctx, "route")
        if not 0.0 <= self.rate <= 1.0:
            raise NmcError(f"route: rate={self.rate} must lie in [0, 1] (spikes per step per neuron)")
        graph.ops = [op for op in graph.ops if op.KIND != "hw.route"]
        m = Mapping(graph, chip)
        if not m.placed:
            raise NmcError(f"graph @{graph.name} has cores but no placement", hint="run place before route")
        rates = m.net.rates(self.rate)
        r = m.routes(rates)
        group_rate = np.bincount(r.group_of[r.group_of >= 0], weights=rates[r.group_of >= 0],
                                 minlength=len(r.group_core))
        dests = r.dests.tolist()
        hw_insert(graph, [Route(src=src, dests=tuple(dests[a:b]), load=round(load, 6), links=n)
                          for src, a, b, n, load in zip(r.group_core.tolist(), r.dest_start[:-1].tolist(),
                                                        r.dest_start[1:].tolist(), np.diff(r.link_start).tolist(),
                                                        group_rate.tolist())])
        capacity = r.capacity(chip)
        over = np.flatnonzero((capacity >= 0) & (r.load > capacity))
        if len(over):
            i = int(over[np.argmax(r.load[over] / capacity[over])])
            kind = ("on-chip link", "link between chips")[int(r.kind[i])]
            raise NmcError(f"{kind} {r.link_name(i)} carries {r.load[i]:.6g} spikes per step; its capacity is "
                           f"{int(capacity[i])} (over by {r.load[i] - capacity[i]:.6g}); {len(over)} link(s) over capacity",
                           hint="use a larger board or a chip with faster links, lower firing rates, or fewer neurons per layer")
        peak = float(r.load.max()) if len(r.load) else 0.0
        graph.meta["hw.max_link_load"] = round(peak, 6)
        graph.meta["hw.rate"] = float(self.rate)
        ctx.stat("routes", len(r.group_core))
        ctx.stat("links", len(r.ends))
        ctx.stat("inter-chip-links", int(np.sum(r.kind == 1)))
        if len(r.load):
            i = int(np.argmax(r.load))
            limit = f"of {int(capacity[i])}" if capacity[i] >= 0 else "(the host link: not limited)"
            ctx.remark(f"busiest link {r.link_name(i)}: {peak:.6g} spikes per step {limit}")
        return True

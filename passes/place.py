"""``place``: put the cores of a partitioned graph onto the board's mesh of chips.

Objective: Σ over core pairs of (spikes per step from one to the other) × (hops between their
slots), an inter-chip hop weighing ``chip_hop_j / spike_hop_j`` on-chip hops and the host's
input port sitting west of board core (0, 0).  Rates are the graph's calibration statistics
when populations carry them (``calib.rate`` / ``calib.p``), else uniform.

Algorithm: a constructive start — cores in id order (populations in graph order) along a
serpentine over the chips and over each chip's cores, so consecutive layers sit side by side —
then simulated annealing over swaps and moves (a core to a random slot, or next to one of its
traffic partners), geometric cooling from the mean |Δcost| of random moves, keeping the best
placement seen.  Deterministic for a seed.  The naive placement (cores in id order filling
chip after chip, row by row) is reported for comparison.
"""

from __future__ import annotations

import numpy as np

from nmc.ir.core import Graph
from nmc.passes.partition import mesh_chip
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.mesh.mapping import Mapping, placement_cost

DEFAULT_RATE = 0.25


def _neighbours(n_cores: int, src: np.ndarray, dst: np.ndarray, load: np.ndarray):
    """Symmetric traffic lists per core: (partner indices, spikes per step); the host is ``n_cores``."""
    a = np.where(src < 0, n_cores, src)
    both = np.concatenate([np.stack([a, dst], 1), np.stack([dst, a], 1)])
    w = np.concatenate([load, load])
    keep = both[:, 0] < n_cores
    both, w = both[keep], w[keep]
    order = np.argsort(both[:, 0], kind="stable")
    both, w = both[order], w[order]
    starts = np.searchsorted(both[:, 0], np.arange(n_cores + 1))
    return [(both[starts[i]:starts[i + 1], 1], w[starts[i]:starts[i + 1]]) for i in range(n_cores)]


def anneal(m: Mapping, src, dst, load, start: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """Simulated annealing from ``start`` (slots of the cores); returns the best slots found."""
    board, C = m.board, len(start)
    S = board.slots
    if iterations <= 0 or C == 0 or not len(load):
        return start.copy()
    every = np.arange(S)
    D = np.empty((S + 1, S + 1))
    D[:S, :S] = board.distance(every[:, None], every[None, :])
    D[S, :S] = D[:S, S] = board.host_distance(every)
    D[S, S] = 0.0
    nbrs = _neighbours(C, src, dst, load)
    slot = np.append(start, S).astype(np.int64)  # slot[C]: the host, fixed
    occupant = np.full(S, -1, np.int64)
    occupant[start] = np.arange(C)
    rng = np.random.default_rng(seed)

    def delta(a: int, target: int) -> tuple[float, int]:
        b = occupant[target]
        sa = slot[a]
        na, wa = nbrs[a]
        keep = na != b
        d = float(np.dot(wa[keep], D[target, slot[na[keep]]] - D[sa, slot[na[keep]]]))
        if b >= 0:
            nb, wb = nbrs[b]
            keep = nb != a
            d += float(np.dot(wb[keep], D[sa, slot[nb[keep]]] - D[target, slot[nb[keep]]]))
        return d, b

    def propose() -> tuple[int, int]:
        a = int(rng.integers(C))
        na = nbrs[a][0]
        if len(na) and rng.random() < 0.5:
            partner = slot[na[rng.integers(len(na))]]
            if partner == S:
                bx, by = 0, 0
            else:
                bx, by = board.xy(partner)
            x = int(np.clip(bx + rng.integers(-1, 2), 0, board.width - 1))
            y = int(np.clip(by + rng.integers(-1, 2), 0, board.height - 1))
            return a, board.slot(x, y)
        return a, int(rng.integers(S))

    samples = [abs(delta(*propose())[0]) for _ in range(min(200, 10 * C))]
    t0 = float(np.mean(samples)) or 1.0
    cooling = (1e-3) ** (1.0 / iterations)
    temp, cost, best_cost, best = t0, 0.0, 0.0, slot.copy()
    for _ in range(iterations):
        a, target = propose()
        if target == slot[a]:
            temp *= cooling
            continue
        d, b = delta(a, target)
        if d <= 0 or rng.random() < np.exp(-d / temp):
            sa = slot[a]
            slot[a], occupant[target] = target, a
            occupant[sa] = b
            if b >= 0:
                slot[b] = sa
            cost += d
            if cost < best_cost - 1e-12:
                best_cost, best = cost, slot.copy()
        temp *= cooling
    return best[:C]


@register_pass("place")
class Place(Pass):
    """Place the cores of a partitioned graph on the board (module docstring).

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
        slots = anneal(m, src, dst, load, start, self.iterations, self.seed)
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

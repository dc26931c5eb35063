"""Placement by simulated annealing: cores onto slots, minimising Σ traffic × distance.

The cost of a placement is Σ over core pairs (and the host) of (spikes per step between them)
× (distance between their slots).  :func:`anneal` improves a start placement by swaps and moves
(a core to a random slot, or near one of its traffic partners), geometric cooling from the
mean |Δcost| of random moves, keeping the best placement seen; deterministic for a seed.  The
chip class supplies the distance between two slots and what "near a slot" means; distances
are computed per move (no slots × slots table), and the random numbers are drawn in one batch,
so a move costs O(traffic partners of the cores it moves).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _neighbours(n_cores: int, src: np.ndarray, dst: np.ndarray, load: np.ndarray) -> list[list[tuple[int, float]]]:
    """Symmetric traffic lists per core: (partner index, spikes per step); the host is ``n_cores``."""
    a = np.where(src < 0, n_cores, src)
    both = np.concatenate([np.stack([a, dst], 1), np.stack([dst, a], 1)])
    w = np.concatenate([load, load])
    keep = both[:, 0] < n_cores
    both, w = both[keep], w[keep]
    order = np.argsort(both[:, 0], kind="stable")
    both, w = both[order], w[order]
    starts = np.searchsorted(both[:, 0], np.arange(n_cores + 1)).tolist()
    partners, weights = both[:, 1].tolist(), w.tolist()
    return [list(zip(partners[starts[i]:starts[i + 1]], weights[starts[i]:starts[i + 1]])) for i in range(n_cores)]


def anneal(distance: Callable[[int, int], float], near: Callable[[int, int], int], n_slots: int, src, dst, load,
           start: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """Simulated annealing from ``start`` (slots of the cores); returns the best slots found.

    ``distance(s, t)``: the distance between slots ``s`` and ``t`` of ``n_slots`` (the host is
    slot ``n_slots``); ``near(slot, k)``: the ``k``-th (0..8) slot around ``slot`` (or around
    the host's entry for ``n_slots``); traffic ``load[i]`` spikes per step from core ``src[i]``
    (``-1``: the host) to core ``dst[i]``."""
    C, S = len(start), n_slots
    if iterations <= 0 or C == 0 or not len(load):
        return np.asarray(start, np.int64).copy()
    nbrs = _neighbours(C, np.asarray(src), np.asarray(dst), np.asarray(load))
    slot = [int(s) for s in start] + [S]  # slot[C]: the host, fixed
    occupant = [-1] * S
    for k, s in enumerate(slot[:C]):
        occupant[s] = k
    rng = np.random.default_rng(seed)

    def delta(a: int, target: int) -> tuple[float, int]:
        b = occupant[target]
        sa = slot[a]
        d = 0.0
        for p, w in nbrs[a]:
            if p != b:
                sp = slot[p]
                d += w * (distance(target, sp) - distance(sa, sp))
        if b >= 0:
            for p, w in nbrs[b]:
                if p != a:
                    sp = slot[p]
                    d += w * (distance(sa, sp) - distance(target, sp))
        return d, b

    def propose(u) -> tuple[int, int]:
        a = int(u[0] * C)
        na = nbrs[a]
        if na and u[1] < 0.5:
            return a, near(slot[na[int(u[2] * len(na))][0]], int(u[3] * 9))
        return a, int(u[4] * S)

    warm = rng.random((min(200, 10 * C), 5)).tolist()
    t0 = float(np.mean([abs(delta(*propose(u))[0]) for u in warm])) or 1.0
    cooling = (1e-3) ** (1.0 / iterations)
    temp, cost, best_cost, best_at = t0, 0.0, 0.0, 0
    moves = []  # (a, target) of every accepted move, replayed up to the best one at the end
    for u in rng.random((iterations, 6)).tolist():
        a, target = propose(u)
        if target == slot[a]:
            temp *= cooling
            continue
        d, b = delta(a, target)
        if d <= 0 or u[5] < math.exp(-d / temp):
            sa = slot[a]
            slot[a], occupant[target], occupant[sa] = target, a, b
            if b >= 0:
                slot[b] = sa
            moves.append((a, target))
            cost += d
            if cost < best_cost - 1e-12:
                best_cost, best_at = cost, len(moves)
        temp *= cooling
    slot = [int(s) for s in start]
    occupant = [-1] * S
    for k, s in enumerate(slot):
        occupant[s] = k
    for a, target in moves[:best_at]:
        b, sa = occupant[target], slot[a]
        slot[a], occupant[target], occupant[sa] = target, a, b
        if b >= 0:
            slot[b] = sa
    return np.asarray(slot, np.int64)

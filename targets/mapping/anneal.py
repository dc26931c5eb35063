"""Placement by simulated annealing: cores onto slots, minimising Σ traffic × distance.

The cost of a placement is Σ over core pairs (and the host) of (spikes per step between them)
× (distance between their slots).  :func:`anneal` improves a start placement by swaps and moves
(a core to a random slot, or near one of its traffic partners), geometric cooling from the
mean |Δcost| of random moves, keeping the best placement seen; deterministic for a seed.  The
chip class supplies the distances and what "near a slot" means.
"""

from __future__ import annotations

import numpy as np

from collections.abc import Callable


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


def anneal(D: np.ndarray, near: Callable[[int, np.random.Generator], int], src, dst, load, start: np.ndarray,
           iterations: int, seed: int) -> np.ndarray:
    """Simulated annealing from ``start`` (slots of the cores); returns the best slots found.

    ``D``: ``[S + 1, S + 1]`` distances between the ``S`` slots, the host at index ``S``;
    ``near(slot, rng)``: a random slot near ``slot`` (or near the host for ``S``); traffic
    ``load[i]`` spikes per step from core ``src[i]`` (``-1``: the host) to core ``dst[i]``."""
    C, S = len(start), len(D) - 1
    if iterations <= 0 or C == 0 or not len(load):
        return start.copy()
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
            return a, near(int(slot[na[rng.integers(len(na))]]), rng)
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

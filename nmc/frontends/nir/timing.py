"""Time alignment with NIR, shared by the importer and the exporter: which projection of a loop
is the recurrent one, and the initial voltage that puts a population that runs behind NIR time
at rest when NIR time begins."""

from __future__ import annotations

import networkx as nx
import numpy as np

from nmc.ir.snn import DECAY_ONE


def back_edges(g: nx.DiGraph, roots: list, key) -> set:
    """The edges a depth-first search closes a cycle with, starting from ``roots`` then every
    other node, successors in ``key`` order — deterministic, so import and export agree on
    which projection of a loop is the recurrent one."""
    back, state = set(), {}
    for root in list(roots) + sorted(g.nodes, key=key):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(g.successors(root), key=key)))]
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.successors(nxt), key=key))))
    return back


def warm_up_v0(bias: np.ndarray, dv: np.ndarray, steps: int) -> np.ndarray:
    """``v0`` such that ``v ← (1 − dv/4096)·v + bias`` reaches exactly 0 after ``steps`` steps
    (0 where there is nothing to undo: no steps, no bias, or no memory, dv = 4096)."""
    keep = 1 - np.asarray(dv, dtype=np.float64) / DECAY_ONE
    bias = np.asarray(bias, dtype=np.float64)
    if steps == 0:
        return np.zeros(np.broadcast_shapes(bias.shape, keep.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        drift = np.where(keep == 1, steps * bias, bias * (1 - keep**steps) / np.where(keep == 1, 0.5, 1 - keep))
        v0 = np.where(keep == 0, 0.0, -drift / np.where(keep == 0, 1.0, keep**steps))
    return np.where(bias == 0, 0.0, v0)


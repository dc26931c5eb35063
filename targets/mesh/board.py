"""The mesh class's board: the cores of all chips on one grid, distances, dimension-order paths."""

from __future__ import annotations

import networkx as nx
import numpy as np


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

    # a directed link is keyed by its start cell (x from -1, the host's column) and direction
    # (0 west, 1 south, 2 north, 3 east): keys sort as the links' ((x0, y0), (x1, y1)) tuples
    STEPS = ((-1, 0), (0, -1), (0, 1), (1, 0))

    def link_key(self, x: np.ndarray, y: np.ndarray, direction: int) -> np.ndarray:
        return ((np.asarray(x) + 1) * self.height + np.asarray(y)) * 4 + direction

    def link_ends(self, key: np.ndarray) -> np.ndarray:
        """``[L, 4]`` (x0, y0, x1, y1) of link keys."""
        cell, direction = np.divmod(np.asarray(key, np.int64), 4)
        x, y = np.divmod(cell, self.height)
        x = x - 1
        step = np.asarray(self.STEPS, np.int64)[direction]
        return np.stack([x, y, x + step[:, 0], y + step[:, 1]], axis=1).reshape(-1, 4)

    def xy_trees(self, sx, sy, dest_start, dx, dy, chunk: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
        """Multicast trees, each the union of the X-then-Y paths from its source ``(sx[t],
        sy[t])`` to its destinations ``(dx, dy)[dest_start[t]:dest_start[t + 1]]``: the source's
        row out to the westmost and eastmost destination columns, then in each destination
        column from the source's row to its lowest and highest destination.  Returns
        ``(link_start, keys)``: tree ``t``'s link keys, ascending and each link once, are
        ``keys[link_start[t]:link_start[t + 1]]`` (int32 while the keys fit).

        Memory O(trees + destinations) beside ``keys``: the trees are straight runs (two along
        the source's row, two per destination column), whose links are disjoint (they differ in
        cell or direction), so each tree's size is known before any link is listed, and the
        runs are expanded into ``keys`` a range of trees of about ``chunk`` links at a time."""
        sx, sy, dx, dy = (np.asarray(a, np.int64) for a in (sx, sy, dx, dy))
        dest_start = np.asarray(dest_start, np.int64)
        n = len(sx)
        count = np.diff(dest_start)
        full = np.flatnonzero(count > 0)
        lo, hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
        if len(full):
            lo[full] = np.minimum.reduceat(dx, dest_start[:-1][full])
            hi[full] = np.maximum.reduceat(dx, dest_start[:-1][full])
        tree = np.repeat(np.arange(n, dtype=np.int64), count)
        # per (tree, destination column): the lowest and highest destination row
        order = np.lexsort((dx, tree))
        t, x, y = tree[order], dx[order], dy[order]
        first = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (x[1:] != x[:-1])]) if len(t) else t
        top = np.maximum.reduceat(y, first) if len(t) else t
        bottom = np.minimum.reduceat(y, first) if len(t) else t
        t, x = t[first], x[first]
        runs = _Runs(np.concatenate([full, full, t, t]),
                     np.concatenate([sx[full], sx[full], x, x]), np.concatenate([sy[full], sy[full], sy[t], sy[t]]),
                     np.concatenate([hi[full] - sx[full], sx[full] - lo[full], top - sy[t], sy[t] - bottom]),
                     np.repeat(np.array([3, 0, 2, 1], np.int64), [len(full), len(full), len(t), len(t)]))
        link_start = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(runs.tree, weights=runs.count, minlength=n).astype(np.int64), out=link_start[1:])
        span = 4 * (self.width + 1) * self.height
        keys = np.empty(int(link_start[-1]), np.int32 if span <= 2**31 else np.int64)
        for t0, t1 in tree_chunks(link_start, chunk):
            local = runs.expand(t0, t1, self)  # (tree - t0) · span + key
            local.sort()
            np.remainder(local, span, out=local)
            keys[link_start[t0]:link_start[t1]] = local
        return link_start, keys

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


def tree_chunks(link_start: np.ndarray, chunk: int):
    """``(t0, t1)`` ranges of consecutive trees of about ``chunk`` links each (a larger tree
    alone), covering every tree in order."""
    n, t0 = len(link_start) - 1, 0
    while t0 < n:
        t1 = int(np.searchsorted(link_start, link_start[t0] + chunk, side="right")) - 1
        t1 = min(n, max(t1, t0 + 1))
        yield t0, t1
        t0 = t1


class _Runs:
    """Straight runs of links, sorted by tree: run ``i`` of tree ``tree[i]`` is ``count[i]``
    links (none if ``count[i] <= 0``) from cell ``(x[i], y[i])`` in ``direction[i]``."""

    def __init__(self, tree, x, y, count, direction):
        order = np.argsort(tree, kind="stable")
        self.tree, self.x, self.y, self.direction = tree[order], x[order], y[order], direction[order]
        self.count = np.maximum(count[order], 0)

    def expand(self, t0: int, t1: int, board: Board) -> np.ndarray:
        """``(tree - t0) · span + link key`` of every link of trees ``t0 .. t1 - 1`` (int64)."""
        a, b = np.searchsorted(self.tree, [t0, t1])
        count = self.count[a:b]
        start = np.cumsum(count) - count
        run = np.repeat(np.arange(b - a), count)
        k = np.arange(len(run), dtype=np.int64) - start[run]
        direction = self.direction[a:b][run]
        step = np.asarray(board.STEPS, np.int64)[direction]
        x = self.x[a:b][run] + k * step[:, 0]
        y = self.y[a:b][run] + k * step[:, 1]
        span = 4 * (board.width + 1) * board.height
        return (self.tree[a:b][run] - t0) * span + board.link_key(x, y, direction)

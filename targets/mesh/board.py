"""The mesh class's board: the cores of all chips on one grid, distances, dimension-order paths."""

from __future__ import annotations

import networkx as nx
import numpy as np

from nmc.targets.mapping.netlist import distinct

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

    def xy_trees(self, sx, sy, dest_start, dx, dy) -> tuple[np.ndarray, np.ndarray]:
        """Multicast trees, each the union of the X-then-Y paths from its source ``(sx[t],
        sy[t])`` to its destinations ``(dx, dy)[dest_start[t]:dest_start[t + 1]]``: the source's
        row out to the westmost and eastmost destination columns, then in each destination
        column from the source's row to its lowest and highest destination.  Returns
        ``(tree, link key)``, sorted by tree then key, each link once per tree."""
        sx, sy, dx, dy = (np.asarray(a, np.int64) for a in (sx, sy, dx, dy))
        count = np.diff(dest_start)
        tree = np.repeat(np.arange(len(sx), dtype=np.int64), count)
        full = np.flatnonzero(count > 0)
        lo, hi = np.zeros(len(sx), np.int64), np.zeros(len(sx), np.int64)
        if len(full):
            lo[full] = np.minimum.reduceat(dx, dest_start[:-1][full])
            hi[full] = np.maximum.reduceat(dx, dest_start[:-1][full])
        parts = [_segments(full, sx[full], sy[full], 0, hi[full] - sx[full], 3, self),
                 _segments(full, sx[full], sy[full], 0, sx[full] - lo[full], 0, self)]
        if len(tree):  # per (tree, destination column): the lowest and highest destination row
            order = np.lexsort((dx, tree))
            t, x, y = tree[order], dx[order], dy[order]
            first = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (x[1:] != x[:-1])])
            top, bottom = np.maximum.reduceat(y, first), np.minimum.reduceat(y, first)
            t, x = t[first], x[first]
            parts += [_segments(t, x, sy[t], 1, top - sy[t], 2, self),
                      _segments(t, x, sy[t], 1, sy[t] - bottom, 1, self)]
        span = 4 * (self.width + 1) * self.height
        both = distinct(np.concatenate([t * span + k for t, k in parts]))
        return both // span, both % span

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


def _segments(tree, x, y, axis: int, count, direction: int, board: Board) -> tuple[np.ndarray, np.ndarray]:
    """``(tree, link key)`` of straight runs: ``count[i]`` links from cell ``(x[i], y[i])``
    in ``direction``, which moves along ``axis`` (0: x, 1: y)."""
    count = np.maximum(count, 0)
    k = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    step = board.STEPS[direction][axis]
    x, y = np.repeat(x, count), np.repeat(y, count)
    if axis == 0:
        x = x + k * step
    else:
        y = y + k * step
    return np.repeat(tree, count), board.link_key(x, y, direction)

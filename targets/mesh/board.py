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

    def xy_tree(self, a: tuple[int, int], dests: list[tuple[int, int]]) -> set:
        """The union of the X-then-Y paths from ``a`` to every destination, built directly: the
        row of ``a`` out to the westmost and eastmost destination columns, then in each
        destination column from ``a``'s row to its lowest and highest destination."""
        sx, sy = a
        xs = [d[0] for d in dests]
        links = set()
        for x in range(sx, max(xs)):
            links.add(((x, sy), (x + 1, sy)))
        for x in range(sx, min(xs), -1):
            links.add(((x, sy), (x - 1, sy)))
        columns: dict[int, list[int]] = {}
        for x, y in dests:
            columns.setdefault(x, []).append(y)
        for x, ys in columns.items():
            for y in range(sy, max(ys)):
                links.add(((x, y), (x, y + 1)))
            for y in range(sy, min(ys), -1):
                links.add(((x, y), (x, y - 1)))
        return links

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

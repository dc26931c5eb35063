"""The chips of a multicast board and the six links between them (docs/multicast-target.md).

Link ``i`` (:data:`~nmc.targets.multicast.table.LINKS`: E, NE, N, W, SW, S) of chip ``(x, y)``
leads to ``(x + dx, y + dy)`` with the offsets below — SpiNNaker's triangular mesh, in which
a chip's neighbours are its east/west, north/south and north-east/south-west ones.  A link
leads nowhere when the neighbour is not on the board (unless the board wraps round).
"""

from __future__ import annotations

from functools import cached_property

import networkx as nx

from nmc.targets.multicast.table import N_LINKS

OFFSETS = ((1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1))
# x range of each row y of a SpiNN-5 board (spinn_machine's 48-chip layout)
SPINN5_ROWS = ((0, 4), (0, 5), (0, 6), (0, 7), (1, 7), (2, 7), (3, 7), (4, 7))


class Board:
    """The chips of a description's ``[board]`` in a fixed order (row by row), each with its
    index; ``neighbour(chip, link)``; ``graph`` (networkx, one edge per link, attribute
    ``link``); ``distances`` (hops between every two chips)."""

    def __init__(self, chip):
        b = chip.board
        self.width, self.height, self.wrap = b.chips_x, b.chips_y, b.wrap
        if b.layout == "spinn5":
            self.chips = [(x, y) for y, (lo, hi) in enumerate(SPINN5_ROWS) for x in range(lo, hi + 1)]
        else:
            self.chips = [(x, y) for y in range(b.chips_y) for x in range(b.chips_x)]
        self.index = {c: i for i, c in enumerate(self.chips)}
        self.processors = chip.core.app_processors

    def neighbour(self, xy: tuple[int, int], link: int) -> tuple[int, int] | None:
        dx, dy = OFFSETS[link]
        x, y = xy[0] + dx, xy[1] + dy
        if self.wrap:
            x, y = x % self.width, y % self.height
        return (x, y) if (x, y) in self.index else None

    @cached_property
    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.chips)
        for c in self.chips:
            for link in range(N_LINKS):
                n = self.neighbour(c, link)
                if n is not None and n != c:
                    g.add_edge(c, n, link=link)
        return g

    def link_between(self, a: tuple[int, int], b: tuple[int, int]) -> int:
        return self.graph.edges[a, b]["link"]

    @cached_property
    def distances(self):
        """Hops between chips (index order) as a numpy array; unreachable pairs 10^6."""
        import numpy as np

        n = len(self.chips)
        D = np.full((n, n), 1e6)
        for a, lengths in nx.all_pairs_shortest_path_length(self.graph):
            for b, d in lengths.items():
                D[self.index[a], self.index[b]] = d
        return D

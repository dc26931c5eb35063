"""Router tables of a multicast machine: key/mask entries and how a router looks a key up.

A packet carries a key.  A router compares it with its entries in order; the first entry with
``key & entry.mask == entry.key`` gives the route, a bit set of where copies go: bits 0–5 are
the chip's six links (:data:`LINKS`), bit ``6 + p`` is processor ``p`` of this chip.  A key
that matches no entry is *default routed*: it leaves by the link opposite the one it came in
on (and is dropped if it came from a processor of this chip, which has no opposite).

A board's tables travel as columns (:class:`RouteTables`): the mapper builds them so, the
compressor takes and returns them, the image writer stores them; :class:`RoutingEntry` is the
one-entry view that the proof (:mod:`.check`), ``lookup`` and the tests read.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np

LINKS = ("E", "NE", "N", "W", "SW", "S")
"""Link ``i`` of a chip, as SpiNNaker numbers them; link ``i`` of one chip meets link
``opposite(i)`` of its neighbour."""
N_LINKS = len(LINKS)


def opposite(link: int) -> int:
    """The link a packet leaving by ``link`` arrives on at the next chip."""
    return (link + 3) % N_LINKS


def link_bit(link: int) -> int:
    return 1 << link


def core_bit(processor: int) -> int:
    return 1 << (N_LINKS + processor)


class RoutingEntry(namedtuple("RoutingEntry", ("key", "mask", "route"))):
    """One router entry: packets with ``key & mask == key`` go to ``route``.

    ``key & ~mask`` must be zero (bits outside the mask are "don't care" in the packet and
    must be zero in the entry).  A named tuple (immutable; compared, ordered and hashed as the
    tuple ``(key, mask, route)``), so that tables of many entries are cheap to build and read.
    """

    __slots__ = ()

    def __new__(cls, key: int, mask: int, route: int):
        if key & ~mask:
            raise ValueError(f"entry key {key:#x} has bits outside its mask {mask:#x}")
        if route < 0:
            raise ValueError(f"entry route {route:#x} is negative")
        return tuple.__new__(cls, (key, mask, route))

    def matches(self, key: int) -> bool:
        return key & self.mask == self.key


def lookup(entries, key: int) -> int | None:
    """The route of the first entry matching ``key``, or ``None`` (default routing applies)."""
    for entry in entries:
        if key & entry.mask == entry.key:
            return entry.route
    return None


def _derived_entries(keys, masks, routes) -> list[RoutingEntry]:
    """``[RoutingEntry(k, m, r) for ...]`` of numbers already checked, without a Python call
    per entry."""
    return list(map(tuple.__new__, repeat(RoutingEntry), zip(keys, masks, routes)))


def ranges(lo: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, rows)``: the ranges ``lo[i] .. lo[i] + counts[i] - 1`` one after the other
    (``rows``, int64) and where each starts in ``rows`` (``start``, ``len(lo) + 1``)."""
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return start, np.repeat(lo - start[:-1], counts) + np.arange(start[-1], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class RouteTables:
    """Several routers' tables as columns: table ``t`` is rows ``start[t]`` to ``start[t+1]``
    (first match wins) of ``key`` and ``mask`` (uint64) and ``route`` (int64: an index into
    ``routes``, the distinct route words in ascending order, so route ids compare as the words
    do, and a route of any width is one number), with ``defaultable`` (bool, one per row: the
    entry's packets arrive by one link and leave by the opposite one only; ``None`` for a
    compressed table) and ``chips`` (a label per table, e.g. its chip's ``(x, y)``).

    The arrays are shared, not copied: treat them as read-only.  Every key has no bits outside
    its mask (the producers keep that: the mapper by construction, :meth:`from_entries` by
    :class:`RoutingEntry`'s checks, compression by its merges)."""

    start: np.ndarray
    key: np.ndarray
    mask: np.ndarray
    route: np.ndarray
    routes: tuple
    defaultable: np.ndarray | None = None
    chips: tuple = ()

    def __len__(self) -> int:
        return len(self.start) - 1

    def sizes(self) -> np.ndarray:
        """Entries of each table."""
        return np.subtract(self.start[1:], self.start[:-1])

    def entries(self, t: int) -> list[RoutingEntry]:
        """Table ``t`` as :class:`RoutingEntry` views (route words, not ids)."""
        a, b = int(self.start[t]), int(self.start[t + 1])
        return _derived_entries(self.key[a:b].tolist(), self.mask[a:b].tolist(),
                                map(self.routes.__getitem__, self.route[a:b].tolist()))

    def flags(self, t: int) -> list[bool]:
        """Table ``t``'s defaultable flags."""
        return self.defaultable[self.start[t]:self.start[t + 1]].tolist()

    def take(self, tables: Sequence[int]) -> RouteTables:
        """The tables ``tables`` (indices, repeats allowed), in that order, sharing ``routes``."""
        tables = np.asarray(tables, np.int64)
        lo = self.start[:-1][tables]
        start, rows = ranges(lo, self.start[1:][tables] - lo)
        return RouteTables(start, self.key[rows], self.mask[rows], self.route[rows], self.routes,
                           None if self.defaultable is None else self.defaultable[rows],
                           tuple(self.chips[t] for t in tables.tolist()) if self.chips else ())

    @classmethod
    def from_rows(cls, sizes: Sequence[int], keys, masks, routes, defaultable=None, chips: Sequence = ()) -> RouteTables:
        """Tables of ``sizes`` entries each from the rows' columns (Python ints or arrays;
        ``routes``: route words of any width, numbered here).  ``ValueError`` for a key or
        mask of more than 64 bits."""
        words = sorted(set(routes))
        if words and words[0] < 0:
            raise ValueError(f"entry route {words[0]:#x} is negative")
        number = {r: i for i, r in enumerate(words)}
        try:
            key, mask = np.array(keys, np.uint64), np.array(masks, np.uint64)
        except OverflowError:
            width = max(map(int, chain(keys, masks))).bit_length()
            raise ValueError(f"keys of {width} bits; at most 64 are supported") from None
        start = np.concatenate([[0], np.cumsum(np.asarray(sizes, np.int64))]).astype(np.int64)
        return cls(start, key.reshape(-1), mask.reshape(-1), np.array([number[r] for r in routes], np.int64),
                   tuple(words), None if defaultable is None else np.array(defaultable, bool).reshape(-1), tuple(chips))

    @classmethod
    def from_entries(cls, tables: Sequence[tuple[Sequence[RoutingEntry], Sequence[bool]]], chips: Sequence = ()):
        """Tables given as pairs of :class:`RoutingEntry` lists and their defaultable flags
        (``ValueError`` when a pair's lengths differ, naming its chip)."""
        for t, (entries, flags) in enumerate(tables):
            if len(entries) != len(flags):
                name = chips[t] if chips else f"table {t}"
                raise ValueError(f"chip {name}: {len(entries)} entries but {len(flags)} defaultable flags")
        rows = [e for entries, _ in tables for e in entries]
        return cls.from_rows([len(e) for e, _ in tables], [e.key for e in rows], [e.mask for e in rows],
                             [e.route for e in rows], [f for _, flags in tables for f in flags], chips)

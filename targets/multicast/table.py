"""Router tables of a multicast machine: key/mask entries and how a router looks a key up.

A packet carries a key.  A router compares it with its entries in order; the first entry with
``key & entry.mask == entry.key`` gives the route, a bit set of where copies go: bits 0–5 are
the chip's six links (:data:`LINKS`), bit ``6 + p`` is processor ``p`` of this chip.  A key
that matches no entry is *default routed*: it leaves by the link opposite the one it came in
on (and is dropped if it came from a processor of this chip, which has no opposite).

Every module of the class (key allocation, tree building, compression, the image, the
emulator) speaks these types, so a table can be checked against another exactly.
"""

from __future__ import annotations

from collections import namedtuple
from itertools import repeat

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

    @classmethod
    def derived(cls, key: int, mask: int, route: int) -> RoutingEntry:
        """An entry made from checked ones by code that keeps them valid (compression's merges:
        a merged key has no bits outside its mask), without ``__new__``'s checks, which makes it
        cheaper to build; equal to ``RoutingEntry(key, mask, route)``.  Many at once:
        :func:`derived_entries`."""
        return tuple.__new__(cls, (key, mask, route))

    def matches(self, key: int) -> bool:
        return key & self.mask == self.key


def lookup(entries, key: int) -> int | None:
    """The route of the first entry matching ``key``, or ``None`` (default routing applies)."""
    for entry in entries:
        if key & entry.mask == entry.key:
            return entry.route
    return None


def derived_entries(keys, masks, routes) -> list[RoutingEntry]:
    """``[RoutingEntry.derived(k, m, r) for k, m, r in zip(keys, masks, routes)]``, built
    without a Python call per entry."""
    return list(map(tuple.__new__, repeat(RoutingEntry), zip(keys, masks, routes)))

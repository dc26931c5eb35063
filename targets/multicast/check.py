"""Proof that a compressed router table routes like the original one, and unallocated keys.

:func:`check_equivalent` enumerates every key the original table matches (per entry, all
values of its don't-care bits within ``key_bits``) and looks each one up in both tables with
first-match semantics (:func:`~.table.lookup`): a key whose original entry is defaultable must
match nothing in the compressed table (default routing) or an entry of the same route; any
other key must match an entry of the same route.  Keys no original entry matches are
*unallocated* (:func:`is_unallocated`): no packet should carry one, and a router that receives
one reports it rather than routing it by a merged entry that happens to cover it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmc.targets.multicast.table import RoutingEntry, lookup

_U = np.uint64


class RoutingMismatch(AssertionError):
    """A key the compressed table routes differently: ``key``, ``expected`` (a route, or
    ``None`` for "default routing or the same route"), ``got`` (``None``: no entry matched)."""

    def __init__(self, key: int, expected: int, defaultable: bool, got: int | None):
        self.key, self.expected, self.defaultable, self.got = key, expected, defaultable, got
        want = f"route {expected:#x}" + (" or default routing" if defaultable else "")
        have = "default routing" if got is None else f"route {got:#x}"
        super().__init__(f"key {key:#x}: the original table gives {want}, the compressed one {have}")


def is_unallocated(original: Sequence[RoutingEntry], key: int) -> bool:
    """Whether ``key`` matches no entry of the router's original (uncompressed) table."""
    return lookup(original, key) is None


def covered_keys(entry: RoutingEntry, key_bits: int) -> np.ndarray:
    """Every ``key_bits``-bit key that ``entry`` matches, ascending."""
    free = [b for b in range(key_bits) if not (entry.mask >> b) & 1]
    index = np.arange(1 << len(free), dtype=_U)
    keys = np.full(len(index), entry.key, dtype=_U)
    for j, b in enumerate(free):
        keys |= ((index >> _U(j)) & _U(1)) << _U(b)
    return keys


def _first_match(table: Sequence[RoutingEntry], candidates: list[int], keys: np.ndarray) -> np.ndarray:
    """Index into ``table`` of each key's first matching entry among ``candidates`` (which
    are in table order and include every entry that can match), or -1."""
    found = np.full(len(keys), -1, np.int64)
    for j in candidates:
        e = table[j]
        hit = (found < 0) & ((keys & _U(e.mask)) == _U(e.key))
        found[hit] = j
    return found


def _meets(a: RoutingEntry, b: RoutingEntry) -> bool:
    return a.key & b.mask == b.key & a.mask


def check_equivalent(
    original: Sequence[RoutingEntry],
    defaultable: Sequence[bool],
    compressed: Sequence[RoutingEntry],
    *,
    key_bits: int = 32,
    max_keys: int = 1 << 24,
) -> int:
    """Check every key the original table matches; return how many keys were checked.

    Raises :class:`RoutingMismatch` at the smallest wrongly routed key of the first original
    entry that has one, ``ValueError`` when the original entries match more than ``max_keys``
    keys in all (too many to enumerate) or an entry has bits beyond ``key_bits``.
    """
    if len(original) != len(defaultable):
        raise ValueError(f"{len(original)} entries but {len(defaultable)} defaultable flags")
    limit = 1 << key_bits
    if any(e.key >= limit or e.mask >= limit for e in [*original, *compressed]):
        raise ValueError(f"an entry has bits beyond the {key_bits}-bit key")
    total = sum(1 << (key_bits - e.mask.bit_count()) for e in original)
    if total > max_keys:
        raise ValueError(f"the original table matches {total} keys, more than max_keys={max_keys}")
    routes = sorted({e.route for e in [*original, *compressed]})
    rid = {r: i for i, r in enumerate(routes)}
    orig_rid = np.array([rid[e.route] for e in original], dtype=np.int64)
    comp_rid = np.array([rid[e.route] for e in compressed] + [-1], dtype=np.int64)  # [-1]: no match
    flags = np.asarray(defaultable, dtype=bool)
    for i, entry in enumerate(original):
        keys = covered_keys(entry, key_bits)
        earlier = [j for j in range(i) if _meets(original[j], entry)]
        first = _first_match(original, [*earlier, i], keys)
        got = _first_match(compressed, [j for j, c in enumerate(compressed) if _meets(c, entry)], keys)
        want, got_rid = orig_rid[first], comp_rid[got]
        bad = (got_rid != want) & ~(flags[first] & (got < 0))
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            raise RoutingMismatch(
                int(keys[k]), routes[want[k]], bool(flags[first[k]]), None if got[k] < 0 else routes[got_rid[k]]
            )
    return total

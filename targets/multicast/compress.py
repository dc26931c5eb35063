"""Routing-table compression: default-route removal, then Ordered Covering (docs/multicast-routing.md).

``compress_table(entries, defaultable, capacity, chip=...)`` returns a shorter table that routes
every key the original table routes exactly as it does (first-match :func:`~.table.lookup`
on both), where entry ``i`` is *defaultable* when its packets arrive by exactly one link and
leave by exactly the opposite one, to no processor: its keys may instead match nothing and be
default routed.  Keys that no original entry matches are unallocated and may be routed
anywhere (:func:`~.check.is_unallocated` tells a router to catch them).

The method (Mundy, Heathcote & Garside, "On-chip order-exploiting routing table minimization
for a multicast supercomputer network", HPSR 2016):

1. The table is sorted by increasing *generality* (don't-care bits of the mask); the input
   must mean the same in that order (true of any table whose overlapping entries of different
   routes are ordered most specific first, and of every orthogonal table) or ``ValueError``.
2. **Default-route removal**: a defaultable entry that no later entry of another route
   intersects is taken out of the table.  Its keys then fall off the end of the table, so
   they stay in the minimiser as constraints at the bottom: a merged entry may cover them only
   if it has their route.
3. **Ordered Covering**: repeatedly, for every route, the merge of all its entries into one
   key/mask (an ``X`` wherever they differ) is refined by the *down-check* (the merged entry,
   inserted above every entry of its generality or more, must not cover any original key/mask
   — alias — of an entry of another route below it; members are removed, choosing the bit to
   set that removes fewest, until it covers none) and the *up-check* (no entry of another route
   between a member and the insertion point may intersect the member; such members are
   removed, bottom first, and the down-check repeated); the merge removing most entries is
   applied and the merged entry keeps its members' aliases.  Entries of the merge's own route
   are never conflicts: a key they lose to the merge is routed the same way (a safe relaxation
   of the paper's checks, which test every route).  It stops when the table fits
   ``target_length`` or nothing can be merged.
4. A merged entry whose aliases are all defaultable is removed when no entry of another route
   below it intersects it.

Stopping: by default at ``capacity`` (the router's entries), so a table that fits is only
cleared of default routes; ``target_length=0`` compresses as far as the method goes.  A table
still longer than ``capacity`` raises :class:`~nmc.diagnostics.NmcError` naming the chip.

Speed: keys and masks are numpy ``uint64`` arrays (key width ≤ 64); each route's refined merge
is cached until a merge whose key/mask intersects its candidate merge is applied (no other
merge can change it), and routes are tried in decreasing size so that routes whose size cannot
beat the best merge found are skipped.  Ties go to the larger group, then the lower route id
(routes numbered in increasing value), so the result is a function of the input alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nmc.diagnostics import NmcError
from nmc.targets.multicast.table import RoutingEntry

_U = np.uint64
_SEQ = 1 << 31  # order of an entry: generality << 32 | seq, seq < 2**32
_BOTTOM = np.iinfo(np.int64).max  # the order of a removed default route: below everything
_FAR = 1 << 40  # a generality no entry has


def compress_table(
    entries: Sequence[RoutingEntry],
    defaultable: Sequence[bool],
    capacity: int,
    *,
    chip: str,
    target_length: int | None = None,
) -> list[RoutingEntry]:
    """The compressed table of one router (first match wins), at most ``capacity`` entries.

    ``target_length``: ``None`` (default) stops merging once the table fits ``capacity``;
    ``0`` merges as far as it goes; another value stops there.  Raises ``NmcError`` when the
    table cannot be brought down to ``capacity``, ``ValueError`` for an input that is not
    reorderable by generality (see the module docstring) or mismatched lengths.
    """
    if len(entries) != len(defaultable):
        raise ValueError(f"{len(entries)} entries but {len(defaultable)} defaultable flags")
    target = capacity if target_length is None else target_length
    table = _Minimiser(entries, defaultable)
    table.minimise(target)
    result = table.result()
    if len(result) > capacity:
        raise NmcError(
            f"chip {chip}: its routing table needs {len(result)} entries after compression "
            f"(from {len(entries)}) but the router has {capacity}",
            hint="use a bigger board (more chips spread the routes), fewer cores per "
            "population (fewer slices, fewer keys), or other keys (slices of a population "
            "on consecutive keys merge into fewer entries)",
        )
    return result


def _generality(masks: np.ndarray, width: int) -> np.ndarray:
    return width - np.bitwise_count(masks).astype(np.int64)


def _intersects(k1, m1, k2, m2):
    """Whether key/mask pairs share a key (numpy broadcasting)."""
    return (k1 & m2) == (k2 & m1)


def _merge(keys: np.ndarray, masks: np.ndarray) -> tuple[np.uint64, np.uint64]:
    """The key/mask with an X wherever the given ones differ or have an X."""
    all_ones = np.bitwise_and.reduce(keys)
    any_ones = np.bitwise_or.reduce(keys)
    mask = np.bitwise_and.reduce(masks) & ~(all_ones ^ any_ones)
    return all_ones & mask, mask


class _Minimiser:
    """The table being minimised: entry ``i`` (original ones first, sorted by generality, then
    merged ones) has ``key``, ``mask``, ``rid`` (route id), ``gen``, ``order`` (its position:
    smaller is higher) and ``alive``; alias ``a`` (one per original entry) has its key/mask,
    route, ``defaultable`` flag and its owner's ``aorder`` (``_BOTTOM`` for a removed default
    route)."""

    def __init__(self, entries: Sequence[RoutingEntry], defaultable: Sequence[bool]):
        n = len(entries)
        width = max((max(e.key, e.mask).bit_length() for e in entries), default=1) or 1
        if width > 64:
            raise ValueError(f"keys of {width} bits; at most 64 are supported")
        self.width = width
        self.routes = sorted({e.route for e in entries})
        rid_of = {r: i for i, r in enumerate(self.routes)}
        keys = np.array([e.key for e in entries], dtype=_U)
        masks = np.array([e.mask for e in entries], dtype=_U)
        rids = np.array([rid_of[e.route] for e in entries], dtype=np.int64)
        gens = _generality(masks, width)
        _check_reorderable(keys, masks, rids, gens)
        perm = np.argsort(gens, kind="stable")
        size = 2 * n + 1
        self.key = np.zeros(size, _U)
        self.mask = np.zeros(size, _U)
        self.rid = np.full(size, -1, np.int64)
        self.gen = np.full(size, _FAR, np.int64)
        self.order = np.full(size, _BOTTOM, np.int64)
        self.alive = np.zeros(size, bool)
        self.key[:n], self.mask[:n], self.rid[:n], self.gen[:n] = keys[perm], masks[perm], rids[perm], gens[perm]
        self.order[:n] = (self.gen[:n] << 32) | (_SEQ + np.arange(n))
        self.alive[:n] = True
        self.used = n
        self.merges = 0
        # aliases: alias i is original (sorted) entry i
        self.ak, self.am, self.arid = self.key[:n].copy(), self.mask[:n].copy(), self.rid[:n].copy()
        self.adef = np.asarray(defaultable, dtype=bool).reshape(n)[perm]
        self.aorder = self.order[:n].copy()
        self.aliases: list[np.ndarray] = [np.array([i]) for i in range(n)]
        self.groups: dict[int, set[int]] = {}
        for i in range(n):
            self.groups.setdefault(int(self.rid[i]), set()).add(i)
        self.cache: dict[int, tuple] = {}
        self._remove_default_routes()

    @property
    def length(self) -> int:
        return int(self.alive.sum())

    def _remove_default_routes(self) -> None:
        """Step 2: defaultable entries that no later entry of another route intersects."""
        n = len(self.adef)
        for i in np.nonzero(self.adef)[0]:
            later = np.arange(i + 1, n)
            later = later[self.rid[later] != self.rid[i]]
            if not _intersects(self.key[i], self.mask[i], self.key[later], self.mask[later]).any():
                self._drop(int(i))

    def _drop(self, i: int) -> None:
        self.alive[i] = False
        self.aorder[self.aliases[i]] = _BOTTOM
        self.groups[int(self.rid[i])].discard(i)

    def minimise(self, target: int) -> None:
        while self.length > target:
            best = None
            for size, rid in sorted((-len(g), rid) for rid, g in self.groups.items() if len(g) > 1):
                if best is not None and -size - 1 <= best[0]:
                    break
                found = self.cache.get(rid)
                if found is None:
                    found = self.cache[rid] = self._refine(rid)
                if found[0] > 0 and (best is None or found[0] > best[0]):
                    best = found
            if best is None:
                return
            self._apply(best)

    def _refine(self, rid: int) -> tuple:
        """(goodness, members, key, mask, gen, candidate key, candidate mask) of route ``rid``."""
        ids = np.fromiter(self.groups[rid], np.int64)
        ids = ids[np.argsort(self.order[ids])]
        ck, cm = _merge(self.key[ids], self.mask[ids])
        cgen = self.width - int(np.bitwise_count(cm))
        # only aliases and entries that meet the candidate merge can constrain it
        a = np.nonzero((self.arid != rid) & _intersects(self.ak, self.am, ck, cm))[0]
        e = np.nonzero(
            self.alive & (self.rid != rid) & (self.gen < cgen) & _intersects(self.key, self.mask, ck, cm)
        )[0]
        keep = np.ones(len(ids), bool)
        keep = self._downcheck(ids, keep, a)
        if keep is not None and len(e):
            keep, changed = self._upcheck(ids, keep, e)
            if changed and keep is not None:
                keep = self._downcheck(ids, keep, a)
        if keep is None or keep.sum() < 2:
            return (0, None, 0, 0, 0, ck, cm)
        members = ids[keep]
        mk, mm = _merge(self.key[members], self.mask[members])
        return (len(members) - 1, members, mk, mm, self.width - int(np.bitwise_count(mm)), ck, cm)

    def _downcheck(self, ids, keep, a):
        """Remove members until the merge covers no alias of another route below it."""
        if not len(a):
            return keep
        ak, am, aorder = self.ak[a], self.am[a], self.aorder[a]
        bits = np.arange(self.width, dtype=_U)
        while keep.sum() > 1:
            sub = ids[keep]
            mk, mm = _merge(self.key[sub], self.mask[sub])
            gen = self.width - int(np.bitwise_count(mm))
            covered = (aorder >= (gen << 32)) & _intersects(ak, am, mk, mm)
            if not covered.any():
                return keep
            settable = am[covered] & ~mm
            stringency = np.bitwise_count(settable)
            least = stringency.min()
            if least == 0:
                return None
            tight = stringency == least
            ckeys = ak[covered][tight]
            # bits where a covered key has a 0 (set the merge's bit to 1) or a 1 (set it to 0)
            to_one = int(np.bitwise_or.reduce(settable[tight] & ~ckeys))
            to_zero = int(np.bitwise_or.reduce(settable[tight] & ckeys))
            kb = ((self.key[ids][:, None] >> bits) & _U(1)).astype(bool)
            xb = ((self.mask[ids][:, None] >> bits) & _U(1)) == 0
            best = None
            for bit in range(self.width - 1, -1, -1):
                for want_one, wanted in ((True, to_one), (False, to_zero)):
                    if not (wanted >> bit) & 1:
                        continue
                    # members with an X here, or the covered key's value, must go
                    remove = keep & (xb[:, bit] | (kb[:, bit] != want_one))
                    count = int(remove.sum())
                    if best is None or count < best[0]:
                        best = (count, remove)
            keep = keep & ~best[1]
        return keep if keep.sum() > 1 else None

    def _upcheck(self, ids, keep, e):
        """Remove members (bottom first) that an entry of another route between them and the
        insertion point intersects."""
        sub = np.nonzero(keep)[0]
        mkeys, mmasks, morder = self.key[ids[sub]], self.mask[ids[sub]], self.order[ids[sub]]
        meets = _intersects(mkeys[:, None], mmasks[:, None], self.key[e][None, :], self.mask[e][None, :])
        meets &= self.order[e][None, :] > morder[:, None]
        first_gen = np.where(meets, self.gen[e][None, :], _FAR).min(axis=1)
        changed = False
        _, mm = _merge(mkeys, mmasks)
        gen = self.width - int(np.bitwise_count(mm))
        for j in range(len(sub) - 1, -1, -1):
            if first_gen[j] < gen:
                keep = keep.copy() if not changed else keep
                keep[sub[j]] = False
                changed = True
                rest = ids[keep]
                if len(rest) < 2:
                    return None, True
                _, mm = _merge(self.key[rest], self.mask[rest])
                gen = self.width - int(np.bitwise_count(mm))
        return keep, changed

    def _apply(self, merge) -> None:
        _, members, mk, mm, gen, _, _ = merge
        rid = int(self.rid[members[0]])
        new = self.used
        self.used += 1
        self.key[new], self.mask[new], self.rid[new], self.gen[new] = mk, mm, rid, gen
        self.order[new] = (gen << 32) | (_SEQ - 1 - self.merges)
        self.merges += 1
        self.alive[members] = False
        self.alive[new] = True
        self.aliases.append(np.concatenate([self.aliases[i] for i in members]))
        self.aorder[self.aliases[new]] = self.order[new]
        group = self.groups[rid]
        group.difference_update(members.tolist())
        group.add(new)
        self.cache = {
            r: c for r, c in self.cache.items() if r != rid and not _intersects(c[5], c[6], mk, mm)
        }

    def result(self) -> list[RoutingEntry]:
        """Step 4, then the table in order."""
        live = np.nonzero(self.alive)[0]
        live = live[np.argsort(self.order[live])]
        for i in live:
            if not self.adef[self.aliases[i]].all():
                continue
            below = np.nonzero(self.alive & (self.order > self.order[i]) & (self.rid != self.rid[i]))[0]
            if not _intersects(self.key[i], self.mask[i], self.key[below], self.mask[below]).any():
                self._drop(int(i))
        live = live[self.alive[live]]
        return [RoutingEntry(int(self.key[i]), int(self.mask[i]), self.routes[self.rid[i]]) for i in live]


def _check_reorderable(keys, masks, rids, gens) -> None:
    """Refuse a table whose meaning changes when sorted (stably) by generality: an entry that
    intersects a later, more specific entry of another route."""
    for g in np.unique(gens)[1:]:
        hi = np.nonzero(gens >= g)[0]  # rows: the more general entries
        lo = np.nonzero(gens < g)[0]  # columns: the more specific ones
        hi = hi[gens[hi] == g]
        clash = _intersects(keys[hi][:, None], masks[hi][:, None], keys[lo][None, :], masks[lo][None, :])
        clash &= (rids[hi][:, None] != rids[lo][None, :]) & (lo[None, :] > hi[:, None])
        if clash.any():
            i, j = np.argwhere(clash)[0]
            raise ValueError(
                f"entry {hi[i]} intersects the later, more specific entry {lo[j]} of another "
                "route: the table is not reorderable by generality"
            )

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

    ``target_length``: ``None`` (default) stops once the table fits ``capacity``; ``0``
    compresses as far as the method goes; another value stops there.  Raises ``NmcError`` when
    the table cannot be brought down to ``capacity``, ``ValueError`` for an input that is not
    reorderable by generality (see the module docstring) or mismatched lengths.
    """
    if len(entries) != len(defaultable):
        raise ValueError(f"{len(entries)} entries but {len(defaultable)} defaultable flags")
    target = capacity if target_length is None else target_length
    result = _compress(entries, defaultable, target)
    if len(result) > capacity:
        raise NmcError(
            f"chip {chip}: its routing table needs {len(result)} entries after compression "
            f"(from {len(entries)}) but the router has {capacity}",
            hint="use a bigger board (more chips spread the routes), fewer cores per "
            "population (fewer slices, fewer keys), or other keys (slices of a population "
            "on consecutive keys merge into fewer entries)",
        )
    return result


def _compress(entries, defaultable, target: int) -> list[RoutingEntry]:
    n = len(entries)
    if n == 0:
        return []
    keys = [e.key for e in entries]
    masks = [e.mask for e in entries]
    width = max(max(keys), max(masks)).bit_length() or 1
    if width > 64:
        raise ValueError(f"keys of {width} bits; at most 64 are supported")
    routes = sorted({e.route for e in entries})
    rid_of = {r: i for i, r in enumerate(routes)}
    rids = [rid_of[e.route] for e in entries]
    flags = [bool(f) for f in defaultable]
    prefix = _prefix_table(keys, masks, width)
    if prefix is not None:
        # disjoint prefixes: reorderable, and every defaultable entry is default-routable
        if n - sum(flags) <= target:
            return [e for e, f in zip(entries, flags) if not f]
        table, owner = _ortc(*prefix, rids, flags, width)
        if len(table) <= target or len({r for _, _, r in table}) == len(table):
            return [RoutingEntry(k, m, routes[r]) for k, m, r in table]
        tkeys, tmasks, trids = (np.array(c, dtype=t) for c, t in zip(zip(*table), (_U, _U, np.int64)))
        aliases = (np.array(keys, _U), np.array(masks, _U), np.array(rids, np.int64), np.array(flags), np.array(owner))
    else:
        akeys, amasks, arids = np.array(keys, _U), np.array(masks, _U), np.array(rids, np.int64)
        gens = _generality(amasks, width)
        _check_reorderable(akeys, amasks, arids, gens)
        perm = np.argsort(gens, kind="stable")
        akeys, amasks, arids, aflags = akeys[perm], amasks[perm], arids[perm], np.array(flags)[perm]
        owner = np.arange(n)
        owner[_default_routable(akeys, amasks, arids, aflags)] = -1
        if (owner >= 0).sum() <= target:
            return [entries[perm[i]] for i in np.nonzero(owner >= 0)[0]]
        tkeys, tmasks, trids = akeys, amasks, arids
        aliases = (akeys, amasks, arids, aflags, owner)
    m = _Minimiser(tkeys, tmasks, trids, aliases, width)
    m.minimise(target)
    return [RoutingEntry(k, mk, routes[r]) for k, mk, r in m.result()]


def _default_routable(keys, masks, rids, flags) -> np.ndarray:
    """Step 2: the defaultable entries that no later entry of another route intersects."""
    out = np.zeros(len(keys), bool)
    for i in np.nonzero(flags)[0]:
        later = slice(i + 1, None)
        clash = _intersects(keys[i], masks[i], keys[later], masks[later]) & (rids[later] != rids[i])
        out[i] = not clash.any()
    return out


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
    """The table being minimised: entry ``i`` (the given ones first, then merged ones) has
    ``key``, ``mask``, ``rid`` (route id), ``gen``, ``order`` (its position: smaller is
    higher) and ``alive``; alias ``a`` (an original entry) has its key/mask, route,
    ``defaultable`` flag and its owner's ``aorder`` (``_BOTTOM`` for a default-routed one)."""

    def __init__(self, keys, masks, rids, aliases, width: int):
        n = len(keys)
        self.width = width
        size = 2 * n + 1
        self.key = np.zeros(size, _U)
        self.mask = np.zeros(size, _U)
        self.rid = np.full(size, -1, np.int64)
        self.gen = np.full(size, _FAR, np.int64)
        self.order = np.full(size, _BOTTOM, np.int64)
        self.alive = np.zeros(size, bool)
        self.key[:n], self.mask[:n], self.rid[:n] = keys, masks, rids
        self.gen[:n] = _generality(self.mask[:n], width)
        self.order[:n] = (self.gen[:n] << 32) | (_SEQ + np.arange(n))
        self.alive[:n] = True
        self.used = n
        self.merges = 0
        self.ak, self.am, self.arid, self.adef, owner = aliases
        self.aorder = np.where(owner >= 0, self.order[np.maximum(owner, 0)], _BOTTOM)
        by_owner = np.argsort(owner, kind="stable")
        cuts = np.searchsorted(owner[by_owner], np.arange(n + 1))
        self.aliases: list[np.ndarray] = [by_owner[cuts[i]: cuts[i + 1]] for i in range(n)]
        self.groups: dict[int, set[int]] = {}
        for i, r in enumerate(rids.tolist()):
            self.groups.setdefault(r, set()).add(i)
        self.cache: dict[int, tuple] = {}

    @property
    def length(self) -> int:
        return int(self.alive.sum())

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

    def result(self) -> list[tuple[int, int, int]]:
        """Step 4, then the table in order: (key, mask, route id)."""
        live = np.nonzero(self.alive)[0]
        live = live[np.argsort(self.order[live])]
        for i in live:
            if not self.adef[self.aliases[i]].all():
                continue
            below = np.nonzero(self.alive & (self.order > self.order[i]) & (self.rid != self.rid[i]))[0]
            if not _intersects(self.key[i], self.mask[i], self.key[below], self.mask[below]).any():
                self._drop(int(i))
        live = live[self.alive[live]]
        return [(int(self.key[i]), int(self.mask[i]), int(self.rid[i])) for i in live]


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


def _prefix_table(keys: list[int], masks: list[int], width: int):
    """``(keys, lengths, order)`` sorted by key when every mask is a prefix (its set bits the
    top ones of ``width``) and no two entries share a key; else None."""
    full = (1 << width) - 1
    for m in masks:
        if (full ^ m) & ((full ^ m) + 1):  # the don't-care bits are not the low ones
            return None
    order = sorted(range(len(keys)), key=keys.__getitem__)
    k = [keys[i] for i in order]
    ends = [keys[i] | (full ^ masks[i]) for i in order]
    if any(k[j + 1] <= ends[j] for j in range(len(k) - 1)):
        return None
    return k, [masks[i].bit_count() for i in order], order


_NONE = -1  # "no entry matched": default routing


def _ortc(keys, lengths, order, rids, flags, width: int):
    """The fewest prefix entries that route every allocated key as the table does: ORTC
    (Draves, King, Venkatachary & Zill, "Constructing optimal IP routing tables", INFOCOM 1999)
    on the binary trie of the keys, with unallocated keys as don't-cares and defaultable keys
    satisfied by their link or by no entry at all.  A subtree's cost, given the route ``r`` it
    inherits, is ``base + (r not in S)`` (``S`` a bit set of route ids), and ``none`` when it
    inherits no route (no entry can route to "nothing", so that case is kept apart).  Trie
    chains without a branch cost nothing and are skipped: the trie's branch points are the
    Cartesian tree of the common-prefix lengths of neighbouring keys.  An entry placed at a
    branch takes the shortest prefix that covers no other branch.  Returns the table as
    (depth, key, route id) triples, most specific first, and for every original entry (indexed
    as ``rids``) the index of its first matching table entry (``-1``: none)."""
    n = len(keys)
    # node: [base, routes, none, split depth (None: leaf), left, right, leaf index]
    stack: list[list] = []
    gaps: list[int] = []
    for i in range(n):
        r = rids[order[i]]
        node = [0, 1 << r, 0 if flags[order[i]] else 1, None, None, None, i]
        gap = width - (keys[i] ^ keys[i + 1]).bit_length() if i + 1 < n else -1
        while gaps and gaps[-1] > gap:
            a = stack.pop()
            depth = gaps.pop()
            both = a[1] & node[1]
            base = a[0] + node[0]
            routes = both if both else a[1] | node[1]
            base += not both
            node = [base, routes, min(a[2] + node[2], base + 1), depth, a, node, a[6]]
        stack.append(node)
        gaps.append(gap)
    placed: list[tuple[int, int, int]] = []
    owner_sorted = [-1] * n
    todo = [(stack[0], _NONE, 0, -1)]
    while todo:
        node, inherited, top, current = todo.pop()
        base, routes, none, depth, a, b, lo = node
        if depth is None:
            if inherited != rids[order[lo]] and not (inherited == _NONE and flags[order[lo]]):
                placed.append((top, keys[lo], rids[order[lo]]))
                current = len(placed) - 1
            owner_sorted[lo] = current
            continue
        if inherited == _NONE:
            stay = a[2] + b[2]
        else:
            stay = a[0] + b[0] + (not (a[1] >> inherited) & 1) + (not (b[1] >> inherited) & 1)
        if base + 1 < stay:
            inherited = (routes & -routes).bit_length() - 1
            placed.append((top, keys[lo], inherited))
            current = len(placed) - 1
        todo.append((b, inherited, depth + 1, current))
        todo.append((a, inherited, depth + 1, current))
    rank = sorted(range(len(placed)), key=lambda j: (-placed[j][0], placed[j][1]))
    new_index = [0] * len(placed)
    for i, j in enumerate(rank):
        new_index[j] = i
    full = (1 << width) - 1
    table = []
    for j in rank:
        depth, key, r = placed[j]
        mask = full ^ ((1 << (width - depth)) - 1)
        table.append((key & mask, mask, r))
    owner = [-1] * n
    for i in range(n):
        o = owner_sorted[i]
        owner[order[i]] = -1 if o < 0 else new_index[o]
    return table, owner

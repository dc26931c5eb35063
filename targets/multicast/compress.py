"""Routing-table compression: default-route removal, route groups, ORTC and Ordered Covering
(docs/multicast-routing.md).

``compress_tables(tables, capacity, chips=...)`` returns, for each router's table (columns of
its entries and their defaultable flags, :class:`~.table.RouteTables`), a shorter table that
routes every key the original table routes exactly as it does (first-match
:func:`~.table.lookup` on both), where entry ``i`` is *defaultable* when its packets arrive by
exactly one link and leave by exactly the opposite one, to no processor: its keys may instead
match nothing and be default routed.  Keys that no original entry matches are unallocated and may be routed
anywhere (:func:`~.check.is_unallocated` tells a router to catch them).

Several methods run and the shortest table is kept (ties: the earlier below):

* **Route groups** (tables of disjoint prefixes, as the multicast class's key allocation makes
  them): one group of entries per route, rarer routes first, each group's entries merged into
  few key/masks that meet no entry of a later group and no default-routed key of another route
  (:func:`_grouped`).  Two variants (``_GROUPED``): PACMAN's ordered pair compressor followed by
  default-route removal (Heathcote's pair compressor as PACMAN 7.4 ships it, same order and
  greedy pairs, its conflict test by bisection among the sorted prefixes instead of a scan of
  every later entry, and default routes also removed when only entries of their own route
  meet them), and a variant that leaves default-routed entries out and first merges whole runs
  of a group, halving a run on its highest differing bit until its merge meets no conflict.
* **ORTC then Ordered Covering**, and **Ordered Covering alone** (any table; the only method for
  one whose entries overlap), after Mundy, Heathcote & Garside, "On-chip order-exploiting
  routing table minimization for a multicast supercomputer network", HPSR 2016:

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
     of the paper's checks, which test every route).  It stops when the table fits the target
     or nothing can be merged.
  4. A merged entry whose aliases are all defaultable is removed when no entry of another route
     below it intersects it.

  On disjoint prefixes, ORTC (Draves et al. 1999, :func:`_ortc`) first gives the fewest prefix
  entries (itself a candidate), which Ordered Covering then merges further; Ordered Covering
  also runs on the original table as rig (the paper's authors' code, in PACMAN) has it:
  defaultable entries merged like the others and removed at the end (step 4), and entries of
  the merge's own route conflicts too (``strict``) — a different greedy path that sometimes
  ends shorter.

``effort="fast"`` (the default, which the multicast class's compiler uses) runs the route
groups, ORTC, and Ordered Covering as rig has it on tables of at most ``_SMALL`` entries (steps
1-4 still for a table that is not disjoint prefixes, and everything when these leave a table
longer than ``capacity``); ``"thorough"`` also Ordered Covering on ORTC's table and steps 1-4 on
the original one, on every table.  No method runs once the table is down to its *floor*, the
number of routes of its non-defaultable entries (each needs an entry of its own); a table of as
many routes as entries and no defaultable one is returned as it is.  Stopping: by default at
``capacity`` (the router's entries), so a table that fits is only cleared of default routes;
``target_length=0`` compresses as far as the methods go.  A table still longer than
``capacity`` raises :class:`~nmc.diagnostics.NmcError` naming the chip (the first such, and
how many others).

Speed: the route groups' merge loops, ORTC's placement and Ordered Covering as rig has it run
as llvmlite-compiled kernels (:mod:`.compress_jit`; the Python loops here are their reference,
kept for the tests), and ``effort="fast"`` runs whole on every table of disjoint prefixes of
the call, from the tables' columns (:class:`~.table.RouteTables`, as the mapper builds them)
to the results' columns, in one compiled call
(:func:`~.compress_jit.compress_batch`; :func:`_compress` is its reference, and runs the
tables the kernel leaves).  The route groups look a merge's conflicts up among the prefixes that
start between its least and greatest key and the one before; a merge refused once is not tried
again (a grown merge meets whatever the smaller one met), and the conflict that refused the
last merge is tried first.  In Ordered Covering each route's refined merge is cached until a
merge whose key/mask intersects its candidate merge is applied (no other merge can change it).
nmc's Ordered Covering tries routes in decreasing size, so that routes whose size cannot beat
the best merge found are skipped (ties: the larger group, then the lower route id, routes
numbered in decreasing frequency, then value); rig's, as rig does, in the order of their first
entry in the table, the first of equally good merges kept.  The result is a function of the
input alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from operator import lt
from collections.abc import Sequence

import numpy as np

from nmc.diagnostics import NmcError
from nmc.targets.multicast.table import RouteTables

_U = np.uint64
_SEQ = 1 << 31  # order of an entry: generality << 32 | seq, seq < 2**32
_BOTTOM = np.iinfo(np.int64).max  # the order of a removed default route: below everything
_FAR = 1 << 40  # a generality no entry has


def compress_tables(
    tables: RouteTables,
    capacity: int,
    *,
    chips: Sequence[str],
    target_length: int | None = None,
    effort: str = "fast",
) -> RouteTables:
    """The compressed table of each router of ``tables`` (columns, with their defaultable
    flags: :class:`~.table.RouteTables`), as columns of the same route ids and chips, without
    flags; ``chips`` names them (for the error).  Each result has at most ``capacity`` entries.

    ``target_length``: ``None`` (default) stops once a table fits ``capacity``; ``0``
    compresses as far as the methods go; another value stops there.  ``effort``: ``"fast"``
    (default: the compiled methods, on every table in one call, see the module docstring; the
    rest on a table they leave longer than ``capacity``) or ``"thorough"`` (every method; the
    shortest result is kept).  Raises ``NmcError`` naming the (first) chip whose table cannot
    be brought down to ``capacity``, ``ValueError`` for an input that is not reorderable by
    generality (see the module docstring) or a mismatched number of chip names.
    """
    if len(chips) != len(tables):
        raise ValueError(f"{len(tables)} tables but {len(chips)} chip names")
    if effort not in ("fast", "thorough"):
        raise ValueError(f"effort {effort!r}: expected 'fast' or 'thorough'")
    target = capacity if target_length is None else target_length
    if effort == "fast":  # the whole of it in one compiled call, on the tables it can take
        out, longest, compiled = _compress_batch()(tables, target, _SMALL)
        if 0 <= longest <= capacity:
            return out
        rows = [None if not ok else (out.key[a:b], out.mask[a:b], out.route[a:b])
                for ok, a, b in zip(compiled.tolist(), out.start[:-1].tolist(), out.start[1:].tolist())]
    else:
        rows = [None] * len(tables)
    for t, done in enumerate(rows):
        if done is not None and len(done[0]) <= capacity:
            continue
        a, b = int(tables.start[t]), int(tables.start[t + 1])
        columns = (tables.key[a:b].tolist(), tables.mask[a:b].tolist(), tables.route[a:b].tolist(),
                   tables.defaultable[a:b].tolist())
        if done is None:
            done = _compress(*columns, target, thorough=effort == "thorough")
        if len(done[0]) > capacity and effort == "fast":
            done = _compress(*columns, target, thorough=True)
        rows[t] = done
    sizes = [len(k) for k, _, _ in rows]
    over = [t for t, n in enumerate(sizes) if n > capacity]
    if over:
        t = over[0]
        others = f"; {len(over) - 1} more of the {len(tables)} routers do not fit either" if len(over) > 1 else ""
        raise NmcError(
            f"chip {chips[t]}: its routing table needs {sizes[t]} entries after compression "
            f"(from {int(tables.start[t + 1] - tables.start[t])}) but the router has {capacity}{others}",
            hint="use a bigger board (more chips spread the routes), fewer cores per "
            "population (fewer slices, fewer keys), or other keys (slices of a population "
            "on consecutive keys merge into fewer entries)",
        )
    start = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    key, mask, route = (np.concatenate([np.asarray(r[j], dtype) for r in rows]) if rows else np.zeros(0, dtype)
                        for j, dtype in ((0, _U), (1, _U), (2, np.int64)))
    return RouteTables(start, key, mask, route, tables.routes, None, tables.chips)


def _compress_batch():
    """:func:`~.compress_jit.compress_batch` (imported on first use: it brings llvmlite)."""
    global _BATCH
    if _BATCH is None:
        from nmc.targets.multicast.compress_jit import compress_batch as _BATCH
    return _BATCH


_BATCH = None


def _compress(keys: list[int], masks: list[int], routes: list[int], defaultable, target: int, *,
              thorough: bool) -> tuple[list[int], list[int], list[int]]:
    """One table, its columns (route ids or words: only their equality and order count), as
    the columns of its compressed table: the Python pipeline (``effort="thorough"``, tables the
    fused kernel leaves, and the kernel's reference)."""
    n = len(keys)
    flags = [bool(f) for f in defaultable]
    count = Counter(routes)
    if len(count) == n and not any(flags):
        return list(keys), list(masks), list(routes)  # every entry needs one of its own: nothing to do
    width = max(max(keys), max(masks)).bit_length() or 1
    if width > 64:
        raise ValueError(f"keys of {width} bits; at most 64 are supported")
    # route ids by decreasing frequency (then value): where ORTC may choose among routes it
    # takes the lowest id, the commonest route, which leaves the most for later merges
    words = sorted(count, key=lambda r: (-count[r], r))
    rid_of = {r: i for i, r in enumerate(words)}
    rids = [rid_of[r] for r in routes]
    prefix = _prefix_table(keys, masks, width)
    if prefix is None:
        table = _ordered_covering(keys, masks, rids, flags, width, target, disjoint=False)
    else:
        table = _compress_prefixes(keys, masks, rids, flags, width, target, prefix, thorough=thorough)
        if table is None:  # down to its non-defaultable entries
            kept = [i for i, f in enumerate(flags) if not f]
            return [keys[i] for i in kept], [masks[i] for i in kept], [routes[i] for i in kept]
    return [k for k, _, _ in table], [m for _, m, _ in table], [words[r] for _, _, r in table]


def _compress_prefixes(keys, masks, rids, flags, width: int, target: int, prefix, *, thorough: bool):
    """:func:`_compress` on disjoint prefixes (``prefix``: :func:`_prefix_table`'s): the
    shortest candidate's (key, mask, route id) rows, or ``None`` when dropping the
    defaultable entries is enough."""
    # disjoint prefixes: reorderable, and every defaultable entry is default-routable
    # every route of a non-defaultable entry needs an entry: no method goes below that
    target = max(target, len({r for r, f in zip(rids, flags) if not f}))
    if len(keys) - sum(flags) <= target:
        return None
    order = prefix[1]
    by_key = (prefix[0], *(list(map(column.__getitem__, order)) for column in (masks, rids, flags)))
    table = _grouped(*by_key, rids, width, **_GROUPED[0])
    for variant in _GROUPED[1:]:
        if len(table) > target:
            table = min(table, _grouped(*by_key, rids, width, **variant), key=len)
    if len(table) > target:
        ortc, owner = _ortc(*prefix, rids, flags, width)
        table = min(table, ortc, key=len)
        if len(table) > target and (thorough or len(keys) <= _SMALL):
            table = min(table, _ordered_covering_of(ortc, owner, keys, masks, rids, flags, width, target,
                                                    thorough=thorough), key=len)
    return table


_SMALL = 64  # effort="fast" runs rig's Ordered Covering on tables of at most this many entries
# (on the routing benchmark's tables, those where it beats the other methods have at most 62)


# the route-group candidates tried on every prefix table (the shortest result is kept): PACMAN's
# ordered pair compressor and default-route removal, and the split variant that, of those tried
# on the routing benchmark's tables, most often beats it
_GROUPED = (
    {"ties": "last", "defaults_as_members": True, "split": False},
    {"ties": "low", "defaults_as_members": False, "split": True},
)


def _grouped(sk, sm, sr, sd, rids, width: int, *, ties: str, defaults_as_members: bool, split: bool, merge=None):
    """The route-group compressor on disjoint prefixes: keys ``sk`` (ascending), masks ``sm``,
    route ids ``sr`` and defaultable flags ``sd`` of the entries sorted by key (``rids``: the
    route ids in table order, for ``ties="last"``), after PACMAN's ordered pair compressor (Heathcote 2016): the table is one group of entries
    per route, routes with fewer entries first, so the commonest route is last.  ``ties``
    orders routes with equally many: ``"low"`` lower route id first, ``"last"`` the route
    whose first entry comes later in the table first (PACMAN's order).  A group's entries are
    covered by few key/masks that meet no *conflict*: an entry of a later group, or a
    defaultable entry of another route left out of the groups (a group's merged entries may
    take the keys of earlier groups: those match first).  ``split``: the merge of a run of the
    group's entries (sorted by key) is tried first and the run halved on its highest differing
    bit until each merge meets no conflict; then (and alone when not ``split``) pairs are
    merged greedily as the pair compressor does, in key order.  ``defaults_as_members``:
    defaultable entries join their route's group and a merged entry made only of them is
    dropped when no later entry of another route meets it, as PACMAN's pair compressor
    followed by its default-route removal does; otherwise they are left out (default routed).
    ``merge``: the merge loops (:func:`_merge_groups` in Python, or
    :func:`~.compress_jit.merge_groups` compiled, the default).  Returns (key, mask, route id)
    rows in table order."""
    if merge is None:
        from nmc.targets.multicast.compress_jit import merge_groups as merge
    count = Counter(sr) if defaults_as_members else Counter(r for r, d in zip(sr, sd) if not d)
    if ties == "last":
        first = {r: i for i, r in reversed(list(enumerate(rids)))}
        groups = sorted(count, key=lambda r: (count[r], -first[r]))
    else:
        groups = sorted(count, key=lambda r: (count[r], r))
    group_of = [len(groups)] * (max(sr) + 1)
    for p, r in enumerate(groups):
        group_of[r] = p
    keys, masks, flags, lengths = merge(sk, sm, sd, sr, group_of, groups, width, split, defaults_as_members)
    rows = list(zip(keys, masks, [r for r, length in zip(groups, lengths) for _ in range(length)]))
    if not defaults_as_members or not any(flags):
        return rows
    return [row for i, (row, d) in enumerate(zip(rows, flags))
            if not d or any(r != row[2] and row[0] & m == k & row[1] for k, m, r in rows[i + 1:])]


def _merge_groups(sk, sm, sd, sr, group_of, group_rids, width: int, split: bool, defaults_as_members: bool):
    """The route groups' merge loops in Python: the reference for, and the same contract as,
    :func:`~.compress_jit.merge_groups` (its docstring).  Groups are done last first, each adding
    the entries of the group after it to its conflicts, kept sorted by key: those that can meet
    a key/mask are the disjoint prefixes that start between its least and greatest key, and
    the one before, which may contain its least key (any other that contains a key of it
    contains its least key too)."""
    full = (1 << width) - 1
    runs: list[list[int]] = [[] for _ in group_rids]
    # entries by the group before which they are conflicts (defaultable non-members: all)
    by_level: list[list[int]] = [[] for _ in range(len(group_rids) + 1)]
    for j, (r, d) in enumerate(zip(sr, sd)):
        if d and not defaults_as_members:
            by_level[-1].append(j)
        else:
            runs[group_of[r]].append(j)
            by_level[group_of[r]].append(j)
    ck_: list[int] = []
    cm_: list[int] = []
    cr_: list[int] = []

    def clear(mk: int, mm: int, r: int) -> bool:
        lo = bisect_right(ck_, mk) - 1
        for t in range(lo if lo > 0 else 0, bisect_right(ck_, mk | (full ^ mm))):
            if ck_[t] & mm == cm_[t] & mk and cr_[t] != r:
                return False
        return True

    out: list = [None] * len(runs)
    for p in range(len(runs) - 1, -1, -1):
        r = group_rids[p]
        for j in by_level[p + 1]:
            t = bisect_left(ck_, sk[j])
            ck_.insert(t, sk[j])
            cm_.insert(t, sm[j])
            cr_.insert(t, sr[j])
        run = runs[p]
        if split:
            ks, ms, ds = [], [], []
            todo = [(0, len(run))]
            while todo:
                a, b = todo.pop()
                ck, cm, d = sk[run[a]], sm[run[a]], sd[run[a]]
                for j in run[a + 1:b]:
                    cm &= sm[j] & ~(ck ^ sk[j])
                    ck &= cm
                    d = d and sd[j]
                if b - a == 1 or clear(ck, cm, r):
                    ks.append(ck)
                    ms.append(cm)
                    ds.append(d)
                    continue
                bit = (sk[run[a]] ^ sk[run[b - 1]]).bit_length() - 1
                half = bisect_left(run, (sk[run[b - 1]] >> bit) << bit, a, b, key=sk.__getitem__)
                todo += [(half, b), (a, half)]
        else:
            ks, ms, ds = list(map(sk.__getitem__, run)), list(map(sm.__getitem__, run)), list(map(sd.__getitem__, run))
        # greedy pairs; a merge that meets a conflict still does once grown, so no pair is
        # tried twice; the conflict that refused the last merge is tried first
        bk = bm = None
        i = 0
        while i < len(ks) - 1:
            k1, m1 = ks[i], ms[i]
            j = i + 1
            while j < len(ks):
                mm = m1 & ms[j] & ~(k1 ^ ks[j])
                mk = k1 & mm
                if bk is not None and bk & mm == bm & mk:
                    j += 1
                    continue
                lo = bisect_right(ck_, mk) - 1
                for t in range(lo if lo > 0 else 0, bisect_right(ck_, mk | (full ^ mm))):
                    if ck_[t] & mm == cm_[t] & mk and cr_[t] != r:
                        bk, bm = ck_[t], cm_[t]
                        j += 1
                        break
                else:
                    k1, m1 = ks[i], ms[i] = mk, mm
                    ds[i] = ds[i] and ds[j]
                    ks[j], ms[j], ds[j] = ks[-1], ms[-1], ds[-1]
                    del ks[-1], ms[-1], ds[-1]
            i += 1
        out[p] = (ks, ms, ds)
    return ([k for ks, _, _ in out for k in ks], [m for _, ms, _ in out for m in ms],
            [int(d) for _, _, ds in out for d in ds], [len(ks) for ks, _, _ in out])


def _ordered_covering_of(ortc, owner, keys, masks, rids, flags, width: int, target: int, *, thorough: bool):
    """The shortest of ``ortc`` and Ordered Covering on the original table as rig has it
    (defaultable entries merged like the others and removed at the end, and a merge's own
    route's entries are conflicts too), which sometimes finds merges the others miss; and,
    when ``thorough``, Ordered Covering on ORTC's table ``ortc`` (the original entries its
    aliases, ``owner`` the ORTC entry matching each first) and on the original table as in
    steps 1-4."""
    table = ortc
    if thorough and len({r for _, _, r in ortc}) < len(ortc):  # else one entry per route: nothing to merge
        m = _Minimiser(*(list(c) for c in zip(*ortc)), (keys, masks, rids, flags, owner), width, prefix_aliases=True)
        m.minimise(target)
        table = m.result()
    if len(table) > target:
        table = min(table, _ordered_covering(keys, masks, rids, flags, width, target, disjoint=True, strict=True,
                                             defaults_as_members=True), key=len)
    if thorough and len(table) > target:
        table = min(table, _ordered_covering(keys, masks, rids, flags, width, target, disjoint=True), key=len)
    return table


def _ordered_covering(keys, masks, rids, flags, width: int, target: int, *, disjoint: bool, strict: bool = False,
                      defaults_as_members: bool = False, compiled: bool = True):
    """Steps 1-4 on the table as given: (key, mask, route id) rows.  ``disjoint``: no two
    entries share a key (so the table is reorderable and every defaultable entry removable).
    As rig has it on disjoint prefixes (``strict`` and ``defaults_as_members``), the compiled
    :func:`~.compress_jit.ordered_covering` minimises unless ``compiled`` is false (then
    :class:`_Minimiser`, its reference)."""
    akeys, amasks, arids = np.array(keys, _U), np.array(masks, _U), np.array(rids, np.int64)
    gens = _generality(amasks, width)
    if not disjoint:
        _check_reorderable(akeys, amasks, arids, gens)
    perm = np.argsort(gens, kind="stable")
    akeys, amasks, arids, aflags = akeys[perm], amasks[perm], arids[perm], np.array(flags)[perm]
    owner = np.arange(len(keys))
    if not defaults_as_members:
        owner[aflags if disjoint else _default_routable(akeys, amasks, arids, aflags)] = -1
    table = [akeys.tolist(), amasks.tolist(), arids.tolist()]
    if (owner >= 0).sum() <= target:
        return [row for row, o in zip(zip(*table), owner) if o >= 0]
    if compiled and disjoint and strict and defaults_as_members:
        from nmc.targets.multicast.compress_jit import ordered_covering

        return ordered_covering(*table, aflags.tolist(), width, target)
    m = _Minimiser(*table, (*table, aflags.tolist(), owner.tolist()), width, prefix_aliases=disjoint, strict=strict)
    m.minimise(target)
    return m.result()


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


def _merge(keys, masks) -> tuple[int, int]:
    """The key/mask with an X wherever the given ones differ or have an X."""
    all_ones, any_ones, all_masks = -1, 0, -1
    for k, m in zip(keys, masks):
        all_ones &= k
        any_ones |= k
        all_masks &= m
    mask = all_masks & ~(all_ones ^ any_ones)
    return all_ones & mask, mask


class _Minimiser:
    """The table being minimised (Python ints: tables are small, so per-call overheads of
    array code would dominate).  Entry ``i`` (the given ones first, then merged ones) has
    ``key``, ``mask``, ``rid`` (route id), ``gen``, ``order`` (its position: smaller is
    higher); ``live`` holds the current ones.  Alias ``a`` (an original entry) has its
    key/mask, route, ``defaultable`` flag and its owner's ``aorder`` (``_BOTTOM`` for a
    default-routed one)."""

    def __init__(self, keys, masks, rids, aliases, width: int, *, prefix_aliases: bool = False, strict: bool = False):
        """``prefix_aliases``: the aliases are disjoint prefixes, so those meeting a key/mask
        are found by bisection among them sorted by key.  ``strict``: entries and aliases of
        a merge's own route are conflicts in the up- and down-checks too, as in the paper."""
        n = len(keys)
        self.width = width
        self.strict = strict
        self.key, self.mask, self.rid = list(keys), list(masks), list(rids)
        self.gen = [width - m.bit_count() for m in self.mask]
        self.order = [(g << 32) | (_SEQ + i) for i, g in enumerate(self.gen)]
        self.live = set(range(n))
        self.merges = 0
        self.ak, self.am, self.arid, self.adef, owner = (list(c) for c in aliases)
        self.aorder = [_BOTTOM if o < 0 else self.order[o] for o in owner]
        self.aliases: list[list[int]] = [[] for _ in range(n)]
        for a, o in enumerate(owner):
            if o >= 0:
                self.aliases[o].append(a)
        self.groups: dict[int, set[int]] = {}
        for i, r in enumerate(self.rid):
            self.groups.setdefault(r, set()).add(i)
        self.cache: dict[int, tuple] = {}
        n_aliases = len(self.ak)
        self.by_key = sorted(range(n_aliases), key=self.ak.__getitem__) if prefix_aliases else list(range(n_aliases))
        self.sorted_keys = [self.ak[j] for j in self.by_key]
        # the same, as arrays, to scan long runs of aliases
        self.np_index = np.array(self.by_key, dtype=np.int64)
        self.np_key = np.array(self.sorted_keys, dtype=_U)
        self.np_mask = np.array([self.am[j] for j in self.by_key], dtype=_U)
        self.np_rid = np.array([self.arid[j] for j in self.by_key], dtype=np.int64)
        self.prefix_aliases = prefix_aliases

    def _meeting(self, k: int, m: int, rid: int) -> list[int]:
        """The aliases of routes other than ``rid`` that share a key with ``k``/``m``."""
        lo, hi = 0, len(self.by_key)
        if self.prefix_aliases:
            full = (1 << self.width) - 1
            lo = max(bisect_right(self.sorted_keys, k) - 1, 0)  # see _grouped
            hi = bisect_right(self.sorted_keys, k | (full ^ m))
        if hi - lo > 48:
            sl = slice(lo, hi)
            hit = (self.np_rid[sl] != rid) & ((self.np_key[sl] & _U(m)) == (self.np_mask[sl] & _U(k)))
            return self.np_index[sl][hit].tolist()
        ak, am, arid = self.ak, self.am, self.arid
        return [j for j in self.by_key[lo:hi] if arid[j] != rid and ak[j] & m == am[j] & k]

    def _drop(self, i: int) -> None:
        self.live.discard(i)
        for a in self.aliases[i]:
            self.aorder[a] = _BOTTOM
        self.groups[self.rid[i]].discard(i)

    def minimise(self, target: int) -> None:
        while len(self.live) > target:
            best = None
            if self.strict:  # as rig: routes in the order of their first entry, the first best kept
                order = self.order
                todo = sorted((min(order[i] for i in g), -len(g), rid) for rid, g in self.groups.items() if len(g) > 1)
            else:  # largest first, so that the rest can be skipped once none can beat the best
                todo = sorted((0, -len(g), rid) for rid, g in self.groups.items() if len(g) > 1)
            for _, size, rid in todo:
                if best is not None and -size - 1 <= best[0]:
                    if self.strict:
                        continue
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
        key, mask = self.key, self.mask
        ids = sorted(self.groups[rid], key=self.order.__getitem__)
        ck, cm = _merge([key[i] for i in ids], [mask[i] for i in ids])
        cgen = self.width - cm.bit_count()
        # only aliases and entries that meet the candidate merge can constrain it
        own = -1 if self.strict else rid
        a = self._meeting(ck, cm, own)
        e = [i for i in self.live if self.rid[i] != own and self.gen[i] < cgen and key[i] & cm == mask[i] & ck
             and i not in self.groups[rid]]
        keep = self._downcheck(ids, a)
        if keep is not None and e:
            keep, changed = self._upcheck(keep, e)
            if changed and keep is not None:
                keep = self._downcheck(keep, a)
        if keep is None:
            return (0, None, 0, 0, 0, ck, cm)
        mk, mm = _merge([key[i] for i in keep], [mask[i] for i in keep])
        return (len(keep) - 1, keep, mk, mm, self.width - mm.bit_count(), ck, cm)

    def _downcheck(self, members, a):
        """Remove members until the merge covers no alias of another route below it."""
        key, mask = self.key, self.mask
        ak, am, aorder = self.ak, self.am, self.aorder
        while len(members) > 1:
            mk, mm = _merge([key[i] for i in members], [mask[i] for i in members])
            below = (self.width - mm.bit_count()) << 32
            covered = [j for j in a if aorder[j] >= below and ak[j] & mm == am[j] & mk]
            if not covered:
                return members
            settable = [am[j] & ~mm for j in covered]
            least = min(s.bit_count() for s in settable)
            if least == 0:
                return None
            to_one = to_zero = 0  # bits to set to 1 (a covered key has 0 there), or to 0
            for j, s in zip(covered, settable):
                if s.bit_count() == least:
                    to_one |= s & ~ak[j]
                    to_zero |= s & ak[j]
            best = None
            bits = to_one | to_zero
            while bits:  # highest bit first, setting it to 1 before setting it to 0
                b = 1 << (bits.bit_length() - 1)
                bits ^= b
                for want, wanted in ((b, to_one), (0, to_zero)):
                    if wanted & b:
                        # members with an X here, or the covered key's value, must go
                        remove = [i for i in members if not mask[i] & b or key[i] & b != want]
                        if best is None or len(remove) < len(best):
                            best = remove
            gone = set(best)
            members = [i for i in members if i not in gone]
        return None

    def _upcheck(self, members, e):
        """Remove members (bottom first) that an entry of another route between them and the
        insertion point intersects."""
        key, mask, order, gen = self.key, self.mask, self.order, self.gen
        first_gen = [
            min((gen[x] for x in e if order[x] > order[i] and key[i] & mask[x] == key[x] & mask[i]), default=_FAR)
            for i in members
        ]
        mk, mm = _merge([key[i] for i in members], [mask[i] for i in members])
        g = self.width - mm.bit_count()
        keep = list(members)
        changed = False
        for j in range(len(members) - 1, -1, -1):
            if first_gen[j] < g:
                keep.remove(members[j])
                changed = True
                if len(keep) < 2:
                    return None, True
                mk, mm = _merge([key[i] for i in keep], [mask[i] for i in keep])
                g = self.width - mm.bit_count()
        return keep, changed

    def _apply(self, merge) -> None:
        _, members, mk, mm, gen, _, _ = merge
        rid = self.rid[members[0]]
        new = len(self.key)
        self.key.append(mk)
        self.mask.append(mm)
        self.rid.append(rid)
        self.gen.append(gen)
        self.order.append((gen << 32) | (_SEQ - 1 - self.merges))
        self.merges += 1
        self.live.difference_update(members)
        self.live.add(new)
        self.aliases.append([a for i in members for a in self.aliases[i]])
        for a in self.aliases[new]:
            self.aorder[a] = self.order[new]
        group = self.groups[rid]
        group.difference_update(members)
        group.add(new)
        self.cache = {r: c for r, c in self.cache.items() if r != rid and c[5] & mm != mk & c[6]}

    def result(self) -> list[tuple[int, int, int]]:
        """Step 4, then the table in order: (key, mask, route id)."""
        key, mask, rid, order = self.key, self.mask, self.rid, self.order
        live = sorted(self.live, key=order.__getitem__)
        for i in live:
            if not all(self.adef[a] for a in self.aliases[i]):
                continue
            if not any(order[x] > order[i] and rid[x] != rid[i] and key[i] & mask[x] == key[x] & mask[i]
                       for x in self.live):
                self._drop(i)
        return [(key[i], mask[i], rid[i]) for i in live if i in self.live]


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
    """``(keys, order)``: the keys sorted by key and their order, when every mask is a prefix
    (its set bits the top ones of ``width``) and no two entries share a key; else None."""
    full = (1 << width) - 1
    free = [full ^ m for m in masks]
    if any(f & (f + 1) for f in free):  # the don't-care bits are not the low ones
        return None
    order = sorted(range(len(keys)), key=keys.__getitem__)
    k = list(map(keys.__getitem__, order))
    if not all(map(lt, [keys[i] | free[i] for i in order], k[1:])):  # an entry reaches the next key
        return None
    return k, order


_NONE = -1  # "no entry matched": default routing


def _ortc(keys, order, rids, flags, width: int, place=None):
    """The fewest prefix entries that route every allocated key as the table does: ORTC
    (Draves, King, Venkatachary & Zill, "Constructing optimal IP routing tables", INFOCOM 1999)
    on the binary trie of the keys (:func:`_ortc_place`; ``place`` that or, the default,
    :func:`~.compress_jit.ortc_place` compiled), with unallocated keys as don't-cares and
    defaultable keys satisfied by their link or by no entry at all.  Returns the table as
    (key, mask, route id) triples, most specific first, and for every original entry (indexed
    as ``rids``) the index of its first matching table entry (``-1``: none)."""
    n = len(keys)
    if place is None:
        from nmc.targets.multicast.compress_jit import ortc_place as place
    depths, firsts, routes, owner_sorted = place(keys, list(map(rids.__getitem__, order)),
                                                 list(map(flags.__getitem__, order)), max(rids) + 1, width)
    # most specific first, then by key
    rank = sorted(range(len(depths)), key=[((width - d) << 32) | i for d, i in zip(depths, firsts)].__getitem__)
    new_index = [0] * len(rank)
    for i, j in enumerate(rank):
        new_index[j] = i
    full = (1 << width) - 1
    table = []
    for j in rank:
        mask = full ^ ((1 << (width - depths[j])) - 1)
        table.append((keys[firsts[j]] & mask, mask, routes[j]))
    owner = [-1] * n
    for i, o in zip(order, owner_sorted):
        if o >= 0:
            owner[i] = new_index[o]
    return table, owner


def _ortc_place(keys, srids, sflags, n_routes: int, width: int):
    """ORTC's entries on the keys ``keys`` (disjoint prefixes, ascending) with route ids
    ``srids`` and defaultable flags ``sflags`` (``n_routes``: route ids are below it): a
    subtree's cost, given the route ``r`` it inherits, is ``base + (r not in S)`` (``S`` a bit
    set of route ids), and ``none`` when it inherits no route (no entry can route to
    "nothing", so that case is kept apart).  Trie chains without a branch cost nothing and are
    skipped: the trie's branch points are the Cartesian tree of the common-prefix lengths of
    neighbouring keys.  An entry placed at a branch takes the shortest prefix that covers no
    other branch.  Returns the placed entries' depths, the index of the least key below each
    and their route ids, and for every key the index of its first matching placed entry (-1:
    none)."""
    n = len(keys)
    # node: [base, routes, none, split depth (None: leaf), left, right, leaf index]
    stack: list[list] = []
    gaps: list[int] = []
    for i in range(n):
        r = srids[i]
        node = [0, 1 << r, 0 if sflags[i] else 1, None, None, None, i]
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
            if inherited != srids[lo] and not (inherited == _NONE and sflags[lo]):
                placed.append((top, lo, srids[lo]))
                current = len(placed) - 1
            owner_sorted[lo] = current
            continue
        if inherited == _NONE:
            stay = a[2] + b[2]
        else:
            stay = a[0] + b[0] + (not (a[1] >> inherited) & 1) + (not (b[1] >> inherited) & 1)
        if base + 1 < stay:
            inherited = (routes & -routes).bit_length() - 1
            placed.append((top, lo, inherited))
            current = len(placed) - 1
        todo.append((b, inherited, depth + 1, current))
        todo.append((a, inherited, depth + 1, current))
    return [p[0] for p in placed], [p[1] for p in placed], [p[2] for p in placed], owner_sorted

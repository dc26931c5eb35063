"""Router-table compression (targets/multicast/compress.py) and its checker (check.py)."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmc.diagnostics import NmcError
from nmc.targets.multicast.check import RoutingMismatch, check_equivalent, covered_keys, is_unallocated
from nmc.targets.multicast import compress as compress_module
from nmc.targets.multicast.compress import (
    _GROUPED,
    _compress,
    _grouped,
    _merge_groups,
    _ordered_covering,
    _ortc,
    _ortc_place,
    _prefix_table,
    compress_tables,
)
from nmc.targets.multicast import compress_jit
from nmc.targets.multicast.compress_jit import compress_batch, merge_groups, ortc_place
from nmc.targets.multicast.table import RouteTables, RoutingEntry, core_bit, link_bit, lookup

N, NE, E, S = link_bit(2), link_bit(1), link_bit(0), link_bit(5)


def entry(pattern: str, route: int) -> RoutingEntry:
    """``"0X10"`` -> key/mask (X: don't care), most significant bit first."""
    key = int(pattern.replace("X", "0"), 2)
    mask = int("".join("0" if c == "X" else "1" for c in pattern), 2)
    return RoutingEntry(key, mask, route)


def compress(entries, flags=None, capacity=1024, **kw):
    """One table compressed (a batch of one)."""
    flags = [False] * len(entries) if flags is None else flags
    out = compress_tables(RouteTables.from_entries([(entries, flags)]), capacity, chips=["test (0, 0)"], **kw)
    return out.entries(0)


# --- the checks of Ordered Covering, on the examples of its authors' own code (rig's
# ordered_covering docstrings, Mundy 2016) ----------------------------------------------

def test_upcheck_example():
    # Merging the three N entries into XXXX would put 1000 below X000 -> NE, which covers it.
    table = [entry("0011", N), entry("0100", N), entry("1000", N), entry("X000", NE)]
    out = compress(table, target_length=0)
    check_equivalent(table, [False] * 4, out, key_bits=4)
    assert len(out) == 3
    with pytest.raises(RoutingMismatch) as err:  # the merge the up-check refuses
        check_equivalent(table, [False] * 4, [entry("X000", NE), entry("XXXX", N)], key_bits=4)
    assert err.value.key == 0b1000 and err.value.expected == N and err.value.got == NE


def test_downcheck_example():
    # Merging the first four into 00XXX above XX1XX would capture 00101 and 00110, XX1XX's keys.
    route = N | S
    table = [entry("00001", route), entry("00011", route), entry("00100", route), entry("00X00", route),
             entry("XX1XX", core_bit(3) | core_bit(5))]
    out = compress(table, target_length=0)
    check_equivalent(table, [False] * 5, out, key_bits=5)
    assert len(out) == 4  # as in rig's docstring: 00100, 00X00, 000X1, XX1XX
    with pytest.raises(RoutingMismatch) as err:
        check_equivalent(table, [False] * 5, [entry("00XXX", route), entry("XX1XX", core_bit(3) | core_bit(5))],
                         key_bits=5)
    assert err.value.key == 0b00101  # the first key of XX1XX that 00XXX captures


def test_order_matters():
    table = [entry("0011", N), entry("0100", N), entry("1000", N), entry("X000", NE)]
    out = compress(table, target_length=0)
    assert any(a.route != b.route and a.key & b.mask == b.key & a.mask for a in out for b in out)
    with pytest.raises(RoutingMismatch):
        check_equivalent(table, [False] * 4, out[::-1], key_bits=4)


# --- default routing ---------------------------------------------------------------------

def test_default_routes_are_removed_and_their_keys_not_captured():
    # 01 passes straight through (defaultable, E); 00, 10, 11 go north.  XX -> N would be one
    # entry, but would send 01 north: it must stay out of every merge of another route.
    table = [entry("00", N), entry("01", E), entry("10", N), entry("11", N)]
    flags = [False, True, False, False]
    out = compress(table, flags, target_length=0)
    check_equivalent(table, flags, out, key_bits=2)
    assert all(lookup(out, 0b01) in (None, E) for _ in [0])
    assert len(out) == 2


def test_a_default_route_under_another_route_is_kept():
    # 1X -> S (defaultable) must stay: the more general XX -> N below it would catch 10 and 11.
    table = [entry("1X", S), entry("XX", N)]
    out = compress(table, [True, False], target_length=0)
    check_equivalent(table, [True, False], out, key_bits=2)
    assert lookup(out, 0b10) == S


def test_default_keys_may_be_covered_by_their_own_route():
    # 01 is defaultable east; 00, 10, 11 go east too (arriving elsewhere): one entry.
    table = [entry("00", E), entry("01", E), entry("10", E), entry("11", E)]
    flags = [False, True, False, False]
    out = compress(table, flags, target_length=0)
    check_equivalent(table, flags, out, key_bits=2)
    assert out == [entry("XX", E)]


# --- stopping, capacity, bad input ----------------------------------------------------------

def slices(n: int, route_of) -> list[RoutingEntry]:
    """``n`` key ranges of 256 keys (one per core slice), 32-bit keys."""
    return [RoutingEntry(i << 8, 0xFFFFFF00, route_of(i)) for i in range(n)]


def test_stops_at_capacity_by_default():
    table = slices(8, lambda i: core_bit(i % 2))
    flags = [False] * 8
    assert compress(table, flags, capacity=8) == table  # fits: nothing to do
    assert len(compress(table, flags, capacity=5)) <= 5
    assert len(compress(table, flags, target_length=0)) == 2  # X..X0 and X..X1
    check_equivalent(table, flags, compress(table, flags, target_length=0))


@pytest.mark.parametrize("effort", ["fast", "thorough"])
def test_too_big_a_table_names_chip_and_numbers(effort):
    table = slices(6, lambda i: core_bit(i))  # six routes: six entries at least
    fits = slices(6, lambda i: core_bit(i % 2))
    tables = [(fits, [False] * 6), (table, [False] * 6), (fits, [False] * 6), (table[:5], [False] * 5)]
    chips = [f"spinnaker1-board ({x}, 2)" for x in range(4)]
    with pytest.raises(NmcError) as err:
        compress_tables(RouteTables.from_entries(tables), 4, chips=chips, target_length=0, effort=effort)
    text = str(err.value)
    assert "chip spinnaker1-board (1, 2)" in text and "needs 6 entries" in text and "has 4" in text
    assert "1 more of the 4 routers" in text  # (3, 2)'s five routes do not fit either
    assert "bigger board" in err.value.hint


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="2 tables but 1 chip names"):
        compress_tables(RouteTables.from_entries([([], []), ([], [])]), 1024, chips=["a"])


@pytest.mark.parametrize("effort", ["fast", "thorough"])
def test_empty_tables(effort):
    assert len(compress_tables(RouteTables.from_entries([]), 1024, chips=[], effort=effort)) == 0
    tables = RouteTables.from_entries([([], []), (slices(3, lambda i: N), [False] * 3), ([], [])])
    out = compress_tables(tables, 1024, chips=["a", "b", "c"], target_length=0, effort=effort)
    assert out.sizes().tolist() == [0, 1, 0] and out.entries(1) == [RoutingEntry(0, 0xFFFFFC00, N)]


def test_a_table_not_reorderable_by_generality_is_refused():
    with pytest.raises(ValueError, match="not reorderable"):
        compress([entry("XX", N), entry("01", S), entry("10", S)], target_length=0)


def test_a_table_of_distinct_routes_without_default_routes_is_kept_as_it_is():
    # every entry needs one of its own: nothing can be merged or removed (not even reordered)
    table = [entry("XX", N), entry("01", S)]
    assert compress(table, target_length=0) == table


def test_compression_is_deterministic():
    table = [RoutingEntry(i << 4, 0xF0, core_bit(i * 7 % 5)) for i in range(16)]
    assert compress(table, target_length=0) == compress(list(table), target_length=0)


# --- the checker -----------------------------------------------------------------------------

def test_unallocated_keys():
    table = slices(3, lambda i: N)
    assert not is_unallocated(table, 0x2FF) and is_unallocated(table, 0x300)
    out = compress(table, target_length=0)
    assert len(out) == 1 and lookup(out, 0x300) == N  # the merged entry covers it: only the original can tell


def test_checker_counts_and_bounds():
    table = slices(3, lambda i: N)
    assert check_equivalent(table, [False] * 3, table) == 3 * 256
    assert len(covered_keys(entry("X1X", N), 3)) == 4
    with pytest.raises(ValueError, match="max_keys"):
        check_equivalent(table, [False] * 3, table, max_keys=100)


def test_checker_sees_a_missing_entry_and_a_wrong_default():
    table = slices(2, lambda i: N)
    with pytest.raises(RoutingMismatch):
        check_equivalent(table, [False, False], table[:1])  # slice 1 falls to default routing
    check_equivalent(table, [False, True], table[:1])  # ... which is right if it is defaultable
    with pytest.raises(RoutingMismatch):
        check_equivalent(table, [False, True], [table[0], RoutingEntry(0x100, 0xFFFFFF00, S)])


# --- properties over random tables -----------------------------------------------------------

ROUTES = [E, NE, N, S, core_bit(0), core_bit(1), N | core_bit(2), E | S]
BITS = 8


@st.composite
def prefix_tables(draw):
    """Disjoint key ranges (as key allocation makes them), random routes and defaultable flags."""
    n = draw(st.integers(1, 40))
    entries, flags, taken = [], [], []
    for _ in range(n):
        length = draw(st.integers(3, BITS))
        mask = ((1 << BITS) - 1) ^ ((1 << (BITS - length)) - 1)
        key = draw(st.integers(0, (1 << BITS) - 1)) & mask
        if any(key & m == k & mask for k, m in taken):
            continue
        taken.append((key, mask))
        route = draw(st.sampled_from(ROUTES))
        entries.append(RoutingEntry(key, mask, route))
        flags.append(route in (E, NE, N, S) and draw(st.booleans()))
    return entries, flags


@st.composite
def ternary_tables(draw):
    """Any key/masks (overlapping, X anywhere), sorted by generality so that the table is valid
    input; defaultable flags on single-link routes."""
    n = draw(st.integers(1, 30))
    rows = []
    for _ in range(n):
        mask = draw(st.integers(0, (1 << BITS) - 1)) | draw(st.integers(0, (1 << BITS) - 1))
        key = draw(st.integers(0, (1 << BITS) - 1)) & mask
        route = draw(st.sampled_from(ROUTES))
        rows.append((RoutingEntry(key, mask, route), route in (E, NE, N, S) and draw(st.booleans())))
    rows.sort(key=lambda r: BITS - r[0].mask.bit_count())
    return [r[0] for r in rows], [r[1] for r in rows]


@settings(max_examples=150, deadline=None)
@given(prefix_tables())
def test_prefix_tables_route_every_key_as_before(table):
    entries, flags = table
    out = compress(entries, flags, target_length=0)
    check_equivalent(entries, flags, out, key_bits=BITS)
    assert len(out) <= sum(not f for f in flags)


@pytest.mark.parametrize("variant", _GROUPED, ids=lambda v: "-".join(map(str, v.values())))
@settings(max_examples=60, deadline=None)
@given(prefix_tables())
def test_every_route_group_candidate_routes_every_key_as_before(variant, table):
    # each candidate on its own (compress_tables keeps the shortest, which would hide a wrong one)
    entries, flags = table
    keys, masks = [e.key for e in entries], [e.mask for e in entries]
    routes = sorted({e.route for e in entries})
    rids = [routes.index(e.route) for e in entries]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    by_key = [[column[i] for i in order] for column in (keys, masks, rids, flags)]
    rows = _grouped(*by_key, rids, BITS, **variant)
    check_equivalent(entries, flags, [RoutingEntry(k, m, routes[r]) for k, m, r in rows], key_bits=BITS)
    assert len(rows) <= len(entries)


@settings(max_examples=60, deadline=None)
@given(prefix_tables())
def test_ordered_covering_as_rig_has_it_routes_every_key_as_before(table):
    # defaultable entries merged like the others, removed at the end; own-route conflicts too
    entries, flags = table
    routes = sorted({e.route for e in entries})
    rows = _ordered_covering([e.key for e in entries], [e.mask for e in entries], [routes.index(e.route) for e in entries],
                             flags, BITS, 0, disjoint=True, strict=True, defaults_as_members=True)
    check_equivalent(entries, flags, [RoutingEntry(k, m, routes[r]) for k, m, r in rows], key_bits=BITS)


@settings(max_examples=60, deadline=None)
@given(prefix_tables())
def test_fast_effort_routes_every_key_as_before_and_thorough_is_no_longer(table):
    entries, flags = table
    fast = compress(entries, flags, target_length=0, effort="fast")
    check_equivalent(entries, flags, fast, key_bits=BITS)
    thorough = compress(entries, flags, target_length=0, effort="thorough")
    check_equivalent(entries, flags, thorough, key_bits=BITS)
    assert len(thorough) <= len(fast)
    assert compress(entries, flags, target_length=0) == fast  # the default


def test_the_pair_compressor_order_and_default_route_removal():
    # PACMAN's ordered pair compressor: the rarer route's group first, the commonest last
    # (merged into one entry, which may cover the rarer route's keys above it); 1101 E is
    # defaultable and nothing below meets it, so it goes (0101 would stay: 0XXX N meets it).
    table = [entry("0000", N), entry("0001", N), entry("0010", S), entry("0011", N), entry("1101", E),
             entry("0110", N), entry("0111", N)]
    flags = [False, False, False, False, True, False, False]
    routes = [e.route for e in table]  # sorted by key already
    rows = _grouped([e.key for e in table], [e.mask for e in table], routes, flags, routes, 4, ties="last",
                    defaults_as_members=True, split=False)
    assert rows == [(0b0010, 0b1111, S), (0b0000, 0b1000, N)]  # 0010 S, then 0XXX N
    check_equivalent(table, flags, [RoutingEntry(*r) for r in rows], key_bits=4)
    flags[4] = False  # not defaultable: 1101 E must stay, first
    routes = [e.route for e in table]  # sorted by key already
    rows = _grouped([e.key for e in table], [e.mask for e in table], routes, flags, routes, 4, ties="last",
                    defaults_as_members=True, split=False)
    assert rows == [(0b1101, 0b1111, E), (0b0010, 0b1111, S), (0b0000, 0b1000, N)]


def test_effort_is_checked_and_fast_falls_back_when_over_capacity():
    table = slices(8, lambda i: core_bit(i % 2))
    with pytest.raises(ValueError, match="effort"):
        compress(table, effort="quick")
    assert len(compress(table, capacity=2, effort="fast")) == 2


@settings(max_examples=150, deadline=None)
@given(ternary_tables())
def test_ternary_tables_route_every_key_as_before(table):
    entries, flags = table
    out = compress(entries, flags, target_length=0)
    check_equivalent(entries, flags, out, key_bits=BITS)
    assert len(out) <= len(entries)


@settings(max_examples=100, deadline=None)
@given(prefix_tables(), st.data())
def test_a_wrong_route_is_caught(table, data):
    entries, flags = table
    out = compress(entries, flags, target_length=0)
    # change the route of an entry that is the first match of some allocated, non-default key
    used = sorted({next(i for i, o in enumerate(out) if o.matches(k))
                   for e, f in zip(entries, flags) if not f for k in covered_keys(e, BITS).tolist()})
    if not used:
        return
    i = data.draw(st.sampled_from(used))
    wrong = [*out[:i], RoutingEntry(out[i].key, out[i].mask, out[i].route ^ core_bit(9)), *out[i + 1:]]
    with pytest.raises(RoutingMismatch):
        check_equivalent(entries, flags, wrong, key_bits=BITS)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(ternary_tables(), st.integers(1, 30))
def test_stopping_early_is_still_exact(table, target):
    entries, flags = table
    out = compress(entries, flags, capacity=1024, target_length=target)
    check_equivalent(entries, flags, out, key_bits=BITS)


# --- the compiled kernels against the Python reference ----------------------------------------

@st.composite
def wide_prefix_tables(draw):
    """Disjoint prefixes of 8, 32 or 64-bit keys (the top bit set too: unsigned compares), sorted
    by key, with route ids (up to 150 routes: ORTC's route sets span several words) and flags."""
    width = draw(st.sampled_from([8, 32, 64]))
    n = draw(st.integers(1, 60))
    n_routes = draw(st.sampled_from([3, 8, 150]))
    full = (1 << width) - 1
    rows = []
    for _ in range(n):
        length = draw(st.integers(max(1, width - 6), width))
        mask = full ^ ((1 << (width - length)) - 1)
        key = draw(st.integers(0, full)) & mask
        if any(key & m == k & mask for k, m, _, _ in rows):
            continue
        rows.append((key, mask, draw(st.integers(0, n_routes - 1)), draw(st.booleans())))
    rows.sort()
    return width, [list(c) for c in zip(*rows)]


@settings(max_examples=150, deadline=None)
@given(wide_prefix_tables(), st.booleans(), st.booleans(), st.randoms(use_true_random=False))
def test_compiled_route_group_merges_equal_the_python_loops(table, split, defaults_as_members, rng):
    width, (sk, sm, sr, sd) = table
    routes = sorted(set(r for r, d in zip(sr, sd) if defaults_as_members or not d))
    if not routes:
        return
    groups = routes[:]
    rng.shuffle(groups)  # any group order
    group_of = [len(groups)] * (max(sr) + 1)
    for p, r in enumerate(groups):
        group_of[r] = p
    args = (sk, sm, sd, sr, group_of, groups, width, split, defaults_as_members)
    assert merge_groups(*args) == _merge_groups(*args)


@settings(max_examples=150, deadline=None)
@given(wide_prefix_tables())
def test_compiled_ortc_equals_the_python_reference(table):
    width, (sk, sm, sr, sd) = table
    n_routes = max(sr) + 1
    assert ortc_place(sk, sr, sd, n_routes, width) == _ortc_place(sk, sr, sd, n_routes, width)
    prefix = _prefix_table(sk, sm, width)
    assert _ortc(*prefix, sr, sd, width) == _ortc(*prefix, sr, sd, width, place=_ortc_place)


@settings(max_examples=150, deadline=None)
@given(wide_prefix_tables(), st.integers(0, 8))
def test_compiled_ordered_covering_equals_the_python_minimiser(table, target):
    # as rig has it (defaultable entries merged, own-route conflicts), stopping early or not
    width, (keys, masks, rids, flags) = table
    args = (keys, masks, rids, flags, width, target)
    kw = {"disjoint": True, "strict": True, "defaults_as_members": True}
    rows = _ordered_covering(*args, **kw)
    assert rows == _ordered_covering(*args, **kw, compiled=False)
    if width == 8:  # small enough to check every key
        check_equivalent([RoutingEntry(k, m, r) for k, m, r in zip(keys, masks, rids)], flags,
                         [RoutingEntry(*row) for row in rows], key_bits=width)


def _fused_case(table, rng):
    """A wide prefix table shuffled, with random route words of 64 or 160 bits (SpiNNaker2's
    152 processors and six links: wider than a machine word): (entries, flags)."""
    width, (keys, masks, rids, flags) = table
    bits = rng.choice([64, 160])
    words = [rng.getrandbits(bits) | 1 << (bits - 1) for _ in range(max(rids) + 1)]
    rows = list(zip(keys, masks, rids, flags))
    rng.shuffle(rows)
    return [RoutingEntry(k, m, words[r]) for k, m, r, _ in rows], [d for _, _, _, d in rows]


def _reference(entries, flags, target, small):
    """compress._compress with thorough false and Ordered Covering's size limit ``small``."""
    saved = compress_module._SMALL
    compress_module._SMALL = small
    try:
        columns = _compress([e.key for e in entries], [e.mask for e in entries], [e.route for e in entries], flags,
                            target, thorough=False)
        return [RoutingEntry(*row) for row in zip(*columns)]
    finally:
        compress_module._SMALL = saved


@settings(max_examples=200, deadline=None)
@given(wide_prefix_tables(), st.sampled_from([0, 3, 8, 1024]), st.sampled_from([0, 20, 64]),
       st.randoms(use_true_random=False))
def test_the_fused_kernel_equals_the_python_pipeline(table, target, small, rng):
    # effort="fast" in one call: the same table as compress._compress, entry for entry, on
    # disjoint prefixes in any order, routes of any width (as ids), Ordered Covering on or off
    # by size
    entries, flags = _fused_case(table, rng)
    out, longest, compiled = compress_batch(RouteTables.from_entries([(entries, flags)]), target, small)
    expected = _reference(entries, flags, target, small)
    assert compiled.tolist() == [1] and longest == len(expected) and out.entries(0) == expected


_OTHERS = {  # tables that are not random prefix tables: what the kernel gives for each
    "empty": (([], []), []),
    "overlapping": (([entry("0XX1", N), entry("XXXX", E)], [False, True]), None),
}


def _exact(table):
    """A table as its entries' types and numbers, to compare byte for byte."""
    return [(type(e), *map(type, e), *e) for e in table]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(wide_prefix_tables(), st.sampled_from(sorted(_OTHERS))), min_size=1, max_size=8),
       st.sampled_from([0, 3, 1024]), st.sampled_from([0, 64]), st.randoms(use_true_random=False))
def test_a_batch_equals_its_tables_one_by_one(tables, target, small, rng):
    # every table of one call as when compressed alone and as the Python pipeline has it; with
    # empty tables and tables the kernel leaves to the Python pipeline (overlapping) among them
    cases, expected = [], []
    for table in tables:
        if isinstance(table, str):
            case, result = _OTHERS[table]
            cases.append(case)
            expected.append(result)
        else:
            cases.append(_fused_case(table, rng))
            expected.append(_reference(*cases[-1], target, small))
    batch, longest, compiled = compress_batch(RouteTables.from_entries(cases), target, small)
    assert compiled.tolist() == [int(result is not None) for result in expected]
    assert longest == (-1 if None in expected else max(map(len, expected)))
    assert [_exact(batch.entries(t)) for t in range(len(cases))] == [_exact(r or []) for r in expected]
    assert [_exact(batch.entries(t)) for t in range(len(cases))] == [
        _exact(compress_batch(RouteTables.from_entries([case]), target, small)[0].entries(0)) for case in cases]
    # compress_tables, which runs the Python pipeline on what the kernel leaves, gives each
    # table what a batch of one does
    chips = [str(i) for i in range(len(cases))]
    out = compress_tables(RouteTables.from_entries(cases), 1 << 20, chips=chips, target_length=target)
    assert [_exact(out.entries(t)) for t in range(len(cases))] == [
        _exact(compress_tables(RouteTables.from_entries([case]), 1 << 20, chips=[chip], target_length=target).entries(0))
        for case, chip in zip(cases, chips)]


def test_the_work_buffer_grows_for_a_larger_table(monkeypatch):
    # the kernel finds the largest table and asks for room when the buffer has none for it
    monkeypatch.setattr(compress_jit, "_LOCAL", threading.local())
    small = RouteTables.from_entries([(slices(1, lambda i: N), [False])])
    assert compress_batch(small, 0, 64)[0].entries(0) == slices(1, lambda i: N)
    assert compress_jit._LOCAL.work[1] == {64: 1}  # grown from none, for the one entry
    table = slices(300, lambda i: core_bit(i * 7 % 5))
    out, longest, compiled = compress_batch(RouteTables.from_entries([([], []), (table, [False] * 300)]), 0, 64)
    assert compress_jit._LOCAL.work[1] == {64: 300} and compiled.tolist() == [1, 1]
    assert out.entries(1) == _reference(table, [False] * 300, 0, 64) and longest == len(out.entries(1))


def test_the_fused_kernel_leaves_other_tables_to_the_python_pipeline():
    overlapping = [entry("0XX1", N), entry("XXXX", E)]
    ok = slices(4, lambda i: N)
    tables = RouteTables.from_entries([(overlapping, [False, True]), (ok, [False] * 4), ([], [])])
    out, longest, compiled = compress_batch(tables, 0, 64)
    assert compiled.tolist() == [0, 1, 1] and longest == -1
    assert [out.entries(t) for t in range(3)] == [[], [RoutingEntry(0, 0xFFFFFC00, N)], []]
    assert compress_tables(tables, 1024, chips=["a", "b", "c"], target_length=0).entries(0) == \
        _reference(overlapping, [False, True], 0, 64)
    wide = [RoutingEntry(1 << 64, (1 << 65) - 1, N), RoutingEntry(0, (1 << 65) - 1, N)]
    with pytest.raises(ValueError, match="at most 64"):  # columns hold 64-bit keys
        compress(wide, target_length=0)

import pytest

from nmc.targets.multicast.table import LINKS, RouteTables, RoutingEntry, core_bit, link_bit, lookup, opposite


def test_first_matching_entry_wins():
    table = [RoutingEntry(0b1000, 0b1100, link_bit(0)), RoutingEntry(0b1000, 0b1000, core_bit(2))]
    assert lookup(table, 0b1011) == link_bit(0)
    assert lookup(table, 0b1100) == core_bit(2)
    assert lookup(table, 0b0100) is None


def test_opposite_links_pair_up():
    assert [LINKS[opposite(i)] for i in range(6)] == ["W", "SW", "S", "E", "NE", "N"]
    assert all(opposite(opposite(i)) == i for i in range(6))


def test_entry_key_outside_mask_is_refused():
    with pytest.raises(ValueError, match="outside its mask"):
        RoutingEntry(0b11, 0b10, 1)


def test_route_tables_are_the_entries_as_columns():
    a = [RoutingEntry(0x100, 0xFF00, core_bit(120) | link_bit(3)), RoutingEntry(0, 0xFF00, link_bit(0))]
    b = [RoutingEntry(0x200, 0xFE00, link_bit(0))]
    tables = RouteTables.from_entries([(a, [False, True]), ([], []), (b, [True])], chips=[(0, 0), (1, 0), (2, 0)])
    assert len(tables) == 3 and tables.sizes().tolist() == [2, 0, 1]
    assert [tables.entries(t) for t in range(3)] == [a, [], b] and tables.flags(0) == [False, True]
    assert tables.routes == (link_bit(0), core_bit(120) | link_bit(3))  # ascending: ids compare as the words do
    assert tables.route.tolist() == [1, 0, 0]  # a route of 127 bits is one number
    again = tables.take([2, 0, 2, 1])
    assert [again.entries(t) for t in range(4)] == [b, a, b, []] and again.chips == ((2, 0), (0, 0), (2, 0), (1, 0))
    assert again.defaultable.tolist() == [True, False, True, True]
    empty = RouteTables.from_entries([])
    assert len(empty) == 0 and len(empty.key) == 0 and len(empty.take([])) == 0


def test_route_tables_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="chip b: 1 entries but 2 defaultable flags"):
        RouteTables.from_entries([([RoutingEntry(0, 0, 1)], [False, False])], chips=["b"])
    with pytest.raises(ValueError, match="keys of 65 bits; at most 64"):
        RouteTables.from_entries([([RoutingEntry(1 << 64, (1 << 65) - 1, 1)], [False])])

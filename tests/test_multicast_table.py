import pytest

from nmc.targets.multicast.table import LINKS, RoutingEntry, core_bit, link_bit, lookup, opposite


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


def test_a_derived_entry_equals_a_checked_one():
    made, checked = RoutingEntry.derived(0b1000, 0b1100, 5), RoutingEntry(0b1000, 0b1100, 5)
    assert made == checked and hash(made) == hash(checked) and repr(made) == repr(checked)
    assert made.matches(0b1011) and not made.matches(0b0100)

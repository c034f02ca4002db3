"""Rectangle placement of the layers on the one crossbar (firmware/placement.py)."""
import pytest
from hypothesis import given, settings, strategies as st

from aoncim.firmware.placement import PlacementError, check_disjoint, place_rectangles


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 32)), min_size=1, max_size=12))
def test_placements_are_inside_and_disjoint(sizes):
    try:
        places = place_rectangles(sizes, 64, 64)
    except PlacementError as e:
        assert "\n" not in str(e) and "layer" in str(e) or "pairs" in str(e)
        return
    rects = [(r0, r, c0, c) for (r0, c0), (r, c) in zip(places, sizes)]
    assert check_disjoint(rects, 64, 64)


def test_packs_what_a_column_shelf_cannot():
    # Two full-height layers and four short ones: a shelf (all from row 0) needs 16+16+4*12 = 80
    # columns; stacking the short ones above each other fits 64.
    sizes = [(64, 16), (64, 16), (16, 12), (16, 12), (16, 12), (16, 12)]
    places = place_rectangles(sizes, 64, 64)
    assert check_disjoint([(r0, r, c0, c) for (r0, c0), (r, c) in zip(places, sizes)], 64, 64)
    assert sum(c for r, c in sizes) > 64


def test_errors_name_the_layer_and_the_fix():
    with pytest.raises(PlacementError, match=r"layer big: its 10 x 80 rectangle is larger than the 64 x 64 array"):
        place_rectangles([(4, 4), (10, 80)], 64, 64, ["small", "big"])
    with pytest.raises(PlacementError, match=r"needs 4,160 conductance pairs, the 64 x 64 array has 4,096"):
        place_rectangles([(64, 64), (8, 8)], 64, 64)
    # Three 40-row strips cannot stack on 64 rows and are too wide to sit side by side.
    with pytest.raises(PlacementError, match=r"does not pack beside the other layers.*larger array"):
        place_rectangles([(40, 30), (40, 30), (40, 30)], 64, 64, ["a", "b", "c"])


def test_disjoint_check_sees_overlap_and_overhang():
    assert not check_disjoint([(0, 10, 0, 10), (5, 10, 5, 10)], 64, 64)
    assert not check_disjoint([(60, 10, 0, 10)], 64, 64)
    assert check_disjoint([(0, 10, 0, 10), (10, 10, 0, 10)], 64, 64)

"""Placement of every MVM layer as a rectangle on the one crossbar (the whole network stays resident).

A layer occupies min(k_rows, rows) x tiles*out_c pairs (contract step 12). Rectangles never move
after programming, so placement is a one-off 2-D packing problem; it is small (tens of rectangles),
so we run a skyline packer under several orderings and two position rules and keep the first
packing that fits. Bottom-left with tallest-first is the classic choice for strips of similar
height (deep convolutions); widest-first and largest-area-first rescue mixes of wide-short and
tall-narrow rectangles; the min-waste rule prefers positions that leave no holes under a
rectangle, which is what lets short layers stack above tall ones.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class PlacementError(ValueError):
    """The rectangles cannot all be placed; the message names the layer, the resource and a fix."""


ORDERS = {
    "tallest": lambda s: (-s[0], -s[1]),
    "widest": lambda s: (-s[1], -s[0]),
    "largest": lambda s: (-s[0] * s[1], -s[0]),
}
RULES = ("bottom-left", "min-waste")


def _skyline(sizes: list[tuple[int, int]], rows: int, cols: int, order: list[int], rule: str
             ) -> tuple[list[tuple[int, int] | None], int | None]:
    """One packing attempt: (places, index of the first rectangle that did not fit, or None)."""
    sky = np.zeros(cols, dtype=np.int64)  # first free row above each column
    places: list[tuple[int, int] | None] = [None] * len(sizes)
    for i in order:
        r, c = sizes[i]
        windows = sliding_window_view(sky, c)
        row0s = windows.max(axis=1)
        if rule == "bottom-left":
            cost = row0s * (cols + 1) + np.arange(len(row0s))
        else:  # min-waste: pairs left unusable under the rectangle, then lowest, then leftmost
            waste = row0s * c - windows.sum(axis=1)
            cost = (waste * (rows + 1) + row0s) * (cols + 1) + np.arange(len(row0s))
        cost = np.where(row0s + r <= rows, cost, np.iinfo(np.int64).max)
        col0 = int(np.argmin(cost))
        if row0s[col0] + r > rows:
            return places, i
        row0 = int(row0s[col0])
        sky[col0 : col0 + c] = row0 + r
        places[i] = (row0, col0)
    return places, None


def place_rectangles(sizes: list[tuple[int, int]], rows: int, cols: int,
                     names: list[str] | None = None) -> list[tuple[int, int]]:
    """(row0, col0) of every (rows, cols) rectangle on a rows x cols array, without overlap.

    Raises PlacementError naming the rectangle that does not fit in the best attempt (the one
    that placed the most pairs), with the array's use and a suggestion."""
    names = names or [f"#{i}" for i in range(len(sizes))]
    for i, (r, c) in enumerate(sizes):
        if r < 1 or c < 1:
            raise PlacementError(f"layer {names[i]}: empty {r} x {c} rectangle")
        if r > rows or c > cols:
            raise PlacementError(f"layer {names[i]}: its {r} x {c} rectangle is larger than the {rows} x {cols} "
                                 "array; reduce its output channels (or fan-in), or use a larger array")
    need = sum(r * c for r, c in sizes)
    if need > rows * cols:
        raise PlacementError(f"the network needs {need:,} conductance pairs, the {rows} x {cols} array has "
                             f"{rows * cols:,}; shrink the network or use a larger array")
    best, best_area = None, -1
    for key in ORDERS.values():
        order = sorted(range(len(sizes)), key=lambda i: (*key(sizes[i]), i))
        for rule in RULES:
            places, failed = _skyline(sizes, rows, cols, order, rule)
            if failed is None:
                return places  # type: ignore[return-value]
            area = sum(sizes[j][0] * sizes[j][1] for j, p in enumerate(places) if p is not None)
            if area > best_area:
                best, best_area = failed, area
    r, c = sizes[best]
    raise PlacementError(f"layer {names[best]}: its {r} x {c} rectangle does not pack beside the other layers "
                         f"({need:,} of {rows * cols:,} pairs needed in all, {best_area:,} placed); reduce its "
                         "output channels or fan-in, or use a larger array")


def check_disjoint(rects: list[tuple[int, int, int, int]], rows: int, cols: int) -> bool:
    """True if the (row0, nrows, col0, ncols) rectangles lie inside the array and do not overlap."""
    used = np.zeros((rows, cols), dtype=bool)
    for r0, nr, c0, nc in rects:
        if r0 < 0 or c0 < 0 or r0 + nr > rows or c0 + nc > cols or used[r0 : r0 + nr, c0 : c0 + nc].any():
            return False
        used[r0 : r0 + nr, c0 : c0 + nc] = True
    return True

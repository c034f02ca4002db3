"""Layer-by-layer scoreboard: integer equality of every layer's outputs with the golden model."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Mismatch:
    inference: int
    layer: int
    position: tuple[int, int]
    channel: int
    expected: int
    got: int
    count: int  # differing values in this layer

    def __str__(self) -> str:
        y, x = self.position
        return (f"inference {self.inference} layer {self.layer}: first difference at (y={y}, x={x}, c={self.channel}) "
                f"expected {self.expected} got {self.got} ({self.count} values differ)")


@dataclass
class Scoreboard:
    n_layers: int
    compared: list[int] = field(default_factory=list)  # values compared per layer
    mismatches: list[Mismatch] = field(default_factory=list)
    passed: list[bool] = field(default_factory=list)  # per inference

    def __post_init__(self):
        self.compared = [0] * self.n_layers
        self.layer_fail = [0] * self.n_layers
        self._current_ok = True

    def begin(self) -> None:
        self._current_ok = True

    def compare(self, inference: int, layer: int, expected: np.ndarray, got: np.ndarray) -> bool:
        expected, got = np.asarray(expected, dtype=np.int64), np.asarray(got, dtype=np.int64)
        if expected.shape != got.shape:
            raise ValueError(f"layer {layer}: shape {got.shape} != expected {expected.shape}")
        self.compared[layer] += expected.size
        diff = np.argwhere(expected != got)
        if len(diff):
            y, x, c = map(int, diff[0])
            self.mismatches.append(Mismatch(inference, layer, (y, x), c, int(expected[y, x, c]),
                                            int(got[y, x, c]), len(diff)))
            self.layer_fail[layer] += 1
            self._current_ok = False
            return False
        return True

    def end(self) -> bool:
        self.passed.append(self._current_ok)
        return self._current_ok

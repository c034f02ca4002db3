"""Layer-by-layer scoreboard: integer equality of every layer's outputs with the golden model.

A mismatch names the first differing value of a layer (inference, layer and its name, output
position (y, x), channel, expected and got, how many values of the layer differ); `mismatch_lines`
adds the cycle in which that value went through post-processing (perf/cycles.py), to find it in a
waveform."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    name: str = ""  # the layer's name in the program
    cycle: int | None = None  # post-processing cycle of the value (schedule model, pauses excluded)
    case: str = ""  # the case of a multi-case run

    def __str__(self) -> str:
        y, x = self.position
        name = f" ({self.name})" if self.name else ""
        case = f"{self.case} " if self.case else ""
        when = f"; post-processed at cycle {self.cycle} of the run (START = 0, pauses excluded)" \
            if self.cycle is not None else ""
        return (f"{case}inference {self.inference} layer {self.layer}{name}: first difference at (y={y}, x={x}, "
                f"c={self.channel}) expected {self.expected} got {self.got} ({self.count} values differ){when}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Mismatch":
        return cls(**{**d, "position": tuple(d["position"])})


@dataclass
class Scoreboard:
    n_layers: int
    names: list[str] = field(default_factory=list)
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
            name = self.names[layer] if layer < len(self.names) else ""
            self.mismatches.append(Mismatch(inference, layer, (y, x), c, int(expected[y, x, c]),
                                            int(got[y, x, c]), len(diff), name))
            self.layer_fail[layer] += 1
            self._current_ok = False
            return False
        return True

    def end(self) -> bool:
        self.passed.append(self._current_ok)
        return self._current_ok


def mismatch_lines(cfg, prog, mismatches: list[Mismatch], case: str = "") -> list[str]:
    """The mismatches as lines, each with the post-processing cycle of its first difference (to
    find it in a waveform) and, in a run of several cases, the case's name."""
    from aoncim.perf.cycles import postproc_cycle

    out = []
    for mm in mismatches:
        mm.case = case
        try:
            mm.cycle = postproc_cycle(cfg, prog, mm.layer, *mm.position, mm.channel)
        except (IndexError, AssertionError):  # a layer the cycle model cannot place: no cycle
            pass
        out.append(str(mm))
    return out

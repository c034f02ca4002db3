"""Layer-by-layer scoreboard: integer equality of every layer's outputs with the golden model, and
of the whole state a layer may touch with the golden model's memory image.

A mismatch names the first differing value of a layer (inference, layer and its name, output
position (y, x), channel, expected and got, how many values of the layer differ); `mismatch_lines`
adds the cycle in which that value went through post-processing (perf/cycles.py), to find it in a
waveform.

The output slice alone cannot see a layer that writes where it should not (a post-processing lane
one word past the layer's output survived the random co-simulation): `MemoryImage` is what both
activation banks and the output memory must hold -- what they held before, with the host's input
and each layer's golden output (its descriptor's bank, base and size, HWC order) written in -- and
`Scoreboard.compare_memories` compares every word of them with the chip's after a layer; a
`MemoryMismatch` names the memory, address, expected and got, and whether the word is inside the
layer's output or a write outside it. `FullStateCheck` runs it through the host driver on the
inferences `full_check_due` picks (reading whole memories over the bus costs more than the run).
A program with depthwise weights (`Program.dw_weights`) adds the depthwise weight memory (DWW) to
the image: what it held, with the words the program load wrote (`Program.dw_ranges`) at their
program values, so a weight the host port put at the wrong word, or any write to the DWW after the
load, is a `MemoryMismatch` of the DWW.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

# The memories a layer may write, by the names of their host windows (aoncim.regmap.Region); a
# program with depthwise weights adds DWW_MEMORY (which the program load writes, and nothing else).
MEMORIES = ("ACT0", "ACT1", "OUT")
DWW_MEMORY = "DWW"
FULL_CHECK_ENV = "AONCIM_FULL_CHECK"  # "first" (default), "all" or "off": see full_check_due


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
    def from_dict(cls, d: dict) -> "Mismatch | MemoryMismatch":
        """A mismatch as the testbench wrote it (JSON): either kind."""
        if d.get("kind") == "memory":
            return MemoryMismatch.from_dict(d)
        return cls(**{**d, "position": tuple(d["position"])})


def output_region(d) -> tuple[str, int, int]:
    """Where layer descriptor `d` writes: (memory, first address, words)."""
    memory = "OUT" if d.to_out else ("ACT1" if d.out_bank else "ACT0")
    return memory, int(d.out_base), int(d.out_h * d.out_w * d.out_c)


@dataclass
class MemoryMismatch:
    """A word of an activation bank or the output memory that differs from the golden memory image
    after a layer: the first such word outside the layer's output if there is one (a write where
    the layer must not write), else the first inside it."""

    inference: int
    layer: int
    memory: str        # "ACT0", "ACT1", "OUT" or "DWW"
    address: int       # word address in that memory
    expected: int
    got: int
    inside: bool       # the address is in the layer's output region
    outside_count: int  # words of this memory that differ outside the layer's output
    inside_count: int   # ... and inside it
    region: tuple[str, int, int]  # the layer's output: memory, first address, words
    name: str = ""
    cycles: tuple[int, int] | None = None  # the layer's cycles in the run (START = 0, pauses excluded)
    case: str = ""
    kind: str = "memory"

    def __str__(self) -> str:
        name = f" ({self.name})" if self.name else ""
        case = f"{self.case} " if self.case else ""
        bank = f" (bank {self.memory[-1]})" if self.memory.startswith("ACT") else ""
        mem, lo, n = self.region
        what = "inside the layer's output" if self.inside else "write outside the layer's output"
        when = f"; the layer ran in cycles {self.cycles[0]}..{self.cycles[1]} of the run (START = 0, pauses " \
               f"excluded)" if self.cycles is not None else ""
        return (f"{case}inference {self.inference} layer {self.layer}{name}: {what}: {self.memory}{bank} address "
                f"{self.address} expected {self.expected} got {self.got} (layer's output: {mem} {lo}..{lo + n - 1}; "
                f"{self.memory} differs in {self.outside_count} word(s) outside it, {self.inside_count} inside){when}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MemoryMismatch":
        cycles = d.get("cycles")
        return cls(**{**d, "region": tuple(d["region"]), "cycles": tuple(cycles) if cycles is not None else None})


class MemoryImage:
    """What the activation banks and the output memory hold if the chip does exactly what the
    golden model says: start from the memories as read (`MEMORIES` -> int arrays, OUT signed, and
    DWW if read), then apply the host's input write and each layer's golden output, where its
    descriptor says (and a program load's depthwise weights, `write_dw_weights`)."""

    def __init__(self, memories: dict[str, np.ndarray]):
        self.words = {k: np.array(memories[k], dtype=np.int64) for k in (*MEMORIES, DWW_MEMORY) if k in memories}

    def write(self, memory: str, base: int, values) -> None:
        v = np.asarray(values, dtype=np.int64).reshape(-1)
        mem = self.words[memory]
        if base < 0 or base + v.size > mem.size:
            raise ValueError(f"write of {v.size} words at {memory} {base}: the memory has {mem.size}")
        mem[base : base + v.size] = v

    def write_input(self, d0, x_hwc) -> None:
        """The host's input for first layer `d0`, as the driver writes it (HWC, at in_base of in_bank)."""
        self.write("ACT1" if d0.in_bank else "ACT0", int(d0.in_base), x_hwc)

    def write_dw_weights(self, prog) -> None:
        """The depthwise weights the driver's program load writes (`Program.dw_ranges`)."""
        for lo, n in prog.dw_ranges():
            self.write(DWW_MEMORY, lo, prog.dw_weights[lo : lo + n])

    def write_layer(self, d, out_hwc) -> None:
        """Layer `d`'s golden output (out_h, out_w, out_c), as the layer writes it."""
        memory, base, n = output_region(d)
        self.write(memory, base, np.asarray(out_hwc).reshape(n))

    def diff(self, got: dict[str, np.ndarray], d) -> list[tuple]:
        """Per memory that differs: (memory, address, expected, got, inside, outside count, inside
        count) of its first differing word outside `d`'s output region, else inside it."""
        region, lo, n = output_region(d)
        out = []
        if set(got) != set(self.words):
            raise ValueError(f"memories read {sorted(got)}, the image holds {sorted(self.words)}")
        for k in self.words:
            g = np.asarray(got[k], dtype=np.int64).reshape(-1)
            want = self.words[k]
            if g.shape != want.shape:
                raise ValueError(f"{k}: {g.size} words read, the image has {want.size}")
            bad = np.flatnonzero(g != want)
            if not bad.size:
                continue
            inside = (bad >= lo) & (bad < lo + n) if k == region else np.zeros(bad.size, dtype=bool)
            first = bad[~inside][0] if (~inside).any() else bad[0]
            out.append((k, int(first), int(want[first]), int(g[first]), bool(inside[bad == first][0]),
                        int((~inside).sum()), int(inside.sum())))
        return out


def full_check_due(inference: int) -> bool:
    """Whether every layer of this inference of a case gets the whole-memory check: the first
    inference of every case (a random case has one; a network run on several inputs repeats the
    same writes). $AONCIM_FULL_CHECK: "all" every inference, "off" none."""
    mode = os.environ.get(FULL_CHECK_ENV, "first")
    if mode not in ("first", "all", "off"):
        raise ValueError(f"{FULL_CHECK_ENV}={mode!r}: use first, all or off")
    return mode == "all" or (mode == "first" and inference == 0)


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
        self.memory_layers = 0  # layers whose whole memory state was compared
        self._current_ok = True
        self._failed: set[int] = set()  # layers of the current inference counted in layer_fail

    def begin(self) -> None:
        self._current_ok = True
        self._failed = set()

    def _fail(self, layer: int) -> None:
        if layer not in self._failed:
            self._failed.add(layer)
            self.layer_fail[layer] += 1
        self._current_ok = False

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
            self._fail(layer)
            return False
        return True

    def compare_memories(self, inference: int, layer: int, d, image: MemoryImage,
                         got: dict[str, np.ndarray]) -> bool:
        """Every word of the activation banks and the output memory after `layer` (descriptor `d`)
        against the golden image (which must already hold the layer's output); one
        MemoryMismatch per memory that differs. Differences only inside the layer's output are
        left out when `compare` already reported the layer: they are the same values."""
        self.memory_layers += 1
        diffs = image.diff(got, d)
        if layer in self._failed:
            diffs = [df for df in diffs if df[5]]  # words outside the output differ
        name = self.names[layer] if layer < len(self.names) else ""
        for memory, addr, want, value, inside, n_out, n_in in diffs:
            self.mismatches.append(MemoryMismatch(inference, layer, memory, addr, want, value, inside, n_out, n_in,
                                                  output_region(d), name))
        if diffs:
            self._fail(layer)
        return not diffs

    def end(self) -> bool:
        self.passed.append(self._current_ok)
        return self._current_ok


def mismatch_lines(cfg, prog, mismatches: list[Mismatch], case: str = "") -> list[str]:
    """The mismatches as lines, each with the post-processing cycle of its first difference (to
    find it in a waveform) and, in a run of several cases, the case's name."""
    from aoncim.perf.cycles import postproc_cycle

    from aoncim.perf.cycles import layer_cycles

    out = []
    for mm in mismatches:
        mm.case = case
        try:
            if isinstance(mm, MemoryMismatch):
                start = sum(layer_cycles(cfg, d) for d in prog.layers[: mm.layer])
                mm.cycles = (start, start + layer_cycles(cfg, prog.layers[mm.layer]) - 1)
            else:
                mm.cycle = postproc_cycle(cfg, prog, mm.layer, *mm.position, mm.channel)
        except (IndexError, AssertionError):  # a layer the cycle model cannot place: no cycle
            pass
        out.append(str(mm))
    return out


class FullStateCheck:
    """The whole-memory check of one case, through the host driver (`read_memories`).

    Per inference: `begin` (before the input is written) reads the memories unless the image
    already holds them, `write_input` and `after_layer` apply the host's and each layer's writes to
    the image, and `after_layer` reads every word back and scores it. After a check the image
    becomes what was read, so a bug is reported at the layer that made it, once. An inference
    `full_check_due` skips forgets the image (the next check reads afresh). With `sb=None` it only
    reads (the raw harness's recording pass, where reads answer zeros): the reads are the same.

    One check can serve the cases of a run one after the other (`next_case`): loading a program
    writes no activation or output memory, so the image of the last checked layer is still what
    they hold and the next case's first check needs no read of its own; a case that changes them
    otherwise (calibration or error-case runs, an error or a reset) must `forget` it. A program
    with depthwise weights is checked on the DWW too: the image of a carried state takes the
    program load's writes of it (`next_case`), a fresh one has them written over what was read
    (`begin`), so the first check also proves the load."""

    def __init__(self, prog, expected: list[list[np.ndarray]] | None, sb: Scoreboard | None):
        self.prog, self.expected, self.sb = prog, expected, sb
        self.image: MemoryImage | None = None
        self.active = False

    @property
    def dww(self) -> bool:
        """Whether the DWW is part of the state checked: the program loads depthwise weights."""
        return getattr(self.prog, "dw_weights", None) is not None

    def next_case(self, prog, expected: list[list[np.ndarray]] | None, sb: Scoreboard | None) -> None:
        self.prog, self.expected, self.sb = prog, expected, sb
        self.active = False
        if self.image is not None:
            if not self.dww:
                self.image.words.pop(DWW_MEMORY, None)
            elif DWW_MEMORY in self.image.words:
                self.image.write_dw_weights(prog)
            else:
                self.forget()   # the DWW was not read: the next check reads every memory afresh

    def forget(self) -> None:
        self.image = None

    async def begin(self, drv, inference: int) -> None:
        self.active = full_check_due(inference)
        if not self.active:
            self.forget()
        elif self.image is None:
            self.image = MemoryImage(await self._read(drv))
            if self.dww:
                self.image.write_dw_weights(self.prog)

    def write_input(self, x_hwc) -> None:
        if self.active:
            self.image.write_input(self.prog.layers[0], x_hwc)

    async def after_layer(self, drv, inference: int, layer: int) -> bool:
        """Read and score the memories after `layer`; True if they match (or no check is due)."""
        if not self.active:
            return True
        d = self.prog.layers[layer]
        got = await self._read(drv)
        if self.sb is None:
            return True
        self.image.write_layer(d, self.expected[inference][layer])
        ok = self.sb.compare_memories(inference, layer, d, self.image, got)
        self.image = MemoryImage(got)
        return ok

    async def _read(self, drv) -> dict[str, np.ndarray]:
        # Without depthwise weights the call is the one drivers (and test doubles) have always had.
        return await (drv.read_memories(dww=True) if self.dww else drv.read_memories())

"""Record what the host driver does on the bus, and replay a simulator's answers through it again.

The raw-Verilator harness (sim/raw_verilator.py, sim/raw/harness.cpp) runs no Python: it replays a
script of bus operations at C++ speed. The script is made by running the unchanged host driver
(`firmware/driver.py`) over `RecordingHostBus`, which records every word written, every read
(address and length) and every wait for the interrupt, and answers reads from a small model of the
chip's control registers (ID, CONFIG_HASH, IRQ_STATUS, STATUS) so the driver takes the path a
healthy chip makes it take; every other read answers 0 (the driver only passes those values on).

After the harness ran, the same host code runs again over `ReplayHostBus`, which answers each read
with the data the simulated chip returned and checks that the driver writes, reads and waits exactly
as recorded. So the driver itself turns the chip's words into layer outputs and raises `ChipError`
on an error status, as in the cocotb flow, and a chip that made the driver take another path than
the recording (e.g. a pause where the model said done) is reported as a divergence, never as a
silent mis-replay.

Script operations (tuples): ("W", byte_addr, words), ("R", byte_addr, n), ("I", timeout_cycles)
(clock until irq is high), ("M", name) (a timing mark: the harness notes wall time and clock count).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aoncim.config import AonCimConfig
from aoncim.regmap import (CHIP_ID, CTRL_CONTINUE, CTRL_START, CTRL_STEP, IRQ_DONE, IRQ_PAUSED, ST_DONE,
                           ST_PAUSED, AddressMap, Reg)


class ReplayDiverged(RuntimeError):
    """The driver, fed the simulated chip's answers, did not repeat the recorded operations."""


def run_sync(coro):
    """Run a coroutine that never really suspends (the recording and replay buses answer at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("host code awaited something other than the recording/replay bus")


@dataclass
class RecordingHostBus:
    """The driver's HostBus protocol, recording operations instead of performing them."""

    cfg: AonCimConfig
    irq_timeout: int = 50_000_000  # clock cycles the harness waits for each interrupt
    ops: list[tuple] = field(default_factory=list)
    n_reads: int = 0

    def __post_init__(self):
        self.amap = AddressMap(self.cfg)
        self._num_layers = 0
        self._step = False
        self._layer = 0
        self._event = 0  # what the model says IRQ_STATUS holds

    @property
    def last_read(self) -> int:
        """Index (among reads) of the most recent read."""
        return self.n_reads - 1

    def mark(self, name: str) -> None:
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"mark name {name!r}: one word")
        self.ops.append(("M", name))

    async def write_words(self, addr: int, words: list[int]) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        if not words:
            return
        self.ops.append(("W", addr, words))
        reg = self.amap.reg
        for i, w in enumerate(words):
            a = addr + 4 * i
            if a == reg(Reg.NUM_LAYERS):
                self._num_layers = w
            elif a == reg(Reg.CTRL):
                if w & CTRL_START:
                    self._step, self._layer = bool(w & CTRL_STEP), 0
                elif w & CTRL_CONTINUE:
                    self._layer += 1

    async def read_words(self, addr: int, n: int) -> list[int]:
        if n <= 0:
            return []
        self.ops.append(("R", addr, n))
        self.n_reads += 1
        reg = self.amap.reg
        last = not self._step or self._layer >= self._num_layers - 1
        answer = {reg(Reg.ID): CHIP_ID, reg(Reg.CONFIG_HASH): self.cfg.config_hash,
                  reg(Reg.IRQ_STATUS): IRQ_DONE if last else IRQ_PAUSED,
                  reg(Reg.STATUS): ST_DONE if last else ST_PAUSED}
        return [answer.get(addr + 4 * i, 0) for i in range(n)]

    async def wait_irq(self) -> None:
        self.ops.append(("I", self.irq_timeout))

    @property
    def words_written(self) -> int:
        return sum(len(op[2]) for op in self.ops if op[0] == "W")


class ReplayHostBus:
    """Answers the driver's reads with a simulator's read data, checking it repeats `ops` exactly."""

    def __init__(self, ops: list[tuple], reads: list[list[int]], echo_addr: int | None = None):
        self.ops, self.reads = ops, reads
        self.pos = 0
        self.n_reads = 0
        # IRQ_STATUS is write-one-to-clear: the driver writes back what it read. Where the chip's
        # value differs from the model's (an ERROR interrupt), the echo is accepted so the driver
        # goes on to read STATUS and report the chip's error itself.
        self.echo_addr = echo_addr
        self._echo: int | None = None

    @property
    def last_read(self) -> int:
        return self.n_reads - 1

    def _next(self, kind: str, what: str) -> tuple:
        if self.pos >= len(self.ops):
            raise ReplayDiverged(f"the driver went on with {what} after the recorded script ended")
        op = self.ops[self.pos]
        if op[0] != kind:
            raise ReplayDiverged(f"operation {self.pos}: the driver did {what}, the recording has {_describe(op)}")
        self.pos += 1
        return op

    def mark(self, name: str) -> None:
        op = self._next("M", f"mark {name}")
        if op[1] != name:
            raise ReplayDiverged(f"operation {self.pos - 1}: mark {name}, the recording has mark {op[1]}")

    async def write_words(self, addr: int, words: list[int]) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        if not words:
            return
        op = self._next("W", f"a write of {len(words)} word(s) at {addr:#x}")
        echo = addr == self.echo_addr == op[1] and len(words) == len(op[2]) == 1 and words[0] == self._echo
        if not echo and (op[1] != addr or op[2] != words):
            first = next((i for i, (a, b) in enumerate(zip(op[2], words)) if a != b), min(len(op[2]), len(words)))
            raise ReplayDiverged(f"operation {self.pos - 1}: the driver wrote {len(words)} word(s) at {addr:#x}, "
                                 f"the recording {len(op[2])} at {op[1]:#x} (first difference at word {first})")

    async def read_words(self, addr: int, n: int) -> list[int]:
        if n <= 0:
            return []
        op = self._next("R", f"a read of {n} word(s) at {addr:#x}")
        if (op[1], op[2]) != (addr, n):
            raise ReplayDiverged(f"operation {self.pos - 1}: the driver read {n} word(s) at {addr:#x}, "
                                 f"the recording {op[2]} at {op[1]:#x}")
        if self.n_reads >= len(self.reads):
            raise ReplayDiverged(f"the simulator returned {len(self.reads)} reads, the driver wants more")
        data = self.reads[self.n_reads]
        self.n_reads += 1
        if len(data) != n:
            raise ReplayDiverged(f"read {self.n_reads - 1}: the simulator returned {len(data)} words, not {n}")
        if addr == self.echo_addr and n == 1:
            self._echo = data[0]
        return list(data)

    async def wait_irq(self) -> None:
        self._next("I", "a wait for the interrupt")

    def finish(self) -> None:
        if self.pos != len(self.ops):
            raise ReplayDiverged(f"the driver stopped at operation {self.pos} of {len(self.ops)} "
                                 f"(next: {_describe(self.ops[self.pos])})")


def _describe(op: tuple) -> str:
    if op[0] == "W":
        return f"a write of {len(op[2])} word(s) at {op[1]:#x}"
    if op[0] == "R":
        return f"a read of {op[2]} word(s) at {op[1]:#x}"
    if op[0] == "I":
        return "a wait for the interrupt"
    return f"mark {op[1]}"

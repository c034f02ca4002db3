"""Host-visible address map, derived from the config; shared by RTL, host driver and docs.

The byte address space is split into eight equal regions selected by the top three address bits,
each as large as the largest window (the conductance window), so decoding is a 3-bit compare.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .config import AonCimConfig, _clog2
from .program import DESC_WORDS

CHIP_ID = 0xA0C10001  # "AON-CiM", register-map version 1


class Region(enum.IntEnum):
    REGS = 0
    PROGRAM = 1
    SCALE = 2
    BIAS = 3
    ACT0 = 4
    ACT1 = 5
    OUT = 6
    GCODE = 7


class Reg(enum.IntEnum):
    """Word offsets in the REGS region."""

    ID = 0            # RO  CHIP_ID
    CONFIG_HASH = 1   # RO  AonCimConfig.config_hash of the generated RTL
    CTRL = 2          # W: bit0 START, bit1 CONTINUE (self-clearing); RW bit8 STEP (pause after each layer)
    STATUS = 3        # RO  bit0 BUSY, bit1 DONE, bit2 PAUSED, bit3 ERROR, [15:8] layer, [23:16] error code
    IRQ_STATUS = 4    # R/W1C bit0 DONE, bit1 PAUSED, bit2 ERROR
    IRQ_ENABLE = 5    # RW   same bits; irq = |(IRQ_STATUS & IRQ_ENABLE)
    NUM_LAYERS = 6    # RW
    NOISE_SEED = 7    # RW   read-noise PRNG seed of the next run
    CYCLES = 8        # RO   clock cycles of the last/current run
    MVMS = 9          # RO   array MVMs of the last/current run


CTRL_START, CTRL_CONTINUE, CTRL_STEP = 1 << 0, 1 << 1, 1 << 8
ST_BUSY, ST_DONE, ST_PAUSED, ST_ERROR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
IRQ_DONE, IRQ_PAUSED, IRQ_ERROR = 1 << 0, 1 << 1, 1 << 2
N_REGS = len(Reg)


class ErrorCode(enum.IntEnum):
    NONE = 0
    BAD_OPCODE = 1
    NO_LAYERS = 2


@dataclass(frozen=True)
class AddressMap:
    cfg: AonCimConfig

    @property
    def window_words(self) -> dict[Region, int]:
        c = self.cfg
        return {
            Region.REGS: 64,
            Region.PROGRAM: c.max_layers * DESC_WORDS,
            Region.SCALE: c.param_depth,
            Region.BIAS: c.param_depth,
            Region.ACT0: c.act_depth,
            Region.ACT1: c.act_depth,
            Region.OUT: c.out_depth,
            Region.GCODE: c.rows * c.cols,
        }

    @property
    def region_word_bits(self) -> int:
        return _clog2(max(self.window_words.values()))

    @property
    def word_addr_bits(self) -> int:
        return self.region_word_bits + 3

    @property
    def byte_addr_bits(self) -> int:
        return self.word_addr_bits + 2

    def base(self, region: Region) -> int:
        """Byte address of a region."""
        return int(region) << (self.region_word_bits + 2)

    def reg(self, r: Reg) -> int:
        return self.base(Region.REGS) + 4 * int(r)

    def gcode(self, row: int, col: int) -> int:
        return self.base(Region.GCODE) + 4 * (row * self.cfg.cols + col)

    def pack_pair(self, gp: int, gm: int) -> int:
        """One 32-bit word per differential pair: G+ in [15:0], G- in [31:16]."""
        return (gp & 0xFFFF) | ((gm & 0xFFFF) << 16)

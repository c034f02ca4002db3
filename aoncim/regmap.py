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
    NUM_LAYERS = 6    # RW   layers to run; START stops with NO_LAYERS / TOO_MANY_LAYERS outside 1..max_layers
    NOISE_SEED = 7    # RW   read-noise PRNG seed of the next run
    CYCLES = 8        # RO   clock cycles of the last/current run
    MVMS = 9          # RO   array MVMs of the last/current run (from 0, whatever MVM_BASE)
    MVM_BASE = 10     # RW   read-noise MVM counter of the next run's first MVM (host calibration reads)
    ACT_PACK = 11     # RW   bit0: reads of ACT0/ACT1 word i return codes 4i..4i+3, code 4i+k in bits [8k+7:8k] (reads 0 where the config cannot pack: dac_bits > 8 or load_lanes < 4)
    ALPHA = 16        # RW   drift-compensation alpha of layer 0; layer i at ALPHA + i (max_layers registers)


# The alpha registers sit at a fixed offset after the scalar registers so their address does not
# move with max_layers; the REGS window grows to hold them (AddressMap.window_words).
ALPHA_BASE = int(Reg.ALPHA)
CTRL_START, CTRL_CONTINUE, CTRL_STEP = 1 << 0, 1 << 1, 1 << 8
ST_BUSY, ST_DONE, ST_PAUSED, ST_ERROR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
IRQ_DONE, IRQ_PAUSED, IRQ_ERROR = 1 << 0, 1 << 1, 1 << 2
ACT_PACK_CODES = 4  # activation codes per word in packed reads
ACT_PACK_BITS = 32 // ACT_PACK_CODES  # bits per code in a packed word (code k in bits [8k+7:8k])


def can_pack_act(cfg: AonCimConfig) -> bool:
    """Packed activation reads (Reg.ACT_PACK) need byte-sized codes and four activation SRAMs a
    bank, so the four codes of a word are read from four SRAMs at once."""
    return cfg.dac_bits <= ACT_PACK_BITS and cfg.load_lanes >= ACT_PACK_CODES
N_REGS = len(Reg)


class ErrorCode(enum.IntEnum):
    """STATUS[23:16] after a run stopped with ERROR; STATUS[15:8] names the layer.

    The sequencer checks every descriptor before the layer touches a memory, so a malformed
    descriptor stops the run without writing anything for that layer. When several checks fail,
    the lowest code is reported. Each member's docstring is the message the driver shows.
    """

    def __new__(cls, value: int, doc: str):
        member = int.__new__(cls, value)
        member._value_ = value
        member.__doc__ = doc
        return member

    NONE = 0, "no error"
    BAD_OPCODE = 1, "unknown opcode"
    NO_LAYERS = 2, "START with NUM_LAYERS = 0"
    TOO_MANY_LAYERS = 3, "NUM_LAYERS exceeds max_layers"
    BAD_BITS = 4, "in_bits or out_bits not in act_bits_supported"
    ZERO_SIZE = 5, "zero stride, kernel, input or output size or channel count"
    BAD_GEOMETRY = 6, ("output size inconsistent with input, kernel, stride and padding, "
                       "or (MVM) k_rows != k_h*k_w*in_c")
    ARRAY_ROWS = 7, "rows row0..row0+min(k_rows, rows)-1 outside the array (a row-tiled layer starts at row 0)"
    ARRAY_COLS = 8, "columns col0..col0+tiles*out_c-1 outside the array (tiles = ceil(k_rows / rows))"
    BAD_POOL = 9, ("pooling layer with padding, array rows/columns, a channel count change, or "
                   "(max pooling) changed activation bits or a to_out destination")
    POOL_SUM = 10, "pooling window sum can exceed pool_sum_bits"
    PARAM_RANGE = 11, "param_base+out_c exceeds param_depth"
    BAD_SHIFT = 12, "shift exceeds pp_shift_max"
    IN_RANGE = 13, "input map in_base+in_h*in_w*in_c exceeds act_depth"
    OUT_RANGE = 14, "output map out_base+out_h*out_w*out_c exceeds act_depth (out_depth for to_out)"
    ACT_OVERLAP = 15, "output overlaps the input in the same activation bank"

    @classmethod
    def describe(cls, code: int) -> str:
        """One line for a raw STATUS error code, also for codes this register map does not know."""
        if code in cls._value2member_map_:
            e = cls(code)
            return f"{e.name}: {e.__doc__}"
        return f"unknown error code {code}"


@dataclass(frozen=True)
class AddressMap:
    cfg: AonCimConfig

    @property
    def window_words(self) -> dict[Region, int]:
        c = self.cfg
        return {
            Region.REGS: max(64, 1 << _clog2(ALPHA_BASE + c.max_layers)),
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

    def alpha(self, layer: int) -> int:
        """Byte address of layer `layer`'s drift-compensation alpha register."""
        return self.base(Region.REGS) + 4 * (ALPHA_BASE + layer)

    def gcode(self, row: int, col: int) -> int:
        return self.base(Region.GCODE) + 4 * (row * self.cfg.cols + col)

    def pack_pair(self, gp: int, gm: int) -> int:
        """One 32-bit word per differential pair: G+ in [15:0], G- in [31:16]."""
        return (gp & 0xFFFF) | ((gm & 0xFFFF) << 16)

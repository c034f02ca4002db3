"""The AON-CiM program: what the compiler emits, the image stores, the golden model and the RTL run.

A program is a list of layer descriptors plus the data they reference: conductance codes placed as
rectangles on the one crossbar, and per-channel post-processing constants. The descriptor bit layout
is defined once here (`DESCRIPTOR_FIELDS`) and used both to pack words on the host and to build the
`amaranth.lib.data` layout in the RTL, so the two can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.lib import enum

from .config import AonCimConfig

# (name, bits). Order is the bit order from LSB of word 0; total padded to DESC_WORDS words.
DESCRIPTOR_FIELDS: tuple[tuple[str, int], ...] = (
    ("opcode", 4),
    ("in_bits", 4),      # activation bits of the input (PWM duration 2**in_bits)
    ("out_bits", 4),     # activation bits written for the next layer
    ("stride", 4),
    ("pad_h", 4),        # zero padding above and below the input map
    ("relu", 1),         # only meaningful for to_out layers; activations are always clamped >= 0
    ("to_out", 1),       # write signed results to the output memory instead of an activation bank
    ("in_bank", 1),
    ("out_bank", 1),
    ("shift", 6),        # post-processing right shift
    ("in_h", 12), ("in_w", 12), ("in_c", 12),
    ("k_h", 12), ("k_w", 12),
    ("out_h", 12), ("out_w", 12), ("out_c", 12),
    ("k_rows", 16),      # k_h * k_w * in_c: im2col rows; more than the array's rows -> row tiles
    ("row0", 16), ("col0", 16),
    ("param_base", 16),
    ("in_base", 16), ("out_base", 16),
    ("pad_w", 4),        # padding left and right (Conv1d: 0 above and below, pad_w beside)
    ("pad_code", 8),     # the code padded positions load: the input's zero point (0 for unsigned maps)
    ("w_base", 16),      # Op.DWCONV: first DWW word of the layer's weights (other ops ignore it)
)
DESC_WORDS = 8
DESC_BITS = 32 * DESC_WORDS
assert sum(b for _, b in DESCRIPTOR_FIELDS) <= DESC_BITS


class Op(enum.Enum, shape=dict(DESCRIPTOR_FIELDS)["opcode"]):
    """The layer operations, one vocabulary for compiler, golden model, RTL, perf models and tools.

    An Amaranth enum shaped like the descriptor's opcode field: the RTL compares and switches on it
    (`d.opcode == Op.MVM`, `m.Case(Op.MAXPOOL)`), Python uses it as a plain enum. A descriptor
    stores the raw field (`LayerDescriptor.opcode`, an int that may be unknown); `.op` decodes it.
    A new operation is a member here plus its properties, and the places that implement it.
    """

    MVM = 1      # convolution / fully connected: im2col rows x a column window of the crossbar
    MAXPOOL = 2  # digital: max of each k_h x k_w window of activation codes (no array access)
    AVGPOOL = 3  # digital: window sum of codes through post-processing (scale, bias, shift, clamp)
    ADD = 4      # digital: residual add, the sum of two equal-size operands stored one after the other
                 # (a 2x1 sum window over the 2 x positions x C view) through post-processing
    DWCONV = 5   # digital: depthwise convolution, per channel the window sum of codes x DWW weights
                 # (padded like an MVM layer) through post-processing

    @property
    def label(self) -> str:
        """Short lower-case name for reports: "mvm", "maxpool", "avgpool"."""
        return self.name.lower()

    @property
    def uses_array(self) -> bool:
        """Reads conductances on the crossbar: has im2col rows (k_rows), a rectangle, row tiles and MVMs."""
        return self is Op.MVM

    @property
    def is_pool(self) -> bool:
        """Runs on the pooling path (stages R/S): a digital window per channel over the input codes,
        no array, channel count kept. The residual add is one (its window is the two operands of
        each element), and so is the depthwise convolution (its window sum is weighted)."""
        return self in (Op.MAXPOOL, Op.AVGPOOL, Op.ADD, Op.DWCONV)

    @property
    def pads(self) -> bool:
        """Its window may reach past the input map: pad_h, pad_w and pad_code (padded positions
        read pad_code). Pooling and the residual add take no padding."""
        return self in (Op.MVM, Op.DWCONV)

    @property
    def uses_dww(self) -> bool:
        """Reads weights from the depthwise weight memory (DWW), k_h*k_w*in_c words from w_base."""
        return self is Op.DWCONV

    @property
    def uses_params(self) -> bool:
        """Goes through post-processing: one (scale, bias) entry per output channel and a shift."""
        return self is not Op.MAXPOOL

    @property
    def keeps_bits(self) -> bool:
        """Outputs are input codes passed through unchanged: same bits, same scale, an activation bank."""
        return self is Op.MAXPOOL

    @property
    def kinds(self) -> tuple[str, str]:
        """Names of the op's layer kinds, for coverage and reports: (over a sliding window, over its
        whole input), e.g. MVM: ("conv", "linear"); one name twice when the two are not told apart.
        A whole-input window has one position, so no stride and no padding."""
        return {Op.MVM: ("conv", "linear"), Op.MAXPOOL: ("maxpool", "maxpool"),
                Op.AVGPOOL: ("avgpool", "global-avgpool"), Op.ADD: ("add", "add"),
                Op.DWCONV: ("depthwise", "depthwise")}[self]

    @classmethod
    def known(cls) -> dict[int, str]:
        """{opcode: label} of every operation, for messages."""
        return {o.value: o.label for o in cls}


_OPS = {o.value: o for o in Op}



@dataclass(frozen=True)
class IoQuant:
    """How real values map to codes at the network's edges, for the host and for comparisons with
    a float reference: an input value v is the code `clamp(round(v / in_scale) + in_zero, 0,
    2**in_bits - 1)` (HWC order), an output-memory value o is the real `o * out_scale`. The
    AnalogNets take [0, 1] images: in_scale = 1 / (2**bits - 1), in_zero = 0."""

    in_scale: float
    in_zero: int
    out_scale: float

    def quantise(self, x: np.ndarray, bits: int) -> np.ndarray:
        """Float inputs (C, H, W) or (N, C, H, W) -> HWC integer codes of `bits`."""
        x = np.asarray(x, dtype=np.float64)
        q = np.clip(np.rint(x / self.in_scale) + self.in_zero, 0, (1 << bits) - 1).astype(np.int64)
        return np.moveaxis(q, -3, -1)

    def dequantise(self, out: np.ndarray) -> np.ndarray:
        """Output-memory values -> real outputs of the network."""
        return np.asarray(out, dtype=np.float64) * self.out_scale


class ProgramError(ValueError):
    """A program that the configured chip cannot run."""


@dataclass(frozen=True)
class LayerDescriptor:
    opcode: int
    in_bits: int
    out_bits: int
    stride: int
    pad_h: int
    relu: int
    to_out: int
    in_bank: int
    out_bank: int
    shift: int
    in_h: int
    in_w: int
    in_c: int
    k_h: int
    k_w: int
    out_h: int
    out_w: int
    out_c: int
    k_rows: int
    row0: int
    col0: int
    param_base: int
    in_base: int
    out_base: int
    pad_w: int
    pad_code: int = 0
    w_base: int = 0

    @property
    def positions(self) -> int:
        """Output positions: one MVM each for an MVM layer, one window each for a pooling or
        depthwise layer."""
        return self.out_h * self.out_w

    @property
    def op(self) -> Op:
        """The opcode decoded; ValueError for a code no Op has (check() refuses those)."""
        return Op(self.opcode)

    @property
    def is_mvm(self) -> bool:
        """The layer uses the array (Op.uses_array); False for an unknown opcode."""
        op = _OPS.get(self.opcode)
        return op is not None and op.uses_array

    @property
    def whole_window(self) -> bool:
        """The window is the whole input (a fully connected layer, global pooling): one position."""
        return (self.k_h, self.k_w) == (self.in_h, self.in_w) and self.pad_h == self.pad_w == 0

    @property
    def kind(self) -> str:
        """The layer's kind, one of its op's `Op.kinds` (ValueError for an unknown opcode)."""
        return self.op.kinds[self.whole_window]

    @property
    def dw_words(self) -> int:
        """DWW words a depthwise layer reads (k_h*k_w*in_c from w_base, channel fastest); 0 otherwise."""
        op = _OPS.get(self.opcode)
        return self.k_h * self.k_w * self.in_c if op is not None and op.uses_dww else 0

    def tiles(self, rows: int) -> int:
        """Row tiles of an MVM layer on an array of `rows` rows (contract step 12): tile t holds
        im2col rows t*rows .. (t+1)*rows-1; 1 for a layer that fits, 0 for pooling."""
        return -(-self.k_rows // rows) if self.is_mvm else 0

    def tile_rects(self, rows: int) -> list[tuple[int, int, int, int]]:
        """Per row tile t: (first im2col row, number of rows, array row, array column). Tiles sit
        side by side along the columns from col0, out_c columns each, all from row0 (which is 0 for
        a tiled layer, whose first tile fills every row)."""
        return [(t * rows, min(rows, self.k_rows - t * rows), self.row0, self.col0 + t * self.out_c)
                for t in range(self.tiles(rows))]

    def mvms(self, rows: int) -> int:
        """Array MVMs (one PWM window and conversion each) this layer issues on an array of `rows`
        rows: one per output position and row tile; pooling runs in the digital periphery."""
        return self.positions * self.tiles(rows)

    def pack(self) -> list[int]:
        value, pos = 0, 0
        for name, bits in DESCRIPTOR_FIELDS:
            v = getattr(self, name)
            if not 0 <= v < (1 << bits):
                raise ProgramError(f"descriptor field {name}={v} does not fit in {bits} bits")
            value |= v << pos
            pos += bits
        return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(DESC_WORDS)]

    @classmethod
    def unpack(cls, words: list[int]) -> "LayerDescriptor":
        value = sum((w & 0xFFFFFFFF) << (32 * i) for i, w in enumerate(words))
        kw, pos = {}, 0
        for name, bits in DESCRIPTOR_FIELDS:
            kw[name] = (value >> pos) & ((1 << bits) - 1)
            pos += bits
        return cls(**kw)

    def check(self, cfg: AonCimConfig) -> None:
        """Raise ProgramError if the chip described by `cfg` cannot run this layer."""
        def need(cond, what):
            if not cond:
                raise ProgramError(what)
        need(self.opcode in _OPS, f"unknown opcode {self.opcode}; known: {Op.known()}")
        for b in (self.in_bits, self.out_bits):
            need(b in cfg.act_bits_supported, f"activation bits {b} not in {cfg.act_bits_supported}")
        need(self.stride >= 1, "stride must be >= 1")
        need(self.k_h >= 1 and self.k_w >= 1, "kernel must be at least 1x1")
        need(min(self.in_h, self.in_w, self.in_c, self.out_h, self.out_w, self.out_c) >= 1,
             f"zero-size geometry: input {self.in_h}x{self.in_w}x{self.in_c}, "
             f"output {self.out_h}x{self.out_w}x{self.out_c}")
        need(self.out_h == (self.in_h + 2 * self.pad_h - self.k_h) // self.stride + 1 and
             self.out_w == (self.in_w + 2 * self.pad_w - self.k_w) // self.stride + 1,
             "output size inconsistent with input, kernel, stride and padding")
        if self.is_mvm:
            need(self.k_rows == self.k_h * self.k_w * self.in_c, "k_rows != k_h*k_w*in_c")
            # Row tiles (contract step 12): the first tile has min(k_rows, rows) rows from row0, so a
            # tiled layer starts at row 0; the tiles take out_c columns each, side by side.
            tiles, height = self.tiles(cfg.rows), min(self.k_rows, cfg.rows)
            need(self.row0 + height <= cfg.rows,
                 f"rows {self.row0}..{self.row0 + height - 1} exceed the array's {cfg.rows} rows"
                 + (f" (a layer of {tiles} row tiles must start at row 0)" if tiles > 1 else ""))
            need(self.col0 + tiles * self.out_c <= cfg.cols,
                 f"columns {self.col0}..{self.col0 + tiles * self.out_c - 1} exceed the array's {cfg.cols} columns"
                 + (f" ({tiles} row tiles of {self.out_c} columns)" if tiles > 1 else ""))
        elif self.op.uses_dww:
            need(self.k_rows == 0 and self.row0 == 0 and self.col0 == 0, "a depthwise layer uses no array rows/columns")
            need(self.out_c == self.in_c, "a depthwise convolution keeps the channel count")
            need(not self.to_out, "a depthwise layer writes an activation bank, not the output memory")
            need(self.w_base + self.dw_words <= cfg.dw_depth,
                 f"depthwise weights {self.w_base}..{self.w_base + self.dw_words - 1} exceed dw_depth={cfg.dw_depth}")
            need(self.k_h * self.k_w * ((1 << self.in_bits) - 1) << (cfg.dw_weight_bits - 1) < 1 << (cfg.dw_sum_bits - 1),
                 f"depthwise window {self.k_h}x{self.k_w} sum exceeds dw_sum_bits={cfg.dw_sum_bits}")
        else:
            need(self.k_rows == 0 and self.row0 == 0 and self.col0 == 0, "a pooling layer uses no array rows/columns")
            need(self.out_c == self.in_c, "a pooling layer keeps the channel count")
            need(self.pad_h == self.pad_w == 0, "pooling layers take no padding")
            if self.op is Op.ADD:
                need(self.in_h == self.k_h == 2 and self.k_w == 1 and self.stride == 1 and self.out_h == 1,
                     "a residual add reads its two operands as a 2 x positions x channels map with a 2x1 window")
            need(self.k_h * self.k_w * ((1 << self.in_bits) - 1) < 1 << cfg.pool_sum_bits,
                 f"pooling window {self.k_h}x{self.k_w} sum exceeds pool_sum_bits={cfg.pool_sum_bits}")
        if self.op.keeps_bits:
            need(self.out_bits == self.in_bits and not self.to_out,
                 "max pooling keeps activation bits and writes an activation bank")
        need(self.pad_code < 1 << self.in_bits, f"pad code {self.pad_code} is not a {self.in_bits}-bit code")
        need(self.param_base + self.out_c <= cfg.param_depth, "post-processing parameters exceed param_depth")
        need(self.shift <= cfg.pp_shift_max, f"shift {self.shift} > pp_shift_max {cfg.pp_shift_max}")
        need(self.in_base + self.in_h * self.in_w * self.in_c <= cfg.act_depth, "input exceeds act_depth")
        depth = cfg.out_depth if self.to_out else cfg.act_depth
        out_end = self.out_base + self.positions * self.out_c
        need(out_end <= depth, f"output exceeds {'out_depth' if self.to_out else 'act_depth'}")
        # The chip writes outputs while it still reads inputs; the contract computes from the whole input.
        need(self.to_out or self.in_bank != self.out_bank or out_end <= self.in_base or
             self.in_base + self.in_h * self.in_w * self.in_c <= self.out_base,
             "output overlaps the input in the same activation bank")


@dataclass
class Program:
    """Everything a host loads into the chip for one network."""

    layers: list[LayerDescriptor]
    # Conductance codes of the whole array, (rows, cols) each; only placed rectangles are non-zero.
    g_plus: np.ndarray
    g_minus: np.ndarray
    # Post-processing constants, indexed by param_base + channel.
    pp_scale: np.ndarray
    pp_bias: np.ndarray
    names: list[str] = field(default_factory=list)
    # Drift-compensation constant per layer (fixed point, cfg.alpha_frac_bits); None means 1.0.
    alpha: np.ndarray | None = None
    # Offset-calibration input of every MVM layer: its mean im2col input codes (k_rows, (ky, kx, c)
    # order) on the compiler's calibration set; the host reads each column with it to correct that
    # column's bias (model/snapshot.py). Empty arrays for pooling layers; None: not calibrated.
    calib_codes: list[np.ndarray] | None = None
    # Real-value scales of the input codes and the output memory; None: not recorded (the input
    # is then an unsigned code of a [0, 1] value, and outputs are compared as codes).
    io: IoQuant | None = None
    # The depthwise weight memory (DWW) as the program loads it: cfg.dw_depth signed
    # dw_weight_bits codes; a depthwise layer reads k_h*k_w*in_c of them from its w_base, word
    # w_base + (ky*k_w + kx)*in_c + c for channel c. None: no depthwise layer (nothing to load).
    dw_weights: np.ndarray | None = None

    def alphas(self, cfg: AonCimConfig) -> np.ndarray:
        """Per-layer alpha, with the default (1.0) filled in."""
        if self.alpha is None:
            return np.full(len(self.layers), cfg.alpha_one, dtype=np.int64)
        return np.asarray(self.alpha, dtype=np.int64)

    def check(self, cfg: AonCimConfig) -> None:
        if not 1 <= len(self.layers) <= cfg.max_layers:
            raise ProgramError(f"{len(self.layers)} layers; the chip runs 1..{cfg.max_layers}")
        for i, d in enumerate(self.layers):
            try:
                d.check(cfg)
            except ProgramError as e:
                raise ProgramError(f"layer {i} ({self.layer_name(i)}): {e}") from None
        self._check_dataflow(cfg)
        if self.g_plus.shape != (cfg.rows, cfg.cols) or self.g_minus.shape != (cfg.rows, cfg.cols):
            raise ProgramError(f"conductance arrays must be {cfg.rows}x{cfg.cols}")
        for g in (self.g_plus, self.g_minus):
            if g.min() < 0 or g.max() > cfg.gcode_max:
                raise ProgramError(f"conductance codes outside 0..{cfg.gcode_max}")
        a = self.alphas(cfg)
        if a.shape != (len(self.layers),) or a.min() < 0 or a.max() >= 1 << cfg.alpha_bits:
            raise ProgramError(f"alpha must hold one value in 0..2**{cfg.alpha_bits}-1 per layer")
        if self.calib_codes is not None:
            if len(self.calib_codes) != len(self.layers):
                raise ProgramError(f"calib_codes holds {len(self.calib_codes)} vectors for {len(self.layers)} layers")
            for i, (d, v) in enumerate(zip(self.layers, self.calib_codes)):
                if np.shape(v) != (d.k_rows,) or (len(v) and (np.min(v) < 0 or np.max(v) >= 1 << d.in_bits)):
                    raise ProgramError(f"layer {i} ({self.layer_name(i)}): calibration input must be {d.k_rows} "
                                       f"codes in 0..{(1 << d.in_bits) - 1}")
        lim_s, lim_b = 1 << (cfg.pp_scale_bits - 1), 1 << (cfg.pp_bias_bits - 1)
        if np.any(np.abs(self.pp_scale) >= lim_s) or np.any(np.abs(self.pp_bias) >= lim_b):
            raise ProgramError("post-processing constants exceed pp_scale_bits/pp_bias_bits")
        self._check_dw_weights(cfg)

    def _check_dw_weights(self, cfg: AonCimConfig) -> None:
        dw = [i for i, d in enumerate(self.layers) if d.dw_words]
        if self.dw_weights is None:
            if dw:
                raise ProgramError(f"layer {dw[0]} ({self.layer_name(dw[0])}) is a depthwise convolution but the "
                                   "program has no dw_weights")
            return
        w = np.asarray(self.dw_weights)
        if w.shape != (cfg.dw_depth,) or not np.issubdtype(w.dtype, np.integer):
            raise ProgramError(f"dw_weights must be {cfg.dw_depth} integers (dw_depth), not {w.dtype} of shape {w.shape}")
        if len(w) and (w.min() < -cfg.dw_max - 1 or w.max() > cfg.dw_max):
            raise ProgramError(f"dw_weights outside {-cfg.dw_max - 1}..{cfg.dw_max} (signed dw_weight_bits="
                               f"{cfg.dw_weight_bits})")

    def dw_ranges(self) -> list[tuple[int, int]]:
        """(first word, words) of the DWW the program's depthwise layers read, merged where they
        touch or overlap, in address order: what a host writes (the rest is read by no layer)."""
        spans = sorted((d.w_base, d.w_base + d.dw_words) for d in self.layers if d.dw_words)
        out: list[list[int]] = []
        for lo, hi in spans:
            if out and lo <= out[-1][1]:
                out[-1][1] = max(out[-1][1], hi)
            else:
                out.append([lo, hi])
        return [(lo, hi - lo) for lo, hi in out]

    def _check_dataflow(self, cfg: AonCimConfig) -> None:
        """Every layer reads only words that the input or an earlier layer wrote, at the bits it
        expects. Layers communicate through the two activation banks, as on the chip: a layer may
        read the output of any earlier layer that is still in memory (a residual add reads its
        skip operand long after it was written), and the golden model reads from the same memory."""
        owner = {b: np.full(cfg.act_depth, -2, dtype=np.int64) for b in (0, 1)}  # -2 unwritten, -1 input
        bits = {b: np.zeros(cfg.act_depth, dtype=np.int64) for b in (0, 1)}
        d0 = self.layers[0]
        lo0, n0 = d0.in_base, d0.in_h * d0.in_w * d0.in_c
        owner[d0.in_bank][lo0 : lo0 + n0], bits[d0.in_bank][lo0 : lo0 + n0] = -1, d0.in_bits
        for i, d in enumerate(self.layers):
            where = f"layer {i} ({self.layer_name(i)})"
            if i and self.layers[i - 1].to_out:
                raise ProgramError(f"layer {i - 1} ({self.layer_name(i - 1)}) writes the output memory, so it must "
                                   "be the last layer")
            lo, n = d.in_base, d.in_h * d.in_w * d.in_c
            who, b = owner[d.in_bank][lo : lo + n], bits[d.in_bank][lo : lo + n]
            if (who == -2).any():
                at = lo + int(np.argmax(who == -2))
                raise ProgramError(f"{where} reads bank {d.in_bank} word {at}, which neither the input nor an earlier "
                                   "layer wrote")
            if (b != d.in_bits).any():
                k = int(np.argmax(b != d.in_bits))
                src = "the input" if who[k] == -1 else f"layer {who[k]} ({self.layer_name(int(who[k]))})"
                raise ProgramError(f"{where} reads {d.in_bits}-bit codes at bank {d.in_bank} word {lo + k}, but "
                                   f"{src} wrote {b[k]}-bit codes there")
            if not d.to_out:
                m = d.positions * d.out_c
                owner[d.out_bank][d.out_base : d.out_base + m] = i
                bits[d.out_bank][d.out_base : d.out_base + m] = d.out_bits

    @property
    def input_region(self) -> tuple[int, int, int]:
        """(bank, base, words) where the host writes an inference's input codes: layer 0's input."""
        d = self.layers[0]
        return d.in_bank, d.in_base, d.in_h * d.in_w * d.in_c

    def layer_name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"L{i}"

    @property
    def rows(self) -> int:
        """Rows of the array the program was placed on (its conductance arrays are the whole array)."""
        return self.g_plus.shape[0]

    def used_rect(self, i: int) -> tuple[int, int, int, int]:
        """(row0, rows, col0, cols) of layer i's conductances; (0, 0, 0, 0) for a pooling layer.
        For a row-tiled layer, the bounding box of its tiles (the last tile's unused rows included)."""
        d = self.layers[i]
        if not d.is_mvm:
            return (0, 0, 0, 0)
        return (d.row0, min(d.k_rows, self.rows), d.col0, d.tiles(self.rows) * d.out_c)

    def tile_rects(self, i: int) -> list[tuple[int, int, int, int]]:
        """LayerDescriptor.tile_rects of layer i on this program's array."""
        return self.layers[i].tile_rects(self.rows)

    def layer_dg(self, i: int) -> np.ndarray:
        """Layer i's conductance differences G+ - G- as the logical (k_rows, out_c) matrix of its
        im2col rows, gathered from its row tiles."""
        d = self.layers[i]
        dg = np.zeros((d.k_rows, d.out_c), dtype=np.int64)
        for lo, n, r0, c0 in self.tile_rects(i):
            dg[lo : lo + n] = self.g_plus[r0 : r0 + n, c0 : c0 + d.out_c] - self.g_minus[r0 : r0 + n, c0 : c0 + d.out_c]
        return dg

    @property
    def mvm_layers(self) -> list[int]:
        return [i for i, d in enumerate(self.layers) if d.is_mvm]

    @property
    def mvms(self) -> int:
        """Array MVMs of one inference (the chip's MVMS counter after a run)."""
        return sum(d.mvms(self.rows) for d in self.layers)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Program):
            return NotImplemented

        def same(a, b) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

        def same_list(a, b) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and len(a) == len(b)
                                                 and all(np.array_equal(x, y) for x, y in zip(a, b)))

        return self.layers == other.layers and self.names == other.names and self.io == other.io and all(
            same(getattr(self, f), getattr(other, f))
            for f in ("g_plus", "g_minus", "pp_scale", "pp_bias", "alpha", "dw_weights")
        ) and same_list(self.calib_codes, other.calib_codes)

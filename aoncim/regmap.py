"""Host-visible address map, derived from the config; shared by RTL, host driver and docs.

The register table (`REGISTERS`, `WINDOWS`) is the one source of truth: `Reg` offsets and the bit
masks (`CTRL_START`, ...) that the RTL, driver and testbench use are derived from it, and so is the
SystemRDL description (`systemrdl`) from which PeakRDL generates the C header, regmap.md and the
IP-XACT file. Widths and resets that depend on the config are named by config field, not restated.

The byte address space is split into equal regions selected by the top `REGION_BITS` address bits
(sixteen regions of which `len(Region)` are used), each as large as the largest window (the
conductance window), so decoding is a compare of those bits.
"""
from __future__ import annotations

import enum
from contextlib import contextmanager
from dataclasses import dataclass

from .config import AonCimConfig, _clog2
from .program import DESC_WORDS

CHIP_ID = 0xA0C10001  # "AON-CiM", register-map version 1
WORD_BITS = 32  # every register and window element is one bus word
TOP = "aoncim_top"  # the SystemRDL addrmap, named as the top-level Verilog module


class Region(enum.IntEnum):
    REGS = 0
    PROGRAM = 1
    SCALE = 2
    BIAS = 3
    ACT0 = 4
    ACT1 = 5
    OUT = 6
    GCODE = 7
    DWW = 8


# Address bits that select a region: enough for every Region (the unused regions read 0 and
# ignore writes).
REGION_BITS = _clog2(len(Region))


class Access(enum.Enum):
    """Software access of a register or field, with its SystemRDL properties."""

    RO = "sw = r"
    RW = "sw = rw"
    W = "sw = w"              # write-only: reads return 0
    W1C = "sw = rw; onwrite = woclr"  # read; writing 1 clears the bit


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int | str = 1          # bits, or the name of the config field giving them
    access: Access | None = None  # None: the register's
    desc: str = ""
    self_clearing: bool = False   # a write of 1 is a one-cycle pulse; reads 0

    def bits(self, cfg: AonCimConfig) -> int:
        return getattr(cfg, self.width) if isinstance(self.width, str) else self.width

    @property
    def mask(self) -> int:
        """Mask of a fixed-width field (the bit constants the RTL and driver use)."""
        assert isinstance(self.width, int), self.name
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    word: int                  # word offset in the REGS region
    access: Access
    desc: str
    fields: tuple[Field, ...] = ()  # none: one field over the whole word
    reset: int | str = 0       # value after reset, or the name of the config attribute giving it
    count: str | None = None   # an array of registers: the config field giving their number

    def reset_value(self, cfg: AonCimConfig) -> int:
        return getattr(cfg, self.reset) if isinstance(self.reset, str) else self.reset

    def length(self, cfg: AonCimConfig) -> int:
        return getattr(cfg, self.count) if self.count else 1

    def all_fields(self) -> tuple[Field, ...]:
        return self.fields or (Field("VALUE", 0, WORD_BITS, self.access, self.desc),)

    def field(self, name: str) -> Field:
        return next(f for f in self.all_fields() if f.name == name)


_IRQ_BITS = (Field("DONE", 0, desc="the run finished"), Field("PAUSED", 1, desc="paused after a layer (CTRL.STEP)"),
             Field("ERROR", 2, desc="the run stopped with an error (STATUS.ERROR_CODE)"))

REGISTERS: tuple[Register, ...] = (
    Register("ID", 0, Access.RO, "chip identity and register-map version", reset=CHIP_ID),
    Register("CONFIG_HASH", 1, Access.RO, "AonCimConfig.config_hash of the generated RTL", reset="config_hash"),
    Register("CTRL", 2, Access.RW, "run control", fields=(
        Field("START", 0, access=Access.W, self_clearing=True,
              desc="start a run of NUM_LAYERS layers (self-clearing)"),
        Field("CONTINUE", 1, access=Access.W, self_clearing=True,
              desc="resume a run paused after a layer (self-clearing)"),
        Field("STEP", 8, desc="pause after each layer"))),
    Register("STATUS", 3, Access.RO, "run status", fields=(
        Field("BUSY", 0, desc="a run is in progress"), Field("DONE", 1, desc="the last run finished"),
        Field("PAUSED", 2, desc="paused after a layer"), Field("ERROR", 3, desc="the last run stopped with an error"),
        Field("LAYER", 8, 8, desc="layer being run, or where the run stopped"),
        Field("ERROR_CODE", 16, 8, desc="ErrorCode of a run stopped with ERROR"))),
    Register("IRQ_STATUS", 4, Access.W1C, "interrupt events; irq = |(IRQ_STATUS & IRQ_ENABLE)", fields=_IRQ_BITS),
    Register("IRQ_ENABLE", 5, Access.RW, "interrupt enables, bits as IRQ_STATUS", fields=tuple(
        Field(f.name, f.lsb, desc=f"enable the {f.name} interrupt") for f in _IRQ_BITS)),
    Register("NUM_LAYERS", 6, Access.RW,
             "layers to run; START stops with NO_LAYERS / TOO_MANY_LAYERS outside 1..max_layers"),
    Register("NOISE_SEED", 7, Access.RW, "read-noise PRNG seed of the next run"),
    Register("CYCLES", 8, Access.RO, "clock cycles of the last/current run"),
    Register("MVMS", 9, Access.RO, "array MVMs of the last/current run (from 0, whatever MVM_BASE)"),
    Register("MVM_BASE", 10, Access.RW,
             "read-noise MVM counter of the next run's first MVM (host calibration reads)"),
    Register("ACT_PACK", 11, Access.RW, "packed activation reads", fields=(
        Field("PACK", 0, desc="reads of ACT0/ACT1 word i return codes 4i..4i+3, code 4i+k in bits [8k+7:8k] "
                              "(reads 0 where the config cannot pack: dac_bits > 8 or load_lanes < 4)"),)),
    # The alpha registers sit at a fixed offset after the scalar registers so their address does not
    # move with max_layers; the REGS window grows to hold them (AddressMap.window_words).
    Register("ALPHA", 16, Access.RW, "drift-compensation alpha of a layer (fixed point, alpha_one is 1.0)",
             fields=(Field("ALPHA", 0, "alpha_bits", desc="alpha of the layer"),),
             reset="alpha_one", count="max_layers"),
)
REGISTER = {r.name: r for r in REGISTERS}

Reg = enum.IntEnum("Reg", [(r.name, r.word) for r in REGISTERS])
Reg.__doc__ = "Word offsets in the REGS region (of ALPHA: layer 0's; layer i at ALPHA + i)."
Reg.__module__ = __name__

ALPHA_BASE = int(Reg.ALPHA)
CTRL_START, CTRL_CONTINUE, CTRL_STEP = (REGISTER["CTRL"].field(n).mask for n in ("START", "CONTINUE", "STEP"))
ST_BUSY, ST_DONE, ST_PAUSED, ST_ERROR = (REGISTER["STATUS"].field(n).mask for n in ("BUSY", "DONE", "PAUSED", "ERROR"))
IRQ_DONE, IRQ_PAUSED, IRQ_ERROR = (REGISTER["IRQ_STATUS"].field(n).mask for n in ("DONE", "PAUSED", "ERROR"))
ACT_PACK_CODES = 4  # activation codes per word in packed reads
ACT_PACK_BITS = WORD_BITS // ACT_PACK_CODES  # bits per code in a packed word (code k in bits [8k+7:8k])


def can_pack_act(cfg: AonCimConfig) -> bool:
    """Packed activation reads (Reg.ACT_PACK) need byte-sized codes and four activation SRAMs a
    bank, so the four codes of a word are read from four SRAMs at once."""
    return cfg.dac_bits <= ACT_PACK_BITS and cfg.load_lanes >= ACT_PACK_CODES


N_REGS = len(Reg)


@dataclass(frozen=True)
class Window:
    """A memory window: `words` whole-word elements at the base of its region (AddressMap)."""

    region: Region
    access: Access
    desc: str  # formatted with the config (`{c.field}`) and DESC_WORDS


WINDOWS: tuple[Window, ...] = (
    Window(Region.PROGRAM, Access.RW, "layer descriptors, {DESC_WORDS} words each (aoncim.program.DESCRIPTOR_FIELDS), "
                                      "up to max_layers = {c.max_layers}"),
    Window(Region.SCALE, Access.RW, "post-processing scale per channel, signed {c.pp_scale_bits} bits (sign-extended on read)"),
    Window(Region.BIAS, Access.RW, "post-processing bias per channel, signed {c.pp_bias_bits} bits (sign-extended on read)"),
    Window(Region.ACT0, Access.RW, "activation bank 0: unsigned {c.dac_bits}-bit codes, one per word, HWC order; "
                                   "the host writes the input here"),
    Window(Region.ACT1, Access.RW, "activation bank 1: unsigned {c.dac_bits}-bit codes, one per word, HWC order"),
    Window(Region.OUT, Access.RO, "final-layer outputs: signed {c.out_bits} bits, sign-extended"),
    Window(Region.GCODE, Access.RW, "conductance pairs, one per word: G+ in [15:0], G- in [31:16] "
                                    "({c.gcode_bits}-bit codes); word = row * {c.cols} + col"),
    Window(Region.DWW, Access.RW, "depthwise weights (Op.DWCONV), one per word: signed {c.dw_weight_bits} bits "
                                  "(sign-extended on read); a layer's weight of channel c at kernel (ky, kx) is word "
                                  "w_base + (ky * k_w + kx) * in_c + c"),
)


def window_desc(cfg: AonCimConfig, w: Window) -> str:
    return w.desc.format(c=cfg, DESC_WORDS=DESC_WORDS)


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
    BAD_POOL = 9, ("pooling layer with padding, array rows/columns, a channel count change, "
                   "(max pooling) changed activation bits or a to_out destination, or (residual add) "
                   "not a 2 x positions map with a 2x1 window and stride 1")
    POOL_SUM = 10, "pooling window sum can exceed pool_sum_bits"
    PARAM_RANGE = 11, "param_base+out_c exceeds param_depth"
    BAD_SHIFT = 12, "shift exceeds pp_shift_max"
    IN_RANGE = 13, "input map in_base+in_h*in_w*in_c exceeds act_depth"
    OUT_RANGE = 14, "output map out_base+out_h*out_w*out_c exceeds act_depth (out_depth for to_out)"
    ACT_OVERLAP = 15, "output overlaps the input in the same activation bank"
    BAD_PAD_CODE = 16, "pad_code is not an in_bits code"
    BAD_DWCONV = 17, ("depthwise convolution with array rows/columns, a channel count change or a to_out "
                      "destination")
    DW_RANGE = 18, "depthwise weights w_base+k_h*k_w*in_c exceed dw_depth"
    DW_SUM = 19, "depthwise window sum can exceed dw_sum_bits"

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
            Region.DWW: c.dw_depth,
        }

    @property
    def region_word_bits(self) -> int:
        return _clog2(max(self.window_words.values()))

    @property
    def word_addr_bits(self) -> int:
        return self.region_word_bits + REGION_BITS

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


# ------------------------------------------------------------------------------------ SystemRDL
_HW = {Access.RO: "hw = w", Access.RW: "hw = r", Access.W: "hw = r", Access.W1C: "hw = r; hwset"}


def _rdl_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rdl_field(cfg: AonCimConfig, reg: Register, f: Field) -> str:
    access = f.access or reg.access
    bits = f.bits(cfg)
    reset = (reg.reset_value(cfg) >> f.lsb) & ((1 << bits) - 1)
    props = [access.value, _HW[access]] + (["singlepulse"] if f.self_clearing else [])
    # The one-line descriptions are RDL `name`s: PeakRDL shows them in its tables (a `desc` would
    # be a section of its own per field).
    return (f"field {{ {'; '.join(props)}; name = {_rdl_str(f.desc or reg.desc)}; }} "
            f"{f.name}[{f.lsb + bits - 1}:{f.lsb}] = {reset:#x};")


def systemrdl(cfg: AonCimConfig, top: str = TOP) -> str:
    """The host address map of `cfg` as SystemRDL 2.0: addrmap `top` holding the REGS block (the
    ALPHA registers as an array of max_layers) and each memory window as a `mem` at its byte base."""
    amap = AddressMap(cfg)
    words = amap.window_words
    top_desc = (f"AXI4-Lite, {WORD_BITS}-bit words, {amap.byte_addr_bits}-bit byte addresses; {len(Region)} regions "
                f"of {4 << amap.region_word_bits:#x} bytes selected by the top {REGION_BITS} address bits (the other "
                f"{(1 << REGION_BITS) - len(Region)} read 0 and ignore writes). Every register and window element is a "
                "whole word: a write whose WSTRB is not all ones gets SLVERR. Accesses beyond a window's size are not "
                "defined.")
    out = [f"// Generated by aoncim.regmap.systemrdl for config hash {cfg.config_hash:#010x}: regenerate, do not edit.",
           f"addrmap {top} {{",
           f"    name = {_rdl_str(top + ' host address map')};",
           f"    desc = {_rdl_str(top_desc)};",
           f"    default regwidth = {WORD_BITS};",
           f"    default accesswidth = {WORD_BITS};",
           # REGS is an addrmap rather than a regfile so that IP-XACT makes it an addressBlock beside the
           # windows (peakrdl-ipxact splits a top addrmap into blocks only if no child is a regfile).
           "    addrmap {",
           f"        name = {_rdl_str('control and status registers')};"]
    for r in REGISTERS:
        fields = "\n".join(f"            {_rdl_field(cfg, r, f)}" for f in r.all_fields())
        n = r.length(cfg)
        inst = f"{r.name}[{n}] @ {4 * r.word:#x} += {WORD_BITS // 8:#x}" if r.count else f"{r.name} @ {4 * r.word:#x}"
        out += [f"        reg {{",
                f"            name = {_rdl_str(r.desc)};",
                fields,
                f"        }} {inst};"]
    out.append(f"    }} {Region.REGS.name} @ {amap.base(Region.REGS):#x};")
    for w in WINDOWS:
        out += [f"    external mem {{",
                f"        name = {_rdl_str(window_desc(cfg, w))};",
                f"        mementries = {words[w.region]}; memwidth = {WORD_BITS}; {w.access.value};",
                f"    }} {w.region.name} @ {amap.base(w.region):#x};"]
    out += ["};", ""]
    return "\n".join(out)


@contextmanager
def elaborated(cfg: AonCimConfig, top: str = TOP):
    """`systemrdl(cfg)` compiled and elaborated by systemrdl-compiler: its RootNode, for PeakRDL.
    The source stays on disk while the node is in use: compiler messages quote it."""
    import tempfile
    from pathlib import Path

    from systemrdl import RDLCompiler

    rdlc = RDLCompiler()
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / f"{top}.rdl"
        src.write_text(systemrdl(cfg, top))
        rdlc.compile_file(str(src))
        yield rdlc.elaborate(top)


def peakrdl_export(cfg: AonCimConfig, export, filename: str, top: str = TOP) -> str:
    """The text a PeakRDL exporter writes for `cfg`'s address map: `export(top_node, path)` is
    called with a scratch file named `filename` (some exporters derive names from it)."""
    import tempfile
    from pathlib import Path

    with elaborated(cfg, top) as root, tempfile.TemporaryDirectory() as d:
        path = Path(d) / filename
        export(root.top, str(path))
        return path.read_text()

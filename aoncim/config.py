"""The one hardware configuration shared by model, compiler, RTL generator and testbench.

Every number that describes the chip lives here. Derived quantities (address widths, memory
windows, ADC full scale) are properties so they can never disagree with the primary fields.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aoncim.adc import AdcTransfer


class ConfigError(ValueError):
    """A configuration that cannot describe a buildable chip."""


def _clog2(n: int) -> int:
    return max(0, (n - 1).bit_length())


# The config has two groups of fields, written in the same TOML file:
#   chip   - everything the generated RTL, the bit-true contract (model/bittrue.py, aoncim/program.py,
#            the compiler's integer constants) and the image/driver contract (firmware/image.py,
#            firmware/driver.py, aoncim/regmap.py) depend on. `config_hash` (the CONFIG_HASH
#            register, the Verilog cache key hw/verilog.py design_key, the image header, the driver
#            check) covers these only. read_noise_lsb is here: the RTL's digital read-noise source is
#            scaled by noise_mult, derived from it.
#   device - PCM device physics that only the statistical/analog models read (model/pcm.py,
#            model/analog.py, model/snapshot.py, model/hwa.py, perf/energy.py): changing them changes
#            accuracy/energy estimates and the conductance codes a drifted snapshot compiles to, but
#            not the chip, so it must not invalidate the RTL or make the driver refuse an image.
#            `device_hash` covers these, for caches that depend on device physics.
# A new field is chip unless it is listed in DEVICE_FIELDS (the safe default: the RTL cache and the
# image contract then follow it).
DEVICE_FIELDS = ("g_max_us", "drift_t0_s", "t_read_s")


def _hash32(d: dict) -> int:
    """First four bytes, little-endian, of the SHA-256 of `d` as sorted JSON."""
    return int.from_bytes(hashlib.sha256(json.dumps(d, sort_keys=True).encode()).digest()[:4], "little")


@dataclass(frozen=True)
class AonCimConfig:
    # Crossbar: rows of DAC-driven word lines x columns of differential conductance pairs.
    rows: int = 1024
    cols: int = 512
    # Input stage: unsigned PWM-coded activations; each layer may use fewer bits (act_bits_supported).
    dac_bits: int = 8
    act_bits_supported: tuple[int, ...] = (8, 6, 4)
    # Conductance snapshot: each device of a pair is an unsigned code of gcode_bits.
    gcode_bits: int = 8
    # ADC: signed symmetric output of adc_bits, fixed gain code = round(I * mult / 2**shift).
    adc_bits: int = 8
    n_adcs: int = 32
    adc_gain_mult: int = 3277
    adc_gain_shift: int = 24
    # Activation codes the sequencer reads per cycle from an activation bank (interleaved over this
    # many SRAM banks) into the DAC registers, and channels a pooling step reduces at once. The
    # input load of an MVM overlaps the previous PWM window, so it stays hidden while
    # ceil(im2col rows / load_lanes) <= 2**bits + ADC slots: 64 lanes hide a 3x3x72 kernel's
    # loads behind the 16-cycle window of 4-bit layers (16 lanes could not: docs/architecture.md,
    # "Schedule").
    load_lanes: int = 64
    # Post-processing lanes: output channels scaled, biased and written per cycle. One MVM's
    # post-processing (out_c / pp_lanes cycles) overlaps the next MVM's PWM window, so it stays
    # hidden while that is <= 2**bits + ADC slots (8 lanes: 120 channels in 15 cycles).
    pp_lanes: int = 8
    # Pooling-type layers (max and average pooling, residual add, depthwise convolution) whose
    # channel count C is a power of two from pool_fold_min_channels to load_lanes/2 read a kernel
    # row's k_w*C codes in runs of load_lanes (several window elements a read, like an MVM load)
    # and fold the lanes holding one channel after the pooling units: log2(load_lanes /
    # pool_fold_min_channels) levels of max or add. A smaller minimum folds more levels (a
    # longer path); narrower layers keep one window element a read.
    pool_fold_min_channels: int = 8
    # Read noise added before the ADC, as a std-dev in ADC LSBs; 0 switches it off.
    read_noise_lsb: float = 0.5
    # Post-processing fixed point: per-channel scale and bias widths, per-layer shift limit.
    pp_scale_bits: int = 16
    pp_bias_bits: int = 32
    pp_shift_max: int = 31
    out_bits: int = 16
    # Global drift compensation: one unsigned fixed-point constant alpha per layer, multiplied into
    # the ADC code in post-processing; alpha_frac_bits fractional bits (1.0 = 2**alpha_frac_bits).
    alpha_bits: int = 16
    alpha_frac_bits: int = 12
    # Average pooling feeds window sums of activation codes through post-processing: their width.
    pool_sum_bits: int = 16
    # Depthwise convolution (Op.DWCONV, a multiply-accumulate per pooling lane): signed weight codes
    # of dw_weight_bits in the DWW memory, and the signed width of their window sums (the
    # accumulator, and what enters post-processing). The default holds a 4x4 window at 8 bits.
    dw_weight_bits: int = 8
    dw_sum_bits: int = 20
    # Memories (entries).
    act_depth: int = 8192
    out_depth: int = 256
    max_layers: int = 16
    param_depth: int = 2048
    dw_depth: int = 4096
    # Host bus.
    bus_data_bits: int = 32
    # PCM devices (docs/paper-targets.md section 2), the device fields (DEVICE_FIELDS, not in
    # config_hash): maximum conductance of one device, drift reference time t0 and read pulse
    # duration; gcode k of a device stands for k / gcode_max * g_max_us.
    g_max_us: float = 25.0
    drift_t0_s: float = 20.0
    t_read_s: float = 250e-9

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise ConfigError(f"invalid config: {what}")

        for name in ("rows", "cols", "n_adcs", "load_lanes", "pp_lanes", "act_depth", "out_depth", "max_layers", "param_depth",
                     "dw_depth", "pool_fold_min_channels"):
            v = getattr(self, name)
            need(isinstance(v, int) and v > 0 and v & (v - 1) == 0,
                 f"{name}={v} must be a positive power of two")
        need(self.cols % self.n_adcs == 0, f"cols={self.cols} must be a multiple of n_adcs={self.n_adcs}")
        need(self.load_lanes <= min(64, self.rows, self.act_depth),
             f"load_lanes={self.load_lanes} must be at most 64, rows={self.rows} and act_depth={self.act_depth}")
        need(self.pp_lanes <= min(self.n_adcs, self.load_lanes, self.out_depth),
             f"pp_lanes={self.pp_lanes} must be at most n_adcs={self.n_adcs}, load_lanes={self.load_lanes} "
             f"and out_depth={self.out_depth}")
        need(2 <= self.dac_bits <= 12, f"dac_bits={self.dac_bits} must be in 2..12")
        need(len(self.act_bits_supported) > 0 and all(2 <= b <= self.dac_bits for b in self.act_bits_supported),
             f"act_bits_supported={self.act_bits_supported} must lie in 2..dac_bits={self.dac_bits}")
        need(2 <= self.gcode_bits <= 15, f"gcode_bits={self.gcode_bits} must be in 2..15 (a pair packs in one 32-bit word)")
        need(2 <= self.adc_bits <= 16, f"adc_bits={self.adc_bits} must be in 2..16")
        need(0 < self.adc_gain_mult < 2**20, f"adc_gain_mult={self.adc_gain_mult} must be in 1..2**20-1")
        need(1 <= self.adc_gain_shift <= 40, f"adc_gain_shift={self.adc_gain_shift} must be in 1..40")
        need(0 <= self.read_noise_lsb <= 16, f"read_noise_lsb={self.read_noise_lsb} must be in 0..16")
        need(self.noise_mult < 2**24, f"read_noise_lsb={self.read_noise_lsb} too large for adc_gain_shift")
        need(2 <= self.pp_scale_bits <= 24, f"pp_scale_bits={self.pp_scale_bits} must be in 2..24")
        need(8 <= self.pp_bias_bits <= 32, f"pp_bias_bits={self.pp_bias_bits} must be in 8..32")
        need(1 <= self.pp_shift_max <= 31, f"pp_shift_max={self.pp_shift_max} must be in 1..31")
        need(2 <= self.alpha_bits <= 24 and 0 <= self.alpha_frac_bits < self.alpha_bits,
             f"alpha_bits={self.alpha_bits}, alpha_frac_bits={self.alpha_frac_bits}: need 0 <= frac < bits <= 24")
        need(self.dac_bits < self.pool_sum_bits <= 24, f"pool_sum_bits={self.pool_sum_bits} must be in dac_bits+1..24")
        need(2 <= self.dw_weight_bits <= 8, f"dw_weight_bits={self.dw_weight_bits} must be in 2..8 (an image stores "
             "one byte per weight)")
        # One window element (the largest code times the most negative weight) must fit.
        need(self.dac_bits + self.dw_weight_bits <= self.dw_sum_bits <= 32,
             f"dw_sum_bits={self.dw_sum_bits} must be in dac_bits+dw_weight_bits..32")
        need(self.load_lanes <= self.dw_depth <= 1 << 16,
             f"dw_depth={self.dw_depth} must be in load_lanes={self.load_lanes}..65536 (the 16-bit w_base field)")
        # The golden model computes post-processing in int64: code (or pool sum) x alpha x scale and
        # bias << alpha_frac_bits must fit, with the rounding term, in 63 bits plus sign.
        pp_bits = self.pp_code_bits + self.alpha_bits + self.pp_scale_bits
        need(pp_bits <= 62 and self.pp_bias_bits + self.alpha_frac_bits <= 62,
             f"post-processing product needs {pp_bits} bits (max(code_sum_bits, pool_sum_bits+1, dw_sum_bits) + "
             "alpha_bits + pp_scale_bits) > 62: reduce pool_sum_bits, dw_sum_bits, alpha_bits or pp_scale_bits")
        need(self.dac_bits < self.out_bits <= 32, f"out_bits={self.out_bits} must be in dac_bits+1..32")
        need(self.bus_data_bits == 32, "bus_data_bits must be 32 (AXI4-Lite)")
        need(self.max_layers <= 256, f"max_layers={self.max_layers} must be <= 256")
        need(0 < self.g_max_us <= 1000, f"g_max_us={self.g_max_us} must be in (0, 1000] microsiemens")
        need(0 < self.drift_t0_s <= 3600, f"drift_t0_s={self.drift_t0_s} must be in (0, 3600] s")
        need(0 < self.t_read_s < self.drift_t0_s, f"t_read_s={self.t_read_s} must be in (0, drift_t0_s)")
        need(self.rows * self.cols <= 2**22, f"rows*cols={self.rows * self.cols} exceeds the 4M-pair address window")

    # ------------------------------------------------------------------ derived quantities
    @property
    def gcode_max(self) -> int:
        return (1 << self.gcode_bits) - 1

    @property
    def dac_max(self) -> int:
        return (1 << self.dac_bits) - 1

    @property
    def adc_transfer(self) -> AdcTransfer:
        """The ADC transfer of this chip (aoncim/adc.py): the one function of the config every
        implementation of the ADC (golden, RTL twins, float model, compiler) reads its constants from."""
        return AdcTransfer(dac_bits=self.dac_bits, act_bits=self.act_bits_supported, adc_bits=self.adc_bits,
                           gain_mult=self.adc_gain_mult, gain_shift=self.adc_gain_shift,
                           read_noise_lsb=self.read_noise_lsb, noise_std_raw=self.NOISE_STD_RAW,
                           noise_bits=self.noise_bits, col_sum_bits=self.col_sum_bits,
                           unit_col_sum=self.dac_max * self.gcode_max)

    @property
    def adc_max(self) -> int:
        """Largest ADC code magnitude; the transfer is symmetric, -adc_max..adc_max."""
        return self.adc_transfer.adc_max

    @property
    def adc_bound(self) -> float:
        """ADC full scale in units of (full-scale input x full-scale conductance) rows."""
        return self.adc_transfer.bound

    @property
    def out_noise_std(self) -> float:
        """Read noise before the ADC in the statistical model's units (one full-scale input times
        the largest weight, summed over one row): 2302.08469's output noise, ~0.04 by default."""
        return self.adc_transfer.out_noise_std

    # Irwin-Hall sum of four uniform bytes: mean 510, std sqrt(4*(256**2-1)/12).
    NOISE_STD_RAW = (4 * (256**2 - 1) / 12) ** 0.5
    NOISE_MEAN_RAW = 510

    @property
    def alpha_one(self) -> int:
        """The fixed-point alpha that means 'no compensation'."""
        return 1 << self.alpha_frac_bits

    @property
    def noise_bits(self) -> int:
        """Signed width of one raw noise sample, -NOISE_MEAN_RAW..4*255-NOISE_MEAN_RAW."""
        return (4 * 255 - self.NOISE_MEAN_RAW).bit_length() + 1

    @property
    def noise_mult(self) -> int:
        """Multiplier that scales one raw noise sample to read_noise_lsb ADC LSBs (at 2**shift)."""
        return self.adc_transfer.noise_mult

    @property
    def col_sum_bits(self) -> int:
        """Signed width of an exact column sum: rows * dac_max * gcode_max, plus sign."""
        return (self.rows * self.dac_max * self.gcode_max).bit_length() + 1

    @property
    def max_row_tiles(self) -> int:
        """Most row tiles one layer can have (contract step 12): each tile takes out_c >= 1 columns
        of its own, side by side."""
        return self.cols

    @property
    def code_sum_bits(self) -> int:
        """Signed width of a layer's ADC code summed over its row tiles: max_row_tiles * adc_max,
        plus sign, so the digital sum is exact (no saturation) for any placeable layer."""
        return (self.max_row_tiles * self.adc_max).bit_length() + 1

    @property
    def pp_code_bits(self) -> int:
        """Signed width of what enters post-processing: an ADC code summed over a layer's row tiles,
        an (unsigned) pooling window sum, or a (signed) depthwise window sum."""
        return max(self.code_sum_bits, self.pool_sum_bits + 1, self.dw_sum_bits)

    @property
    def dw_max(self) -> int:
        """Largest depthwise weight code; the codes are -dw_max-1..dw_max (signed dw_weight_bits)."""
        return (1 << (self.dw_weight_bits - 1)) - 1

    @property
    def dw_addr_bits(self) -> int:
        return _clog2(self.dw_depth)

    @property
    def pool_fold_levels(self) -> int:
        """Fold levels after the pooling units: lanes j and j + load_lanes/2**k are added (or
        maxed) at level k, down to pool_fold_min_channels lanes; 0 when load_lanes is narrower
        than two minimum groups."""
        return max(0, _clog2(self.load_lanes) - _clog2(self.pool_fold_min_channels))  # both powers of two

    def pool_folds(self, in_c: int) -> bool:
        """Whether a pooling-type layer of `in_c` channels reads several window elements a read
        and folds its lanes (see pool_fold_min_channels): C a power of two within
        pool_fold_min_channels .. load_lanes/2."""
        return (self.pool_fold_levels > 0 and in_c & (in_c - 1) == 0
                and self.pool_fold_min_channels <= in_c <= self.load_lanes // 2)

    @property
    def row_bits(self) -> int:
        return _clog2(self.rows)

    @property
    def col_bits(self) -> int:
        return _clog2(self.cols)

    @property
    def act_addr_bits(self) -> int:
        return _clog2(self.act_depth)

    @property
    def config_hash(self) -> int:
        """32-bit identity of the chip: the hash of `chip_dict()` (device fields excluded). The RTL
        reports it in CONFIG_HASH, images carry it, the driver compares the two."""
        return _hash32(self.chip_dict())

    @property
    def device_hash(self) -> int:
        """32-bit identity of the PCM device model: the hash of `device_dict()`. A cache of results
        that depend on device physics keys on (config_hash, device_hash)."""
        return _hash32(self.device_dict())

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """Every field (chip and device), in declaration order: what a config file holds."""
        d = dataclasses.asdict(self)
        d["act_bits_supported"] = list(self.act_bits_supported)
        return d

    def chip_dict(self) -> dict:
        """The chip fields: what the RTL, the images and the driver depend on."""
        return {k: v for k, v in self.to_dict().items() if k not in DEVICE_FIELDS}

    def device_dict(self) -> dict:
        """The device fields (DEVICE_FIELDS): PCM physics read only by the device/analog models."""
        return {k: v for k, v in self.to_dict().items() if k in DEVICE_FIELDS}

    @classmethod
    def from_dict(cls, d: dict) -> "AonCimConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            # A name that is not a plain identifier (a newline, a quote, ...) is shown quoted, so the
            # message stays one line.
            shown = {u: u if u.isidentifier() and u.isascii() else repr(u) for u in unknown}
            hints = [f"{shown[u]} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(u, known, 1)) else shown[u]
                     for u in unknown]
            raise ConfigError(f"unknown config field(s) {', '.join(hints)}; known: {', '.join(sorted(known))}")
        d = {name: _check_type(name, str(f.type), d[name]) for f in dataclasses.fields(cls)
             if (name := f.name) in d}
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"invalid config: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "AonCimConfig":
        """Fields from a TOML (`.toml`) or JSON (`.json`) file; other names: TOML unless the text
        starts with `{`. Every failure is a ConfigError of one line naming the file or field."""
        p = Path(path)
        text = read_user_file(p, "config file", ConfigError)
        as_json = p.suffix.lower() == ".json" or (p.suffix.lower() != ".toml" and text.lstrip().startswith("{"))
        # Besides their decode errors, both parsers raise a plain ValueError for an integer of more
        # than 4300 digits and RecursionError for arrays nested a few thousand deep.
        try:
            d = json.loads(text) if as_json else tomllib.loads(text)
        except (ValueError, RecursionError) as e:
            why = "values nested too deeply" if isinstance(e, RecursionError) else (str(e).splitlines() or [""])[0]
            raise ConfigError(f"config file {p} is not valid {'JSON' if as_json else 'TOML'}: {why}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {p} must hold a JSON object of fields")
        return cls.from_dict(d)

    load = from_file  # the name the first tools used

    def to_toml(self) -> str:
        """The config as a TOML file that `from_file` reads back, each field with its comment."""
        comments = _field_comments()
        lines = [f"# AonCimConfig (config hash {self.config_hash:#010x}); every field is optional, missing",
                 "# fields take the default. Load with --config FILE.", ""]
        for name, value in self.to_dict().items():
            lines += [f"# {c}" for c in comments.get(name, [])]
            lines.append(f"{name} = {json.dumps(value)}")  # ints, floats and int lists read the same in TOML
        return "\n".join(lines) + "\n"


def read_user_file(path: Path, what: str, error: type[Exception]) -> str:
    """The text of a file the user named; a missing or unreadable one is one `error` line naming
    `what` and the path."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory; name the file") from None
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not a text file (byte {e.start} is not UTF-8); name the TOML file") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    # An empty file is almost always a failed redirect or an unsaved editor buffer; taking it as
    # "all defaults" would run the wrong experiment without a word.
    if not text.strip():
        raise error(f"{what} {path} is empty; write the fields you change, or leave the option out for the defaults")
    return text


def _check_type(name: str, annotation: str, v):
    """Values from a file are JSON/TOML scalars: check them against the field's type, so a wrong
    type is one line naming the field, and normalise (int -> float, list -> tuple)."""
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if annotation == "int" and not is_int:
        raise ConfigError(f"config field {name}={v!r}: expected an integer")
    if annotation == "float":
        if not (is_int or isinstance(v, float)):
            raise ConfigError(f"config field {name}={v!r}: expected a number")
        return float(v)
    if annotation.startswith("tuple"):
        if not (isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            raise ConfigError(f"config field {name}={v!r}: expected a list of integers, e.g. [8, 6, 4]")
        return tuple(v)
    return v


def _field_comments() -> dict[str, list[str]]:
    """The comment lines written above each field in this file's class body."""
    import inspect

    out, pending = {}, []
    for line in inspect.getsource(AonCimConfig).splitlines():
        s = line.strip()
        if s.startswith("def "):
            break
        if s.startswith("#"):
            pending.append(s.lstrip("# "))
        elif m := re.match(r"(\w+)\s*:", s):
            out[m.group(1)], pending = pending, []
        else:
            pending = []
    return out


DEFAULT_CONFIG = AonCimConfig()

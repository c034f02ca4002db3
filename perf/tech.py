"""Technology parameters of the energy and area models: one frozen dataclass, every number named,
with its unit in the name and its source beside it.

The defaults describe a 14 nm-class node (AON-CiM is a 14 nm design; paper-targets section 1). Most
digital numbers come from Horowitz's 45 nm / 0.9 V energy table (ISSCC 2014, "Computing's energy
problem"), scaled to 14 nm / 0.8 V by capacitance (∝ feature size) times V²:

    HOROWITZ_TO_14NM = (14 / 45) · (0.8 / 0.9)² = 0.246

Analog numbers come from the sources named beside them; the ones marked **estimate** are ours,
from first principles (C·V², device counts), and are the first ones to replace with a real
process's figures. A TOML file of fields overrides any of them (`Technology.from_file`,
`--tech FILE`); `Technology().to_toml()` writes a starting file with these comments.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aoncim.config import read_user_file

# Horowitz ISSCC 2014 (45 nm, 0.9 V) -> 14 nm, 0.8 V: capacitance x V^2.
HOROWITZ_TO_14NM = (14 / 45) * (0.8 / 0.9) ** 2


class TechnologyError(ValueError):
    """A technology file or value the models cannot use; one line."""


@dataclass(frozen=True)
class Technology:
    # ---------------------------------------------------------------- clock
    # Digital clock; the PWM time unit of the DAC is one cycle. 1 GHz makes the 8-bit PWM window
    # 256 ns, the read pulse of the PCM noise model (AonCimConfig.t_read_s = 250 ns). estimate.
    clock_hz: float = 1.0e9

    # ---------------------------------------------------------------- PCM array (component "array")
    # Read voltage across a PCM device while its row's pulse is on. 0.2 V: the read bias of IBM's
    # 14 nm PCM in-memory-compute chips (Le Gallo et al., Nat. Electron. 2023; Joshi et al., Nat.
    # Commun. 2020 use 0.2-0.3 V to stay far below the threshold-switching voltage).
    v_read_v: float = 0.2
    # Energy of one MVM = v_read² · Σ_rows x_r · t_clk · Σ_cols (G+ + G−): a row with input code x
    # conducts for x PWM cycles. Only the active layer's columns conduct (1.0: the bit lines of the
    # other columns are left floating); 0.0: every device of a driven row conducts (bit lines of
    # all columns held at virtual ground). **decision**, blends linearly in between.
    float_unused_columns: float = 1.0

    # ---------------------------------------------------------------- row DACs (component "dac")
    # Writing one bit of a row's PWM code register (one flip-flop write with its clock share):
    # ~2 fF·V² at 0.8 V ≈ 1.3 fJ; estimate.
    dac_load_j_per_bit: float = 1.3e-15
    # Per active row and PWM cycle: the row's comparator against the broadcast PWM counter (about
    # two of its inputs toggle per cycle) and its share of the counter bus; ~4 gate toggles of
    # 0.08 fJ (Horowitz 8-bit add 0.03 pJ / 8 bits · 0.246 ≈ 0.9 fJ per bit-slice, a comparator
    # bit-slice ~1/3 of it) ≈ 0.3 fJ; estimate.
    dac_cycle_j: float = 0.3e-15
    # Per row pulse: charging the word line, C·V_read·V_dd. 512 columns of ~0.15 fF (cell gate and
    # wire at 14 nm) ≈ 80 fF, plus the driver: 80 fF · 0.2 V · 0.8 V ≈ 13 fJ; one pulse per row and
    # MVM (an upper bound: a zero code sends none); scales with cols/512. estimate.
    dac_pulse_j: float = 13e-15

    # ---------------------------------------------------------------- ADCs (component "adc")
    # SAR ADC conversion energy = Walden FoM · 2**adc_bits. 5 fJ/conversion-step: mid-range of the
    # Murmann ADC survey (ISSCC/VLSI 1997-2024) for SAR ADCs of 6-10 bits at 0.1-1 GS/s; the best
    # designs reach ~1 fJ/step. 8 bits: 1.28 pJ per conversion.
    adc_fom_j_per_step: float = 5e-15
    # Column read-out front end (charge integrator / current conveyor) biased during the PWM window,
    # per active column: 1 µA at 0.8 V. estimate.
    integrator_w: float = 0.8e-6

    # ---------------------------------------------------------------- SRAM (component "sram")
    # Horowitz: 8 KB SRAM, 64-bit read 10 pJ at 45 nm = 156 fJ/bit; · 0.246 = 38 fJ/bit. The
    # activation banks here are 8 KB. Published 14/16 nm compiled-SRAM figures are 20-50 fJ/bit.
    sram_read_j_per_bit: float = 38e-15
    # Writes cost about the same as reads in small SRAM macros (bit-line swing on one side).
    sram_write_j_per_bit: float = 38e-15

    # ---------------------------------------------------------------- digital datapath ("digital")
    # Array multiplier energy ∝ product of operand widths: Horowitz 32x32-bit int multiply 3.1 pJ
    # = 3.0 fJ per bit-product at 45 nm; · 0.246 = 0.74 fJ.
    mult_j_per_bit2: float = 0.74e-15
    # Ripple/prefix adder energy ∝ width: Horowitz 32-bit int add 0.1 pJ = 3.1 fJ/bit; · 0.246.
    add_j_per_bit: float = 0.77e-15

    # ---------------------------------------------------------------- control and clock ("control")
    # Per flip-flop and clock cycle: clock pin and local clock-tree share, ~1.2 fF + ~0.6 fF
    # internal at 0.8 V ≈ 1.2 fJ; estimate.
    flop_clock_j: float = 1.2e-15
    # Fraction of the digital flip-flops clocked in a cycle while a run is in progress (the rest
    # clock-gated: the host interface and AXI port idle during a run, the post-processor between
    # conversions). estimate.
    clock_active_fraction: float = 0.5
    # Per logic cell and cycle: activity 2 % × 0.3 fJ per gate toggle (NAND2-class cell with local
    # wire at 14 nm, 0.8 V). estimate.
    logic_j_per_cell_cycle: float = 0.006e-15

    # ---------------------------------------------------------------- leakage ("static")
    # Leakage per logic cell: 0.5 nW (mix of standard- and high-Vt FinFET cells at 0.8 V, 25 °C). estimate.
    leak_w_per_cell: float = 0.5e-9
    # SRAM leakage per bit: 20 pW (14 nm high-density bitcell, 0.8 V, 25 °C; 10-50 pW reported). estimate.
    leak_w_per_sram_bit: float = 20e-12
    # Static power per ADC (reference buffer and comparator bias share): 0.5 µW. estimate.
    leak_w_per_adc: float = 0.5e-6

    # ---------------------------------------------------------------- inputs without calibration data
    # Mean input code as a fraction of full scale when a program carries no calib_codes. estimate.
    default_input_fraction: float = 0.125

    # ---------------------------------------------------------------- area (perf/area.py)
    # Area per generic Yosys cell (mostly 2-input gates and muxes): 14 nm NAND2 ≈ 0.08 µm² (70 nm
    # contacted poly pitch x 3, 0.4 µm cell height), average cell ~1.5x, at 70 % placement
    # utilisation ≈ 0.17 µm². estimate.
    um2_per_cell: float = 0.17
    # Extra area of a flip-flop over a generic cell (a DFF is ~5 NAND2). estimate.
    um2_per_flop: float = 0.35
    # SRAM area per bit including the macro's periphery: 14 nm high-density bitcell 0.05-0.064 µm²
    # (Intel 14 nm 0.0499 µm², IEDM 2014), ~50 % array efficiency for small macros. estimate.
    um2_per_sram_bit: float = 0.12
    # One PCM device with its access transistor (1T1R), sized for the RESET current: ~0.04 µm²
    # (~200 F² at F = 14 nm); a weight is a differential pair, two devices. estimate.
    um2_per_pcm_device: float = 0.04
    # One 8-bit SAR ADC: 1500 µm² (compact SARs of the Murmann survey, 0.001-0.005 mm² at
    # 14-28 nm); scaled by 2**(adc_bits-8) (capacitive DAC dominated). estimate.
    um2_per_adc_8b: float = 1500.0
    # Row PWM driver per DAC bit (code register bit, comparator slice, driver share): 0.75 µm²,
    # 6 µm² per row at 8 bits. estimate.
    um2_per_row_driver_bit: float = 0.75
    # Column read-out per column (integrator capacitor, switches, ADC mux input): 10 µm². estimate.
    um2_per_column: float = 10.0

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TechnologyError(f"technology field {f.name}={v!r}: expected a finite number >= 0")
        for name in ("clock_hz", "v_read_v"):
            if getattr(self, name) <= 0:
                raise TechnologyError(f"technology field {name}={getattr(self, name)!r}: must be > 0")
        for name in ("float_unused_columns", "clock_active_fraction", "default_input_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise TechnologyError(f"technology field {name}={getattr(self, name)!r}: must be in 0..1")

    @property
    def t_clk_s(self) -> float:
        return 1.0 / self.clock_hz

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "technology") -> "Technology":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            hints = [f"{u} (did you mean {m[0]}?)" if (m := _similar(u, known)) else u for u in unknown]
            raise TechnologyError(f"{source}: unknown field(s) {', '.join(hints)}")
        for k, v in d.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TechnologyError(f"{source}: field {k}={v!r}: expected a number")
        try:
            return cls(**{k: float(v) for k, v in d.items()})
        except TechnologyError as e:
            raise TechnologyError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "Technology":
        """Fields from a TOML file; every failure is one TechnologyError line naming the file."""
        p = Path(path)
        text = read_user_file(p, "technology file", TechnologyError)
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise TechnologyError(f"technology file {p} is not valid TOML: {e}") from None
        return cls.from_dict(d, source=f"technology file {p}")

    def to_toml(self) -> str:
        """The parameters as a TOML file `from_file` reads back, each with the comment beside it here."""
        comments = _field_comments()
        lines = ["# aoncim technology parameters (perf/tech.py); every field is optional.", ""]
        for name, value in self.to_dict().items():
            lines += [f"# {c}" for c in comments.get(name, [])]
            lines.append(f"{name} = {value!r}")
        return "\n".join(lines) + "\n"


def _similar(name: str, known: list[str]) -> list[str]:
    """Known fields the unknown `name` is probably meant to be: a field it abbreviates, or a close spelling."""
    return [k for k in known if k.startswith(name)][:1] or difflib.get_close_matches(name, known, 1, cutoff=0.6)


def _field_comments() -> dict[str, list[str]]:
    """The comment lines directly above each field in this file's Technology class."""
    out: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in Path(__file__).read_text().splitlines():
        s = line.strip()
        if s.startswith("# ---"):
            pending = []
        elif s.startswith("#"):
            pending.append(s.lstrip("# ").rstrip())
        elif m := re.match(r"(\w+): (float|int) = ", s):
            out[m.group(1)] = pending
            pending = []
        else:
            pending = []
    return out


DEFAULT_TECH = Technology()


def load_technology(path: str | Path | None) -> Technology:
    return Technology.from_file(path) if path else DEFAULT_TECH

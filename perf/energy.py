"""Energy of one inference on the chip, per layer and per component, from a compiled Program.

Operation counts come from the program (layer descriptors, conductance codes, the mean im2col input
codes `calib_codes`) and the cycle model (`aoncim.perf.cycles`); energies per operation from
`Technology` (perf/tech.py, every number with its source). Components:

| component | what | counted per |
|---|---|---|
| `array`   | PCM read current: v_read² · x_r · t_clk · (G+ + G−) for every driven row r of an MVM, its pulse x_r PWM cycles long (pulse-width modulation: energy ∝ the input code) | MVM, data-dependent (mean input code per row × conductance of the row's active devices) |
| `dac`     | row drivers: code register load, per-cycle comparison against the PWM counter over the 2**in_bits window, one word-line pulse | row × MVM |
| `adc`     | column read-out: integrator bias over the PWM window and one SAR conversion (Walden FoM · 2**adc_bits) per column and MVM | column × MVM |
| `sram`    | activation reads (one code per im2col row), post-processing scale and bias reads, output writes, row-tile code sums, descriptor fetch, depthwise weight reads | access × bits |
| `digital` | post-processing arithmetic (code·α·scale + bias), row-tile sums, im2col address adds, pooling, depthwise multiply-accumulates | operation × bits |
| `control` | clocked flip-flops and control-logic toggles of the sequencer, host interface and clock tree | cycle (cycle model) |
| `static`  | leakage of logic, SRAM and ADCs over the inference's latency | second (cycle model / clock) |

ops = 2 · MACs, MACs = positions · k_rows · out_c summed over MVM layers plus positions · k_h·k_w ·
channels over depthwise layers (the digital MACs of Op.DWCONV; pooling not counted); TOPS/W = ops /
energy. `control` and `static` follow the cycle count: they change when the cycle
model does; the others depend only on the program and the config.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS, Op, Program

from .area import AreaReport, estimate
from .tech import DEFAULT_TECH, Technology, TechnologyError, load_technology  # noqa: F401 (re-exported)

COMPONENTS = ("array", "dac", "adc", "sram", "digital", "control", "static")
COMPONENT_TITLES = {
    "array": "PCM array (read current)", "dac": "row DACs (PWM drivers)", "adc": "ADCs and column read-out",
    "sram": "SRAM", "digital": "digital post-processing", "control": "control and clock", "static": "leakage",
}

# AnalogNets (IEEE Micro 42(6) 2022) energy efficiency, TOPS/W, by activation bits (paper-targets section 1).
PAPER_TOPS_W = {"kws": {8: 8.55, 6: 26.55, 4: 56.67}, "vww": {8: 4.34, 6: 12.64, 4: 25.2}}


@dataclass
class LayerEnergy:
    index: int
    name: str
    op: str
    macs: int
    mvms: int
    cycles: int
    array_cycles: int
    energy_j: dict[str, float] = field(default_factory=dict)  # per COMPONENTS

    @property
    def total_j(self) -> float:
        return sum(self.energy_j.values())


@dataclass
class EnergyReport:
    layers: list[LayerEnergy]
    clock_hz: float
    act_bits: int
    area: AreaReport

    @property
    def macs(self) -> int:
        return sum(L.macs for L in self.layers)

    @property
    def ops(self) -> int:
        return 2 * self.macs

    @property
    def cycles(self) -> int:
        return sum(L.cycles for L in self.layers)

    @property
    def array_cycles(self) -> int:
        return sum(L.array_cycles for L in self.layers)

    @property
    def by_component(self) -> dict[str, float]:
        return {c: sum(L.energy_j[c] for L in self.layers) for c in COMPONENTS}

    @property
    def energy_j(self) -> float:
        return sum(L.total_j for L in self.layers)

    @property
    def tops_w(self) -> float:
        return self.ops / self.energy_j / 1e12

    @property
    def latency_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def inferences_per_s(self) -> float:
        return 1.0 / self.latency_s

    @property
    def tops(self) -> float:
        """Throughput in TOPS (ops per second of a chip running inferences back to back)."""
        return self.ops / self.latency_s / 1e12

    @property
    def power_w(self) -> float:
        return self.energy_j / self.latency_s

    @property
    def dominant(self) -> str:
        by = self.by_component
        return max(by, key=by.get)

    def summary(self) -> dict:
        """Flat numbers for tables and CSVs (energies in µJ)."""
        out = {"macs": self.macs, "ops": self.ops, "cycles": self.cycles, "energy_uj": self.energy_j * 1e6,
               "tops_w": self.tops_w, "latency_us": self.latency_s * 1e6, "inferences_per_s": self.inferences_per_s,
               "dominant": self.dominant}
        out.update({f"e_{c}_uj": v * 1e6 for c, v in self.by_component.items()})
        return out


def mean_input_codes(prog: Program, i: int, tech: Technology) -> np.ndarray:
    """Mean im2col input code per row of layer i: the compiler's calibration means, or a fixed
    fraction of full scale when the program has none."""
    d = prog.layers[i]
    if prog.calib_codes is not None and len(prog.calib_codes[i]) == d.k_rows:
        return np.asarray(prog.calib_codes[i], dtype=np.float64)
    return np.full(d.k_rows, tech.default_input_fraction * ((1 << d.in_bits) - 1))


def _mult(tech: Technology, a_bits: int, b_bits: int) -> float:
    return tech.mult_j_per_bit2 * a_bits * b_bits


def _postproc_j(cfg: AonCimConfig, tech: Technology, code_bits: int) -> float:
    """One post-processing output: code · alpha, · scale, + bias (with alpha's fraction bits)."""
    return (_mult(tech, code_bits, cfg.alpha_bits) + _mult(tech, code_bits + cfg.alpha_bits, cfg.pp_scale_bits)
            + tech.add_j_per_bit * (cfg.pp_bias_bits + cfg.alpha_frac_bits))


def _mvm_energy(cfg: AonCimConfig, prog: Program, i: int, tech: Technology) -> dict[str, float]:
    d = prog.layers[i]
    P, tiles = d.positions, d.tile_rects(cfg.rows)
    T, pwm = len(tiles), 2**d.in_bits
    x = mean_input_codes(prog, i, tech)
    g_us = cfg.g_max_us / cfg.gcode_max
    e: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
    v2t = tech.v_read_v**2 * tech.t_clk_s
    for lo, n, r0, c0 in tiles:
        active = (prog.g_plus[r0:r0 + n, c0:c0 + d.out_c] + prog.g_minus[r0:r0 + n, c0:c0 + d.out_c]).sum(1)
        whole = (prog.g_plus[r0:r0 + n] + prog.g_minus[r0:r0 + n]).sum(1)
        g_row = (tech.float_unused_columns * active + (1 - tech.float_unused_columns) * whole) * g_us * 1e-6  # S
        e["array"] += P * v2t * float(x[lo:lo + n] @ g_row)
        e["dac"] += P * n * (d.in_bits * tech.dac_load_j_per_bit + pwm * tech.dac_cycle_j
                             + tech.dac_pulse_j * cfg.cols / 512)
        e["adc"] += P * d.out_c * (tech.adc_fom_j_per_step * 2**cfg.adc_bits + tech.integrator_w * pwm * tech.t_clk_s)
    rd, wr = tech.sram_read_j_per_bit, tech.sram_write_j_per_bit
    out_w = cfg.out_bits if d.to_out else cfg.dac_bits
    e["sram"] = (P * d.k_rows * cfg.dac_bits * rd                                   # im2col activation reads
                 + P * d.out_c * (cfg.pp_scale_bits + cfg.pp_bias_bits) * rd         # scale and bias
                 + P * d.out_c * out_w * wr                                          # outputs
                 + P * (T - 1) * d.out_c * cfg.code_sum_bits * (rd + wr)             # row-tile code sums
                 + DESC_BITS * rd)                                                   # descriptor fetch
    code_bits = cfg.adc_bits if T == 1 else cfg.code_sum_bits
    e["digital"] = (P * d.out_c * _postproc_j(cfg, tech, code_bits)
                    + P * (T - 1) * d.out_c * tech.add_j_per_bit * cfg.code_sum_bits
                    + P * d.k_rows * tech.add_j_per_bit * cfg.act_addr_bits)
    return e


def _pool_energy(cfg: AonCimConfig, prog: Program, i: int, tech: Technology) -> dict[str, float]:
    d = prog.layers[i]
    e: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
    n_out, window = d.positions * d.out_c, d.k_h * d.k_w
    out_w = cfg.out_bits if d.to_out else cfg.dac_bits
    e["sram"] = (n_out * window * cfg.dac_bits * tech.sram_read_j_per_bit + n_out * out_w * tech.sram_write_j_per_bit
                 + DESC_BITS * tech.sram_read_j_per_bit)
    sum_bits = cfg.dw_sum_bits if d.op.uses_dww else cfg.pool_sum_bits + 1  # what enters post-processing
    acc_bits = d.in_bits if d.op.keeps_bits else sum_bits
    e["digital"] = n_out * window * tech.add_j_per_bit * (acc_bits + cfg.act_addr_bits)
    if d.op.uses_dww:
        # depthwise: per window element and channel one code x weight multiply (the accumulate is
        # above), one weight read from the DWW and its address add
        e["digital"] += n_out * window * (_mult(tech, cfg.dac_bits, cfg.dw_weight_bits)
                                          + tech.add_j_per_bit * cfg.dw_addr_bits)
        e["sram"] += n_out * window * cfg.dw_weight_bits * tech.sram_read_j_per_bit
    if d.op.uses_params:  # average pooling, residual add, depthwise: the window sum goes through post-processing
        e["sram"] += n_out * (cfg.pp_scale_bits + cfg.pp_bias_bits) * tech.sram_read_j_per_bit
        e["digital"] += n_out * _postproc_j(cfg, tech, sum_bits)
    return e


def layer_macs(d) -> int:
    """Multiply-accumulates of a layer: its MVMs' (positions x k_rows x out_c) or, for a depthwise
    convolution, its digital ones (positions x k_h*k_w x channels); pooling has none."""
    if d.is_mvm:
        return d.positions * d.k_rows * d.out_c
    return d.positions * d.dw_words


def energy_report(cfg: AonCimConfig, prog: Program, tech: Technology = DEFAULT_TECH,
                  area: AreaReport | None = None) -> EnergyReport:
    """Energy per layer and component of one inference of `prog` on the chip `cfg`. `area` gives the
    flip-flop, cell and SRAM-bit counts behind the control and leakage terms (default: the
    estimate of perf/area.py; pass `perf.area.synthesised(cfg)` for a synthesis run's counts)."""
    from .cycles import layer_array_cycles, layer_cycles

    area = area or estimate(cfg, tech)
    per_cycle = (area.flip_flops * tech.flop_clock_j * tech.clock_active_fraction
                 + area.cells * tech.logic_j_per_cell_cycle)
    leak_w = (area.cells * tech.leak_w_per_cell + area.sram_bits * tech.leak_w_per_sram_bit
              + cfg.n_adcs * tech.leak_w_per_adc)
    layers = []
    for i, d in enumerate(prog.layers):
        e = _mvm_energy(cfg, prog, i, tech) if d.is_mvm else _pool_energy(cfg, prog, i, tech)
        cyc = layer_cycles(cfg, d)
        e["control"] = cyc * per_cycle
        e["static"] = cyc * tech.t_clk_s * leak_w
        macs = layer_macs(d)
        layers.append(LayerEnergy(i, prog.layer_name(i), d.op.label, macs, d.mvms(cfg.rows), cyc, layer_array_cycles(cfg, d), e))
    bits = prog.layers[0].in_bits if prog.layers else 0
    return EnergyReport(layers, tech.clock_hz, bits, area)


# ---------------------------------------------------------------------------------- TOPS/W table
@dataclass
class TopsWRow:
    task: str
    act_bits: int
    tops_w: float
    paper: float
    energy_uj: float
    dominant: str
    dominant_share: float
    cycles: int
    latency_us: float

    @property
    def ratio(self) -> float:
        return self.tops_w / self.paper


def tops_w_row(task: str, rep: EnergyReport) -> TopsWRow:
    by = rep.by_component
    dom = rep.dominant
    return TopsWRow(task, rep.act_bits, rep.tops_w, PAPER_TOPS_W[task][rep.act_bits], rep.energy_j * 1e6, dom,
                    by[dom] / rep.energy_j, rep.cycles, rep.latency_s * 1e6)


def tops_w_table(cfg: AonCimConfig | None = None, tech: Technology = DEFAULT_TECH, tasks=("kws", "vww"),
                 bits=(8, 6, 4), progress: bool = False) -> list[TopsWRow]:
    """Our TOPS/W for the shipped AnalogNets at each activation precision, beside the paper's."""
    from aoncim.config import DEFAULT_CONFIG

    from .workload import compile_task

    cfg = cfg or DEFAULT_CONFIG
    rows = []
    for task in tasks:
        for b in bits:
            if progress:
                print(f"compiling {task} at {b} bits ...", flush=True)
            rows.append(tops_w_row(task, energy_report(cfg, compile_task(task, cfg, b), tech)))
    return rows


def format_tops_w_table(rows: list[TopsWRow]) -> str:
    """The table as Markdown: ours beside the paper's, ratio, and what dominates our energy."""
    lines = ["| network | act. bits | TOPS/W (ours) | TOPS/W (paper) | ours / paper | energy/inference (µJ) "
             "| dominant component (share) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'AnalogNet-' + r.task.upper()} | {r.act_bits} | {r.tops_w:.2f} | {r.paper:.2f} | "
                     f"{r.ratio:.2f} | {r.energy_uj:.3f} | {r.dominant} ({100 * r.dominant_share:.0f} %) |")
    return "\n".join(lines)


def print_tops_w_table(cfg: AonCimConfig | None = None, tech: Technology = DEFAULT_TECH) -> list[TopsWRow]:
    """Print the TOPS/W table for KWS and VWW at 8/6/4 bits beside the paper's
    (`python -m aoncim.perf.energy [--tech FILE] [--config FILE]`)."""
    rows = tops_w_table(cfg, tech, progress=True)
    print(format_tops_w_table(rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from aoncim.config import AonCimConfig, ConfigError

    ap = argparse.ArgumentParser(prog="python -m aoncim.perf.energy", description=print_tops_w_table.__doc__.split("\n")[0])
    ap.add_argument("--config", help="TOML or JSON file of AonCimConfig fields")
    ap.add_argument("--tech", help="TOML file of Technology fields (perf/tech.py)")
    ap.add_argument("--dump-tech", action="store_true", help="print the default technology parameters as TOML")
    a = ap.parse_args(argv)
    try:
        if a.dump_tech:
            print(load_technology(a.tech).to_toml(), end="")
            return 0
        cfg = AonCimConfig.from_file(a.config) if a.config else None
        print_tops_w_table(cfg, load_technology(a.tech))
    except (ConfigError, TechnologyError, ValueError) as e:
        print(f"aoncim energy: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

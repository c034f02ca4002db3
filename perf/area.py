"""Area of a config: digital logic (Yosys cell counts), SRAM bits, PCM array, ADCs, row drivers and
column read-out, in µm².

Two sources for the digital part:
- **yosys**: `synthesise_chip` of `hw/synth.py` (generic synthesis, the behavioural array a black
  box) for the config, cached on disk under `<build root>/synth/<design key>/synth_report.json`
  (the key is the Verilog cache's `design_key`: the config, the RTL sources and the Amaranth
  version), so a sweep synthesises each distinct config once;
- **estimate** (no synthesis): the cell and flip-flop counts of the default config's generic
  synthesis (`REFERENCE_CELLS`, `REFERENCE_FLOPS`), which depend little on the sweep's parameters,
  and the SRAM bits computed from the config's memory sizes (`memory_bits`, the formula of the
  synthesis report's memory list).
Everything in µm² is an **estimate** from `Technology` (perf/tech.py): generic Yosys cells are not
a cell library, and the PCM cell, ADC and periphery areas are literature-class numbers, not a
layout. Compare configs with each other, not with a real chip.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS

from .tech import DEFAULT_TECH, Technology

# The default config's generic synthesis (`make synth`, Yosys 0.70, the 1024 x 512 / 32-ADC default
# with the pipelined sequencer, 64 load lanes and 8 post-processing lanes, folded pooling reads and
# the depthwise engine: 64 multiply-accumulate pooling lanes, the DWW): used when the estimate is
# asked for instead of a synthesis run. The lanes move these counts most (the 8 post-processors
# and the 64 pooling lanes are 60 % of the cells); re-measure when the RTL changes
# (`perf.area.synthesised(DEFAULT_CONFIG)`). Before: 83 940 cells, 2 455 flip-flops with 16 load
# and 4 post-processing lanes (67 731 and 2 230 before the depthwise engine).
REFERENCE_CELLS = 164_966
REFERENCE_FLOPS = 5_667

AREA_PARTS = ("logic", "sram", "pcm", "adc", "row_drivers", "columns")


def memory_bits(cfg: AonCimConfig) -> dict[str, int]:
    """SRAM bits per memory of the core, from the config (the memories `hw/top.py` and the
    sequencer instantiate: program, scale, bias, two activation banks (however many SRAMs each is
    interleaved over), output, the depthwise weights (DWW), the sequencer's ADC code buffer (two
    MVMs' codes) and row-tile code sums). The synthesis report's memory list is the authority; this
    is its formula."""
    return {
        "program": cfg.max_layers * DESC_BITS,
        "scale": cfg.param_depth * cfg.pp_scale_bits,
        "bias": cfg.param_depth * cfg.pp_bias_bits,
        "act0": cfg.act_depth * cfg.dac_bits,
        "act1": cfg.act_depth * cfg.dac_bits,
        "out": cfg.out_depth * cfg.out_bits,
        "dww": cfg.dw_depth * cfg.dw_weight_bits,
        "code_buf": 2 * cfg.cols * cfg.adc_bits,
        "tile_sums": (cfg.cols // 2) * cfg.code_sum_bits,
    }


@dataclass
class AreaReport:
    cells: int            # generic logic cells, flip-flops included
    flip_flops: int
    sram_bits: int
    source: str           # "yosys" or "estimate" (of cells and flip-flops; µm² are always estimates)
    um2: dict[str, float] = field(default_factory=dict)  # per AREA_PARTS
    n_adcs: int = 0

    @property
    def total_um2(self) -> float:
        return sum(self.um2.values())

    @property
    def total_mm2(self) -> float:
        return self.total_um2 * 1e-6

    def to_dict(self) -> dict:
        return {"cells": self.cells, "flip_flops": self.flip_flops, "sram_bits": self.sram_bits,
                "source": self.source, "um2": dict(self.um2), "total_mm2": self.total_mm2}


def area_from_counts(cfg: AonCimConfig, cells: int, flops: int, sram_bits: int, source: str,
                     tech: Technology = DEFAULT_TECH) -> AreaReport:
    um2 = {
        "logic": cells * tech.um2_per_cell + flops * tech.um2_per_flop,
        "sram": sram_bits * tech.um2_per_sram_bit,
        "pcm": 2 * cfg.rows * cfg.cols * tech.um2_per_pcm_device,
        "adc": cfg.n_adcs * tech.um2_per_adc_8b * 2.0 ** (cfg.adc_bits - 8),
        "row_drivers": cfg.rows * cfg.dac_bits * tech.um2_per_row_driver_bit,
        "columns": cfg.cols * tech.um2_per_column,
    }
    return AreaReport(cells, flops, sram_bits, source, um2, cfg.n_adcs)


def estimate(cfg: AonCimConfig, tech: Technology = DEFAULT_TECH) -> AreaReport:
    """Area without synthesis: reference cell counts, SRAM bits from the config."""
    return area_from_counts(cfg, REFERENCE_CELLS, REFERENCE_FLOPS, sum(memory_bits(cfg).values()), "estimate", tech)


def synth_cache_dir(cfg: AonCimConfig, root: Path | None = None) -> Path:
    from aoncim.hw.verilog import design_key
    from aoncim.toolchain import build_root

    return Path(root or build_root()) / "synth" / design_key(cfg)


def _report_total(d: Path) -> dict | None:
    try:
        return json.loads((d / "synth_report.json").read_text())["total"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def synth_counts(cfg: AonCimConfig, root: Path | None = None) -> tuple[dict, bool]:
    """The `total` of synth_report.json for `cfg` (cells, flip_flops, memories, memory_bits), running
    Yosys if it is not cached; (total, was_cached). Concurrent callers synthesise once; Yosys
    works in a private directory renamed into place when the report is written
    (aoncim.buildcache), so an entry whose report reads is complete: the report is its stamp."""
    from aoncim.buildcache import cached_dir

    def synthesise_into(tmp: Path) -> None:
        from aoncim.hw.synth import synthesise_chip

        synthesise_chip(cfg, tmp).write(tmp)

    d = synth_cache_dir(cfg, root)
    d, cached = cached_dir(d.parent, d.name, synthesise_into, valid=lambda e: _report_total(e) is not None,
                           what=f"the synthesis report of config {cfg.config_hash:#010x}")
    return _report_total(d), cached


def synthesised(cfg: AonCimConfig, tech: Technology = DEFAULT_TECH, root: Path | None = None) -> AreaReport:
    """Area with the digital cell counts and SRAM bits of a (cached) Yosys run for `cfg`."""
    t, _ = synth_counts(cfg, root)
    return area_from_counts(cfg, int(t["cells"]), int(t["flip_flops"]), int(t["memory_bits"]), "yosys", tech)


def area(cfg: AonCimConfig, tech: Technology = DEFAULT_TECH, synth: bool = False, root: Path | None = None) -> AreaReport:
    """`synthesised` if `synth`, else `estimate`."""
    return synthesised(cfg, tech, root) if synth else estimate(cfg, tech)

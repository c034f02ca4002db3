"""Energy model (perf/energy.py, perf/tech.py) and area (perf/area.py): scaling with activation
bits, TOPS/W arithmetic, breakdown sums, parameter overrides, one-line errors for bad files."""
import dataclasses

import numpy as np
import pytest

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.perf import area as area_mod
from aoncim.perf.cycles import layer_cycles
from aoncim.perf.energy import (COMPONENTS, PAPER_TOPS_W, energy_report, format_tops_w_table, tops_w_row)
from aoncim.perf.tech import DEFAULT_TECH, Technology, TechnologyError
from aoncim.perf.workload import compile_task
from aoncim.sim.jobs import SMALL_CFG

from cli_helpers import invoke, one_error_line

CALIB = 64  # compiler calibration inputs: enough for the codes' scale, fast


@pytest.fixture(scope="module")
def progs():
    return {b: compile_task("kws", CFG, b, CALIB) for b in (8, 6)}


def test_macs_ops_and_tops_w(progs):
    rep = energy_report(CFG, progs[8])
    macs = sum(d.positions * d.k_rows * d.out_c for d in progs[8].layers if d.is_mvm)
    assert rep.macs == macs == 18_776_448  # AnalogNet-KWS as shipped
    assert rep.ops == 2 * macs
    assert rep.tops_w == pytest.approx(2 * macs / rep.energy_j / 1e12, rel=1e-12)
    assert rep.latency_s == pytest.approx(rep.cycles / DEFAULT_TECH.clock_hz)
    assert rep.cycles == sum(layer_cycles(CFG, d) for d in progs[8].layers)


def test_breakdown_sums_to_total(progs):
    rep = energy_report(CFG, progs[8])
    assert set(rep.by_component) == set(COMPONENTS)
    assert sum(rep.by_component.values()) == pytest.approx(rep.energy_j, rel=1e-12)
    for L in rep.layers:
        assert set(L.energy_j) == set(COMPONENTS) and all(v >= 0 for v in L.energy_j.values())
        assert sum(L.energy_j.values()) == pytest.approx(L.total_j, rel=1e-12)
        if L.op != "mvm":  # pooling never touches the array, DACs or ADCs
            assert L.energy_j["array"] == L.energy_j["dac"] == L.energy_j["adc"] == 0
    assert sum(L.total_j for L in rep.layers) == pytest.approx(rep.energy_j, rel=1e-12)
    assert rep.dominant == max(rep.by_component, key=rep.by_component.get)


def test_array_energy_formula_one_layer(progs):
    """array = v_read² · t_clk · positions · Σ_r x̄_r · Σ_active cols (G+ + G−), by hand for layer 1."""
    prog = progs[8]
    rep = energy_report(CFG, prog)
    d = prog.layers[1]
    (_, n, r0, c0), = d.tile_rects(CFG.rows)
    g = (prog.g_plus + prog.g_minus)[r0:r0 + n, c0:c0 + d.out_c].sum(1) * CFG.g_max_us / CFG.gcode_max * 1e-6
    want = DEFAULT_TECH.v_read_v**2 / DEFAULT_TECH.clock_hz * d.positions * float(prog.calib_codes[1] @ g)
    assert rep.layers[1].energy_j["array"] == pytest.approx(want, rel=1e-12)


def test_pulse_width_energy_scales_4x_from_6_to_8_bits(progs):
    """Pulse-width modulation: a row conducts for x PWM cycles, so the array energy per MVM is ∝ the
    input code; the same analog value is a 4x larger code at 8 bits than at 6."""
    r8, r6 = energy_report(CFG, progs[8]), energy_report(CFG, progs[6])
    mvms8 = sum(L.mvms for L in r8.layers)
    assert mvms8 == sum(L.mvms for L in r6.layers)
    ratio = r8.by_component["array"] / r6.by_component["array"]
    assert 3.7 < ratio < 4.3, ratio  # the compiled codes: 255/63 ~ 4.05, rounding aside
    # Exactly 4x when the 6-bit codes are exactly a quarter of the 8-bit ones.
    p8 = dataclasses.replace(progs[8], calib_codes=[c // 4 * 4 for c in progs[8].calib_codes])
    p6 = dataclasses.replace(progs[8], layers=[dataclasses.replace(d, in_bits=6, out_bits=6) for d in progs[8].layers],
                             calib_codes=[c // 4 for c in progs[8].calib_codes])
    e8, e6 = energy_report(CFG, p8), energy_report(CFG, p6)
    assert e8.by_component["array"] == pytest.approx(4 * e6.by_component["array"], rel=1e-12)
    # The PWM window is 4x as long: the row comparators' and column integrators' energy follows.
    no_fixed = Technology(dac_load_j_per_bit=0, dac_pulse_j=0, adc_fom_j_per_step=0)
    e8, e6 = energy_report(CFG, p8, no_fixed), energy_report(CFG, p6, no_fixed)
    assert e8.by_component["dac"] == pytest.approx(4 * e6.by_component["dac"], rel=1e-12)
    assert e8.by_component["adc"] == pytest.approx(4 * e6.by_component["adc"], rel=1e-12)
    # ... and fewer bits always cost less energy per inference.
    assert r6.energy_j < r8.energy_j and r6.tops_w > r8.tops_w


def test_adc_energy_scales_with_adc_bits(progs):
    tech = Technology(integrator_w=0)
    cfg6 = dataclasses.replace(CFG, adc_bits=6, adc_gain_mult=800)
    e8, e6 = energy_report(CFG, progs[8], tech), energy_report(cfg6, progs[8], tech)
    assert e8.by_component["adc"] == pytest.approx(4 * e6.by_component["adc"], rel=1e-12)  # Walden: 2**bits


def test_override_changes_result(progs, tmp_path):
    base = energy_report(CFG, progs[8])
    doubled = energy_report(CFG, progs[8], Technology(adc_fom_j_per_step=2 * DEFAULT_TECH.adc_fom_j_per_step))
    assert doubled.by_component["adc"] > base.by_component["adc"]
    assert doubled.energy_j > base.energy_j and doubled.tops_w < base.tops_w
    for c in COMPONENTS:
        if c != "adc":
            assert doubled.by_component[c] == base.by_component[c]
    # A slower clock: same dynamic energy, more leakage, longer latency.
    slow = energy_report(CFG, progs[8], Technology(clock_hz=DEFAULT_TECH.clock_hz / 2))
    assert slow.by_component["static"] == pytest.approx(2 * base.by_component["static"])
    assert slow.latency_s == pytest.approx(2 * base.latency_s)
    # From a TOML file.
    f = tmp_path / "tech.toml"
    f.write_text("# faster SRAM\nsram_read_j_per_bit = 1e-15\nclock_hz = 500e6\n")
    t = Technology.from_file(f)
    assert t.sram_read_j_per_bit == 1e-15 and t.clock_hz == 5e8 and t.adc_fom_j_per_step == DEFAULT_TECH.adc_fom_j_per_step
    assert energy_report(CFG, progs[8], t).by_component["sram"] < base.by_component["sram"]


def test_to_toml_round_trip(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text(DEFAULT_TECH.to_toml())
    assert Technology.from_file(f) == DEFAULT_TECH
    text = DEFAULT_TECH.to_toml()
    assert "# SAR ADC conversion energy" in text and "Murmann" in text  # sources travel with the values


@pytest.mark.parametrize("text,match", [
    ("adc_fom = 1e-15\n", "did you mean adc_fom_j_per_step"),
    ("clock_hz = \n", "not valid TOML"),
    ("v_read_v = -0.2\n", "v_read_v=-0.2"),
    ("clock_hz = 0\n", "clock_hz=0.0: must be > 0"),
    ('sram_read_j_per_bit = "small"\n', "expected a number"),
    ("clock_active_fraction = 1.5\n", "must be in 0..1"),
    ("float_unused_columns = true\n", "expected a number"),
])
def test_bad_technology_file_is_one_line(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(TechnologyError) as e:
        Technology.from_file(f)
    assert match in str(e.value) and "\n" not in str(e.value) and str(f) in str(e.value)


def test_bad_technology_file_on_the_command_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("adc_fom = 1e-15\n")
    one_error_line(invoke("report", "kws", "--tech", f, "-o", tmp_path / "r"), "did you mean adc_fom_j_per_step")
    one_error_line(invoke("report", "kws", "--tech", tmp_path / "missing.toml"), "not found")


def test_tops_w_row_beside_the_paper(progs):
    row = tops_w_row("kws", energy_report(CFG, progs[8]))
    assert row.paper == PAPER_TOPS_W["kws"][8] == 8.55
    assert row.ratio == pytest.approx(row.tops_w / 8.55)
    table = format_tops_w_table([row])
    assert "| AnalogNet-KWS | 8 |" in table and "8.55" in table and row.dominant in table


def test_area_estimate_and_counts():
    a = area_mod.estimate(CFG)
    assert a.source == "estimate" and a.total_mm2 == pytest.approx(a.total_um2 * 1e-6)
    assert a.sram_bits == sum(area_mod.memory_bits(CFG).values())
    assert a.um2["pcm"] == pytest.approx(2 * CFG.rows * CFG.cols * DEFAULT_TECH.um2_per_pcm_device)
    small = area_mod.estimate(dataclasses.replace(CFG, n_adcs=8))
    assert small.um2["adc"] == pytest.approx(a.um2["adc"] / 4) and small.total_mm2 < a.total_mm2
    assert np.isfinite(a.total_um2) and all(v > 0 for v in a.um2.values())


def test_area_synth_cache_is_used(tmp_path, monkeypatch):
    d = area_mod.synth_cache_dir(CFG, tmp_path)
    d.mkdir(parents=True)
    (d / "synth_report.json").write_text('{"total": {"cells": 1000, "flip_flops": 100, "memories": 2, '
                                         '"memory_bits": 5000}}')
    monkeypatch.setattr("aoncim.hw.synth.synthesise_chip", lambda *a, **k: pytest.fail("re-synthesised"))
    a = area_mod.synthesised(CFG, root=tmp_path)
    assert (a.source, a.cells, a.flip_flops, a.sram_bits) == ("yosys", 1000, 100, 5000)
    assert a.um2["sram"] == pytest.approx(5000 * DEFAULT_TECH.um2_per_sram_bit)
    # A different config has its own key: not this cached file.
    assert area_mod.synth_cache_dir(dataclasses.replace(CFG, n_adcs=8), tmp_path) != d


def test_memory_bits_formula_matches_synthesis(tmp_path):
    """perf.area.memory_bits is the synthesis report's memory list as a formula (small config, cached
    per design key under tmp_path: one Yosys run of a few seconds)."""
    small = SMALL_CFG
    t, cached = area_mod.synth_counts(small, tmp_path)
    assert not cached and t["memory_bits"] == sum(area_mod.memory_bits(small).values())
    assert area_mod.synth_counts(small, tmp_path) == (t, True)
    a = area_mod.synthesised(small, root=tmp_path)
    assert a.source == "yosys" and a.cells == t["cells"] > 0 and a.flip_flops == t["flip_flops"] > 0


def test_every_parameter_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "performance.md").read_text()
    missing = [f.name for f in dataclasses.fields(Technology) if f"`{f.name}`" not in doc]
    assert not missing, f"docs/performance.md does not describe {missing}"


def test_depthwise_layer_energy_and_macs():
    """A depthwise layer (Op.DWCONV): no array, DAC or ADC energy; per window element and channel
    one dac_bits x dw_weight_bits multiply (mult_j_per_bit2), its accumulate and a DWW weight read;
    its MACs count in the ops; its cycles are average pooling's over the same windows."""
    from test_cosim_dwconv import chain_program

    from aoncim.program import Op

    prog = chain_program(8, CFG)
    rep = energy_report(CFG, prog)
    t = DEFAULT_TECH
    for i, d in enumerate(prog.layers):
        L = rep.layers[i]
        if d.op is not Op.DWCONV:
            continue
        n = d.positions * d.out_c * d.k_h * d.k_w
        assert L.op == "dwconv" and L.mvms == 0 and L.macs == n and L.cycles == layer_cycles(CFG, d)
        assert L.energy_j["array"] == L.energy_j["dac"] == L.energy_j["adc"] == 0
        # the same layer as an (unweighted) average pool: the difference is the weights' cost
        avg = dataclasses.replace(prog, layers=[dataclasses.replace(d, opcode=Op.AVGPOOL.value)], names=["avg"])
        a = energy_report(CFG, avg).layers[0]
        mult = t.mult_j_per_bit2 * CFG.dac_bits * CFG.dw_weight_bits
        acc = t.add_j_per_bit * (CFG.dw_sum_bits - CFG.pool_sum_bits - 1)
        pp = n // (d.k_h * d.k_w) * (t.mult_j_per_bit2 * (CFG.dw_sum_bits - CFG.pool_sum_bits - 1)
                                     * (CFG.alpha_bits + CFG.pp_scale_bits))
        assert L.energy_j["digital"] - a.energy_j["digital"] == pytest.approx(
            n * (mult + acc + t.add_j_per_bit * CFG.dw_addr_bits) + pp, rel=1e-9)
        assert L.energy_j["sram"] - a.energy_j["sram"] == pytest.approx(n * CFG.dw_weight_bits * t.sram_read_j_per_bit,
                                                                        rel=1e-9)
    assert rep.macs == sum(d.positions * (d.k_rows * d.out_c if d.is_mvm else d.dw_words) for d in prog.layers)

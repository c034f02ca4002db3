"""Design-space sweep (perf/sweep.py): the local process pool and a Dask cluster give the same
rows; configs that do not fit are recorded, not raised; grid files fail with one line."""
import csv
import dataclasses

import pytest

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.perf.sweep import (ROW_FIELDS, Grid, SweepError, load_grid, pareto_front, plot_pareto, run_sweep,
                               sweep_config, write_csv)

from cli_helpers import invoke, one_error_line

# Two units: KWS on the default array (n_adcs 1024 is not a divisor of 512 columns: a config
# error for that point only), and on an array too small for it (a compiler error for both points).
TINY = Grid(tasks=("kws",), arrays=((1024, 512), (256, 256)), n_adcs=(8, 1024), adc_bits=(8,), act_bits=(4,),
            samples=8, calib_samples=64)


@pytest.fixture(scope="module")
def pool_rows():
    return run_sweep(TINY, workers=2, progress=False)


def test_rows_and_infeasible_points(pool_rows):
    rows = pool_rows
    assert [(r["rows"], r["cols"], r["n_adcs"]) for r in rows] == [(1024, 512, 8), (1024, 512, 1024),
                                                                   (256, 256, 8), (256, 256, 1024)]
    ok, bad_cfg, small, small_bad_cfg = rows
    assert ok["feasible"] and ok["error"] == "" and 0 <= ok["accuracy"] <= 1 and ok["samples"] == 8
    assert ok["cycles"] >= ok["array_bound_cycles"] > 0 and ok["energy_uj"] > 0 and ok["area_mm2"] > 0
    assert ok["macs"] == 18_776_448 and ok["tops_w"] == pytest.approx(2 * ok["macs"] / (ok["energy_uj"] * 1e-6) / 1e12)
    assert sum(ok[f"e_{c}_uj"] for c in ("array", "dac", "adc", "sram", "digital", "control", "static")) == \
        pytest.approx(ok["energy_uj"])
    assert not bad_cfg["feasible"] and "multiple of n_adcs=1024" in bad_cfg["error"]
    assert not small["feasible"] and "the 256 x 256 array has 65,536" in small["error"]  # the compiler's line
    assert not small_bad_cfg["feasible"] and "multiple of n_adcs=1024" in small_bad_cfg["error"]
    assert all("\n" not in r["error"] and r["accuracy"] == "" for r in rows[1:])
    assert ok["pareto_energy_accuracy"] and ok["pareto_cycles_area"]  # the only feasible point
    assert set(ok) == set(ROW_FIELDS)


def test_dask_local_cluster_gives_identical_rows(pool_rows):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        rows = run_sweep(TINY, dask=cl.scheduler_address, progress=False)
    assert rows == pool_rows


def test_csv_and_pareto_png(pool_rows, tmp_path):
    p = write_csv(pool_rows, tmp_path / "sweep.csv")
    got = list(csv.DictReader(p.open()))
    assert len(got) == 4 and list(got[0]) == list(ROW_FIELDS)
    assert got[0]["feasible"] == "True" and got[2]["feasible"] == "False" and "256 x 256" in got[2]["error"]
    png = plot_pareto(pool_rows, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_pareto_front():
    pts = [(1, 5), (2, 2), (3, 1), (3, 3), (2, 2), (0.5, 9)]
    assert pareto_front(pts) == [True, True, True, False, True, True]  # ties are not dominated
    assert pareto_front([(1, 1), (1, 2), (2, 1)]) == [True, False, False]


def test_adc_bits_keep_the_analog_full_scale_and_noise():
    for bits in (6, 10):
        c = sweep_config(CFG, 512, 1024, 16, bits)
        assert (c.rows, c.cols, c.n_adcs, c.adc_bits) == (512, 1024, 16, bits)
        assert c.adc_bound == pytest.approx(CFG.adc_bound, rel=2e-3)
        assert c.out_noise_std == pytest.approx(CFG.out_noise_std, rel=2e-3)
    assert sweep_config(CFG, 1024, 512, 32, 8) == CFG


def test_lanes_shrink_to_fit_small_points():
    """A point whose array or ADC count is below the base config's lanes keeps as many lanes as it
    can hold (a load run is at most `rows` codes, a post-processing step at most `n_adcs`
    channels) instead of failing as an invalid config; other points keep the base's lanes."""
    assert (CFG.load_lanes, CFG.pp_lanes) == (64, 8)
    small = sweep_config(CFG, 32, 64, 4, 8)
    assert (small.load_lanes, small.pp_lanes) == (32, 4)
    assert (sweep_config(CFG, 256, 256, 8, 8).load_lanes, sweep_config(CFG, 256, 256, 8, 8).pp_lanes) == (64, 8)


@pytest.mark.parametrize("text,match", [
    ("tasks = ['kws']\nbogus = 1\n", "unknown key(s) bogus"),
    ("tasks = ['asr']\n", "tasks ['asr']"),
    ("arrays = [1024, 512]\n", "[rows, cols] pairs"),
    ("n_adcs = 8\n", "n_adcs must be a list"),
    ("time = '2d'\n", "time='2d'"),
    ("[config]\nrowz = 512\n", "did you mean rows"),
    ("samples = \n", "not valid TOML"),
])
def test_bad_grid_file_is_one_line(tmp_path, text, match):
    f = tmp_path / "grid.toml"
    f.write_text(text)
    with pytest.raises(SweepError) as e:
        load_grid(f)
    assert match in str(e.value) and "\n" not in str(e.value)
    one_error_line(invoke("sweep", "--grid", f, "-o", tmp_path / "out"), match)


def test_grid_file(tmp_path):
    f = tmp_path / "grid.toml"
    f.write_text("tasks = ['vww']\narrays = [[512, 512]]\nn_adcs = [16]\nadc_bits = [6, 8]\nact_bits = [4]\n"
                 "samples = 32\ntime = '10d'\n[config]\nread_noise_lsb = 0.25\n")
    g = load_grid(f)
    assert (g.tasks, g.arrays, g.n_adcs, g.adc_bits, g.act_bits, g.samples, g.time_s) == \
        (("vww",), ((512, 512),), (16,), (6, 8), (4,), 32, 864000.0)
    assert g.base_config() == dataclasses.replace(CFG, read_noise_lsb=0.25)
    assert g.points == 2 and len(g.units()) == 2


def test_cli_options(tmp_path):
    one_error_line(invoke("sweep", "--quick", "--grid", tmp_path / "g.toml"), "not both")
    one_error_line(invoke("sweep", "--quick", "--workers", "0", "-o", tmp_path / "o"), "'--workers': 0 is not in the range", code=2)

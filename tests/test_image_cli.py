"""`aoncim compile` and `aoncim inspect` on the shipped AnalogNet-KWS, and their one-line errors."""
import json
import re

import numpy as np
import pytest

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.firmware.image import read_image
from aoncim.model.tasks import get_task, shipped_checkpoint
from cli_helpers import invoke as run
from cli_helpers import one_error_line

KWS = str(shipped_checkpoint(get_task("kws")))


@pytest.fixture(scope="module")
def kws_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("kws") / "kws.aonc"
    r = run("compile", KWS, "-o", path)
    assert r.exit_code == 0, r.output
    return path, r.output


def test_compile_shipped_kws_fits_the_default_config(kws_image):
    path, out = kws_image
    prog, cfg = read_image(path.read_bytes(), CFG)
    assert cfg == CFG and len(prog.layers) == 7 and prog.calib_codes is not None
    assert all(d.in_bits == 8 for d in prog.layers)
    assert f"{prog.mvms} MVMs per inference" in out and f"{CFG.config_hash:#010x}" in out


def test_inspect_reports_placement_and_utilisation(kws_image, tmp_path):
    path, _ = kws_image
    prog, cfg = read_image(path.read_bytes())
    png = tmp_path / "placement.png"
    r = run("inspect", path, "--png", png)
    assert r.exit_code == 0, r.output
    cells = sum(d.k_rows * d.out_c for d in prog.layers if d.is_mvm)
    total = cfg.rows * cfg.cols
    assert f"array utilisation: {cells} of {total} cells ({100 * cells / total:.2f} %)" in r.output
    cols_used = max(d.col0 + d.tiles(cfg.rows) * d.out_c for d in prog.layers if d.is_mvm)
    assert f"columns used {cols_used} of {cfg.cols}" in r.output
    for i in prog.mvm_layers:  # every layer's rectangle and its share of the array
        r0, nr, c0, nc = prog.used_rect(i)
        d = prog.layers[i]
        assert re.search(rf"{nr}x{nc}@\({r0},{c0}\)\s+{d.tiles(cfg.rows)}\s+{d.mvms(cfg.rows)}\s+{d.k_rows * d.out_c}"
                         rf"\s+{100 * d.k_rows * d.out_c / total:.2f}", r.output), prog.layer_name(i)
    assert f"{CFG.config_hash:#010x}" in r.output and f"{prog.mvms} MVMs per inference" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_compile_a_drifted_chip_snapshot(tmp_path, kws_image):
    target, _ = read_image(kws_image[0].read_bytes())
    path = tmp_path / "kws_day.aonc"
    r = run("compile", KWS, "-o", path, "--act-bits", 4, "--time", 86400, "--seed", 3)
    assert r.exit_code == 0, r.output
    assert "simulated chip 3 at t = 86400 s" in r.output
    prog, _ = read_image(path.read_bytes(), CFG)
    assert all(d.in_bits == 4 for d in prog.layers)
    # Drift lowers the conductances: the host's alphas compensate (> 1.0) and the codes differ.
    mvm = prog.mvm_layers
    assert np.all(prog.alphas(CFG)[mvm] > CFG.alpha_one)
    assert not np.array_equal(prog.g_plus, target.g_plus)


def test_compile_errors_are_one_line(tmp_path):
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"rows": 256, "cols": 64, "n_adcs": 8}))
    one_error_line(run("compile", KWS, "--config", small, "-o", tmp_path / "x.aonc"), "but the array has 64")
    assert not (tmp_path / "x.aonc").exists()
    one_error_line(run("compile", KWS, "-o", tmp_path / "x.aonc", "--act-bits", 5), "--act-bits 5")
    one_error_line(run("compile", KWS, "-o", tmp_path / "x.aonc", "--seed", 2), "--time")
    one_error_line(run("compile", KWS, "-o", tmp_path / "x.aonc", "--time", -1), "'--time'", code=2)
    one_error_line(run("compile", tmp_path / "none.pt", "-o", tmp_path / "x.aonc"), "not found")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    one_error_line(run("compile", junk, "-o", tmp_path / "x.aonc"), "cannot read checkpoint")


def test_inspect_bad_files_are_one_line(kws_image, tmp_path):
    blob = kws_image[0].read_bytes()
    bad = tmp_path / "bad.aonc"
    bad.write_bytes(blob[:1000])
    one_error_line(run("inspect", bad), "CRC-32 mismatch")
    bad.write_bytes(b"GIF89a" + bytes(100))
    one_error_line(run("inspect", bad), "not an aoncim program image")
    one_error_line(run("inspect", tmp_path / "missing.aonc"), "not found")
    one_error_line(run("inspect", tmp_path), "cannot read image file")


def test_read_image_file_and_inspect_report_are_library_calls(kws_image, tmp_path):
    """What `aoncim inspect` prints comes from firmware/ (the CLI only prints it); every problem of
    an image file is one ImageError naming the file."""
    from rich.table import Table

    from aoncim.firmware.image import ImageError, read_image_file
    from aoncim.firmware.summary import inspect_report, utilisation

    blob, prog, cfg = read_image_file(kws_image[0])
    assert blob == kws_image[0].read_bytes() and cfg == CFG
    *tables, line = inspect_report("kws.aonc", blob, prog, cfg)
    assert len(tables) == 3 and all(isinstance(t, Table) for t in tables) and tables[0].title == "kws.aonc"
    u = utilisation(prog, cfg)
    assert line.startswith(f"array utilisation: {u.cells} of {u.array} cells")
    with pytest.raises(ImageError, match=r"missing\.aonc not found"):
        read_image_file(tmp_path / "missing.aonc")
    (tmp_path / "short.aonc").write_bytes(blob[:1000])
    with pytest.raises(ImageError, match=r"short\.aonc: CRC-32 mismatch"):
        read_image_file(tmp_path / "short.aonc")

"""benchmarks/cosim_speed.py --quick: the small config and network on cocotb + Verilator, the raw
Verilator harness and a few hundred cycles of Amaranth's simulator; prints the table and writes
JSON, CSV and PNG. ~10 s with the small config's builds cached (tests/test_raw_verilator.py and
tests/test_cosim.py build them), about a minute without."""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "cosim_speed.py"


@pytest.fixture(autouse=True)
def _no_leaked_env(monkeypatch):
    """main() sets $AONCIM_FULL_CHECK for the simulators it starts; in-process calls here must not
    leave it set for the other tests of this worker (the whole-memory scoreboard tests read it)."""
    monkeypatch.setenv("AONCIM_FULL_CHECK", "off")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("cosim_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.cosim
def test_quick_run_prints_the_table_and_writes_results(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)], capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    for text in ("co-simulation speed per inference", "cocotb + Verilator, layers", "raw Verilator, final",
                 "Amaranth sim (extrapolated from", "wall s/inf", "k cycles/s",
                 "bit-exact on every simulator that finished an inference: yes"):
        assert text in out, text
    res = json.loads((tmp_path / "cosim_speed_quick.json").read_text())
    rows = {r["sim"]: r for r in res["results"]["small"]}
    assert set(rows) == {"cocotb-layers", "cocotb-final", "raw-layers", "raw-final", "amaranth"}
    verilator = [rows[k] for k in rows if k != "amaranth"]
    assert all(r["bit_exact"] and r["n_ok"] == 2 and r["wall_s"] > 0 for r in verilator)
    # One design: every simulator counts the same chip cycles per inference.
    assert len({r["cycles"] for r in rows.values()}) == 1
    ama = rows["amaranth"]
    assert ama["extrapolated"] and 0 < ama["cycles_measured"] <= 400 and ama["wall_s"] > ama["wall_s_measured"]
    assert rows["raw-layers"]["speedup_cpu"] > 1 and rows["cocotb-layers"]["speedup_vs"] == "amaranth"
    with open(tmp_path / "cosim_speed_quick.csv") as f:
        assert len(list(csv.DictReader(f))) == 5
    assert (tmp_path / "cosim_speed_quick.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_compiler_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-c++")
    assert load_benchmark().main(["--quick", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "C++ compiler" in lines[0]


def test_unknown_model_is_refused(tmp_path, capsys):
    assert load_benchmark().main(["--models", "kws,mnist", "--out", str(tmp_path)]) == 2
    assert "unknown model 'mnist'" in capsys.readouterr().out

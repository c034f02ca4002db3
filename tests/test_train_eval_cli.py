"""`aoncim train` / `aoncim eval` end to end on the offline KWS set (short runs), and their errors."""
import json

from cli_helpers import invoke as run


def test_train_then_eval_kws(tmp_path):
    ck = tmp_path / "kws.pt"
    r = run("train", "kws", "--fp-epochs", "1", "--hwa-epochs", "1", "-o", str(ck))
    assert r.exit_code == 0, r.output
    assert ck.stat().st_size > 100_000 and "HWA retraining: val accuracy" in r.output
    r = run("eval", "kws", "--checkpoint", str(ck), "--seeds", "2", "--bits", "8", "--samples", "96",
            "--times", "1s,1d", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "accuracy_kws.json").read_text())
    modes = {(x["mode"], x["time"], x["compensated"]) for x in rows}
    assert ("bit-true", "1d", True) in modes and ("HWA float", "1d", False) in modes and len(modes) == 9
    assert all(0.0 <= x["mean"] <= 1.0 for x in rows)
    assert (tmp_path / "accuracy_kws.png").stat().st_size > 10_000
    assert "float <-> bit-true gap" in r.output


def test_eval_errors_are_one_line(tmp_path):
    r = run("eval", "kws", "--checkpoint", str(tmp_path / "missing.pt"))
    assert r.exit_code == 1 and r.output.strip().startswith("aoncim: error: checkpoint") and "aoncim train kws" in r.output
    r = run("eval", "kws", "--bits", "8,5")
    assert r.exit_code == 1 and "--bits [5]" in r.output
    r = run("eval", "kws", "--times", "1s,2d")
    assert r.exit_code == 1 and "--times" in r.output and "1y" in r.output
    r = run("train", "vww", "--data", str(tmp_path / "nowhere"), "--fp-epochs", "0", "--hwa-epochs", "0",
            "-o", str(tmp_path / "x.pt"))
    assert r.exit_code == 1 and "not a directory" in r.output and len(r.output.strip().splitlines()) == 1

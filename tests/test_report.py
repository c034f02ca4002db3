"""`aoncim report` (perf/report.py) on the embedded default config: the page has every section,
its numbers agree with the models, the PNGs exist; HTML embeds them. Small samples keep it fast."""
import re

import pytest

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.perf.cycles import array_bound_cycles, inference_cycles
from aoncim.perf.report import SECTIONS, build_report

from cli_helpers import invoke, one_error_line

PNG = b"\x89PNG\r\n\x1a\n"


def _sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.M)


def test_markdown_report_from_the_command_line(tmp_path):
    out = tmp_path / "rep"
    r = invoke("report", "kws", "--samples", "8", "--times", "1s,1d", "-o", out)
    assert r.exit_code == 0, r.output
    text = (out / "report.md").read_text()
    assert text.startswith("# AnalogNet-KWS on aoncim: performance report")
    assert _sections(text) == list(SECTIONS)
    for png in ("energy.png", "placement.png", "accuracy.png"):
        assert f"]({png})" in text and (out / png).read_bytes()[:8] == PNG and (out / png).stat().st_size > 5_000
    # Paper numbers beside ours, at every precision.
    for paper in ("8.55", "26.55", "56.67"):
        assert f"| {paper} |" in text
    # Cycle totals from the cycle model.
    from aoncim.perf.workload import compile_task

    prog = compile_task("kws", CFG, 8)
    assert f"| {inference_cycles(CFG, prog):,} | {array_bound_cycles(CFG, prog):,} |" in text
    acc = re.search(r"^\| bit-true accuracy % \| ([\d.]+) \| ([\d.]+) \|$", text, flags=re.M)
    assert acc and all(0 <= float(a) <= 100 for a in acc.groups())
    assert "| **total** |" in text and "mm²" in text
    assert "TOPS/W" in r.output and "report.md" in r.output


def test_html_report(tmp_path):
    r = build_report("kws", CFG, 4, tmp_path, as_html=True, samples=4, times=("1s",), calib_samples=64)
    text = r.path.read_text()
    assert r.path.name == "report.html" and text.startswith("<!DOCTYPE html>")
    assert re.findall(r"<h2>(.+?)</h2>", text) == list(SECTIONS)
    assert text.count('src="data:image/png;base64,') == 3 and "<table>" in text and "![" not in text
    assert r.energy.act_bits == 4 and len(r.pngs) == 3
    # The energy table's total is the model's.
    assert f"{r.energy.energy_j * 1e9:.2f}" in text


@pytest.mark.parametrize("args,match,code", [
    (("--act-bits", "5"), "--act-bits 5", 1),
    (("--times", "1s,2d"), "--times", 1),
    (("--samples", "0"), "'--samples': 0 is not in the range", 2),  # refused while parsing
])
def test_bad_options_are_one_line(tmp_path, args, match, code):
    one_error_line(invoke("report", "kws", *args, "-o", tmp_path / "r"), match, code)

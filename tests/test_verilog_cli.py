"""`aoncim verilog` and `aoncim config`: generated files, the register map (SystemRDL, Markdown,
IP-XACT) covering the whole of aoncim.regmap, and one-line errors for bad config files."""
import json

import pytest

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.hw.docgen import top_ports
from aoncim.regmap import CHIP_ID, REGISTERS, AddressMap, ErrorCode, Reg, Region, systemrdl
from aoncim.sim.jobs import SMALL_CFG
from cli_helpers import invoke, one_error_line

SMALL_TOML = """\
# the small co-simulation config (SMALL_CFG of sim/jobs.py)
rows = 128
cols = 64
n_adcs = 8
act_depth = 256
out_depth = 64
param_depth = 128
max_layers = 4
load_lanes = 16
pp_lanes = 4
"""
SMALL = SMALL_CFG


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("verilog")
    (d / "small.toml").write_text(SMALL_TOML)
    r = invoke("verilog", "--config", str(d / "small.toml"), "-o", str(d / "gen"))
    assert r.exit_code == 0, r.output
    return d / "gen"


def test_verilog_writes_the_files(generated):
    assert sorted(p.name for p in generated.iterdir()) == ["aoncim.rdl", "aoncim.xml", "aoncim_top.v", "config.toml",
                                                           "ports.md", "regmap.md"]
    assert (generated / "aoncim.rdl").read_text() == systemrdl(SMALL)
    assert "<ipxact:component" in (generated / "aoncim.xml").read_text()
    assert f"{SMALL.config_hash:#010x}" in (generated / "aoncim_top.v").read_text().splitlines()[0]
    assert AonCimConfig.from_file(generated / "config.toml") == SMALL


def test_regmap_doc_lists_every_register_region_and_error_code(generated):
    md = (generated / "regmap.md").read_text()
    amap = AddressMap(SMALL)
    for r in Reg:  # PeakRDL's section per register (per element of the ALPHA array) with its address
        name = f"{r.name}[0]" if r == Reg.ALPHA else r.name
        assert f"### {r.name} register\n\n- Absolute Address: 0x{amap.reg(r):X}\n" in md, name
        assert f"|{name}" in md.replace(" ", ""), name
    for region in Region:
        kind = "address map" if region == Region.REGS else "memory"
        assert f"## {region.name} {kind}\n\n- Absolute Address: 0x{amap.base(region):X}\n" in md
    for r in REGISTERS:
        for f in r.all_fields():
            assert f"|{f.name}|" in md.replace(" ", ""), (r.name, f.name)
    for e in ErrorCode:
        assert f"| {int(e)} | `{e.name}` |" in md, e.name
    # resets from the table (tests/test_regmap.py checks them against the RTL)
    assert f"|0x{CHIP_ID:X}|" in md.replace(" ", "") and f"|0x{SMALL.config_hash:X}|" in md.replace(" ", "")


def test_port_list_matches_the_verilog(generated):
    ports = {name: (d, w) for name, d, w in top_ports((generated / "aoncim_top.v").read_text())}
    a = AddressMap(SMALL).byte_addr_bits
    assert ports["s_axil__awaddr"] == ("input", a) and ports["s_axil__rdata"] == ("output", 32)
    assert ports["clk"] == ("input", 1) and ports["irq"] == ("output", 1)
    md = (generated / "ports.md").read_text()
    assert all(f"| `{name}` |" in md for name in ports)


def test_config_dump_round_trips(tmp_path):
    r = invoke("config", "--dump")
    assert r.exit_code == 0, r.output
    p = tmp_path / "default.toml"
    p.write_text(r.output)
    cfg = AonCimConfig.from_file(p)
    assert cfg == DEFAULT_CONFIG and cfg.config_hash == DEFAULT_CONFIG.config_hash
    r = invoke("config", "--config", str(p))
    assert r.exit_code == 0 and f"{DEFAULT_CONFIG.config_hash:#010x}" in r.output


def test_json_config_still_reads(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"rows": 512, "g_max_us": 25}))
    cfg = AonCimConfig.from_file(p)
    # an integer in a float field is the same config (and hash) as the float
    assert cfg.rows == 512 and cfg.config_hash == AonCimConfig(rows=512).config_hash


@pytest.mark.parametrize("name, text, match", [
    ("unknown.toml", "rows = 512\ncolz = 3\n", "colz (did you mean cols?)"),
    ("range.toml", "adc_bits = 40\n", "adc_bits=40 must be in 2..16"),
    ("pow2.toml", "rows = 1000\n", "rows=1000 must be a positive power of two"),
    ("type.toml", 'dac_bits = "eight"\n', "dac_bits='eight': expected an integer"),
    ("list.toml", "act_bits_supported = 8\n", "act_bits_supported=8: expected a list of integers"),
    ("malformed.toml", "rows = [1024\n", "is not valid TOML"),
    ("malformed.json", '{"rows": ', "is not valid JSON"),
    ("missing.toml", None, "not found"),
])
def test_bad_config_file_is_one_line(tmp_path, name, text, match):
    p = tmp_path / name
    if text is not None:
        p.write_text(text)
    one_error_line(invoke("verilog", "--config", str(p), "-o", str(tmp_path / "out")), match)
    one_error_line(invoke("config", "--config", str(p)), match)
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "x.v"
    f.write_text("")
    one_error_line(invoke("verilog", "-o", str(f)), "not a directory")


def test_crossbar_model_parameters_all_come_from_the_config():
    """The Verilog twin of the crossbar declares no usable defaults: every parameter it declares is
    set by model_parameters from the config, and the generated instance passes each one."""
    import re

    from aoncim.hw.pcm_array_verilog import MODEL_SOURCE, model_parameters
    from aoncim.hw.verilog import generate_verilog

    cfg = AonCimConfig(rows=64, cols=32, n_adcs=8, act_depth=256, out_depth=32, param_depth=64, max_layers=4,
                       load_lanes=8, pp_lanes=2)
    declared = re.findall(r"parameter (\w+) = (\d+)", MODEL_SOURCE.read_text())
    assert {v for _, v in declared} == {"0"}
    params = model_parameters(cfg)
    assert {n for n, _ in declared} == set(params)
    v = generate_verilog(cfg)
    inst = v[v.index("aoncim_pcm_array_model #("):v.index(") model (")]
    assert dict(re.findall(r"\.(\w+)\(32'd(\d+)\)", inst)) == {k: str(x) for k, x in params.items()}
    assert params["ROWS"] == cfg.rows and params["LANES"] == cfg.load_lanes and params["N_ADCS"] == cfg.n_adcs

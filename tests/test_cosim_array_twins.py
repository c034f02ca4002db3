"""Co-simulation of the Amaranth crossbar twin (hw/pcm_array.py with its ADC lanes, hw/adc.py, and
noise sources, hw/read_noise.py), converted into the generated Verilog in place of the hand-written
twin (hw/pcm_array_model.v) by `generate_verilog(cfg, array="amaranth")`, bit-exact against the
golden model.

The default suite builds it once for `TWIN_CFG` (4 load lanes: the smallest build that runs the
small conv net and row-tiled random nets: ~40 s CPU, most of it the rest of the chip) and runs
the small net and a few random nets; `-m slow` runs forty random nets
on `RANDOM_CFG` (16 load lanes) and proves that a mutated Amaranth ADC is caught.
"""
import re

import pytest

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.hw.pcm_array_verilog import MODEL_NAME, MODEL_SOURCE, amaranth_model_source, model_parameters
from aoncim.hw.verilog import AMARANTH_TWIN_MAX_MACS, ArrayTwinError, design_key, generate_verilog
from aoncim.sim.cosim import CosimCase
from aoncim.sim.jobs import small_conv_job
from aoncim.sim.random_nets import RANDOM_CFG, is_graph_seed, random_case, replay_command
from aoncim.sim.runner import BuildError, build, run_cases, run_cosim

TWIN_CFG = AonCimConfig(rows=32, cols=64, n_adcs=8, load_lanes=4, pp_lanes=4, act_depth=256, out_depth=64, param_depth=128,
                        max_layers=4)
# Port-list checks only convert the array: tiny configs, one with a single ADC slot (a zero-width
# slot select in Amaranth, one bit in Verilog).
PORT_CFGS = [AonCimConfig(rows=16, cols=16, n_adcs=4, load_lanes=4, pp_lanes=4, act_depth=64, out_depth=16, param_depth=32,
                          max_layers=2),
             AonCimConfig(rows=8, cols=8, n_adcs=8, load_lanes=2, pp_lanes=2, act_depth=64, out_depth=16,
                          param_depth=32, max_layers=2)]


def cosim_cases(cases):
    return [CosimCase(c.name, c.prog, c.inputs, c.noise_seeds) for c in cases]


def check_bit_exact(r, names):
    bad = [f"{name}: {res.error or res.mismatches[:1]}" for name, res in zip(names, r.cases) if not res.ok]
    assert not bad, "\n".join(bad)
    assert r.n_ok == r.n_inferences > 0


# ------------------------------------------------------------------------------ no simulator
def _ports(text: str, params: dict[str, int] | None = None) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} of module `aoncim_pcm_array_model` in `text`: the hand-written
    ANSI header (widths evaluated with `params`) or Yosys' port declarations."""
    body = text[text.index(f"module {MODEL_NAME}"):]
    body = body[:body.index("endmodule")]
    ports = {}
    for d, rng, name in re.findall(r"^\s*(input|output)\s+(?:wire|reg)?\s*(?:\[([^\]]+):0\])?\s*(\w+)\s*[,;)]?\s*$",
                                   body, re.M):
        ports[name] = (d, eval(rng, {}, dict(params or {})) + 1 if rng else 1)  # noqa: S307 (our own file)
    return ports


@pytest.mark.parametrize("cfg", PORT_CFGS, ids=["4-slots", "1-slot"])
def test_twins_have_identical_ports(cfg):
    """The Amaranth twin's module has the hand-written twin's ports (names, directions, widths)
    and the parameters the top's instance sets, checked against its config at time zero."""
    params = model_parameters(cfg)
    hand = _ports(MODEL_SOURCE.read_text(), params)
    text = amaranth_model_source(cfg)
    assert len(hand) == 19 and _ports(text) == hand
    declared = dict(re.findall(r"^  parameter (\w+) = (\d+);$", text, re.M))
    assert declared == {k: "0" for k in params}
    assert all(f"{k} != {v}" in text for k, v in params.items())


def test_amaranth_twin_changes_only_the_array_module():
    """The top level is the same text with either twin: only the appended module differs, and the
    two builds never share a cache entry."""
    cfg = PORT_CFGS[0]
    default, amaranth = generate_verilog(cfg), generate_verilog(cfg, array="amaranth")
    top = default[:-len(MODEL_SOURCE.read_text())]
    assert amaranth.startswith(top) and amaranth[len(top):] == amaranth_model_source(cfg)
    assert design_key(cfg) == design_key(cfg, array="verilog") != design_key(cfg, array="amaranth")


def test_amaranth_twin_refuses_large_configs_in_one_line():
    assert DEFAULT_CONFIG.cols * DEFAULT_CONFIG.load_lanes > AMARANTH_TWIN_MAX_MACS
    assert RANDOM_CFG.cols * RANDOM_CFG.load_lanes <= AMARANTH_TWIN_MAX_MACS
    with pytest.raises(ArrayTwinError, match=rf"cols x load_lanes <= {AMARANTH_TWIN_MAX_MACS}.*array='verilog'") as e:
        generate_verilog(DEFAULT_CONFIG, array="amaranth")
    assert "\n" not in str(e.value)
    with pytest.raises(ArrayTwinError, match="must be one of verilog, amaranth"):
        generate_verilog(TWIN_CFG, array="amaranthh")
    with pytest.raises(BuildError, match="cols x load_lanes"):
        build(DEFAULT_CONFIG, array_twin="amaranth")


# ------------------------------------------------------------------------------ co-simulation
@pytest.mark.cosim
def test_amaranth_twin_bit_exact_on_small_nets():
    """The small conv net (read noise on, three inferences) and row-tiled random nets of mixed
    precision, bit-exact on the Amaranth twin, on one build."""
    prog, inputs, seeds = small_conv_job(TWIN_CFG, 8, 3, 0)
    tiled = lambda c: any(d.tiles(TWIN_CFG.rows) > 1 for d in c.prog.layers if d.is_mvm)  # noqa: E731
    seqs = (random_case(s, TWIN_CFG) for s in range(3, 200) if not is_graph_seed(s))
    randoms = [c for c in seqs if tiled(c)][:4] + \
        [random_case(s, TWIN_CFG) for s in range(3) if is_graph_seed(s)][:2]  # tiled sequences and graphs
    cases = [CosimCase("small-conv", prog, inputs, seeds)] + cosim_cases(randoms)
    r = run_cases(TWIN_CFG, cases, array_twin="amaranth")
    check_bit_exact(r, [c.name for c in cases])
    assert any(d.tiles(TWIN_CFG.rows) > 1 for c in randoms for d in c.prog.layers if d.is_mvm)


@pytest.mark.slow
@pytest.mark.cosim
def test_amaranth_twin_bit_exact_on_random_nets():
    cases = [random_case(s) for s in range(40)]
    r = run_cases(RANDOM_CFG, cosim_cases(cases), array_twin="amaranth")
    check_bit_exact(r, [f"{c.name} (replay on the Verilog twin: {replay_command(c.seed)})" for c in cases])


@pytest.mark.slow
@pytest.mark.cosim
def test_mutated_amaranth_adc_is_caught(monkeypatch, tmp_path):
    """An Amaranth ADC that truncates instead of rounding, in the Amaranth twin's build, must
    disagree with the golden model. The mutant replaces `AdcLane` where `PcmArray` looks it up;
    the design key does not see that, so the build goes to a private build root."""
    from aoncim.hw import pcm_array
    from aoncim.sim.mutation import mutant_module

    bad = mutant_module("aoncim.hw.adc", "self.noise * t.noise_mult + t.rounding)", "self.noise * t.noise_mult)")
    monkeypatch.setattr(pcm_array, "AdcLane", bad.AdcLane)
    prog, inputs, seeds = small_conv_job(TWIN_CFG, 8, 3, 0)
    r = run_cosim(TWIN_CFG, prog, inputs, seeds, array_twin="amaranth", build_root=tmp_path)
    assert r.n_ok < len(inputs)
    assert r.layer_fail[0] > 0 and r.mismatches and "layer 0" in r.mismatches[0]

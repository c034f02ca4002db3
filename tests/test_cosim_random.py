"""Randomised co-simulation: random small networks (sim/random_nets.py) on one small-rows build,
bit-exact against the golden model layer by layer, with the sequencer's functional coverage
(sim/coverage.py) and mismatch diagnostics that name the case and replay it.

The default suite runs forty cases (~5 s with the build cached; the build of the 32-row config
takes ~25 s once); `-m slow` runs a thousand (~40 s).
"""
import dataclasses
import json
import time

import numpy as np
import pytest

from aoncim.program import LayerDescriptor, Op
from aoncim.sim import coverage as cov
from aoncim.sim import runner
from aoncim.sim.random_nets import RANDOM_CFG, is_graph_seed, random_case, replay_command
from aoncim.sim.cosim import CosimCase
from aoncim.sim.runner import run_cases
from aoncim.perf.cycles import inference_cycles, layer_cycles, postproc_cycle


# The cases of the default suite's co-simulation (test_random_networks_bit_exact); the datapath
# tests (tests/test_datapath_coverage.py) check the generator's bins on the same ones.
SUITE_SEEDS = range(40)
# The random networks have no residual add yet (residual graphs come with the compiler's graph
# front end); tests/test_cosim_add_pad.py co-simulates one and hits these bins.
NOT_RANDOM: set[str] = set()  # every bin is reachable; the add's through the random graphs


def cases_for(seeds, act_bits=None):
    return [random_case(s, act_bits=act_bits) for s in seeds]


def cosim_cases(cases):
    return [CosimCase(c.name, c.prog, c.inputs, c.noise_seeds) for c in cases]


def check_all_bit_exact(r, cases, cfg=RANDOM_CFG):
    bad = [f"{res.error or res.mismatches[:1]} -- replay: {replay_command(c.seed, c.act_bits)}"
           for c, res in zip(cases, r.cases) if not res.ok]
    assert not bad, "\n".join(bad)
    for c, res in zip(cases, r.cases):
        assert res.compared == [len(c.inputs) * d.positions * d.out_c for d in c.prog.layers]
        for inf in res.inferences:
            assert inf["cycles"] == inference_cycles(cfg, c.prog), c.describe(cfg.rows)
            assert inf["mvms"] == c.prog.mvms


# ------------------------------------------------------------------------------ no simulator
def test_random_cases_are_deterministic_and_legal():
    for s in (0, 1, 17, 123456):
        a, b = random_case(s), random_case(s)
        assert a.prog == b.prog and a.noise_seeds == b.noise_seeds
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs))
        a.prog.check(RANDOM_CFG)
    assert random_case(1).prog != random_case(2).prog
    forced = random_case(5, act_bits=4)
    assert {d.in_bits for d in forced.prog.layers} == {4}


def test_random_cases_cover_every_sequencer_bin():
    """The generator reaches every legal bin (kind x stride x padding x pad code x tiling x
    precision), the residual add's through its graphs, and exercises what it randomises beyond the
    compiler."""
    hits, notes, tiles = {}, set(), set()
    for s in range(900):  # a third are graphs: the rarest sequential bins need ~600 sequential cases
        c = random_case(s)
        for d in c.prog.layers:
            p = cov.layer_point(d, RANDOM_CFG.rows)
            assert cov.legal(p), (p, c.describe(RANDOM_CFG.rows))
            hits[p] = hits.get(p, 0) + 1
            tiles.add(d.tiles(RANDOM_CFG.rows))
        notes.update(c.randomised)
    report = cov.to_json(hits)
    assert report["total"] == 114 and set(cov.missing(report)) == NOT_RANDOM, cov.missing(report)
    assert notes == {"placement", "parameter bases", "activation addresses", "alpha", "per-layer precision", "rails",
                     "asymmetric padding", "pad codes", "graph", "depthwise"}
    assert max(tiles) >= 4


def test_coverage_bins_and_merge():
    def desc(**kw):
        base = dict(opcode=Op.MVM.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0,
                    in_bank=0, out_bank=1, shift=0, in_h=4, in_w=4, in_c=8, k_h=3, k_w=3, out_h=2, out_w=2, out_c=4,
                    k_rows=72, row0=0, col0=0, param_base=0, in_base=0, out_base=0)
        return LayerDescriptor(**{**base, **kw})

    assert cov.layer_point(desc(), 32) == ("conv", 1, "pad=0", "code=0", "T>1", 8)
    assert cov.layer_point(desc(pad_h=1, pad_w=1, out_h=4, out_w=4, pad_code=7), 32) == \
        ("conv", 1, "pad h=w", "code>0", "T>1", 8)
    assert cov.layer_point(desc(pad_w=1, out_w=4, stride=2, in_bits=6), 128) == \
        ("conv", 2, "pad h!=w", "code=0", "T=1", 6)
    assert cov.layer_point(desc(pad_code=7), 32)[2:4] == ("pad=0", "code=0")     # unpadded: the code loads nowhere
    assert cov.layer_point(desc(k_h=4, k_w=4, out_h=1, out_w=1, k_rows=128, in_bits=4), 256) == \
        ("linear", 1, "pad=0", "code=0", "T=1", 4)
    pool = dict(k_rows=0, out_c=8, k_h=2, k_w=2)
    assert cov.layer_point(desc(opcode=Op.MAXPOOL.value, stride=2, **pool), 32) == \
        ("maxpool", 2, "pad=0", "code=0", "T=1", 8)
    assert cov.layer_point(desc(opcode=Op.AVGPOOL.value, k_h=4, k_w=4, out_h=1, out_w=1, k_rows=0, out_c=8), 32)[0] == \
        "global-avgpool"
    add = dict(opcode=Op.ADD.value, in_h=2, k_h=2, k_w=1, out_h=1, k_rows=0, in_c=4, out_c=4, in_bits=6)
    assert cov.layer_point(desc(**add, out_w=4), 32) == ("add", 1, "pad=0", "code=0", "T=1", 6)
    assert cov.layer_point(desc(**add, in_w=1, out_w=1), 32)[0] == "add"            # one position: still an add
    dw = dict(opcode=Op.DWCONV.value, k_rows=0, out_c=8, w_base=5)
    assert cov.layer_point(desc(**dw, pad_h=1, pad_w=2, out_h=4, out_w=6, pad_code=3, stride=1), 32) == \
        ("depthwise", 1, "pad h!=w", "code>0", "T=1", 8)
    assert cov.layer_point(desc(**dw, stride=2, out_h=1, out_w=1), 32) == ("depthwise", 2, "pad=0", "code=0", "T=1", 8)
    assert cov.layer_point(desc(**dw, k_h=4, k_w=4, out_h=1, out_w=1), 32)[:2] == ("depthwise", 1)  # whole input
    assert not cov.legal(("maxpool", 1, "pad h=w", "code=0", "T=1", 8))
    assert not cov.legal(("linear", 2, "pad=0", "code=0", "T=1", 8))
    assert not cov.legal(("conv", 1, "pad=0", "code>0", "T=1", 8))
    assert not cov.legal(("add", 2, "pad=0", "code=0", "T=1", 8))
    assert cov.legal(("depthwise", 2, "pad h!=w", "code>0", "T=1", 4))
    assert not cov.legal(("depthwise", 1, "pad=0", "code=0", "T>1", 8))
    # The exclusions derived from the op vocabulary are the chip's rules, written out here.
    assert cov.KINDS == ("conv", "linear", "maxpool", "avgpool", "global-avgpool", "add", "depthwise")
    assert cov.AXES == ("kind", "stride", "pad", "pad_code", "tiling", "bits")
    padded = ("pad h=w", "pad h!=w")
    assert set(cov.ILLEGAL) == {
        (None, None, "pad=0", "code>0", None, None),
        *((k, None, p, None, None, None) for k in ("linear", "maxpool", "avgpool", "global-avgpool", "add")
          for p in padded),
        ("linear", 2, None, None, None, None), ("global-avgpool", 2, None, None, None, None),
        ("add", 2, None, None, None, None),
        *((k, None, None, None, "T>1", None) for k in ("maxpool", "avgpool", "global-avgpool", "add", "depthwise"))}
    c = cov.SequencerCoverage(32)
    c.sample(desc())
    c.sample(desc())
    c.sample(desc(in_bits=6))
    r = c.to_json()
    assert (r["hit"], r["total"]) == (2, 114)
    merged = cov.merge([r, cov.SequencerCoverage(32).to_json(), r])
    assert merged["hit"] == 2 and sum(b["hits"] for b in merged["bins"]) == 6
    assert cov.summary(merged) == "sequencer coverage: 2/114 bins (1.8 %)"


def test_postproc_cycle_follows_the_schedule():
    """The mismatch report's cycle: last output of a layer is post-processed just before the
    layer's end, the first output of the next layer after its LOAD/PWM (or window)."""
    c = random_case(3)
    p, cfg = c.prog, RANDOM_CFG
    ends = np.cumsum([layer_cycles(cfg, d) for d in p.layers])
    assert ends[-1] == inference_cycles(cfg, p)
    for i, d in enumerate(p.layers):
        last = postproc_cycle(cfg, p, i, d.out_h - 1, d.out_w - 1, d.out_c - 1)
        start = ends[i - 1] if i else 0
        assert start < postproc_cycle(cfg, p, i, 0, 0, 0) <= last < ends[i]
        assert ends[i] - last <= 4


# ------------------------------------------------------------------------------ co-simulation
@pytest.mark.cosim
def test_random_networks_bit_exact():
    """Forty random networks (row tiles, pooling, padding with pad_h != pad_w and non-zero pad
    codes, random placement, parameters, addresses, alpha and precisions; half of them with columns
    on the ADC rails, rounding ties and post-processing clamps) in one simulator run, every layer bit-exact, cycles as the schedule says (~3 s), and
    every datapath bin hit by the bit-exact inferences: a wrong rail, rounding or clamp in the RTL
    or the golden model fails here."""
    cases = cases_for(SUITE_SEEDS)
    r = run_cases(RANDOM_CFG, cosim_cases(cases), coverage=True)
    check_all_bit_exact(r, cases)
    assert r.runs == 1 and r.n_ok == r.n_inferences == 40
    assert r.coverage["total"] == 114 and r.coverage["hit"] >= 50, cov.missing(r.coverage)
    # Layers padded differently above and beside, and padded layers loading a non-zero pad code,
    # matched the golden model (the chip's pad_h/pad_w walk and pad-code lanes).
    hit = [b for b in r.coverage["bins"] if b["hits"]]
    assert any(b["pad"] == "pad h!=w" for b in hit) and any(b["pad_code"] == "code>0" for b in hit)
    dp = r.coverage["datapath"]
    assert dp["hit"] == dp["total"] == 19, cov.datapath_missing(dp)


@pytest.mark.cosim
@pytest.mark.parametrize("load_lanes,pp_lanes", [(1, 1), (32, 8)])
def test_random_networks_bit_exact_at_other_lane_counts(load_lanes, pp_lanes):
    """The pipeline at the extremes of its widths: one code loaded and one channel post-processed
    a cycle, and a load run as wide as the array's rows with eight post-processing lanes. Same
    random networks, bit-exact, and the cycle model still equals the RTL's count."""
    cfg = dataclasses.replace(RANDOM_CFG, load_lanes=load_lanes, pp_lanes=pp_lanes)
    cases = [random_case(s, cfg) for s in range(40, 70)]
    r = run_cases(cfg, cosim_cases(cases))
    check_all_bit_exact(r, cases, cfg)


@pytest.mark.cosim
def test_failing_random_case_is_reported_with_its_replay_command(monkeypatch, tmp_path):
    """A golden model off by one in one value of seed 101's last layer: the CLI names the case,
    layer, position, channel, expected and got, the schedule cycle and the command that replays it,
    the other cases pass, coverage is written, the exit code is 1."""
    from click.testing import CliRunner

    from aoncim.cli import main

    real, bad = runner.golden_outputs, random_case(101).prog
    k = len(bad.layers) - 1  # its last layer (one value off by one)

    def corrupt(cfg, prog, inputs, seeds):
        out = real(cfg, prog, inputs, seeds)
        if prog == bad:
            out[0][k] = out[0][k].copy()
            out[0][k][0, 0, 0] += 1
        return out

    monkeypatch.setattr(runner, "golden_outputs", corrupt)
    path = tmp_path / "cov.json"
    res = CliRunner().invoke(main, ["cosim", "--model", "random", "--inputs", "3", "--seed", "100",
                                    "--coverage-json", str(path)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1, res.output
    assert lines[-1] == "bit-exact: 2/3 inferences", res.output
    fail = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fail) == 1, res.output
    assert fail[0].startswith(f"FAIL seed 101: random-101 inference 0 layer {k} (")
    assert "first difference at (y=0, x=0, c=0)" in fail[0] and "post-processed at cycle" in fail[0]
    assert fail[0].endswith("-- replay: aoncim cosim --model random --seed 101 --inputs 1")
    report = json.loads(path.read_text())
    assert report["total"] == 114 and report["hit"] > 0
    assert report["datapath"]["total"] == 19
    assert any(ln.startswith("sequencer coverage: ") for ln in lines)
    assert any(ln.startswith("datapath coverage: ") for ln in lines)


@pytest.mark.cosim
def test_hung_case_is_reported_and_the_next_case_runs():
    """A case whose inference cannot finish within its time limit is recorded as a timeout; the
    chip is reset and the next case runs bit-exact."""
    a, b = cases_for([7, 8])
    hung = CosimCase(a.name, a.prog, a.inputs, a.noise_seeds, timeout_us=1)
    r = run_cases(RANDOM_CFG, [hung] + cosim_cases([b]))
    assert r.cases[0].error.startswith("timeout") and not r.cases[0].ok
    assert r.cases[1].ok and r.n_ok == 1 and [c.name for c in r.failed] == [a.name]


@pytest.mark.slow
@pytest.mark.cosim
def test_a_thousand_random_networks_bit_exact():
    """1000 (network, seed, precision) cases, 0 mismatches, every sequencer bin hit but the
    residual add's (~40 s)."""
    t0 = time.perf_counter()
    cases = cases_for(range(1000, 2000))
    r = run_cases(RANDOM_CFG, cosim_cases(cases), coverage=True)
    check_all_bit_exact(r, cases)
    assert r.n_ok == 1000
    assert set(cov.missing(r.coverage)) == NOT_RANDOM, cov.missing(r.coverage)
    print(f"1000 random cases bit-exact in {time.perf_counter() - t0:.0f} s ({r.runs} simulator runs); "
          f"{cov.summary(r.coverage)}")


@pytest.mark.slow
@pytest.mark.cosim
def test_a_thousand_random_graphs_bit_exact():
    """1000 random graphs (residual adds, depthwise and grouped convs, 1-D convs, signed inputs and
    activations, exact clamps), each replayable by its seed, 0 mismatches, every add bin hit."""
    t0 = time.perf_counter()
    seeds = [s for s in range(100_000, 200_000) if is_graph_seed(s)][:1000]
    cases = [random_case(s) for s in seeds]
    assert all("graph" in c.randomised for c in cases)
    r = run_cases(RANDOM_CFG, cosim_cases(cases), coverage=True)
    check_all_bit_exact(r, cases)
    assert r.n_ok == 1000
    hits = cov.from_json(r.coverage)
    assert all(hits[b] for b in cov.all_bins() if b[0] == "add"), cov.missing(r.coverage)
    print(f"1000 random graphs bit-exact in {time.perf_counter() - t0:.0f} s ({r.runs} simulator runs); "
          f"{cov.summary(r.coverage)}")

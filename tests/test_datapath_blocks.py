"""Amaranth-simulator testbenches of the arithmetic blocks against their golden-model twins."""
import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.adc import AdcLane
from aoncim.hw.postproc import PostProcessor
from aoncim.hw.read_noise import ReadNoiseSource
from aoncim.model.bittrue import AdcTransfer, PostProcessing, ReadNoise
from aoncim.program import LayerDescriptor, Op

from adc_helpers import ODD_ADC, adc_ties

CFG = AonCimConfig()


def run_comb(dut, vectors, apply, check):
    sim = Simulator(dut)

    async def tb(ctx):
        for v in vectors:
            apply(ctx, v)
            check(ctx, v)

    sim.add_testbench(tb)
    sim.run()


def test_read_noise_matches_model():
    rng = np.random.default_rng(1)
    dut = ReadNoiseSource(CFG)
    vec = [(int(rng.integers(2**32)), int(rng.integers(2**20)), int(rng.integers(CFG.cols))) for _ in range(300)]
    got = []

    def apply(ctx, v):
        ctx.set(dut.seed, v[0]), ctx.set(dut.mvm, v[1]), ctx.set(dut.col, v[2])

    run_comb(dut, vec, apply, lambda ctx, v: got.append(ctx.get(dut.sample)))
    want = [int(ReadNoise(CFG, s).raw(np.array(m), np.array(c))) for s, m, c in vec]
    assert got == want
    assert np.std(want) == pytest.approx(CFG.NOISE_STD_RAW, rel=0.15)


@pytest.mark.parametrize("cfg,bits", [pytest.param(CFG, b, id=f"default-{b}") for b in CFG.act_bits_supported]
                         + [pytest.param(ODD_ADC, b, id=f"odd-{b}") for b in ODD_ADC.act_bits_supported])
def test_adc_lane_matches_model(cfg, bits):
    """Golden vs Amaranth ADC lane: random column sums and noise, exact rounding ties, both rails
    (the last code before clipping, the first clipped one) and the widest port values."""
    t = cfg.adc_transfer
    rng = np.random.default_rng(bits)
    dut = AdcLane(cfg)
    fs = int(t.full_scale_col_sum(bits))
    vec = [(int(rng.integers(-2 * fs, 2 * fs)), int(rng.integers(-510, 511))) for _ in range(300)]
    ties = adc_ties(t, bits, rng, 40)
    assert len(ties) >= 5, "the test must exercise rounding ties"
    vec += ties + [(-c, -n) for c, n in ties]  # a negative tie rounds up too (towards +infinity)
    # Around each rail: the column sums where the code steps to adc_max, and to adc_max + 1 (clipped).
    per_code = t.full_scale_col_sum(bits) / t.adc_max
    edge = [int(t.full_scale_col_sum(bits) + h * per_code) + d for h in (-0.5, 0.5) for d in range(-2, 3)]
    vec += [(s * c, 0) for c in edge for s in (1, -1)]
    top = (1 << (t.col_sum_bits - 1)) - 1
    vec += [(0, 0), (fs, 510), (-fs, -510), (top, 510), (-top - 1, -510), (2**(t.col_sum_bits - 2), 0)]
    got = []

    def apply(ctx, v):
        ctx.set(dut.col_sum, v[0]), ctx.set(dut.noise, v[1]), ctx.set(dut.bits, bits)

    run_comb(dut, vec, apply, lambda ctx, v: got.append(ctx.get(dut.code)))
    want = AdcTransfer(cfg)(torch.tensor([v[0] for v in vec]), torch.tensor([v[1] for v in vec]), bits).tolist()
    assert got == want
    assert max(got) == t.adc_max and min(got) == -t.adc_max  # saturation reached both ways
    unclipped = [(v[0] * t.gain(bits) + v[1] * t.noise_mult) / 2**t.gain_shift for v in vec]
    assert sum(abs(u) < t.adc_max and u % 1 == 0.5 for u in unclipped) >= 10  # ties, both signs


def _desc(**kw):
    base = dict(opcode=Op.MVM.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0, in_bank=0,
                out_bank=1, shift=8, in_h=1, in_w=1, in_c=1, k_h=1, k_w=1, out_h=1, out_w=1, out_c=1, k_rows=1, row0=0,
                col0=0, param_base=0, in_base=0, out_base=0)
    base.update(kw)
    return LayerDescriptor(**base)


def pp_reference(cfg, code, alpha, scale, bias, shift, to_out, relu, out_bits, passthrough=0):
    """Contract step 6 in Python integers (no width limit): the post-processing unit's model."""
    f = cfg.alpha_frac_bits
    y = code if passthrough else (code * alpha * scale + (bias << f) + ((1 << (shift + f)) >> 1)) >> (shift + f)
    if to_out:
        lo = 0 if relu else -(1 << (cfg.out_bits - 1))
        return min(max(y, lo), (1 << (cfg.out_bits - 1)) - 1)
    return min(max(y, 0), (1 << out_bits) - 1)


def run_postprocessor(cfg, vec, to_out, relu, out_bits, passthrough=0):
    """Drive (code, alpha, scale, bias, shift) vectors one per cycle; return out_y of each."""
    dut = PostProcessor(cfg)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def tb(ctx):
        ctx.set(dut.to_out, to_out), ctx.set(dut.relu, relu), ctx.set(dut.out_bits, out_bits)
        ctx.set(dut.passthrough, passthrough)
        for i, (code, alpha, scale, bias, shift) in enumerate(vec):
            ctx.set(dut.in_valid, 1), ctx.set(dut.in_code, code), ctx.set(dut.in_scale, scale)
            ctx.set(dut.in_bias, bias), ctx.set(dut.shift, shift), ctx.set(dut.alpha, alpha)
            ctx.set(dut.in_addr, i % 64)
            await ctx.tick()
            assert ctx.get(dut.out_valid) and ctx.get(dut.out_addr) == i % 64
            got.append(ctx.get(dut.out_y))

    sim.add_testbench(tb)
    sim.run()
    return got


def pp_vectors(cfg, rng, n):
    """Random operands over the full ranges, plus every combination of the extremes."""
    smax, bmax = 2 ** (cfg.pp_scale_bits - 1), 2 ** (cfg.pp_bias_bits - 1)
    sum_max, amax = 2**cfg.pool_sum_bits - 1, 2**cfg.alpha_bits - 1
    vec = []
    for _ in range(n):
        code = int(rng.integers(-cfg.adc_max, cfg.adc_max + 1)) if rng.random() < 0.5 else int(rng.integers(0, sum_max + 1))
        alpha = cfg.alpha_one if rng.random() < 0.2 else int(rng.integers(0, amax + 1))
        vec.append((code, alpha, int(rng.integers(-smax, smax)), int(rng.integers(-bmax, bmax) >> rng.integers(0, 28)),
                    int(rng.integers(0, cfg.pp_shift_max + 1))))
    for code in (-cfg.adc_max, sum_max):
        for alpha in (0, amax):
            for scale in (-smax, smax - 1):
                for bias in (-bmax, bmax - 1):
                    for shift in (0, cfg.pp_shift_max):
                        vec.append((code, alpha, scale, bias, shift))
    return vec


@pytest.mark.parametrize("to_out,relu,out_bits", [(0, 0, 8), (0, 0, 4), (1, 0, 8), (1, 1, 8)])
def test_postprocessor_matches_model(to_out, relu, out_bits):
    """Random alpha, ADC codes and pooling sums: the RTL equals the golden model's PostProcessing."""
    rng = np.random.default_rng(to_out * 4 + relu + out_bits)
    vec = pp_vectors(CFG, rng, 300)
    got = run_postprocessor(CFG, vec, to_out, relu, out_bits)
    pp = PostProcessing(CFG)
    want = [int(pp(torch.tensor(c), torch.tensor(s), torch.tensor(b),
                   _desc(shift=sh, to_out=to_out, relu=relu, out_bits=out_bits), alpha=a)) for c, a, s, b, sh in vec]
    assert got == want
    assert want == [pp_reference(CFG, *v, to_out, relu, out_bits) for v in vec]


@pytest.mark.parametrize("cfg", [
    # The widest operands the config admits (their product fills the golden model's int64).
    AonCimConfig(alpha_bits=20, alpha_frac_bits=19, pool_sum_bits=17, pp_scale_bits=24, pp_bias_bits=32,
                 pp_shift_max=31, out_bits=32, dw_sum_bits=18),
    AonCimConfig(adc_bits=16, alpha_bits=2, alpha_frac_bits=0, pool_sum_bits=9, pp_scale_bits=2, pp_bias_bits=8,
                 pp_shift_max=1, out_bits=9),
], ids=["widest", "narrowest"])
def test_postprocessor_exact_at_extreme_widths(cfg):
    """The accumulator width comes from the config: no overflow at the widest operands the config
    admits (a 62-bit product) and no waste at the narrowest."""
    rng = np.random.default_rng(5)
    vec = pp_vectors(cfg, rng, 200)
    for to_out, relu in ((0, 0), (1, 0)):
        assert run_postprocessor(cfg, vec, to_out, relu, 8) == [pp_reference(cfg, *v, to_out, relu, 8) for v in vec]


def test_postprocessor_passthrough_is_max_pooling():
    rng = np.random.default_rng(9)
    vec = [(int(rng.integers(0, 256)), int(rng.integers(0, 2**16)), int(rng.integers(-2**15, 2**15)), 0, 3)
           for _ in range(100)]
    assert run_postprocessor(CFG, vec, 0, 0, 8, passthrough=1) == [v[0] for v in vec]


@pytest.mark.parametrize("mode", ["max", "sum"])
def test_pool_unit_matches_model(mode):
    """Windows of 1..25 codes back to back, with idle cycles between some, against max/sum."""
    from aoncim.hw.pool import PoolUnit

    rng = np.random.default_rng(len(mode))
    windows = [rng.integers(0, 2**CFG.dac_bits, int(rng.integers(1, 26))) for _ in range(60)]
    windows.append(np.full(16, 2**CFG.dac_bits - 1))  # the largest global-average-pool sum of a 4x4 map
    dut = PoolUnit(CFG)
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def tb(ctx):
        ctx.set(dut.sum, mode == "sum")
        for w in windows:
            for i, x in enumerate(w):
                ctx.set(dut.in_valid, 1), ctx.set(dut.in_x, int(x))
                ctx.set(dut.in_first, i == 0), ctx.set(dut.in_last, i == len(w) - 1)
                if ctx.get(dut.out_valid):
                    got.append(ctx.get(dut.out_value))
                await ctx.tick()
            if rng.random() < 0.3:
                ctx.set(dut.in_valid, 0), ctx.set(dut.in_x, 77)
                assert not ctx.get(dut.out_valid)
                await ctx.tick()

    sim.add_testbench(tb)
    sim.run()
    x = [torch.as_tensor(w) for w in windows]
    assert got == [int(w.sum() if mode == "sum" else w.max()) for w in x]

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
from aoncim.program import OP_MVM, LayerDescriptor

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


@pytest.mark.parametrize("bits", CFG.act_bits_supported)
def test_adc_lane_matches_model(bits):
    rng = np.random.default_rng(bits)
    dut = AdcLane(CFG)
    fs = int(CFG.adc_bound * CFG.dac_max * CFG.gcode_max) >> (CFG.dac_bits - bits)
    vec = [(int(rng.integers(-2 * fs, 2 * fs)), int(rng.integers(-510, 511))) for _ in range(300)]
    vec += [(0, 0), (fs, 510), (-fs, -510), (2**(CFG.col_sum_bits - 2), 0)]
    got = []

    def apply(ctx, v):
        ctx.set(dut.col_sum, v[0]), ctx.set(dut.noise, v[1]), ctx.set(dut.bits, bits)

    run_comb(dut, vec, apply, lambda ctx, v: got.append(ctx.get(dut.code)))
    want = AdcTransfer(CFG)(torch.tensor([v[0] for v in vec]), torch.tensor([v[1] for v in vec]), bits).tolist()
    assert got == want
    assert max(got) == CFG.adc_max and min(got) == -CFG.adc_max  # saturation reached both ways


def _desc(**kw):
    base = dict(opcode=OP_MVM, in_bits=8, out_bits=8, stride=1, pad=0, relu=0, to_out=0, in_bank=0, out_bank=1,
                shift=8, in_h=1, in_w=1, in_c=1, k_h=1, k_w=1, out_h=1, out_w=1, out_c=1, k_rows=1, row0=0,
                col0=0, param_base=0, in_base=0, out_base=0)
    base.update(kw)
    return LayerDescriptor(**base)


@pytest.mark.parametrize("to_out,relu,out_bits", [(0, 0, 8), (0, 0, 4), (1, 0, 8), (1, 1, 8)])
def test_postprocessor_matches_model(to_out, relu, out_bits):
    rng = np.random.default_rng(to_out * 4 + relu + out_bits)
    dut = PostProcessor(CFG)
    smax, bmax = 2 ** (CFG.pp_scale_bits - 1), 2 ** (CFG.pp_bias_bits - 1)
    vec = [(int(rng.integers(-CFG.adc_max, CFG.adc_max + 1)), int(rng.integers(-smax, smax)),
            int(rng.integers(-bmax, bmax) >> rng.integers(0, 28)), int(rng.integers(0, CFG.pp_shift_max + 1)))
           for _ in range(300)]
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def tb(ctx):
        ctx.set(dut.to_out, to_out), ctx.set(dut.relu, relu), ctx.set(dut.out_bits, out_bits)
        for code, scale, bias, shift in vec:
            ctx.set(dut.in_valid, 1), ctx.set(dut.in_code, code), ctx.set(dut.in_scale, scale)
            ctx.set(dut.in_bias, bias), ctx.set(dut.shift, shift)
            await ctx.tick()
            assert ctx.get(dut.out_valid)
            got.append(ctx.get(dut.out_y))

    sim.add_testbench(tb)
    sim.run()
    pp = PostProcessing(CFG)
    want = [int(pp(torch.tensor(c), torch.tensor(s), torch.tensor(b),
                   _desc(shift=sh, to_out=to_out, relu=relu, out_bits=out_bits))) for c, s, b, sh in vec]
    assert got == want

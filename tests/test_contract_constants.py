"""The derived constants the golden model and the RTL share, computed again here from the
contract's formulas (docs/architecture.md, "Bit-true arithmetic contract") without the config's
properties or aoncim/adc.py, and asserted equal to what the config hands both.

Co-simulation compares the golden model with the RTL; both take these constants from the config,
so an error in one of them would be common-mode and invisible there. Each is derived here from
first principles: the read-noise distribution by enumerating every byte sum (not the Irwin-Hall
formula), widths as the smallest that hold the extreme values, the ADC gain and rounding from
step 5 on exact fractions.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from aoncim.config import AonCimConfig
from aoncim.model.bittrue import ReadNoise, lowbias32
from aoncim.sim.random_nets import RANDOM_CFG

CONFIGS = {
    "default": AonCimConfig(),
    "random": RANDOM_CFG,
    "narrow": dataclasses.replace(RANDOM_CFG, adc_bits=6, gcode_bits=6, read_noise_lsb=2.5, alpha_bits=10,
                                  alpha_frac_bits=7, adc_gain_mult=1001, adc_gain_shift=20),
    "wide": dataclasses.replace(AonCimConfig(), rows=1024, adc_bits=10, read_noise_lsb=0.0, adc_gain_shift=30),
}


def _byte_sum_distribution() -> np.ndarray:
    """P(sum of four independent uniform bytes = s), s = 0..1020, by convolution."""
    one = np.full(256, 1 / 256)
    p = one
    for _ in range(3):
        p = np.convolve(p, one)
    return p


def _signed_width(lo: int, hi: int) -> int:
    """The smallest two's-complement width that holds lo..hi."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def test_read_noise_distribution():
    p = _byte_sum_distribution()
    s = np.arange(len(p))
    mean = float((p * s).sum())
    std = float(np.sqrt((p * (s - mean) ** 2).sum()))
    cfg = AonCimConfig()
    assert mean == pytest.approx(510, abs=1e-9) and cfg.NOISE_MEAN_RAW == 510
    assert cfg.NOISE_STD_RAW == pytest.approx(std, rel=1e-12)
    assert round(std, 1) == 147.8  # the figure the contract states
    assert cfg.noise_bits == _signed_width(0 - 510, 1020 - 510)


def test_read_noise_sample_follows_step_4():
    """Step 4 written out again: lowbias32 from its definition, counter and centring."""
    def lowbias(x):
        x &= 0xFFFFFFFF
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    rng = np.random.default_rng(5)
    for cfg in CONFIGS.values():
        seed = int(rng.integers(0, 2**32))
        noise = ReadNoise(cfg, seed)
        for mvm, col in [(0, 0), (2**32 - 1, cfg.cols - 1), (0xFFFF0000, 3), *rng.integers(0, 2**31, (20, 2)).tolist()]:
            col %= cfg.cols
            h = lowbias(((mvm * cfg.cols + col) % 2**32) ^ seed)
            want = sum((h >> (8 * k)) & 0xFF for k in range(4)) - 510
            assert int(noise.raw(np.array([mvm]), np.array([col]))[0]) == want
            assert int(lowbias32(np.array([h]))[0]) == lowbias(h)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_adc_constants(name):
    cfg = CONFIGS[name]
    t = cfg.adc_transfer
    adc_max = 2 ** (cfg.adc_bits - 1) - 1
    assert cfg.adc_max == t.adc_max == adc_max
    std = float(np.sqrt(4 * (256**2 - 1) / 12))
    assert cfg.noise_mult == t.noise_mult == round(cfg.read_noise_lsb * 2**cfg.adc_gain_shift / std)
    for b in cfg.act_bits_supported:
        assert t.gain(b) == cfg.adc_gain_mult * 2 ** (cfg.dac_bits - b)
        # Step 5 on exact fractions: round half up of I * gain / 2**shift, clamped.
        for col_sum in (0, 1, -1, 12345, -12345, cfg.rows * cfg.dac_max * cfg.gcode_max,
                        -cfg.rows * cfg.dac_max * cfg.gcode_max):
            exact = Fraction(col_sum * cfg.adc_gain_mult * 2 ** (cfg.dac_bits - b), 2**cfg.adc_gain_shift)
            want = max(-adc_max, min(adc_max, int(np.floor(exact + Fraction(1, 2)))))
            assert int(t.transfer(col_sum, 0, b)) == want
    # The intermediate width holds the extreme column sums at the largest gain and noise.
    i_max = cfg.rows * cfg.dac_max * cfg.gcode_max
    g_max = cfg.adc_gain_mult << (cfg.dac_bits - min(cfg.act_bits_supported))
    n_mult = cfg.noise_mult
    v_lo = -i_max * g_max - 510 * n_mult
    v_hi = i_max * g_max + 510 * n_mult + 2 ** (cfg.adc_gain_shift - 1)
    assert t.v_bits >= _signed_width(v_lo, v_hi)
    assert cfg.col_sum_bits == _signed_width(-i_max, i_max)
    # Full scale: `adc_bound` rows of full-scale input x full conductance convert to adc_max.
    assert Fraction(cfg.adc_bound).limit_denominator(10**12) * cfg.dac_max * cfg.gcode_max * cfg.adc_gain_mult == \
        pytest.approx(adc_max * 2**cfg.adc_gain_shift, rel=1e-12)
    assert cfg.out_noise_std == pytest.approx(cfg.read_noise_lsb * cfg.adc_bound / adc_max, rel=1e-12)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_datapath_constants(name):
    cfg = CONFIGS[name]
    assert cfg.alpha_one == 2**cfg.alpha_frac_bits
    assert cfg.dac_max == 2**cfg.dac_bits - 1 and cfg.gcode_max == 2**cfg.gcode_bits - 1
    adc_max = 2 ** (cfg.adc_bits - 1) - 1
    # Step 12: at most `cols` row tiles, their code sum exact.
    assert cfg.max_row_tiles == cfg.cols
    assert cfg.code_sum_bits == _signed_width(-cfg.cols * adc_max, cfg.cols * adc_max)
    assert 2**cfg.row_bits == cfg.rows and 2**cfg.col_bits == cfg.cols
    assert 2 ** (cfg.act_addr_bits - 1) < cfg.act_depth <= 2**cfg.act_addr_bits


def test_read_noise_has_the_configured_spread():
    """read_noise_lsb means ADC LSBs: 200k samples scaled by noise_mult / 2**shift."""
    cfg = CONFIGS["narrow"]
    n = ReadNoise(cfg, 1234).raw(np.arange(200_000) // cfg.cols, np.arange(200_000) % cfg.cols)
    lsb = n * cfg.noise_mult / 2**cfg.adc_gain_shift
    assert abs(lsb.mean()) < 0.02 and lsb.std() == pytest.approx(cfg.read_noise_lsb, rel=0.01)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_depthwise_constants(name):
    """Step 8a: the weight range, the DWW's address width, the accumulator and post-processing
    input widths, and the window-sum bound of the descriptor check (DW_SUM), derived from the
    extreme sums: the largest window the check accepts, and the next, enumerated."""
    from aoncim.hw.pool import pool_acc_bits
    from aoncim.program import LayerDescriptor, Op, ProgramError

    cfg = CONFIGS[name]
    wb = cfg.dw_weight_bits
    assert (-cfg.dw_max - 1, cfg.dw_max) == (-(2 ** (wb - 1)), 2 ** (wb - 1) - 1)
    assert 2 ** (cfg.dw_addr_bits - 1) < cfg.dw_depth <= 2**cfg.dw_addr_bits
    pool_sum = 2**cfg.pool_sum_bits - 1
    # What enters post-processing: a tile code sum, an unsigned pooling sum or a signed depthwise sum.
    assert cfg.pp_code_bits == max(cfg.code_sum_bits, _signed_width(0, pool_sum), cfg.dw_sum_bits)
    assert pool_acc_bits(cfg) == max(_signed_width(0, pool_sum), cfg.dw_sum_bits)
    for bits in cfg.act_bits_supported:
        x = 2**bits - 1
        # The largest k_h x 1 window whose every sum (codes at x, weights at either rail) fits.
        k = max(n for n in range(1, 4096) if _signed_width(-n * x * 2 ** (wb - 1), n * x * (2 ** (wb - 1) - 1))
                <= cfg.dw_sum_bits)
        for kh, ok in ((k, True), (k + 1, False)):
            d = LayerDescriptor(opcode=Op.DWCONV.value, in_bits=bits, out_bits=bits, stride=1, pad_h=0, pad_w=0,
                                relu=0, to_out=0, in_bank=0, out_bank=1, shift=0, in_h=kh, in_w=1, in_c=1, k_h=kh,
                                k_w=1, out_h=1, out_w=1, out_c=1, k_rows=0, row0=0, col0=0, param_base=0,
                                in_base=0, out_base=0)
            if kh > min(cfg.act_depth, cfg.dw_depth):
                continue   # a window this tall does not fit the memories: the bound is not reachable
            try:
                d.check(cfg)
                accepted = True
            except ProgramError as e:
                accepted = False
                assert "dw_sum_bits" in str(e), e
            assert accepted == ok, (bits, kh)

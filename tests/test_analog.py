"""Statistical analog layers (model/analog.py): float limit, ADC, noise levels, STE, PCM inference."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.config import AonCimConfig
from aoncim.model.analog import (
    AnalogConv2d,
    AnalogLinear,
    analog_layers,
    calibrate_input_ranges,
    convert_to_analog,
    set_analog_mode,
)
from aoncim.model.bittrue import AdcTransfer
from aoncim.model.pcm import INFERENCE_TIMES_S

from adc_helpers import ODD_ADC, adc_ties

# A high-precision chip: 12-bit DAC, 16-bit ADC with the same bound (~10); the float limit.
HI_MULT = round((2**15 - 1) * 2**24 / (10 * 4095 * 255))
HI = AonCimConfig(dac_bits=12, act_bits_supported=(12,), adc_bits=16, adc_gain_mult=HI_MULT, read_noise_lsb=0.0)
LSB = CFG.adc_bound / CFG.adc_max


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def make_linear(cfg=CFG, n_in=64, n_out=16, seed=0, **kw):
    torch.manual_seed(seed)
    lin = nn.Linear(n_in, n_out).double()
    return AnalogLinear.from_float(lin, cfg=cfg, **kw), lin


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


def quant_error_bound(layer, w, x_max):
    """|analog - float| without noise or clipping: half an input step on every |w|, half an ADC LSB."""
    w = w.detach()
    w_max = float(w.abs().max())
    in_step = x_max / ((1 << layer.in_bits) - 1)
    return float(w.abs().reshape(w.shape[0], -1).sum(1).max()) * in_step / 2 + layer.cfg.adc_bound / layer.cfg.adc_max / 2 * x_max * w_max + 1e-9


def test_convert_keeps_state_dict_keys_and_ideal_mode_is_float():
    torch.manual_seed(0)
    net = Net()
    x = torch.rand(4, 3, 6, 6)
    ref = net(x)
    keys = set(net.state_dict())
    convert_to_analog(net, CFG, in_bits={"fc": 6})
    assert isinstance(net.conv, AnalogConv2d) and isinstance(net.fc, AnalogLinear)
    assert set(net.state_dict()) - keys == {"conv.input_range", "fc.input_range"}
    assert net.conv.in_bits == 8 and net.fc.in_bits == 6
    assert torch.equal(net(x), ref)
    # A float state_dict loads into the converted model (input ranges stay to be calibrated).
    missing, unexpected = net.load_state_dict(Net().state_dict(), strict=False)
    assert sorted(missing) == ["conv.input_range", "fc.input_range"] and not unexpected


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_noise_free_linear_within_quantisation_error(bits):
    layer, lin = make_linear(in_bits=bits)
    x = torch.rand(256, 64, generator=gen(1), dtype=torch.float64)
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", noise=False)
    with torch.no_grad():
        err = (layer(x) - lin(x)).abs().max()
    bound = quant_error_bound(layer, lin.weight, 1.0)
    assert 0 < float(err) <= bound


def test_high_precision_limit_equals_float():
    errs = {}
    for name, cfg in (("default", CFG), ("hi", HI)):
        layer, lin = make_linear(cfg)
        conv_f = nn.Conv2d(4, 6, 3, padding=1).double()
        conv = AnalogConv2d.from_float(conv_f, cfg=cfg)
        x = torch.rand(64, 64, generator=gen(2), dtype=torch.float64)
        xc = torch.rand(8, 4, 10, 10, generator=gen(3), dtype=torch.float64)
        for m in (layer, conv):
            m.input_range.data.fill_(1.0)
            set_analog_mode(m, "hwa", noise=False)
        with torch.no_grad():
            errs[name] = (float((layer(x) - lin(x)).abs().max()), float((conv(xc) - conv_f(xc)).abs().max()))
        assert errs[name][1] <= quant_error_bound(conv, conv_f.weight, 1.0)
    assert errs["hi"][0] < errs["default"][0] / 10 and errs["hi"][1] < errs["default"][1] / 10
    assert max(errs["hi"]) < 2e-3


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_adc_codes_match_the_bit_true_transfer(bits):
    # Weights on the conductance-code grid and inputs on the DAC grid: the float ADC code must be
    # the bit-true one, including the 2**(dac_bits - bits) gain step.
    g = torch.randint(-CFG.gcode_max, CFG.gcode_max + 1, (24, 96), generator=gen(4))
    g[0, 0] = CFG.gcode_max
    g[1] = CFG.gcode_max
    codes = torch.randint(0, 1 << bits, (200, 96), generator=gen(5))
    codes[0] = (1 << bits) - 1  # with g[1]: a column sum far beyond the ADC range
    layer = AnalogLinear(96, 24, bias=False, cfg=CFG, in_bits=bits, dtype=torch.float64)
    layer.weight.data = g.double() / CFG.gcode_max
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", noise=False)
    with torch.no_grad():
        u, x_scale = layer.dac(codes.double() / ((1 << bits) - 1))
        out = layer(codes.double() / ((1 << bits) - 1))
    got = out / (x_scale * LSB)
    assert torch.allclose(got, got.round(), atol=1e-6)
    want = AdcTransfer(CFG)(codes @ g.T, torch.zeros(200, 24, dtype=torch.int64), bits)
    col = codes @ g.T * (CFG.adc_gain_mult << (CFG.dac_bits - bits))
    tie = (col % (1 << CFG.adc_gain_shift)) == (1 << (CFG.adc_gain_shift - 1))  # round-half rule differs
    assert torch.equal(got.round().long()[~tie], want[~tie])
    assert want.abs().max() == CFG.adc_max, "the test must exercise clipping too"


@pytest.mark.parametrize("cfg", [pytest.param(CFG, id="default"), pytest.param(ODD_ADC, id="odd")])
def test_float_adc_lsb_is_the_transfer_lsb(cfg):
    """Float vs golden ADC on column sums I, for every precision: the float model's ADC sees
    y = I * 2**(dac_bits - bits) / (dac_max * gcode_max) (its input and weight units) and must give
    the reference's code times its LSB, including both rails. The one difference is an exact tie:
    the chip rounds it up; the float model, a float error away from the half, either way."""
    t = cfg.adc_transfer
    for bits in cfg.act_bits_supported:
        fs = int(t.full_scale_col_sum(bits))
        col = torch.randint(-2 * fs, 2 * fs + 1, (3000,), generator=gen(bits))
        ties = [c for c, _ in adc_ties(t, bits, np.random.default_rng(bits), 20, noise=[0])]
        col = torch.cat([col, torch.tensor(ties + [-c for c in ties], dtype=torch.int64)])
        layer = AnalogLinear(1, 1, bias=False, cfg=cfg, in_bits=bits, dtype=torch.float64)
        got = layer.adc(col.double() * (1 << (cfg.dac_bits - bits)) / t.unit_col_sum) / t.lsb
        assert torch.allclose(got, got.round(), atol=1e-6)
        want = t.transfer(col, torch.zeros_like(col), bits)
        v = col * t.gain(bits)
        tie = (v % (1 << t.gain_shift) == t.rounding) & (v.abs() < t.adc_max << t.gain_shift)  # unclipped ties
        assert torch.equal(got.round().long()[~tie], want[~tie])
        assert ((got.round().long() - want)[tie].abs() <= 1).all()
        assert want.max() == t.adc_max and want.min() == -t.adc_max
        if cfg is ODD_ADC:
            assert tie.sum() >= 10, "the test must exercise rounding ties"


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_full_scale_input_is_full_scale_at_every_precision(bits):
    layer = AnalogLinear(1, 1, bias=False, cfg=CFG, in_bits=bits, dtype=torch.float64)
    layer.weight.data.fill_(0.5)
    layer.input_range.data.fill_(2.0)
    with torch.no_grad():
        u, x_scale = layer.dac(torch.tensor([[2.0]], dtype=torch.float64))
    assert float(u) == pytest.approx(((1 << bits) - 1) * 2 ** (CFG.dac_bits - bits) / CFG.dac_max)
    assert float(u * x_scale) == pytest.approx(2.0)
    set_analog_mode(layer, "hwa", noise=False)
    out = layer(torch.tensor([[2.0]], dtype=torch.float64)).detach()
    assert float(out) == pytest.approx(1.0, abs=LSB / 2 * float(x_scale) * 0.5)  # x_max * w_max, +- half an LSB


def test_adc_clips_at_adc_bound():
    layer = AnalogLinear(64, 2, bias=False, cfg=CFG, dtype=torch.float64)
    layer.weight.data.fill_(0.5)
    layer.input_range.data.fill_(3.0)
    set_analog_mode(layer, "hwa", noise=False)
    x = torch.zeros(2, 64, dtype=torch.float64)
    x[0] = 3.0        # 64 full-scale rows: far beyond the bound
    x[1, :5] = 3.0    # 5 rows: inside
    x.requires_grad_(True)
    out = layer(x)
    o = out.detach()
    full = 3.0 * 0.5  # x_max * w_max: one full-scale row
    assert float(o[0, 0]) == pytest.approx(CFG.adc_max * LSB * full, rel=1e-12)
    assert float(o[0, 0]) == pytest.approx(CFG.adc_bound * full, rel=1e-12)
    assert float(o[1, 0]) == pytest.approx(5 * full, abs=LSB * full / 2)
    out.sum().backward()
    assert float(x.grad[0].abs().max()) == 0.0, "a clipped ADC passes no gradient"
    assert float(x.grad[1].abs().min()) > 0


def test_row_tiles_are_converted_separately():
    cfg = AonCimConfig(rows=64)
    layer = AnalogLinear(150, 1, bias=False, cfg=cfg, dtype=torch.float64)
    layer.weight.data.fill_(1.0)
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", noise=False)
    with torch.no_grad():
        out = layer(torch.ones(1, 150, dtype=torch.float64))
    # 64 + 64 + 22 rows: each tile clips at the bound on its own, codes summed digitally.
    assert float(out) == pytest.approx(3 * cfg.adc_max * cfg.adc_bound / cfg.adc_max)


def test_conv_row_tiles_follow_ky_kx_c_order():
    conv = AnalogConv2d(32, 4, 3, cfg=AonCimConfig(rows=64))
    masks = conv.tile_masks()
    assert len(masks) == 5  # 288 rows
    assert torch.equal(sum(masks), torch.ones(32, 3, 3))
    # Tile 0 = rows 0..63 = (ky=0, kx=0, all c) and (ky=0, kx=1, all c).
    expect = torch.zeros(32, 3, 3)
    expect[:, 0, :2] = 1
    assert torch.equal(masks[0], expect)
    assert AnalogConv2d(4, 4, 3, cfg=CFG).tile_masks() is None


def test_ste_gradients_flow():
    layer, lin = make_linear()
    x = torch.rand(32, 64, generator=gen(6), dtype=torch.float64) * 1.2
    v = torch.randn(32, 16, generator=gen(14), dtype=torch.float64)  # fixed upstream gradient
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", noise=False)
    xa = x.clone().requires_grad_(True)
    out = layer(xa)
    assert float(out.detach().sub(layer.bias.detach()).abs().max()) < CFG.adc_bound * float(lin.weight.detach().abs().max())
    (out * v).sum().backward()
    # STE through DAC and ADC rounding: d out / dW = quantised input, d out / dx = W inside [0, x_max].
    x_q = (x.clamp(0, 1) * 255).round() / 255
    torch.testing.assert_close(layer.weight.grad, v.T @ x_q, rtol=1e-9, atol=1e-9)
    inside = x <= 1.0
    torch.testing.assert_close(xa.grad[inside], (v @ lin.weight.detach())[inside], rtol=1e-9, atol=1e-9)
    assert float(xa.grad[~inside].abs().max()) == 0.0, "inputs above x_max are clipped by the DAC"
    torch.testing.assert_close(layer.bias.grad, v.sum(0))
    assert float(layer.input_range.grad.abs()) > 0, "x_max is learnable (PACT-style gradient of the clip)"


def discrete_std_of_rounded_normal(sigma):
    """Std of round(N(0, sigma)) (sigma in LSBs): exact sum over codes."""
    cdf = lambda z: 0.5 * (1 + math.erf(z / (sigma * math.sqrt(2))))
    var = sum(k * k * (cdf(k + 0.5) - cdf(k - 0.5)) for k in range(-40, 41))
    return math.sqrt(var)


def test_output_noise_matches_out_noise_std():
    assert CFG.out_noise_std == pytest.approx(0.04, abs=0.002)
    n = 20000
    layer = AnalogLinear(8, 16, bias=False, cfg=CFG, dtype=torch.float64)
    layer.weight.data.zero_()  # only the additive output noise remains
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", seed=1)
    with torch.no_grad():
        u, x_scale = layer.dac(torch.ones(1, 8, dtype=torch.float64))
        codes = layer(torch.rand(n, 8, generator=gen(7), dtype=torch.float64)) / (x_scale * LSB)
    want = discrete_std_of_rounded_normal(CFG.read_noise_lsb)
    assert float(codes.std()) == pytest.approx(want, rel=0.02)
    assert abs(float(codes.mean())) < 0.01

    loud = AonCimConfig(read_noise_lsb=8.0)  # many LSBs: the ADC no longer hides the Gaussian
    layer = AnalogLinear(8, 16, bias=False, cfg=loud, dtype=torch.float64)
    layer.weight.data.zero_()
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", seed=2)
    with torch.no_grad():
        y = layer(torch.rand(n, 8, generator=gen(8), dtype=torch.float64)) / x_scale
    assert float(y.std()) == pytest.approx(loud.out_noise_std, rel=0.02)


def test_short_term_read_noise_scales_with_sqrt_sum_w_x2():
    layer, lin = make_linear(HI, n_in=64, n_out=8, out_noise_std=0.0)
    layer.input_range.data.fill_(1.0)
    x = torch.rand(1, 64, generator=gen(9), dtype=torch.float64)
    with torch.no_grad():
        set_analog_mode(layer, "hwa", noise=False)
        clean = layer(x)
        set_analog_mode(layer, "hwa", seed=3)
        noisy = layer(x.expand(20000, 64))
        u, x_scale = layer.dac(x)
    w_max = float(lin.weight.detach().abs().max())
    sd = (noisy - clean).std(0) / (x_scale * w_max)
    want = 0.0175 * ((lin.weight.detach().abs() / w_max) @ (u * u).T).sqrt().flatten()
    torch.testing.assert_close(sd, want, rtol=0.03, atol=0)


def test_weight_noise_only_while_training():
    layer, _ = make_linear(HI, n_in=64, n_out=4, out_noise_std=0.0, read_noise_scale=0.0, weight_noise=0.1)
    layer.input_range.data.fill_(1.0)
    x = torch.rand(1, 64, generator=gen(10), dtype=torch.float64)
    set_analog_mode(layer, "hwa", seed=4)
    with torch.no_grad():
        layer.eval()
        a = layer(x)
        assert torch.equal(layer(x), a)
        layer.train()  # one weight-noise draw per forward (per mini-batch), as in aihwkit
        y = torch.cat([layer(x) for _ in range(2000)])
        u, x_scale = layer.dac(x)
    w_max = float(layer.weight.detach().abs().max())
    sd = (y - a).std(0) / (x_scale * w_max)
    want = 0.1 * float((u * u).sum().sqrt())
    torch.testing.assert_close(sd, torch.full_like(sd, want), rtol=0.08, atol=0)


def test_inference_mode_drift_and_compensation():
    layer, lin = make_linear(HI, n_in=128, n_out=64)
    x = torch.rand(256, 128, generator=gen(11), dtype=torch.float64)
    layer.input_range.data.fill_(1.0)
    ideal = (lin(x) - lin.bias).abs().mean()
    res = {}
    with torch.no_grad():
        for key, t, comp in (("t0", 0.0, True), ("1y", INFERENCE_TIMES_S["1y"], False),
                             ("1y_gdc", INFERENCE_TIMES_S["1y"], True)):
            set_analog_mode(layer, "inference", t_inf=t, seed=5, compensate=comp, noise=False)
            out = layer(x)
            res[key] = (float((out - lin.bias).abs().mean() / ideal), float(((out - lin(x)) ** 2).mean().sqrt() / ideal))
    assert res["t0"][0] == pytest.approx(1.0, abs=0.05) and res["t0"][1] < 0.2
    assert res["1y"][0] < 0.7
    assert res["1y_gdc"][0] == pytest.approx(1.0, abs=0.08)
    assert layer.alpha > 1.3
    set_analog_mode(layer, "inference", t_inf=60.0, seed=5, quantize_g=True)
    codes = layer._pcm_w * CFG.gcode_max  # the bit-true snapshot: integer conductance-code differences
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-9)
    assert float(codes.abs().max()) <= CFG.gcode_max


def test_inference_is_seeded_and_programs_once():
    torch.manual_seed(1)
    net = convert_to_analog(Net().double())
    x = torch.rand(8, 3, 6, 6, generator=gen(12), dtype=torch.float64)
    calibrate_input_ranges(net, x)
    with torch.no_grad():
        set_analog_mode(net, "inference", t_inf=3600, seed=7)
        xbars = [m.crossbar for _, m in analog_layers(net)]
        a = net(x)
        set_analog_mode(net, "inference", t_inf=86400, seed=7)
        assert [m.crossbar for _, m in analog_layers(net)] == xbars, "same chip: no reprogramming"
        set_analog_mode(net, "inference", t_inf=3600, seed=7)
        assert torch.equal(net(x), a)
        set_analog_mode(net, "inference", t_inf=3600, seed=8)
        assert not torch.equal(net(x), a)
        net.fc.weight.mul_(0.5)  # retrained weights must be programmed again
        set_analog_mode(net, "inference", t_inf=3600, seed=8)
    assert net.fc.crossbar is not xbars[1]


def test_per_channel_remap():
    layer, lin = make_linear(HI, per_channel=True)
    with torch.no_grad():
        lin.weight[0] *= 100  # one loud column must not swamp the others' resolution
    layer.input_range.data.fill_(1.0)
    x = torch.rand(16, 64, generator=gen(13), dtype=torch.float64) * 0.05
    set_analog_mode(layer, "hwa", noise=False)
    with torch.no_grad():
        err = (layer(x) - lin(x))[:, 1:].abs().max()
        set_analog_mode(layer, "inference", t_inf=1.0, seed=0, noise=False)
        assert layer._pcm_w.abs().reshape(16, -1).amax(1).min() > 0.8
    assert float(err) < 1e-3


def test_calibration_sets_percentile_ranges():
    torch.manual_seed(2)
    net = convert_to_analog(Net())
    x = torch.randn(32, 3, 6, 6)
    ranges = calibrate_input_ranges(net, [x[:16], x[16:]])
    assert ranges["conv"] == pytest.approx(float(torch.quantile(x.clamp_min(0).flatten(), 0.999)), rel=1e-6)
    assert float(net.conv.input_range.detach()) == pytest.approx(ranges["conv"])
    assert net.conv.mode == "ideal"
    lazy = convert_to_analog(nn.Linear(4, 2))
    set_analog_mode(lazy, "hwa")
    with torch.no_grad():
        lazy(torch.full((3, 4), 2.5))
    assert float(lazy.input_range.detach()) == pytest.approx(2.5), "uncalibrated layers take x_max from the first batch"


def test_invalid_arguments_raise_one_line():
    net = convert_to_analog(Net())
    cases = [
        (lambda: AnalogLinear(4, 2, in_bits=5), "in_bits=5"),
        (lambda: setattr(net.fc, "in_bits", 7), "in_bits=7"),
        (lambda: set_analog_mode(net, "inference", t_inf=-1.0), "t_inf"),
        (lambda: set_analog_mode(net, "inference"), "needs t_inf"),
        (lambda: set_analog_mode(net, "hwa", t_inf=10.0), "t_inf applies"),
        (lambda: set_analog_mode(net, "analogue"), "unknown analog mode"),
        (lambda: set_analog_mode(nn.Linear(2, 2), "hwa"), "no analog layers"),
        (lambda: convert_to_analog(Net(), in_bits={"fc2": 4}), "fc2"),
        (lambda: AnalogConv2d(2, 2, 3, weight_noise=-0.1), "weight_noise"),
        (lambda: calibrate_input_ranges(net, torch.rand(1, 3, 6, 6), percentile=2), "percentile"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match) as e:
            fn()
        assert "\n" not in str(e.value)


def test_drift_aware_training_noise_is_the_pcm_read_error():
    """pcm_train_times: while training, every forward programs and reads fresh simulated PCM (the
    inference-time error itself, compensated); eval forwards stay noise-free of it."""
    layer, lin = make_linear(HI, n_in=256, n_out=32, out_noise_std=0.0, read_noise_scale=0.0,
                             pcm_train_times=(86400.0, 86400.0))
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", seed=3)
    with torch.no_grad():
        layer.eval()
        clean = layer._normalised_weight()[0]
        layer.train()
        draws = torch.stack([layer._normalised_weight()[0] for _ in range(40)])
    err = draws - clean
    # The gradient reaches the weights straight through the sampled read.
    layer(torch.rand(4, 256, dtype=torch.float64)).sum().backward()
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum()) > 0
    # Compare with the device model read at the same time (1 day) on the same weights.
    set_analog_mode(layer, "inference", t_inf=86400.0, seed=9, noise=False)
    with torch.no_grad():
        want = (layer._pcm_w * layer.alpha - clean)
    assert float(err.std()) == pytest.approx(float(want.std()), rel=0.15)
    assert float(err.mean(0).abs().mean()) < 0.5 * float(err.std())  # compensated: no global gain error
    assert not torch.equal(draws[0], draws[1])  # a fresh chip every step


def test_pcm_train_times_validation():
    with pytest.raises(ValueError, match="pcm_train_times"):
        make_linear(pcm_train_times=(0.0, 10.0))
    with pytest.raises(ValueError, match="pcm_train_times"):
        make_linear(pcm_train_times=(10.0, 1.0))


def test_offset_calibration_cancels_the_error_along_the_mean_input():
    from aoncim.model.analog import calibrate_offsets

    layer, lin = make_linear(HI, n_in=128, n_out=32, out_noise_std=0.0, read_noise_scale=0.0)
    layer.input_range.data.fill_(1.0)
    x = torch.rand(512, 128, generator=gen(21), dtype=torch.float64)  # unsigned: mean 0.5 on every row
    calibrate_offsets(layer, x)
    assert layer.input_mean.shape == (128,) and float(layer.input_mean.mean()) == pytest.approx(0.5, abs=0.03)
    bias_err = {}
    with torch.no_grad():
        for cal in (False, True):
            set_analog_mode(layer, "inference", t_inf=86400.0, seed=3, offset_cal=cal)
            bias_err[cal] = float((layer(x) - lin(x)).mean(0).abs().mean())
    assert bias_err[True] < 0.2 * bias_err[False], bias_err
    with torch.no_grad():
        set_analog_mode(layer, "inference", t_inf=86400.0, seed=3, compensate=False)
    assert layer._offset is None  # offsets are part of the compensation routine


def test_linear_row_tiles_follow_the_chips_hwc_rows():
    """After a Flatten of a C x H x W map the chip's rows are HWC; tiles must split there."""
    cfg = AonCimConfig(rows=64, cols=64, act_depth=512)
    layer = AnalogLinear(8 * 4 * 4, 3, cfg=cfg)
    assert layer.tile_masks()[0].reshape(-1)[:64].all()  # vector input: rows = features
    layer = AnalogLinear(8 * 4 * 4, 3, cfg=cfg)
    layer.input_chw = (8, 4, 4)
    rows = layer._row_index().reshape(8, 4, 4)
    assert int(rows[3, 1, 2]) == (1 * 4 + 2) * 8 + 3
    tile0 = layer.tile_masks()[0].reshape(8, 4, 4)
    assert tile0[:, :2].all() and not tile0[:, 2:].any()  # the first 64 HWC rows = image rows 0-1


# ---------------------------------------------------------------- grouped convolutions and Conv1d

def _depthwise_and_dense(cfg, c=16, per_channel=True, **kw):
    """A depthwise 3x3 AnalogConv2d and the block-diagonal dense AnalogConv2d the compiler maps it to."""
    torch.manual_seed(3)
    dw = nn.Conv2d(c, c, 3, padding=1, groups=c).double()
    dense = nn.Conv2d(c, c, 3, padding=1).double()
    with torch.no_grad():
        dense.weight.zero_()
        for o in range(c):
            dense.weight[o, o] = dw.weight[o, 0]
        dense.bias.copy_(dw.bias)
    a = AnalogConv2d.from_float(dw, cfg=cfg, per_channel=per_channel, **kw)
    b = AnalogConv2d.from_float(dense, cfg=cfg, per_channel=per_channel, **kw)
    for layer in (a, b):
        layer.input_range.data.fill_(1.0)
    return a, b, dw


@pytest.mark.parametrize("per_channel", [True, False])
def test_grouped_conv_is_its_block_diagonal_dense_conv(per_channel):
    """A depthwise conv is, column for column, the block-diagonal conv the chip holds: the same
    w_max, row tiles (144 dense rows on a 64-row array: 3 tiles, split by channel and kernel
    position), ADC conversions and noise -- its own 9 weights per column, nothing else."""
    cfg = AonCimConfig(rows=64)
    a, b, _ = _depthwise_and_dense(cfg, per_channel=per_channel)
    assert a._fan_in() == b._fan_in() == 144 and len(a.tile_masks()) == len(b.tile_masks()) == 3
    rows = a._row_index()
    assert rows.shape == (16, 1, 3, 3) and int(rows[5, 0, 1, 2]) == (1 * 3 + 2) * 16 + 5
    assert torch.equal(a._w_max(a.weight), b._w_max(b.weight))
    x = torch.rand(4, 16, 6, 6, generator=gen(30), dtype=torch.float64)
    for noise in (False, True):
        set_analog_mode(a, "hwa", seed=4, noise=noise)
        set_analog_mode(b, "hwa", seed=4, noise=noise)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        assert torch.allclose(ya, yb, atol=1e-9), noise


def test_depthwise_conv_within_quantisation_error_of_float():
    a, _, dw = _depthwise_and_dense(CFG, c=8, per_channel=False, out_noise_std=0.0, read_noise_scale=0.0)
    x = torch.rand(4, 8, 5, 5, generator=gen(31), dtype=torch.float64)
    set_analog_mode(a, "hwa", noise=False)
    with torch.no_grad():
        err = float((a(x) - dw(x)).abs().max())
    assert 0 < err <= quant_error_bound(a, dw.weight, 1.0)


def test_depthwise_read_noise_is_that_of_each_columns_own_weights():
    """Short-term read noise per column ~ sqrt(sum of its own |w| u^2): a channel with zero
    weights gets none, whatever its neighbours hold."""
    a, _, _ = _depthwise_and_dense(HI, c=4, per_channel=False, out_noise_std=0.0)  # ADC rounding negligible
    with torch.no_grad():
        a.weight[1].zero_()
        a.weight[2].mul_(4.0)
    x = torch.ones(4000, 4, 3, 3, dtype=torch.float64) * 0.8
    set_analog_mode(a, "hwa", seed=7)
    with torch.no_grad():
        y = a(x)[:, :, 1, 1]  # centre: the whole 3x3 window on real inputs
    var = y.var(0)
    assert float(var[1]) == 0.0
    w_n = a.weight.detach().abs().reshape(4, -1) / float(a.weight.detach().abs().max())
    expect = w_n.sum(1)  # sum |w_n| u^2 with u constant: the variances are in this ratio
    ratio = (var / expect)[[0, 2, 3]]
    assert float(ratio.max() / ratio.min()) < 1.15


def test_offset_calibration_of_a_grouped_conv_reads_each_groups_mean():
    from aoncim.model.analog import calibrate_offsets

    torch.manual_seed(5)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=2).double()
    layer = AnalogConv2d.from_float(conv, cfg=HI, out_noise_std=0.0, read_noise_scale=0.0)
    layer.input_range.data.fill_(1.0)
    # Unequal channel means, so a column reading another group's mean would be wrong.
    x = torch.rand(64, 8, 6, 6, generator=gen(22), dtype=torch.float64) * torch.linspace(0.2, 1.0, 8).view(1, 8, 1, 1)
    calibrate_offsets(layer, x)
    assert layer.input_mean.shape == (8 * 9,)
    err = {}
    with torch.no_grad():
        for cal in (False, True):
            set_analog_mode(layer, "inference", t_inf=86400.0, seed=3, offset_cal=cal)
            err[cal] = float((layer(x) - conv(x))[:, :, 1:-1, 1:-1].mean((0, 2, 3)).abs().mean())
    assert err[True] < 0.3 * err[False], err


@pytest.mark.parametrize("groups", [1, 2])
def test_conv1d_is_a_1xk_conv2d(groups):
    """AnalogConv1d computes exactly what the compiler maps a Conv1d to, a 1 x k AnalogConv2d:
    rows (kx, c) and their tiles, the DAC/ADC, every noise draw, the PCM read, offset calibration."""
    from aoncim.model.analog import AnalogConv1d, calibrate_offsets

    cfg = AonCimConfig(rows=16, load_lanes=16, pp_lanes=4)
    torch.manual_seed(6)
    c1 = nn.Conv1d(8, 6, 5, stride=2, padding=2, groups=groups).double()
    c2 = nn.Conv2d(8, 6, (1, 5), stride=(1, 2), padding=(0, 2), groups=groups).double()
    with torch.no_grad():
        c2.weight.copy_(c1.weight.unsqueeze(2))
        c2.bias.copy_(c1.bias)
    kw = dict(cfg=cfg, per_channel=True, weight_noise=0.05, pcm_train_times=(1.0, 1e6))
    a, b = AnalogConv1d.from_float(c1, **kw), AnalogConv2d.from_float(c2, **kw)
    assert isinstance(a, nn.Conv1d) and a._fan_in() == 40 and len(a.tile_masks()) == 3
    assert torch.equal(a._row_index(), b._row_index().squeeze(-2))
    x = torch.rand(8, 8, 20, generator=gen(40), dtype=torch.float64)
    calibrate_input_ranges(a, x)
    calibrate_input_ranges(b, x.unsqueeze(2))
    assert float(a.input_range.detach()) == float(b.input_range.detach())
    calibrate_offsets(a, x)
    calibrate_offsets(b, x.unsqueeze(2))
    assert torch.allclose(a.input_mean, b.input_mean)
    for mode, t_inf in (("hwa", None), ("inference", 86400.0)):
        set_analog_mode(a, mode, t_inf=t_inf, seed=8)
        set_analog_mode(b, mode, t_inf=t_inf, seed=8)
        with torch.no_grad():
            ya, yb = a(x), b(x.unsqueeze(2)).squeeze(2)
        assert torch.allclose(ya, yb, atol=1e-9), mode
    # Training: drift-aware PCM samples and weight noise drawn alike, gradients alike.
    a.train(), b.train()
    set_analog_mode(a, "hwa", seed=9)
    set_analog_mode(b, "hwa", seed=9)
    a(x).square().sum().backward()
    b(x.unsqueeze(2)).square().sum().backward()
    assert torch.allclose(a.weight.grad, b.weight.grad.squeeze(2), atol=1e-9)


def test_convert_replaces_conv1d_shared_and_nested_layers_and_refuses_custom_forwards():
    from aoncim.model.analog import AnalogConv1d

    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Sequential(shared, nn.ReLU(), shared))
    convert_to_analog(net, CFG)
    assert isinstance(net[0], AnalogConv1d) and isinstance(net[1][0], AnalogLinear) and net[1][0] is net[1][2]
    assert len(analog_layers(net)) == 2

    class Scaled(nn.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(ValueError, match=r"module 0 \(Scaled\) subclasses Conv2d with its own forward"):
        convert_to_analog(nn.Sequential(Scaled(1, 1, 1)), CFG)

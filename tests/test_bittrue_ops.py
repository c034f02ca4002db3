"""Bit-true golden model beyond plain MVMs: folded batch norm, max/avg/global pooling, batching."""
import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import CompileError, compile_network, quantise_input
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.program import Op

CFG = AonCimConfig(read_noise_lsb=0.0)


def bn_pool_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 6))
    # Non-trivial batch-norm statistics, as after training.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def test_lowering_emits_pool_layers_and_folds_batch_norm():
    prog = compile_network(bn_pool_net(), CFG, torch.rand(64, 1, 16, 16))
    ops = [d.op for d in prog.layers]
    assert ops == [Op.MVM, Op.MAXPOOL, Op.MVM, Op.AVGPOOL, Op.MVM, Op.AVGPOOL, Op.MVM]
    gap = prog.layers[5]
    assert (gap.k_h, gap.k_w, gap.out_h, gap.out_w) == (4, 4, 1, 1)
    assert prog.mvms == 16 * 16 + 8 * 8 + 4 * 4 + 1
    # Per-channel scales differ once batch norm is folded into post-processing.
    d0 = prog.layers[0]
    assert len(set(prog.pp_scale[d0.param_base : d0.param_base + d0.out_c].tolist())) > 1


def test_bit_true_tracks_float_network():
    net = bn_pool_net(1)
    x = torch.rand(48, 1, 16, 16)
    prog = compile_network(net, CFG, x, act_bits=8)
    out = BitTrueExecutor(CFG, prog).run_batch(quantise_input(x, 8), np.arange(48))[-1].output
    chip = out.reshape(48, -1).double().numpy()
    with torch.no_grad():
        ref = net(x).double().numpy()
    corr = np.corrcoef(chip.ravel(), ref.ravel())[0, 1]
    assert corr > 0.97, corr
    assert (chip.argmax(1) == ref.argmax(1)).mean() >= 0.85


def test_pool_layers_compute_the_contract():
    prog = compile_network(bn_pool_net(2), CFG, torch.rand(16, 1, 16, 16))
    ex = BitTrueExecutor(CFG, prog)
    x = quantise_input(torch.rand(3, 1, 16, 16), 8)
    tr = ex.run_batch(x, [0, 1, 2])
    conv0, mp = tr[0].output, tr[1].output
    want = torch.nn.functional.max_pool2d(conv0.permute(0, 3, 1, 2).double(), 2).permute(0, 2, 3, 1).long()
    assert torch.equal(mp, want)
    d = prog.layers[3]
    conv1 = tr[2].output
    s = conv1.unfold(1, 2, 2).unfold(2, 2, 2).sum((-1, -2))  # N, oh, ow, C window sums
    sc = torch.as_tensor(prog.pp_scale[d.param_base : d.param_base + d.out_c])
    bi = torch.as_tensor(prog.pp_bias[d.param_base : d.param_base + d.out_c])
    y = ((s * sc + bi + (1 << (d.shift - 1))) >> d.shift).clamp(0, 255)
    assert torch.equal(tr[3].output, y)


def test_batched_equals_single_runs_with_noise():
    cfg = AonCimConfig()
    prog = compile_network(bn_pool_net(3), cfg, torch.rand(16, 1, 16, 16))
    ex = BitTrueExecutor(cfg, prog)
    x = quantise_input(torch.rand(4, 1, 16, 16), 8)
    batch = ex.run_batch(x, [11, 12, 13, 14])
    for i, s in enumerate([11, 12, 13, 14]):
        single = ex.run(x[i], s)
        assert all(torch.equal(a.output, b.output[i]) for a, b in zip(single, batch))


def test_unsupported_pooling_is_a_clear_error():
    calib = torch.rand(4, 1, 8, 8)
    with pytest.raises(CompileError, match="padding 0"):
        compile_network(nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2, padding=1), nn.Flatten(),
                                      nn.Linear(4 * 3 * 3, 2)), CFG, calib)
    with pytest.raises(CompileError, match="last layer"):
        compile_network(nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1)), CFG, calib)
    with pytest.raises(CompileError, match="batch norm must directly follow"):
        compile_network(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Flatten(),
                                      nn.Linear(4 * 6 * 6, 2)), CFG, calib)


def test_alpha_is_an_exact_fixed_point_gain():
    from aoncim.model.bittrue import PostProcessing
    from aoncim.program import LayerDescriptor

    cfg = AonCimConfig()
    pp = PostProcessing(cfg)
    rng = np.random.default_rng(0)
    code = torch.as_tensor(rng.integers(-127, 128, 500))
    scale = torch.as_tensor(rng.integers(-2**15, 2**15, 500))
    bias = torch.as_tensor(rng.integers(-2**20, 2**20, 500))
    base = dict(opcode=Op.MVM.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=1, in_bank=0,
                out_bank=1, in_h=1, in_w=1, in_c=1, k_h=1, k_w=1, out_h=1, out_w=1, out_c=1, k_rows=1, row0=0, col0=0,
                param_base=0, in_base=0, out_base=0)
    for shift in (0, 1, 9, 20):
        d = LayerDescriptor(shift=shift, **base)
        plain = code * scale + bias
        plain = (plain + (1 << (shift - 1))) >> shift if shift else plain
        assert torch.equal(pp(code, scale, bias, d), plain.clamp(-2**15, 2**15 - 1))
        assert torch.equal(pp(code, scale, bias, d, alpha=2 * cfg.alpha_one), pp(2 * code, scale, bias, d))


def test_global_drift_is_compensated_by_alpha():
    from aoncim.model.snapshot import compensated, snapshot, target_conductances

    cfg = AonCimConfig()
    net = bn_pool_net(4)
    x = torch.rand(32, 1, 16, 16)
    prog = compile_network(net, cfg, x)
    gp, gm = target_conductances(prog, cfg)
    drifted = snapshot(prog, cfg, 0.7 * gp, 0.7 * gm)  # every device lost 30 %
    fixed = compensated(prog, drifted, cfg)
    a = fixed.alphas(cfg)[prog.mvm_layers] / cfg.alpha_one
    assert np.all(np.abs(a - 1 / 0.7) < 0.05), a
    q = quantise_input(x, 8)
    seeds = np.arange(32)

    def logits(p):
        return BitTrueExecutor(cfg, p).run_batch(q, seeds)[-1].output.reshape(32, -1).double()

    ref, drift, comp = logits(prog), logits(drifted), logits(fixed)
    assert (comp - ref).abs().mean() < 0.3 * (drift - ref).abs().mean()


def test_programmed_array_drifts_and_compensation_recovers():
    from aoncim.model.snapshot import ProgrammedArray, compensated

    cfg = AonCimConfig()
    net = bn_pool_net(5)
    x = torch.rand(64, 1, 16, 16)
    prog = compile_network(net, cfg, x)
    arr = ProgrammedArray(prog, cfg, seed=3)
    t0, day = arr.at(1.0), arr.at(86400.0)
    assert not np.array_equal(t0.g_plus, prog.g_plus)             # programming noise
    assert day.g_plus.sum() < 0.85 * t0.g_plus.sum()              # conductances drift down
    assert np.array_equal(arr.at(86400.0).g_plus, day.g_plus)     # seeded, reproducible
    q, seeds = quantise_input(x, 8), np.arange(64)

    def top1(p):
        return BitTrueExecutor(cfg, p).run_batch(q, seeds)[-1].output.reshape(64, -1).argmax(1)

    ref = top1(prog)
    agree_drift = (top1(day) == ref).float().mean()
    agree_comp = (top1(compensated(t0, day, cfg)) == ref).float().mean()
    assert agree_comp >= agree_drift and agree_comp > 0.8, (agree_drift, agree_comp)


def test_per_column_mapping_uses_each_columns_full_range():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(32, 8))
    with torch.no_grad():
        net[0].weight[0] *= 50  # one loud column
    prog = compile_network(net, CFG, torch.rand(16, 32, 1, 1).reshape(16, 32, 1, 1))
    d = prog.layers[0]
    dg = (prog.g_plus - prog.g_minus)[: d.k_rows, d.col0 : d.col0 + d.out_c]
    assert (np.abs(dg).max(0) == CFG.gcode_max).all()
    from aoncim.model.analog import convert_to_analog

    convert_to_analog(net, CFG, per_channel=False)  # an analog layer trained with one w_max per layer
    prog = compile_network(net, CFG, torch.rand(16, 32, 1, 1))
    dg = (prog.g_plus - prog.g_minus)[: d.k_rows, d.col0 : d.col0 + d.out_c]
    assert np.abs(dg[:, 0]).max() == CFG.gcode_max and np.abs(dg[:, 1:]).max() < CFG.gcode_max // 10


def test_activation_grid_follows_trained_input_ranges():
    """The compiler quantises a layer's output on the DAC range its consumer was trained with."""
    from aoncim.model.analog import calibrate_input_ranges, convert_to_analog, set_analog_mode

    net = convert_to_analog(bn_pool_net(4))
    x = torch.rand(32, 1, 16, 16)
    calibrate_input_ranges(net, x)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        convs[1].input_range.fill_(1.234)  # as if training had moved it
    set_analog_mode(net, "ideal")
    prog = compile_network(net, CFG, x)
    layers = BitTrueExecutor(CFG, prog).run_batch(quantise_input(x[:8], 8), np.arange(8))
    got = layers[0].output.double().numpy() * (1.234 / 255)  # codes on the trained grid, HWC
    with torch.no_grad():
        z = net[2](net[1](net[0](x[:8]))).permute(0, 2, 3, 1).double().numpy().clip(0, 1.234)
    assert np.abs(got - z).mean() < 0.02 * 1.234 and np.corrcoef(got.ravel(), z.ravel())[0, 1] > 0.99


def test_offset_calibration_removes_per_column_offsets():
    """A programmed chip's per-column error along the mean input shows up as a per-channel offset of
    the layer output; the host's offset calibration (snapshot.offset_bias) removes most of it."""
    from aoncim.model.snapshot import ProgrammedArray, compensated

    cfg = AonCimConfig()  # with read noise: the calibration averages it
    x = torch.rand(64, 1, 16, 16)
    prog = compile_network(bn_pool_net(5), cfg, x)
    assert prog.calib_codes is not None and len(prog.calib_codes[0]) == prog.layers[0].k_rows
    q, seeds = quantise_input(x[:32], 8), np.arange(32)
    ideal = BitTrueExecutor(cfg, prog).run_batch(q, seeds)[0].output.double()
    errs = {}
    for s in range(3):
        arr = ProgrammedArray(prog, cfg, seed=s)
        ref, day = arr.at(1.0, read_seed=100 + s), arr.at(86400.0, read_seed=s)
        for key, p in (("alpha", compensated(ref, day, cfg, s)), ("alpha+offset", compensated(ref, day, cfg, s, target=prog))):
            out = BitTrueExecutor(cfg, p).run_batch(q, seeds)[0].output.double()
            # Per-channel mean error over samples and positions (HWC: channel last).
            errs.setdefault(key, []).append(float((out - ideal).mean((0, 1, 2)).abs().mean()))
    assert np.mean(errs["alpha+offset"]) < 0.5 * np.mean(errs["alpha"]), errs
    with pytest.raises(ValueError, match="calib_codes"):
        from aoncim.model.snapshot import offset_bias

        import dataclasses

        offset_bias(dataclasses.replace(prog, calib_codes=None), prog, cfg)


def test_postproc_without_fraction_or_shift_is_the_identity_step():
    """shift + alpha_frac_bits = 0: no rounding term, y = code * scale + bias (then the clamp).
    (The rounding term's conditional once swallowed the whole sum and gave 0.)"""
    import dataclasses

    import torch

    from aoncim.config import AonCimConfig
    from aoncim.model.bittrue import PostProcessing
    from aoncim.program import LayerDescriptor, Op

    cfg = dataclasses.replace(AonCimConfig(), alpha_frac_bits=0)
    d = LayerDescriptor(opcode=Op.MVM.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0,
                        in_bank=0, out_bank=1, shift=0, in_h=1, in_w=1, in_c=1, k_h=1, k_w=1, out_h=1, out_w=1, out_c=3,
                        k_rows=1, row0=0, col0=0, param_base=0, in_base=0, out_base=0)
    y = PostProcessing(cfg)(torch.tensor([3, 5, 200]), torch.tensor([2, 1, 2]), torch.tensor([1, -2, 0]), d, alpha=1)
    assert y.tolist() == [7, 3, 255]

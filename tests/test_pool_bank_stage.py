"""Stage R's pooling datapath (hw/pool_bank.py `PoolBank`) on its own, in the Amaranth simulator:
its results are the golden model's window reduction (`pool_windows(...).amax(-1)` / `.sum(-1)`,
as `BitTrueExecutor` pools, and `dwconv_sums` for a depthwise layer: the multiply-accumulate lanes
with signed weights, padded windows, and weights and codes on their rails so that the sums reach
the accumulator's limit), and each result half keeps its group while the other is refilled.
"""
import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.pool_bank import PoolBank
from aoncim.model.bittrue import dw_kernel, dwconv_sums, pool_windows
from aoncim.program import LayerDescriptor, Op

CONFIGS = {
    "lanes1": AonCimConfig(rows=16, cols=64, n_adcs=8, load_lanes=1, pp_lanes=1, act_depth=512, out_depth=64,
                           param_depth=128),
    "lanes16": AonCimConfig(),
}


def pool_layer(rng, op: Op, in_c: int, k_max: int = 3, k: int | None = None) -> LayerDescriptor:
    k_h, k_w, stride = int(rng.integers(1, k_max + 1)), int(rng.integers(1, k_max + 1)), int(rng.integers(1, 3))
    if k is not None:
        k_h = k_w = k
    in_h, in_w = k_h + int(rng.integers(0, 4)), k_w + int(rng.integers(0, 4))
    pad_h, pad_w = (int(rng.integers(0, k_h)), int(rng.integers(0, k_w))) if op.pads else (0, 0)
    return LayerDescriptor(opcode=op.value, in_bits=8, out_bits=8, stride=stride, pad_h=pad_h, pad_w=pad_w,
                           pad_code=int(rng.integers(0, 256)), relu=0, to_out=0, in_bank=0, out_bank=1, shift=0,
                           in_h=in_h, in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w,
                           out_h=(in_h + 2 * pad_h - k_h) // stride + 1, out_w=(in_w + 2 * pad_w - k_w) // stride + 1,
                           out_c=in_c, k_rows=0, row0=0, col0=0, param_base=0, in_base=0, out_base=0,
                           w_base=int(rng.integers(0, 64)))


def dw_draw(rng, cfg: AonCimConfig, d: LayerDescriptor, rails: bool) -> tuple[torch.Tensor, np.ndarray]:
    """Codes and DWW weights for a depthwise layer: random, or (rails) codes at their largest and
    each channel's weights all at the most negative or all at the largest weight, so that window
    sums reach the accumulator's limits."""
    shape = (1, d.in_h, d.in_w, d.in_c)
    if rails:
        x = np.where(rng.random(shape) < 0.9, (1 << cfg.dac_bits) - 1, rng.integers(0, 1 << cfg.dac_bits, shape))
        w = rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1, cfg.dw_depth)
        sign = np.where((np.arange(d.in_c) + int(rng.integers(2))) % 2, cfg.dw_max, -cfg.dw_max - 1)
        w[d.w_base : d.w_base + d.dw_words] = np.tile(sign, d.k_h * d.k_w)
    else:
        x = rng.integers(0, 1 << cfg.dac_bits, shape)
        w = rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1, cfg.dw_depth)
    return torch.tensor(x), w


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("op", [Op.MAXPOOL, Op.AVGPOOL, Op.DWCONV])
def test_pool_bank_matches_model(name, op):
    cfg = CONFIGS[name]
    W = cfg.load_lanes
    rng = np.random.default_rng(W + op.value)
    dut = PoolBank(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked, extremes = [], []

    async def tb(ctx):
        ctx.set(dut.sum, op == Op.AVGPOOL)
        ctx.set(dut.mac, op == Op.DWCONV)
        held = [None, None]                 # the group each result half should hold
        for k in range(10):
            # depthwise: windows up to 4x4 (the largest whose 8-bit sum fits dw_sum_bits = 20)
            rails = op == Op.DWCONV and k % 2 == 1
            d = pool_layer(rng, op, in_c=int(rng.integers(1, W + 1)),
                           k_max=4 if op == Op.DWCONV else 3, k=4 if rails else None)
            if op == Op.DWCONV:
                d.check(cfg)
                x, w = dw_draw(rng, cfg, d, rails)
                kernel = dw_kernel(w, d)                    # (C, kh*kw)
                want = dwconv_sums(x, d, w)[0]
                extremes.extend([int(want.min()), int(want.max())])
            else:
                x = torch.tensor(rng.integers(0, 1 << cfg.dac_bits, size=(1, d.in_h, d.in_w, d.in_c)))
            win = pool_windows(x, d)[0]                 # (oh, ow, C, kh*kw), padded with pad_code
            if op != Op.DWCONV:
                want = win.amax(-1) if op == Op.MAXPOOL else win.sum(-1)
            for oy in range(d.out_h):
                for ox in range(d.out_w):
                    half = int(rng.integers(2))
                    k = win.shape[-1]
                    for e in range(k):
                        ctx.set(dut.win.valid, 1)
                        ctx.set(dut.win.first, e == 0)
                        ctx.set(dut.win.last, e == k - 1)
                        ctx.set(dut.win.half, half)
                        for j in range(W):
                            ctx.set(dut.win.x[j], int(win[oy, ox, j, e]) if j < d.in_c else int(rng.integers(256)))
                            ctx.set(dut.win.w[j], int(kernel[j, e]) if op == Op.DWCONV and j < d.in_c else
                                    int(rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1)))
                        await ctx.tick()
                        ctx.set(dut.win.valid, 0)
                        if rng.random() < 0.3:   # stage R may pause between elements
                            await ctx.tick()
                    held[half] = [int(v) for v in want[oy, ox]]
                    for b in range(2):
                        if held[b] is not None:
                            ctx.set(dut.rd_half, b)
                            got = [ctx.get(dut.result[j]) for j in range(len(held[b]))]
                            assert got == held[b], (b, d)
                            checked.append(b)

    sim.add_testbench(tb)
    sim.run()
    assert len(checked) > 10 and set(checked) == {0, 1}
    if op == Op.DWCONV:
        # The rails windows came within 20 % of both limits of the signed dw_sum_bits accumulator.
        lim = 1 << (cfg.dw_sum_bits - 1)
        assert min(extremes) < -0.8 * lim and max(extremes) > 0.8 * lim, (min(extremes), max(extremes), lim)


FOLD_CONFIGS = {
    "lanes32": AonCimConfig(rows=32, cols=64, n_adcs=8, load_lanes=32, pp_lanes=4, act_depth=4096, out_depth=64,
                            param_depth=128),
    "lanes16": AonCimConfig(),
}


@pytest.mark.parametrize("name", FOLD_CONFIGS)
@pytest.mark.parametrize("op", [Op.MAXPOOL, Op.AVGPOOL, Op.DWCONV])
def test_pool_bank_folds_runs(name, op):
    """A layer that folds (C = load_lanes / 2**fold channels) feeds the units runs of a kernel row,
    lane j holding channel j mod C of some window element and lanes past the run code 0 (as stage
    R delivers `Im2colWalker`'s runs); after the fold, result lane c is channel c's window
    reduction, the golden model's."""
    cfg = FOLD_CONFIGS[name]
    W = cfg.load_lanes
    rng = np.random.default_rng(W * 7 + op.value)
    dut = PoolBank(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked = []

    async def tb(ctx):
        ctx.set(dut.sum, op == Op.AVGPOOL)
        ctx.set(dut.mac, op == Op.DWCONV)
        for k in range(8):
            C = cfg.pool_fold_min_channels << int(rng.integers(cfg.pool_fold_levels))
            assert cfg.pool_folds(C)
            d = pool_layer(rng, op, in_c=C, k_max=4 if op == Op.DWCONV else 3)
            if op == Op.DWCONV:
                d.check(cfg)
                x, w = dw_draw(rng, cfg, d, rails=k % 2 == 1)
                kernel = dw_kernel(w, d)
                want = dwconv_sums(x, d, w)[0]
            else:
                x = torch.tensor(rng.integers(0, 1 << cfg.dac_bits, size=(1, d.in_h, d.in_w, C)))
            win = pool_windows(x, d)[0]
            if op != Op.DWCONV:
                want = win.amax(-1) if op == Op.MAXPOOL else win.sum(-1)
            ctx.set(dut.fold, (W // C).bit_length() - 1)
            seg = d.k_w * C
            runs = [(ky, off, min(W, seg - off)) for ky in range(d.k_h) for off in range(0, seg, W)]
            for oy in range(d.out_h):
                for ox in range(d.out_w):
                    half = int(rng.integers(2))
                    for i, (ky, off, n) in enumerate(runs):
                        ctx.set(dut.win.valid, 1)
                        ctx.set(dut.win.first, i == 0)
                        ctx.set(dut.win.last, i == len(runs) - 1)
                        ctx.set(dut.win.half, half)
                        for j in range(W):
                            kx, c = divmod(off + j, C)
                            e = ky * d.k_w + kx
                            ctx.set(dut.win.x[j], int(win[oy, ox, c, e]) if j < n else 0)
                            ctx.set(dut.win.w[j], int(kernel[c, e]) if op == Op.DWCONV and j < n else
                                    int(rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1)))
                        await ctx.tick()
                        ctx.set(dut.win.valid, 0)
                    ctx.set(dut.rd_half, half)
                    got = [ctx.get(dut.result[j]) for j in range(C)]
                    assert got == [int(v) for v in want[oy, ox]], (d, oy, ox)
                    checked.append(C)

    sim.add_testbench(tb)
    sim.run()
    # every fold depth the config has was exercised
    assert {W // c for c in checked} == {2 << k for k in range(cfg.pool_fold_levels)}

"""Stage L/R's address generator (hw/im2col.py `Im2colWalker`) on its own, in the Amaranth
simulator, against the golden model: the activation addresses it streams are those of
`model.bittrue.im2col` (MVM layers) and `model.bittrue.pool_windows` (pooling layers) applied to a
map whose every code is its own address, split into MVMs by `LayerDescriptor.tile_rects` and into
runs as `perf.cycles.load_cycles` counts them; the lanes it flags as padding (which load the
layer's pad_code) are exactly im2col's padded rows, pad_h above and below and pad_w beside. A
depthwise layer (Op.DWCONV) walks as a pooling layer that is padded: its window elements in the
padding are flagged on every lane of the group (and only there), and each read carries the DWW
address of the group's weights of that element (`model.bittrue.dw_kernel`'s layout).
"""
import dataclasses

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.im2col import Im2colWalker
from aoncim.model.bittrue import dw_kernel, im2col, pool_windows
from aoncim.perf.cycles import load_cycles, pool_reads
from aoncim.program import LayerDescriptor, Op, ProgramError

CONFIGS = {
    # one load lane, few rows: many runs a kernel row, row tiles on small layers
    "lanes1": AonCimConfig(rows=16, cols=64, n_adcs=8, load_lanes=1, pp_lanes=1, act_depth=512, out_depth=64,
                           param_depth=128),
    # as many lanes as the array has rows: a run ends at the tile's last row
    "lanes32": AonCimConfig(rows=32, cols=64, n_adcs=8, load_lanes=32, pp_lanes=4, act_depth=512, out_depth=64,
                            param_depth=128),
    "default": AonCimConfig(),
}


def address_map(d: LayerDescriptor) -> torch.Tensor:
    """(1, H, W, C) map whose code at (y, x, c) is its HWC activation address + 1 (0: padding)."""
    n = d.in_h * d.in_w * d.in_c
    return (torch.arange(n, dtype=torch.int64) + d.in_base + 1).reshape(1, d.in_h, d.in_w, d.in_c)


def model_mvms(cfg: AonCimConfig, d: LayerDescriptor) -> list[dict]:
    """Per MVM, in issue order: its tile, array column, output address, the activation address
    each array row loads, the array rows in the padding (they load pad_code) and its number of
    load cycles."""
    rows = im2col(address_map(d), dataclasses.replace(d, pad_code=0))[0]   # (positions, k_rows); 0: padding
    cycles = load_cycles(cfg, d)
    out = []
    for p in range(d.positions):
        for t, (r0, n, row0, col0) in enumerate(d.tile_rects(cfg.rows)):
            loads = {row0 + i: int(rows[p, r0 + i]) - 1 for i in range(n) if rows[p, r0 + i]}
            pads = {row0 + i for i in range(n) if not rows[p, r0 + i]}
            out.append(dict(tile=t, tcol0=col0, out_base=d.out_base + p * d.out_c, loads=loads, pads=pads,
                            runs=cycles[t], end=row0 + n))
    return out


def model_groups(cfg: AonCimConfig, d: LayerDescriptor) -> list[dict]:
    """Per pooling group, in issue order: first channel, channels, output address, the address of
    channel c0 of every window element, (ky, kx) row-major (None: in the padding), and the DWW
    address of channel c0's weight of every element."""
    win = pool_windows(address_map(d), dataclasses.replace(d, pad_code=0))[0]   # (oh, ow, C, kh*kw); 0: padding
    weights = dw_kernel(np.arange(cfg.dw_depth), d)                           # (C, kh*kw): DWW addresses
    out = []
    for oy in range(d.out_h):
        for ox in range(d.out_w):
            for c0 in range(0, d.in_c, cfg.load_lanes):
                out.append(dict(c0=c0, n=min(cfg.load_lanes, d.in_c - c0),
                                out_base=d.out_base + (oy * d.out_w + ox) * d.out_c,
                                addrs=[int(a) - 1 if a else None for a in win[oy, ox, c0]],
                                waddrs=[int(a) for a in weights[c0]]))
    return out


def run_walker(cfg: AonCimConfig, d: LayerDescriptor, seed: int) -> list[dict]:
    """Drive the walker through a layer as the sequencer does, with random stalls between reads
    and random waits before `next` (or `next` with the last read), and record what it offers."""
    rng = np.random.default_rng(seed)
    dut = Im2colWalker(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    value = sum(w << (32 * i) for i, w in enumerate(d.pack()))
    got = []

    async def tb(ctx):
        ctx.set(dut.desc.as_value(), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while ctx.get(dut.active):
            assert len(got) < 10_000
            item = dict(tile=ctx.get(dut.tile), tcol0=ctx.get(dut.tcol0), out_base=ctx.get(dut.out_base),
                        c0=ctx.get(dut.c0), n=ctx.get(dut.n), reads=[])
            got.append(item)
            while True:
                assert ctx.get(dut.read.valid)
                if rng.random() < 0.2:          # the sink may hold a read back
                    await ctx.tick()
                    continue
                rd = dict(addr=ctx.get(dut.read.addr), lanes=ctx.get(dut.read.lanes), pads=ctx.get(dut.read.pads),
                          row=ctx.get(dut.read.row), waddr=ctx.get(dut.read.waddr),
                          first=ctx.get(dut.read.first), last=ctx.get(dut.read.last))
                item["reads"].append(rd)
                ctx.set(dut.read.take, 1)
                together = rng.random() < 0.5   # `next` in the cycle of the last take
                ctx.set(dut.next, rd["last"] and together)
                await ctx.tick()
                ctx.set(dut.read.take, 0)
                ctx.set(dut.next, 0)
                if rd["last"]:
                    break
            if not together:
                for _ in range(int(rng.integers(0, 3))):
                    assert not ctx.get(dut.read.valid)  # the MVM's reads are all taken until `next`
                    await ctx.tick()
                ctx.set(dut.next, 1)
                await ctx.tick()
                ctx.set(dut.next, 0)

    sim.add_testbench(tb)
    sim.run()
    return got


def check_mvm(cfg: AonCimConfig, d: LayerDescriptor, got: list[dict]) -> None:
    want = model_mvms(cfg, d)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g["tile"], g["tcol0"], g["out_base"]) == (w["tile"], w["tcol0"], w["out_base"])
        reads = g["reads"]
        assert len(reads) == w["runs"]                                  # the cycle model's load cycles
        assert [r["first"] for r in reads] == [1] + [0] * (len(reads) - 1)
        assert [r["last"] for r in reads] == [0] * (len(reads) - 1) + [1]
        assert reads[0]["row"] == d.row0
        assert all(a["row"] < b["row"] for a, b in zip(reads, reads[1:]))
        loads, pads = {}, set()  # array row -> activation address; rows in the padding
        for i, r in enumerate(reads):
            # A run ends where the next begins (or at the tile's last row): every lane in it loads a
            # code of the map or pads, no lane beyond it does either.
            end = reads[i + 1]["row"] if i + 1 < len(reads) else w["end"]
            for j in range(cfg.load_lanes):
                row, in_map, pad = r["row"] + j, r["lanes"] >> j & 1, r["pads"] >> j & 1
                assert in_map + pad == (row < end), (row, end, in_map, pad)
                if in_map:
                    loads[row] = (r["addr"] + j) % cfg.act_depth
                elif pad:
                    pads.add(row)
        assert loads == w["loads"]
        assert pads == w["pads"]


def check_pool(cfg: AonCimConfig, d: LayerDescriptor, got: list[dict]) -> None:
    if cfg.pool_folds(d.in_c):
        return check_pool_folded(cfg, d, got)
    want = model_groups(cfg, d)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g["c0"], g["n"], g["out_base"]) == (w["c0"], w["n"], w["out_base"])
        # An element in the map reads its channels from addr; one in the padding flags every lane
        # of the group as padding (it loads pad_code) and reads nothing anyone uses.
        group = (1 << w["n"]) - 1
        assert [r["addr"] if a is not None else None for r, a in zip(g["reads"], w["addrs"])] == w["addrs"]
        assert [(r["lanes"], r["pads"]) for r in g["reads"]] == [(0, group) if a is None else (group, 0)
                                                              for a in w["addrs"]]
        if d.op.uses_dww:
            assert [r["waddr"] for r in g["reads"]] == w["waddrs"]
        k = len(w["addrs"])
        assert [r["first"] for r in g["reads"]] == [1] + [0] * (k - 1)
        assert [r["last"] for r in g["reads"]] == [0] * (k - 1) + [1]


def check_pool_folded(cfg: AonCimConfig, d: LayerDescriptor, got: list[dict]) -> None:
    """A layer that folds (`cfg.pool_folds`): one group of all C channels per position, whose reads
    are runs over each kernel row's k_w*C codes, at most load_lanes a read (the cycle model's
    `pool_reads`): lane j of a run at offset `off` of kernel row ky loads element (ky, (off+j) // C),
    channel (off+j) mod C, or pads where that element is outside the map; its DWW address is
    w_base + ky*k_w*C + off, the layout of `dw_kernel`."""
    win = pool_windows(address_map(d), dataclasses.replace(d, pad_code=0))[0]   # (oh, ow, C, kh*kw); 0: padding
    W, C, seg = cfg.load_lanes, d.in_c, d.k_w * d.in_c
    assert len(got) == d.positions
    assert sum(len(g["reads"]) for g in got) == d.positions * pool_reads(cfg, d)
    for p, g in enumerate(got):
        oy, ox = divmod(p, d.out_w)
        assert (g["c0"], g["n"], g["out_base"]) == (0, C, d.out_base + p * d.out_c)
        want = []                                       # (ky, off, n) per run, in order
        for ky in range(d.k_h):
            want += [(ky, off, min(W, seg - off)) for off in range(0, seg, W)]
        assert len(g["reads"]) == len(want)
        for r, (ky, off, n) in zip(g["reads"], want):
            for j in range(W):
                in_map, pad = r["lanes"] >> j & 1, r["pads"] >> j & 1
                if j >= n:
                    assert not in_map and not pad
                    continue
                kx, c = divmod(off + j, C)
                a = int(win[oy, ox, c, ky * d.k_w + kx])
                assert (in_map, pad) == ((1, 0) if a else (0, 1)), (ky, off, j)
                if a:
                    assert (r["addr"] + j) % cfg.act_depth == a - 1
            if d.op.uses_dww:
                assert r["waddr"] == (d.w_base + ky * seg + off) % cfg.dw_depth
        assert [r["first"] for r in g["reads"]] == [1] + [0] * (len(want) - 1)
        assert [r["last"] for r in g["reads"]] == [0] * (len(want) - 1) + [1]


def descriptor(cfg: AonCimConfig, rng, op=Op.MVM, **fix) -> LayerDescriptor | None:
    """A random legal layer of `op` (fields in `fix` forced), or None if the draw is illegal."""
    g = dict(in_c=int(rng.integers(1, 9)), in_h=int(rng.integers(1, 8)), in_w=int(rng.integers(1, 8)),
             stride=int(rng.integers(1, 3)))
    g.update({k: v for k, v in fix.items() if k in g})
    g["k_h"] = fix.get("k_h", int(rng.integers(1, g["in_h"] + 1)))
    g["k_w"] = fix.get("k_w", int(rng.integers(1, g["in_w"] + 1)))
    # Padding on each axis below its kernel side (every output sees the input), drawn apart.
    pad_h = 0 if not op.pads else fix.get("pad_h", int(rng.integers(0, min(g["k_h"], 3))))
    pad_w = 0 if not op.pads else fix.get("pad_w", int(rng.integers(0, min(g["k_w"], 3))))
    out_h = (g["in_h"] + 2 * pad_h - g["k_h"]) // g["stride"] + 1
    out_w = (g["in_w"] + 2 * pad_w - g["k_w"]) // g["stride"] + 1
    if out_h < 1 or out_w < 1:
        return None
    mvm = op == Op.MVM
    k_rows = g["k_h"] * g["k_w"] * g["in_c"] if mvm else 0
    out_c = int(rng.integers(1, 9)) if mvm else g["in_c"]
    tiles = -(-k_rows // cfg.rows) if mvm else 0
    row0 = int(rng.integers(0, cfg.rows - k_rows + 1)) if mvm and tiles == 1 else 0
    col0 = int(rng.integers(0, cfg.cols - tiles * out_c + 1)) if mvm and tiles * out_c <= cfg.cols else 0
    in_n = g["in_h"] * g["in_w"] * g["in_c"]
    in_base = int(rng.integers(0, max(1, cfg.act_depth - in_n + 1)))
    w_n = g["k_h"] * g["k_w"] * g["in_c"] if op.uses_dww else 0
    w_base = int(rng.integers(0, max(1, cfg.dw_depth - w_n + 1)))
    out_base = int(rng.integers(0, max(1, cfg.act_depth - out_h * out_w * out_c + 1)))
    d = LayerDescriptor(opcode=op.value, in_bits=4, out_bits=4, stride=g["stride"], pad_h=pad_h, pad_w=pad_w,
                        pad_code=int(rng.integers(0, 16)) if pad_h or pad_w else 0, relu=0, to_out=0,
                        in_bank=0, out_bank=1, shift=0, in_h=g["in_h"], in_w=g["in_w"], in_c=g["in_c"],
                        k_h=g["k_h"], k_w=g["k_w"], out_h=out_h, out_w=out_w, out_c=out_c, k_rows=k_rows,
                        row0=row0, col0=col0, param_base=0, in_base=in_base, out_base=out_base,
                        w_base=w_base if op.uses_dww else 0)
    try:
        d.check(cfg)
    except ProgramError:
        return None
    return d


def layers(cfg: AonCimConfig, seed: int, n: int, op=Op.MVM, **fix) -> list[LayerDescriptor]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        d = descriptor(cfg, rng, op, **fix)
        if d is not None:
            out.append(d)
    return out


EXTREMES = {
    "1x1": dict(k_h=1, k_w=1),
    "kernel=input": dict(in_h=3, in_w=4, k_h=3, k_w=4, pad_h=0, pad_w=0),
    "stride2-pad": dict(stride=2, in_h=7, in_w=6, k_h=3, k_w=3, pad_h=1, pad_w=1),
    # padding on one axis only, each way round (a run starting in the padding beside the map)
    "pad-rows-only": dict(in_h=4, in_w=6, k_h=3, k_w=3, pad_h=2, pad_w=0),
    "pad-cols-only": dict(stride=2, in_h=5, in_w=4, k_h=3, k_w=3, pad_h=0, pad_w=2),
    "pad-1d": dict(in_h=1, in_w=7, k_h=1, k_w=5, pad_h=0, pad_w=2),
    "one-channel": dict(in_c=1, k_h=3, k_w=2),
    "deep": dict(in_c=8, in_h=5, in_w=5, k_h=3, k_w=3),  # 72 im2col rows: tiles on 16 and 32 rows
}


@pytest.mark.parametrize("name", CONFIGS)
def test_im2col_walker_random_layers(name):
    cfg = CONFIGS[name]
    ds = layers(cfg, seed=len(name), n=12)
    for i, d in enumerate(ds):
        check_mvm(cfg, d, run_walker(cfg, d, seed=i))
    # The draw reaches padding (pad_h != pad_w too), stride 2, and (on the small arrays) row tiles.
    assert any(d.pad_h and d.pad_w for d in ds) and any(d.pad_h != d.pad_w for d in ds)
    assert any(d.stride == 2 for d in ds)
    assert any(d.tiles(cfg.rows) > 1 for d in ds) == (cfg.rows < 64)


@pytest.mark.parametrize("name", ["lanes1", "lanes32"])
@pytest.mark.parametrize("shape", EXTREMES)
def test_im2col_walker_extremes(name, shape):
    cfg = CONFIGS[name]
    ds = layers(cfg, seed=3, n=2, **EXTREMES[shape])
    for i, d in enumerate(ds):
        check_mvm(cfg, d, run_walker(cfg, d, seed=i))
    if shape == "deep":
        assert all(d.tiles(cfg.rows) > 1 for d in ds)


@pytest.mark.parametrize("name", ["lanes1", "lanes32", "default"])
@pytest.mark.parametrize("op", [Op.MAXPOOL, Op.AVGPOOL])
def test_pool_walker_random_layers(name, op):
    cfg = CONFIGS[name]
    for i, d in enumerate(layers(cfg, seed=7, n=6, op=op)):
        check_pool(cfg, d, run_walker(cfg, d, seed=i))


@pytest.mark.parametrize("name", ["lanes1", "lanes32", "default"])
def test_dwconv_walker_pads_and_reads_weights(name):
    """A depthwise layer walks as a padded pooling layer: window elements above, below and beside
    the map are padding on every lane of the group, the rest read their channels; each read
    carries the group's DWW weight address of its element, channel fastest."""
    cfg = CONFIGS[name]
    ds = layers(cfg, seed=13, n=8, op=Op.DWCONV)
    # channels beyond one group of lanes, where the config has few lanes
    ds += layers(cfg, seed=14, n=2, op=Op.DWCONV, in_c=min(cfg.load_lanes + 3, 40), in_h=4, in_w=3, k_h=3, k_w=3,
                 pad_h=1, pad_w=2, stride=2)
    for i, d in enumerate(ds):
        check_pool(cfg, d, run_walker(cfg, d, seed=i))
    assert any(d.pad_h != d.pad_w for d in ds) and any(d.stride == 2 for d in ds)
    assert any(d.in_c > cfg.load_lanes for d in ds) == (cfg.load_lanes < 40)


@pytest.mark.parametrize("name", ["lanes1", "lanes32", "default"])
def test_add_walker_reads_both_operands(name):
    """A residual add (Op.ADD) walks as a 2x1 pooling window over its 2 x positions x C view: per
    group, operand A's codes, then operand B's, positions x channels words later."""
    cfg = CONFIGS[name]
    for i, d in enumerate(layers(cfg, seed=11, n=4, op=Op.ADD, in_h=2, k_h=2, k_w=1, stride=1)):
        got = run_walker(cfg, d, seed=i)
        check_pool(cfg, d, got)
        assert all(g["reads"][1]["addr"] - g["reads"][0]["addr"] == d.in_w * d.in_c for g in got)


@pytest.mark.parametrize("name", ["lanes32", "default"])
@pytest.mark.parametrize("op", [Op.MAXPOOL, Op.AVGPOOL, Op.DWCONV, Op.ADD])
def test_folding_walker_reads_kernel_rows(name, op):
    """A pooling-type layer whose channels fold (`AonCimConfig.pool_folds`: C a power of two from
    pool_fold_min_channels to load_lanes/2) reads each kernel row as runs, several window elements
    a read; on the 32-lane config C = 8 and 16 fold (two levels and one), a kernel row of 3 x 16
    codes is two runs, and depthwise padding falls on some lanes of a run only."""
    cfg = CONFIGS[name]
    fold_cs = [c for c in range(1, cfg.load_lanes + 1) if cfg.pool_folds(c)]
    assert fold_cs == [cfg.pool_fold_min_channels << k for k in range(cfg.pool_fold_levels)]
    ds = []
    for i, in_c in enumerate(fold_cs):
        if op == Op.ADD:
            ds += layers(cfg, seed=20 + i, n=2, op=op, in_c=in_c, in_h=2, k_h=2, k_w=1, stride=1)
        else:
            ds += layers(cfg, seed=20 + i, n=3, op=op, in_c=in_c, in_h=5, in_w=6, k_h=3, k_w=3)
            ds += layers(cfg, seed=30 + i, n=2, op=op, in_c=in_c, in_h=4, in_w=5, k_h=2, k_w=2, stride=2)
    for i, d in enumerate(ds):
        assert cfg.pool_folds(d.in_c)
        check_pool(cfg, d, run_walker(cfg, d, seed=i))
    if op == Op.DWCONV:
        assert any(d.pad_w for d in ds) and any(d.pad_h for d in ds)
    if name == "lanes32" and op != Op.ADD:
        assert any(d.k_w * d.in_c > cfg.load_lanes for d in ds)       # a kernel row over two runs

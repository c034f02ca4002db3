"""Co-simulation of folded pooling reads (`AonCimConfig.pool_folds`): a pooling-type layer of C
channels, C a power of two from pool_fold_min_channels to load_lanes/2, reads each kernel row's
k_w*C codes in runs of load_lanes and the pooling bank folds the lanes holding one channel.

One hand-built program per folding channel count, on three configs whose builds other tests
already make: the datapath tests' 16-lane config (C = 8, one fold level), the random networks'
32-lane config (C = 8, 16), and the default 64-lane config of the AnalogNet co-simulation (C = 8,
16, 32). Each program has every op that folds: a depthwise 3x3 layer padded all round with a
non-zero pad code (runs that start in the padding and lanes of one run in and out of the map),
max pooling 2x2 at stride 2, a second depthwise layer whose output lands right after the max
pool's so that a residual add (a 2x1 window: one element a run) sums the two, and a global
average pool whose kernel rows are longer than one run where C is small. Every layer and every
memory word is compared with the golden model, and CYCLES with the cycle model (whose folded
reads, `perf.cycles.pool_reads`, are fewer than one per window element).
"""
import dataclasses

import numpy as np
import pytest

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.perf.cycles import inference_cycles, pool_reads
from aoncim.program import Op, Program
from aoncim.sim.cosim import CosimCase
from aoncim.sim.random_nets import RANDOM_CFG
from aoncim.sim.runner import run_cases

from test_cosim_datapath import CFG as DATAPATH_CFG
from test_cosim_dwconv import fit_params, layer, program

CONFIGS = {
    "lanes16": DATAPATH_CFG,
    "lanes32": dataclasses.replace(RANDOM_CFG, load_lanes=32, pp_lanes=8),  # test_cosim_random's build
    "default": DEFAULT_CONFIG,
}
H = 4  # input map H x H x 3


def fold_program(cfg: AonCimConfig, C: int, seed: int) -> Program:
    P = (H // 2) ** 2                       # positions after the max pool
    return program(cfg, [
        # 4x4x3 -> 4x4xC: 1x1 conv
        layer(Op.MVM, in_h=H, in_w=H, in_c=3, k_h=1, k_w=1, out_h=H, out_w=H, out_c=C, out_bank=1, col0=3),
        # depthwise 3x3, padded 1 with code 200
        layer(Op.DWCONV, in_h=H, in_w=H, in_c=C, k_h=3, k_w=3, pad_h=1, pad_w=1, pad_code=200, out_h=H, out_w=H,
              out_c=C, in_bank=1, out_bank=0, w_base=5),
        # max pool 2x2 stride 2 -> bank 1 at 0
        layer(Op.MAXPOOL, in_h=H, in_w=H, in_c=C, k_h=2, k_w=2, stride=2, out_h=H // 2, out_w=H // 2, out_c=C,
              out_bank=1, shift=0),
        # depthwise 3x3 padded 1 (code 1) -> bank 1 right after the max pool's output
        layer(Op.DWCONV, in_h=H // 2, in_w=H // 2, in_c=C, k_h=3, k_w=3, pad_h=1, pad_w=1, pad_code=1,
              out_h=H // 2, out_w=H // 2, out_c=C, in_bank=1, out_bank=1, out_base=P * C, w_base=9 * C + 11),
        # residual add of the two: the 2 x P x C view of bank 1 -> bank 0
        layer(Op.ADD, in_h=2, in_w=P, in_c=C, k_h=2, k_w=1, out_h=1, out_w=P, out_c=C, in_bank=1, out_bank=0),
        # global average pool over the 2x2 map
        layer(Op.AVGPOOL, in_h=H // 2, in_w=H // 2, in_c=C, k_h=H // 2, k_w=H // 2, out_h=1, out_w=1, out_c=C,
              out_bank=1),
        # linear to the output memory
        layer(Op.MVM, in_h=1, in_w=1, in_c=C, k_h=1, k_w=1, out_h=1, out_w=1, out_c=6, in_bank=1, to_out=1,
              row0=8, col0=20),
    ], seed=seed)


def cases(cfg: AonCimConfig, n: int = 2) -> list[CosimCase]:
    out = []
    for C in [c for c in range(1, cfg.load_lanes) if cfg.pool_folds(c)]:
        prog = fold_program(cfg, C, seed=C)
        rng = np.random.default_rng(C)
        inputs = [rng.integers(0, 256, (H, H, 3)) for _ in range(n)]
        seeds = [int(s) for s in rng.integers(0, 2**32, n)]
        out.append(CosimCase(f"fold-C{C}", fit_params(cfg, prog, inputs, seeds), inputs, seeds))
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_fold_programs_fold(name):
    """No simulator: every pooling-type layer of the programs folds, one program per folding C
    (all of them: C = load_lanes/2 down to pool_fold_min_channels), and folding reads fewer than
    one run per window element except where a window row is a single element (the add)."""
    cfg = CONFIGS[name]
    cs = cases(cfg, 1)
    assert [c.prog.layers[1].in_c for c in cs] == [cfg.pool_fold_min_channels << k for k in range(cfg.pool_fold_levels)]
    for c in cs:
        pools = [d for d in c.prog.layers if not d.is_mvm]
        assert len(pools) == 5 and all(cfg.pool_folds(d.in_c) for d in pools)
        assert all(pool_reads(cfg, d) < d.k_h * d.k_w for d in pools if d.k_w > 1 and d.k_w * d.in_c <= cfg.load_lanes)


@pytest.mark.cosim
@pytest.mark.parametrize("name", CONFIGS)
def test_fold_programs_bit_exact(name):
    cfg = CONFIGS[name]
    cs = cases(cfg)
    r = run_cases(cfg, cs)
    bad = [f"{res.name}: {res.error or res.mismatches[:2]}" for res in r.cases if not res.ok]
    assert not bad, "\n".join(bad)
    for c, res in zip(cs, r.cases):
        assert res.compared == [len(c.inputs) * d.positions * d.out_c for d in c.prog.layers]
        assert all(inf["cycles"] == inference_cycles(cfg, c.prog) for inf in res.inferences), c.name
        assert res.inferences[0]["memory_layers"] == len(c.prog.layers), c.name

"""Co-simulation of the whole contract under Verilator: pooling layers, drift-compensation alpha,
row tiling, the host's calibration reads, and the chip's own descriptor checks.

All tests share one small config (one Verilator build, cached on disk): the array of the small
config in test_cosim.py with room for an eight-layer network with max pooling (overlapping,
non-square and strided windows), average pooling and global average pooling, and for a network
whose conv and linear layers have more rows than the array (row tiles, tests/test_tiling.py).
"""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.perf.cycles import inference_cycles
from aoncim.program import LayerDescriptor, Op, ProgramError
from aoncim.regmap import ST_BUSY, ST_ERROR, ErrorCode
from aoncim.sim.runner import golden_outputs, run_cosim
from test_tiling import tiled_net

pytestmark = pytest.mark.cosim

# dw_depth: the depthwise co-simulation (tests/test_cosim_dwconv.py) shares this build, and a small
# DWW keeps its whole-memory checks short. 16 load lanes and 4 post-processing lanes, as the small
# config of test_cosim.py: pooling groups split a layer's channels, folds join 8 (test_cosim_pool_fold.py).
CFG = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, max_layers=8,
                   dw_depth=512, load_lanes=16, pp_lanes=4)
IN_SHAPE = (8, 8, 2)  # H, W, C


def pool_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d((3, 2), stride=1), nn.MaxPool2d(2),
        nn.Conv2d(6, 12, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, stride=1),
        nn.Conv2d(12, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))


def pool_job(act_bits, n, seed):
    prog = compile_network(pool_net(seed), CFG, torch.rand(32, 2, 8, 8), act_bits=act_bits)
    assert [d.op for d in prog.layers] == [Op.MVM, Op.MAXPOOL, Op.MAXPOOL, Op.MVM, Op.AVGPOOL, Op.MVM,
                                           Op.AVGPOOL, Op.MVM]
    assert (prog.layers[6].k_h, prog.layers[6].out_h) == (2, 1)  # global average pooling
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 2**act_bits, IN_SHAPE) for _ in range(n)]
    return prog, inputs, [int(s) for s in rng.integers(0, 2**32, n)]


def tiled_job(act_bits, n, seed):
    prog = compile_network(tiled_net(seed), CFG, torch.rand(32, 30, 4, 4), act_bits=act_bits)
    assert [d.tiles(CFG.rows) for d in prog.layers] == [3, 1, 2]
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 2**act_bits, (4, 4, 30)) for _ in range(n)]
    return prog, inputs, [int(s) for s in rng.integers(0, 2**32, n)]


def schedule_cycles(cfg, prog) -> int:
    """Clock cycles of one inference by the analytical cycle model (perf/cycles.py)."""
    return inference_cycles(cfg, prog)


def check_bit_exact(r, prog, n):
    assert r.mismatches == [], "\n".join(r.mismatches)
    assert r.n_ok == n
    assert r.compared == [n * d.out_h * d.out_w * d.out_c for d in prog.layers]
    assert all(inf["mvms"] == prog.mvms for inf in r.inferences)
    assert all(inf["cycles"] == schedule_cycles(CFG, prog) for inf in r.inferences)


@pytest.mark.parametrize("act_bits", [8, 4])
def test_pool_net_bit_exact(act_bits):
    """Max, average and global average pooling, layer by layer, with read noise."""
    prog, inputs, seeds = pool_job(act_bits, n=3, seed=act_bits)
    r = run_cosim(CFG, prog, inputs, seeds)
    check_bit_exact(r, prog, 3)


def test_alpha_bit_exact():
    """Per-layer drift-compensation alpha != 1.0 on every MVM and average-pooling layer."""
    prog, inputs, seeds = pool_job(6, n=4, seed=6)
    rng = np.random.default_rng(6)
    one = CFG.alpha_one
    alpha = rng.integers(one // 2, 2 * one, len(prog.layers))
    alpha[5] = one  # an uncompensated layer between compensated ones
    alpha[7] = (1 << CFG.alpha_bits) - 1  # the largest alpha saturates the logits
    prog = dataclasses.replace(prog, alpha=alpha)
    plain = golden_outputs(CFG, dataclasses.replace(prog, alpha=None), inputs, seeds)
    comp = golden_outputs(CFG, prog, inputs, seeds)
    # Every alpha'd layer must change the golden outputs, or the test could not see a missing alpha.
    assert all(not np.array_equal(plain[0][i], comp[0][i]) for i in (0, 3, 4, 6, 7))
    r = run_cosim(CFG, prog, inputs, seeds)
    check_bit_exact(r, prog, 4)


@pytest.mark.parametrize("act_bits", [8, 4])
def test_tiled_net_bit_exact(act_bits):
    """A conv of three row tiles (128 + 128 + 14 rows, tiles straddling ADC slots) and a linear
    layer of two, with read noise: codes summed per channel over the tiles, one MVM (and noise
    counter) per tile."""
    prog, inputs, seeds = tiled_job(act_bits, n=3, seed=act_bits)
    r = run_cosim(CFG, prog, inputs, seeds)
    check_bit_exact(r, prog, 3)
    assert r.inferences[0]["mvms"] == 16 * 3 + 4 + 2


def test_host_calibration_on_chip():
    """Contract steps 10-11 run by the driver on the RTL (calibration MVMs from MVM_BASE =
    0xFFFF0000 + ..., row-tiled layers included) on a PCM snapshot a day after programming: the
    alphas and offset-corrected biases equal model.snapshot.compensated's, the chip holds them,
    and the next inferences are bit-exact against the golden model of the compensated program."""
    from aoncim.model.snapshot import ProgrammedArray, compensated

    prog, inputs, seeds = tiled_job(8, n=2, seed=9)
    arr = ProgrammedArray(prog, CFG, seed=1)
    reference, day = arr.at(1.0), arr.at(86400.0)
    want = compensated(reference, day, CFG, 5, target=prog)
    # Both alphas and biases must move, or the test could not see a chip that skipped either.
    assert np.all(want.alphas(CFG)[prog.mvm_layers] > CFG.alpha_one) and (want.pp_bias != day.pp_bias).sum() > 3
    assert not np.array_equal(golden_outputs(CFG, want, inputs, seeds)[0][-1],
                              golden_outputs(CFG, dataclasses.replace(want, pp_bias=day.pp_bias), inputs, seeds)[0][-1])
    r = run_cosim(CFG, day, inputs, seeds, calibration={"reference": reference, "target": prog, "seed": 5})
    cal = r.calibration
    assert cal["alpha"] == want.alphas(CFG).tolist() and cal["alpha_regs"] == cal["alpha"]
    assert cal["bias"] == want.pp_bias.tolist() and cal["bias_window"] == cal["bias"]
    check_bit_exact(r, want, 2)


def error_cases(prog):
    """(name, descriptors, num_layers or None, expected code, layer) of malformed programs, each
    rejected by Program.check on the host too. The pooling layers read the first MVM's output bank."""
    L, R = prog.layers, dataclasses.replace
    conv, mp, conv2, avg, fc = L[0], L[1], L[3], L[4], L[7]
    c, E = CFG, ErrorCode
    pad_mp = R(mp, pad_h=1, pad_w=1, out_h=(mp.in_h + 2 - mp.k_h) // mp.stride + 1,
               out_w=(mp.in_w + 2 - mp.k_w) // mp.stride + 1)
    # A residual add must be the 2 x positions x C view with a 2x1 window at stride 1: the average
    # pool's 2x2 window at stride 1, as an add, is not.
    add_2x2 = R(avg, opcode=Op.ADD.value)
    big_gap = R(avg, in_h=17, in_w=16, in_c=1, k_h=17, k_w=16, out_h=1, out_w=1, out_c=1, stride=1)
    # A valid conv of 144 rows: two row tiles of 6 columns, side by side from column 0.
    tiled = R(conv, in_h=4, in_w=4, in_c=16, k_rows=144, out_h=4, out_w=4)
    tiled.check(c)
    # A valid 3x3 depthwise convolution of the first conv's output, padded 1, into the other bank.
    dw = LayerDescriptor(opcode=Op.DWCONV.value, in_bits=conv.out_bits, out_bits=8, stride=1, pad_h=1, pad_w=1,
                         pad_code=3, relu=0, to_out=0, in_bank=conv.out_bank, out_bank=1 - conv.out_bank, shift=8,
                         in_h=conv.out_h, in_w=conv.out_w, in_c=conv.out_c, k_h=3, k_w=3, out_h=conv.out_h,
                         out_w=conv.out_w, out_c=conv.out_c, k_rows=0, row0=0, col0=0, param_base=0,
                         in_base=conv.out_base, out_base=0, w_base=10)
    dw.check(c)
    return [
        ("opcode 0", [R(conv, opcode=0)], None, E.BAD_OPCODE, 0),
        ("opcode 7 after a good layer", [conv, R(mp, opcode=7)], None, E.BAD_OPCODE, 1),
        ("no layers", [conv], 0, E.NO_LAYERS, 0),
        ("more layers than max_layers", [conv], c.max_layers + 1, E.TOO_MANY_LAYERS, 0),
        ("5-bit input", [R(conv, in_bits=5)], None, E.BAD_BITS, 0),
        ("0-bit output", [R(mp, out_bits=0)], None, E.BAD_BITS, 0),
        ("no input channels", [R(conv, in_c=0, k_rows=0)], None, E.ZERO_SIZE, 0),
        ("no output channels", [R(conv, out_c=0)], None, E.ZERO_SIZE, 0),
        ("stride 0", [R(mp, stride=0)], None, E.ZERO_SIZE, 0),
        ("output height", [R(conv, out_h=conv.out_h + 1)], None, E.BAD_GEOMETRY, 0),
        ("k_rows", [R(conv, k_rows=conv.k_rows - 1)], None, E.BAD_GEOMETRY, 0),
        ("pool window beyond the map", [R(mp, out_w=mp.out_w + 1)], None, E.BAD_GEOMETRY, 0),
        ("rows beyond the array", [R(conv, row0=c.rows - conv.k_rows + 1)], None, E.ARRAY_ROWS, 0),
        ("columns beyond the array", [conv, R(conv2, col0=c.cols - conv2.out_c + 1)], None, E.ARRAY_COLS, 1),
        ("row tiles not from row 0", [R(tiled, row0=1)], None, E.ARRAY_ROWS, 0),
        ("row tiles beyond the columns", [R(tiled, col0=c.cols - 2 * tiled.out_c + 1)], None, E.ARRAY_COLS, 0),
        ("padded max pool", [pad_mp], None, E.BAD_POOL, 0),
        ("max pool to the output memory", [R(mp, to_out=1)], None, E.BAD_POOL, 0),
        ("max pool changes bits", [R(mp, out_bits=4)], None, E.BAD_POOL, 0),
        ("average pool changes channels", [R(avg, out_c=avg.out_c - 1)], None, E.BAD_POOL, 0),
        ("residual add with a 2x2 window", [add_2x2], None, E.BAD_POOL, 0),
        ("pool sum too wide", [big_gap], None, E.POOL_SUM, 0),
        ("parameters beyond param_depth", [R(conv, param_base=c.param_depth - conv.out_c + 1)], None, E.PARAM_RANGE, 0),
        ("shift", [R(conv, shift=c.pp_shift_max + 1)], None, E.BAD_SHIFT, 0),
        ("input beyond act_depth", [R(conv, in_base=c.act_depth - conv.in_h * conv.in_w * conv.in_c + 1)], None,
         E.IN_RANGE, 0),
        ("output beyond act_depth", [conv, R(conv2, out_base=c.act_depth - conv2.positions * conv2.out_c + 1)], None,
         E.OUT_RANGE, 1),
        ("output beyond out_depth", [R(fc, out_base=c.out_depth - fc.out_c + 1)], None, E.OUT_RANGE, 0),
        ("output over its own input", [R(conv, out_bank=conv.in_bank, out_base=conv.in_base + 1)], None,
         E.ACT_OVERLAP, 0),
        ("pad code not a 4-bit code", [conv, R(conv2, in_bits=4, pad_code=16)], None, E.BAD_PAD_CODE, 1),
        ("depthwise on array columns", [conv, R(dw, col0=1)], None, E.BAD_DWCONV, 1),
        ("depthwise changes channels", [conv, R(dw, out_c=dw.out_c - 1)], None, E.BAD_DWCONV, 1),
        ("depthwise weights beyond dw_depth", [conv, R(dw, w_base=c.dw_depth - dw.dw_words + 1)], None,
         E.DW_RANGE, 1),
        ("depthwise sum too wide", [conv, R(dw, k_h=5, k_w=5, pad_h=2, pad_w=2)], None, E.DW_SUM, 1),
    ]


def test_malformed_descriptors_stop_with_error_code():
    """Every hardware error code, from descriptors written behind Program.check's back: the run
    stops (no hang) with the code and layer in STATUS, the driver names both, the failing layer
    writes nothing, and a good program runs bit-exact afterwards."""
    prog, inputs, seeds = pool_job(8, n=1, seed=1)
    cases = error_cases(prog)
    codes = {code for *_, code, _ in cases}
    assert codes == set(ErrorCode) - {ErrorCode.NONE}, "every error code needs a case"
    for name, layers, num, code, layer in cases:
        for d in layers[:layer]:
            d.check(CFG)
        if num is None:
            with pytest.raises(ProgramError):
                layers[layer].check(CFG)
    # A fresh input per case, so that a good layer before the failing one visibly writes.
    rng = np.random.default_rng(2)
    jobs = [{"name": name, "descriptors": [d.pack() for d in layers], "num_layers": num,
             "input": rng.integers(0, 256, IN_SHAPE), "timeout_us": 1000} for name, layers, num, *_ in cases]
    r = run_cosim(CFG, prog, inputs, seeds, error_cases=jobs)
    assert len(r.error_cases) == len(cases)
    for (name, layers, num, code, layer), res in zip(cases, r.error_cases):
        st = res["status"]
        assert res["message"] != "timeout", f"{name}: the chip hung"
        assert st & ST_ERROR and not st & ST_BUSY, f"{name}: STATUS {st:#x}"
        assert ((st >> 16) & 0xFF, (st >> 8) & 0xFF) == (code, layer), f"{name}: STATUS {st:#x}"
        assert code.name in res["message"] and code.__doc__ in res["message"], res["message"]
        if num is None:
            assert f"in layer {layer} ({name})" in res["message"], res["message"]
        # Only the good layers before the failing one may have written anything.
        written = {(("OUT" if d.to_out else f"ACT{d.out_bank}"), d.out_base + k)
                   for d in layers[:layer] for k in range(d.positions * d.out_c)}
        changed = {(mem, k) for mem, words in res["before"].items()
                   for k, (a, b) in enumerate(zip(words, res["after"][mem])) if a != b}
        assert changed <= written, f"{name}: wrote {sorted(changed - written)[:5]}"
        if written:
            assert changed, f"{name}: the good layer before the failing one wrote nothing"
    check_bit_exact(r, prog, 1)

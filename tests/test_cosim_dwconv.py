"""Co-simulation of the depthwise convolution (Op.DWCONV, contract step 8a) on hand-built programs:
bit-exact against the golden model on every layer and every memory word (the scoreboard's
whole-memory check, the depthwise weight memory DWW included), the RTL's CYCLES equal to the cycle
model, and the sequencer's coverage showing the depthwise bins.

The programs (on the small config of tests/test_cosim_datapath.py, whose Verilator build they
share; 16 load lanes):

- `chain_program(bits)`, at 8, 6 and 4 bits: a 3x3 depthwise layer, stride 1, padded 1 all round
  with a non-zero pad code, over 20 channels (a group of 16 lanes and one of 4: C is not a multiple
  of load_lanes); a 3x3 depthwise layer at stride 2 padded 1 above and below and 2 beside with
  another pad code; a 1x1 conv (the MVM between depthwise layers, as in a separable block); an
  unpadded 2x2 depthwise layer over 5 channels; a linear layer to the output memory. Weights of
  every layer anywhere in the DWW (w_base), random over the whole signed range.
- `rails_program()`: input codes mostly at full scale, a 4x4 depthwise layer padded 1 (the largest
  8-bit window dw_sum_bits = 20 holds) whose channels have every weight at the most negative or
  the largest weight, so that window sums reach -16*255*128 = -522 240 (the accumulator's limit is
  -524 288) and +16*255*127; then a 3x3 depthwise layer and a linear layer.

Post-processing constants are fitted on the golden model so that each layer's outputs spread over
the code range (a pad code loaded as 0, a weight from the wrong word or a sum that wrapped changes
them); the rails layer's channels keep their extreme sums on output steps of their own.
"""
import dataclasses

import numpy as np
import pytest
import torch

from aoncim.config import AonCimConfig
from aoncim.model.bittrue import BitTrueExecutor, dwconv_sums, pool_windows
from aoncim.perf.cycles import inference_cycles
from aoncim.program import LayerDescriptor, Op, Program
from aoncim.sim import coverage as cov
from aoncim.sim.cosim import CosimCase
from aoncim.sim.runner import golden_outputs, run_cases

from test_cosim_datapath import CFG

SHIFT = 16  # post-processing shift of every fitted layer: depthwise sums are up to 2**19


def layer(op: Op, **f) -> LayerDescriptor:
    base = dict(opcode=op.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0, in_bank=0,
                out_bank=1, shift=SHIFT, k_rows=0, row0=0, col0=0, param_base=0, in_base=0, out_base=0)
    if op.uses_array:
        base["k_rows"] = f["k_h"] * f["k_w"] * f["in_c"]
    return LayerDescriptor(**(base | f))


def program(cfg: AonCimConfig, layers: list[LayerDescriptor], seed: int) -> Program:
    """`layers` with random conductances in their rectangles, random DWW weights over the whole
    signed range (every word, so a weight read from the wrong word is another weight), and
    identity-ish post-processing (fitted later), each layer's parameters after the previous one's."""
    rng = np.random.default_rng(seed)
    gp, gm = np.zeros((cfg.rows, cfg.cols), np.int64), np.zeros((cfg.rows, cfg.cols), np.int64)
    base, out = 0, []
    for d in layers:
        if d.op.uses_params:
            d = dataclasses.replace(d, param_base=base)
            base += d.out_c
        for _, n, r0, c0 in d.tile_rects(cfg.rows):
            gp[r0 : r0 + n, c0 : c0 + d.out_c] = rng.integers(0, cfg.gcode_max + 1, (n, d.out_c))
            gm[r0 : r0 + n, c0 : c0 + d.out_c] = rng.integers(0, cfg.gcode_max + 1, (n, d.out_c))
        out.append(d)
    dw = rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1, cfg.dw_depth)
    prog = Program(out, gp, gm, np.full(base, 1, np.int64), np.zeros(base, np.int64),
                   [f"L{i}:{d.op.label}" for i, d in enumerate(out)], dw_weights=dw)
    prog.check(cfg)
    return prog


def fit_params(cfg: AonCimConfig, prog: Program, inputs, seeds) -> Program:
    """Per channel, scale and bias that map what enters post-processing (ADC codes, depthwise
    window sums) on these inferences onto 1 .. 2**out_bits - 2 (to_out: -100..100), layer by layer
    on the golden model."""
    prog = dataclasses.replace(prog, pp_scale=prog.pp_scale.copy(), pp_bias=prog.pp_bias.copy())
    x = torch.as_tensor(np.stack(inputs))
    lim = (1 << (cfg.pp_scale_bits - 1)) - 1
    for i, d in enumerate(prog.layers):
        if not d.op.uses_params:   # max pooling passes its codes through
            continue
        traces = BitTrueExecutor(cfg, prog).run_batch(x, seeds)
        codes = (traces[i].adc_codes if d.is_mvm else traces[i].sums).reshape(-1, d.out_c)
        lo, hi = (-100, 100) if d.to_out else (1, (1 << d.out_bits) - 2)
        sh = d.shift
        for c in range(d.out_c):
            a, b = int(codes[:, c].min()), int(codes[:, c].max())
            k = d.param_base + c
            prog.pp_scale[k] = max(1, min(round((hi - lo) * (1 << sh) / max(b - a, 1)), lim))
            prog.pp_bias[k] = (lo << sh) - a * int(prog.pp_scale[k])
    prog.check(cfg)
    return prog


def chain_program(bits: int, cfg: AonCimConfig = CFG) -> Program:
    pc = (1 << bits) - 1
    return program(cfg, [
        # 4x6x20 -> 4x6x20: 3x3, padded 1 all round with code 2/3 of full scale; weights from word 7
        layer(Op.DWCONV, in_bits=bits, out_bits=bits, in_h=4, in_w=6, in_c=20, k_h=3, k_w=3, pad_h=1, pad_w=1,
              pad_code=2 * pc // 3, out_h=4, out_w=6, out_c=20, w_base=7),
        # 4x6x20 -> 2x4x20: stride 2, padded 1 above and below, 2 beside, code 1; weights up to the DWW's end
        layer(Op.DWCONV, in_bits=bits, out_bits=bits, in_h=4, in_w=6, in_c=20, k_h=3, k_w=3, stride=2, pad_h=1,
              pad_w=2, pad_code=1, out_h=2, out_w=4, out_c=20, in_bank=1, out_bank=0, out_base=200,
              w_base=cfg.dw_depth - 180),
        # 1x1 conv 20 -> 5 channels
        layer(Op.MVM, in_bits=bits, out_bits=bits, in_h=2, in_w=4, in_c=20, k_h=1, k_w=1, out_h=2, out_w=4, out_c=5,
              in_base=200, row0=30, col0=11),
        # 2x4x5 -> 1x3x5: unpadded 2x2 (5 channels: one group, 11 lanes idle)
        layer(Op.DWCONV, in_bits=bits, out_bits=bits, in_h=2, in_w=4, in_c=5, k_h=2, k_w=2, out_h=1, out_w=3,
              out_c=5, in_bank=1, out_bank=0, w_base=200),
        # linear to the output memory
        layer(Op.MVM, in_bits=bits, in_h=1, in_w=3, in_c=5, k_h=1, k_w=3, out_h=1, out_w=1, out_c=6, to_out=1,
              row0=60, col0=30),
    ], seed=bits)


def rails_program(cfg: AonCimConfig = CFG) -> Program:
    prog = program(cfg, [
        # 4x4 window padded 1, 6 channels: 4x5x6 -> 3x4x6
        layer(Op.DWCONV, in_h=4, in_w=5, in_c=6, k_h=4, k_w=4, pad_h=1, pad_w=1, pad_code=255, out_h=3, out_w=4,
              out_c=6, w_base=100),
        layer(Op.DWCONV, in_h=3, in_w=4, in_c=6, k_h=3, k_w=3, pad_h=1, pad_w=1, pad_code=9, out_h=3, out_w=4,
              out_c=6, in_bank=1, out_bank=0, out_base=300, w_base=0),
        layer(Op.MVM, in_h=3, in_w=4, in_c=6, k_h=3, k_w=4, out_h=1, out_w=1, out_c=4, in_base=300, to_out=1, col0=5),
    ], seed=11)
    d = prog.layers[0]
    w = prog.dw_weights
    # Channels 0-2: every weight the most negative; 3-4: the largest; 5: random.
    for c in range(5):
        w[d.w_base + c : d.w_base + d.dw_words : d.in_c] = -cfg.dw_max - 1 if c < 3 else cfg.dw_max
    prog.check(cfg)
    return prog


def rails_inputs(rng, d: LayerDescriptor, n: int) -> list[np.ndarray]:
    """Codes at full scale but for a few (so that sums differ between positions)."""
    full = (1 << d.in_bits) - 1
    return [np.where(rng.random((d.in_h, d.in_w, d.in_c)) < 0.9, full,
                     rng.integers(0, full + 1, (d.in_h, d.in_w, d.in_c))) for _ in range(n)]


def cases(n: int = 3) -> list[CosimCase]:
    out = []
    for k, (name, prog) in enumerate([(f"dw-chain-{b}bit", chain_program(b)) for b in (8, 6, 4)] +
                                     [("dw-rails", rails_program())]):
        d0 = prog.layers[0]
        rng = np.random.default_rng(20 + k)
        inputs = rails_inputs(rng, d0, n) if name == "dw-rails" else \
            [rng.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(n)]
        seeds = [int(s) for s in rng.integers(0, 2**32, n)]
        out.append(CosimCase(name, fit_params(CFG, prog, inputs, seeds), inputs, seeds))
    return out


def test_programs_exercise_what_they_claim():
    """No simulator: the programs are legal; every layer's outputs spread over the codes; the pad
    code, the weights and the multiply all matter to the depthwise sums (a chip that pads with 0,
    reads the weights one word off, or sums the window unweighted would be seen); the rails
    layer's sums reach the accumulator's negative limit within 0.4 % and its positive side beyond
    99 % of what 8-bit codes and weights can give."""
    cs = cases()
    for c in cs:
        gold = golden_outputs(CFG, c.prog, c.inputs, c.seeds)
        x = torch.as_tensor(np.stack(c.inputs))
        traces = BitTrueExecutor(CFG, c.prog).run_batch(x, c.seeds)
        for i, d in enumerate(c.prog.layers):
            y = np.concatenate([g[i].reshape(-1) for g in gold])
            assert len(np.unique(y)) >= min(8, y.size // 3), (c.name, i)
            if not d.op.uses_dww:
                continue
            xin, w = BitTrueExecutor(CFG, c.prog).layer_input(x, traces, i), c.prog.dw_weights
            sums = dwconv_sums(xin, d, w)
            assert torch.equal(sums.reshape(traces[i].sums.shape), traces[i].sums)
            off = 1 if d.w_base + d.dw_words < CFG.dw_depth else -1
            assert not torch.equal(dwconv_sums(xin, dataclasses.replace(d, w_base=d.w_base + off), w), sums)
            assert not torch.equal(pool_windows(xin, d).sum(-1), sums)
            if d.pad_code:
                assert not torch.equal(dwconv_sums(xin, dataclasses.replace(d, pad_code=0), w), sums), (c.name, i)
    rails = cs[-1]
    sums = BitTrueExecutor(CFG, rails.prog).run_batch(np.stack(rails.inputs), rails.seeds)[0].sums
    lim = 1 << (CFG.dw_sum_bits - 1)
    assert int(sums.min()) == -16 * 255 * 128 and int(sums.min()) > -lim
    assert int(sums.max()) >= 0.99 * 16 * 255 * CFG.dw_max
    # The channels summing with every weight at a rail: their extremes on output steps of their own.
    y = np.stack([g[0] for g in golden_outputs(CFG, rails.prog, rails.inputs, rails.seeds)])
    assert len(np.unique(y[..., 0])) >= 3 and len(np.unique(y[..., 3])) >= 3


@pytest.mark.cosim
def test_depthwise_programs_bit_exact():
    """The four programs, three inferences each: every layer and (first inference) every memory
    word, the DWW's included, bit-exact; CYCLES as the cycle model says and no MVM counted for a
    depthwise layer; the coverage shows depthwise layers padded (pad_h = pad_w and not, non-zero
    pad codes), strided and not, at 8, 6 and 4 bits."""
    cs = cases()
    r = run_cases(CFG, cs, coverage=True)
    bad = [f"{res.name}: {res.error or res.mismatches[:2]}" for res in r.cases if not res.ok]
    assert not bad, "\n".join(bad)
    for c, res in zip(cs, r.cases):
        assert res.compared == [len(c.inputs) * d.positions * d.out_c for d in c.prog.layers]
        assert all(inf["cycles"] == inference_cycles(CFG, c.prog) for inf in res.inferences), c.name
        assert all(inf["mvms"] == c.prog.mvms for inf in res.inferences), c.name
        assert res.inferences[0]["memory_layers"] == len(c.prog.layers), c.name
    hit = {" ".join(map(str, (b[a] for a in cov.AXES))) for b in r.coverage["bins"] if b["hits"]}
    for bits in (8, 6, 4):
        assert {f"depthwise 1 pad h=w code>0 T=1 {bits}", f"depthwise 2 pad h!=w code>0 T=1 {bits}",
                f"depthwise 1 pad=0 code=0 T=1 {bits}"} <= hit, sorted(hit)

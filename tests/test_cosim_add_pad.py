"""Co-simulation of the issue-16 contract on hand-built programs: padding with pad_h != pad_w and a
non-zero pad code, and the residual add (Op.ADD), bit-exact against the golden model on every
layer and every memory word (the scoreboard's whole-memory check), with the RTL's CYCLES equal to
the cycle model and the sequencer's coverage showing the new bins.

Two programs on the small config of tests/test_cosim_datapath.py (its Verilator build, cached):

- `pad_add_program`: a conv padded 1 above and below and 2 beside with pad code 37 (the input's
  zero point of an offset-binary map), a strided conv padded only beside with pad code 200 whose
  output is 2 x 5 x 6, a residual add of that output's two rows (the 2 x positions x C view), and a
  linear layer to the output memory;
- `residual_program`: a true skip connection, as a compiler lays one out: operand A written by
  the first conv, two convs later operand B written right after it, the add reading both (A two
  layers after it was written), then a strided conv to the output memory.

Post-processing constants are fitted on the golden model so that every layer's outputs spread
over the code range: a pad code loaded as 0, or an add that took the max, changes them.
"""
import dataclasses

import numpy as np
import pytest
import torch

from aoncim.model.bittrue import BitTrueExecutor, pool_windows
from aoncim.perf.cycles import inference_cycles
from aoncim.program import LayerDescriptor, Op, Program
from aoncim.sim import coverage as cov
from aoncim.sim.cosim import CosimCase
from aoncim.sim.runner import golden_outputs, run_cases

from test_cosim_datapath import CFG

SHIFT = 8  # post-processing shift of every fitted layer


def layer(op: Op, **f) -> LayerDescriptor:
    base = dict(opcode=op.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0, in_bank=0,
                out_bank=1, shift=SHIFT, k_rows=0, row0=0, col0=0, param_base=0, in_base=0, out_base=0)
    if op.uses_array:
        base["k_rows"] = f["k_h"] * f["k_w"] * f["in_c"]
    return LayerDescriptor(**(base | f))


def program(layers: list[LayerDescriptor], seed: int) -> Program:
    """`layers` with random conductances in their rectangles and identity post-processing (fitted
    later), each layer's parameters after the previous one's."""
    rng = np.random.default_rng(seed)
    gp, gm = np.zeros((CFG.rows, CFG.cols), np.int64), np.zeros((CFG.rows, CFG.cols), np.int64)
    base, out = 0, []
    for d in layers:
        if d.op.uses_params:
            d = dataclasses.replace(d, param_base=base)
            base += d.out_c
        for _, n, r0, c0 in d.tile_rects(CFG.rows):
            gp[r0 : r0 + n, c0 : c0 + d.out_c] = rng.integers(0, CFG.gcode_max + 1, (n, d.out_c))
            gm[r0 : r0 + n, c0 : c0 + d.out_c] = rng.integers(0, CFG.gcode_max + 1, (n, d.out_c))
        out.append(d)
    prog = Program(out, gp, gm, np.full(base, 1 << SHIFT, np.int64), np.zeros(base, np.int64),
                   [f"L{i}:{d.op.label}" for i, d in enumerate(out)])
    prog.check(CFG)
    return prog


def fit_params(prog: Program, inputs, seeds) -> Program:
    """Per channel, scale and bias that map the codes entering post-processing (ADC codes, window
    sums) on these inferences onto 10..245 (to_out: -100..100), layer by layer on the golden model."""
    prog = dataclasses.replace(prog, pp_scale=prog.pp_scale.copy(), pp_bias=prog.pp_bias.copy())
    x = torch.as_tensor(np.stack(inputs))
    for i, d in enumerate(prog.layers):
        traces = BitTrueExecutor(CFG, prog).run_batch(x, seeds)
        if d.is_mvm:
            codes = traces[i].adc_codes.reshape(-1, d.out_c)
        else:
            codes = pool_windows(BitTrueExecutor(CFG, prog).layer_input(x, traces, i), d).sum(-1).reshape(-1, d.out_c)
        lo, hi = (-100, 100) if d.to_out else (10, 245)
        for c in range(d.out_c):
            a, b = int(codes[:, c].min()), int(codes[:, c].max())
            k = d.param_base + c
            prog.pp_scale[k] = min(round((hi - lo) * (1 << SHIFT) / max(b - a, 1)), (1 << (CFG.pp_scale_bits - 1)) - 1)
            prog.pp_bias[k] = (lo << SHIFT) - a * int(prog.pp_scale[k])
    prog.check(CFG)
    return prog


def pad_add_program() -> Program:
    return program([
        # 5x6x3 -> 5x8x4: padded 1 above and below, 2 beside, with code 37
        layer(Op.MVM, in_h=5, in_w=6, in_c=3, k_h=3, k_w=3, pad_h=1, pad_w=2, pad_code=37, out_h=5, out_w=8, out_c=4,
              col0=3),
        # 5x8x4 -> 2x5x6, stride 2, padded only beside, with code 200: operand A is its first output
        # row, B its second
        layer(Op.MVM, in_h=5, in_w=8, in_c=4, k_h=3, k_w=2, stride=2, pad_w=1, pad_code=200, out_h=2, out_w=5,
              out_c=6, in_bank=1, out_bank=0, out_base=100, row0=40, col0=20),
        # residual add of the two rows: 2 x 5 positions x 6 channels -> 1 x 5 x 6
        layer(Op.ADD, in_h=2, in_w=5, in_c=6, k_h=2, k_w=1, out_h=1, out_w=5, out_c=6, in_base=100, out_base=200),
        # linear to the output memory
        layer(Op.MVM, in_h=1, in_w=5, in_c=6, k_h=1, k_w=5, out_h=1, out_w=1, out_c=5, in_bank=1, in_base=200,
              to_out=1, row0=64, col0=40),
    ], seed=1)


def residual_program() -> Program:
    """y = conv(x); z = y + conv(conv(y)) as the chip runs it: A = y at ACT1[0..63], B right after."""
    hw = dict(in_h=4, in_w=4, out_h=4, out_w=4)
    return program([
        layer(Op.MVM, **hw, in_c=3, k_h=3, k_w=3, pad_h=1, pad_w=1, pad_code=5, out_c=4, out_base=0),  # A
        layer(Op.MVM, **hw, in_c=4, k_h=1, k_w=1, out_c=4, in_bank=1, out_bank=0, out_base=100, row0=32),
        layer(Op.MVM, **hw, in_c=4, k_h=3, k_w=3, pad_h=1, pad_w=1, out_c=4, in_base=100, out_base=64,   # B
              row0=40, col0=8),
        # both operands, A two layers after it was written: the 2 x 16 positions x 4 channels view
        layer(Op.ADD, in_h=2, in_w=16, in_c=4, k_h=2, k_w=1, out_h=1, out_w=16, out_c=4, in_bank=1, out_bank=0,
              out_base=200),
        # the sum read back as the 4 x 4 x 4 map it is
        layer(Op.MVM, in_h=4, in_w=4, in_c=4, k_h=2, k_w=2, stride=2, out_h=2, out_w=2, out_c=3, in_base=200,
              to_out=1, row0=80, col0=16),
    ], seed=2)


def cases():
    out = []
    for k, (name, make) in enumerate((("pad-add", pad_add_program), ("residual", residual_program))):
        prog = make()
        d0 = prog.layers[0]
        rng = np.random.default_rng(10 + k)
        inputs = [rng.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(3)]
        seeds = [int(s) for s in rng.integers(0, 2**32, 3)]
        out.append(CosimCase(name, fit_params(prog, inputs, seeds), inputs, seeds))
    return out


def test_programs_exercise_what_they_claim():
    """No simulator: the programs are legal, the pad code and the add's sum both matter to the
    golden outputs (a chip that loads 0 for padding or adds nothing would be seen)."""
    a, r = cases()
    pads = [d for c in (a, r) for d in c.prog.layers if d.pad_h or d.pad_w]
    assert any(d.pad_h != d.pad_w for d in pads) and all(d.pad_code for d in pads[:3])
    for c in (a, r):
        gold = golden_outputs(CFG, c.prog, c.inputs, c.seeds)
        # Outputs spread over the codes: not stuck on a clamp (a few outputs: each channel's
        # extremes are fitted onto the limits).
        for i, d in enumerate(c.prog.layers):
            y = np.concatenate([g[i].reshape(-1) for g in gold])
            assert len(np.unique(y)) >= min(8, y.size // 3), (c.name, i)
        for i, d in enumerate(c.prog.layers):
            if d.pad_code:
                zero = [dataclasses.replace(e, pad_code=0) if j == i else e for j, e in enumerate(c.prog.layers)]
                other = golden_outputs(CFG, dataclasses.replace(c.prog, layers=zero), c.inputs, c.seeds)
                assert not np.array_equal(other[0][i], gold[0][i]), (c.name, i)
            if d.op is Op.ADD:
                as_max = [dataclasses.replace(e, opcode=Op.MAXPOOL.value, out_bits=e.in_bits) if j == i else e
                          for j, e in enumerate(c.prog.layers)]
                prog_max = dataclasses.replace(c.prog, layers=as_max)
                assert not np.array_equal(BitTrueExecutor(CFG, prog_max).run(c.inputs[0], c.seeds[0])[i].output,
                                          gold[0][i]), (c.name, i)


@pytest.mark.cosim
def test_pad_code_asymmetric_padding_and_residual_add_bit_exact():
    """Both programs, three inferences each, every layer and (first inference) every memory word
    bit-exact; CYCLES and MVMS as the cycle model says; the coverage shows a layer with pad_h !=
    pad_w, a padded layer loading a non-zero code, and the residual add."""
    cs = cases()
    r = run_cases(CFG, cs, coverage=True)
    bad = [f"{res.name}: {res.error or res.mismatches[:2]}" for res in r.cases if not res.ok]
    assert not bad, "\n".join(bad)
    for c, res in zip(cs, r.cases):
        assert res.compared == [len(c.inputs) * d.positions * d.out_c for d in c.prog.layers]
        assert all(inf["cycles"] == inference_cycles(CFG, c.prog) for inf in res.inferences), c.name
        assert all(inf["mvms"] == c.prog.mvms for inf in res.inferences), c.name
    hit = {" ".join(map(str, (b[a] for a in cov.AXES))) for b in r.coverage["bins"] if b["hits"]}
    assert "add 1 pad=0 code=0 T=1 8" in hit, sorted(hit)
    assert "conv 1 pad h!=w code>0 T=1 8" in hit and "conv 2 pad h!=w code>0 T=1 8" in hit, sorted(hit)
    assert "conv 1 pad h=w code>0 T=1 8" in hit and "conv 1 pad h=w code=0 T=1 8" in hit, sorted(hit)

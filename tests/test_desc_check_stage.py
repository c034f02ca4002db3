"""The CHECK state's descriptor validation (hw/desc_check.py `DescriptorCheck`) on its own, in the
Amaranth simulator: every ErrorCode it can raise (BAD_PAD_CODE, the residual add's BAD_POOL rules
and the depthwise convolution's BAD_DWCONV, DW_RANGE and DW_SUM included), on targeted and random
corrupted descriptors of a conv padded pad_h != pad_w with a pad code, a max pool, a residual add
and a padded, strided depthwise convolution, against per-code Python predicates written like
`LayerDescriptor.check` (and consistent with it: a descriptor is accepted exactly when
`LayerDescriptor.check` accepts it).
"""
import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.desc_check import DescriptorCheck
from aoncim.program import DESCRIPTOR_FIELDS, LayerDescriptor, Op, ProgramError
from aoncim.regmap import ErrorCode as E

CFG = AonCimConfig(rows=32, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, dw_depth=512,
                   load_lanes=16, pp_lanes=4)
FIELD_BITS = dict(DESCRIPTOR_FIELDS)
# Raised by the sequencer for the run, not for one descriptor.
RUN_CODES = {E.NONE, E.NO_LAYERS, E.TOO_MANY_LAYERS}


def want_code(cfg: AonCimConfig, d: LayerDescriptor) -> E:
    """The lowest ErrorCode whose condition (regmap.ErrorCode's docstrings) `d` violates."""
    mvm, mx, add = d.opcode == Op.MVM.value, d.opcode == Op.MAXPOOL.value, d.opcode == Op.ADD.value
    dw = d.opcode == Op.DWCONV.value
    pool = d.opcode in (Op.MAXPOOL.value, Op.AVGPOOL.value, Op.ADD.value)
    tiles = -(-d.k_rows // cfg.rows)
    in_end = d.in_base + d.in_h * d.in_w * d.in_c
    out_end = d.out_base + d.out_h * d.out_w * d.out_c
    pred = [
        (E.BAD_OPCODE, d.opcode not in {o.value for o in Op}),
        (E.BAD_BITS, d.in_bits not in cfg.act_bits_supported or d.out_bits not in cfg.act_bits_supported),
        (E.ZERO_SIZE, min(d.stride, d.k_h, d.k_w, d.in_h, d.in_w, d.in_c, d.out_h, d.out_w, d.out_c) == 0),
        (E.BAD_GEOMETRY, lambda: d.out_h != (d.in_h + 2 * d.pad_h - d.k_h) // d.stride + 1 or
                                 d.out_w != (d.in_w + 2 * d.pad_w - d.k_w) // d.stride + 1 or
                                 (mvm and d.k_rows != d.k_h * d.k_w * d.in_c)),
        (E.ARRAY_ROWS, mvm and d.row0 + min(d.k_rows, cfg.rows) > cfg.rows),
        (E.ARRAY_COLS, mvm and d.col0 + tiles * d.out_c > cfg.cols),
        (E.BAD_POOL, pool and (d.k_rows != 0 or d.row0 != 0 or d.col0 != 0 or d.out_c != d.in_c or d.pad_h != 0 or
                                  d.pad_w != 0 or (mx and (d.out_bits != d.in_bits or d.to_out)) or
                                  (add and not (d.in_h == d.k_h == 2 and d.k_w == 1 and d.stride == 1 and
                                                d.out_h == 1)))),
        (E.POOL_SUM, pool and d.k_h * d.k_w * ((1 << d.in_bits) - 1) >= 1 << cfg.pool_sum_bits),
        (E.PARAM_RANGE, d.param_base + d.out_c > cfg.param_depth),
        (E.BAD_SHIFT, d.shift > cfg.pp_shift_max),
        (E.IN_RANGE, in_end > cfg.act_depth),
        (E.OUT_RANGE, out_end > (cfg.out_depth if d.to_out else cfg.act_depth)),
        (E.ACT_OVERLAP, not d.to_out and d.in_bank == d.out_bank and out_end > d.in_base and in_end > d.out_base),
        (E.BAD_PAD_CODE, d.pad_code >= 1 << d.in_bits),
        (E.BAD_DWCONV, dw and (d.k_rows != 0 or d.row0 != 0 or d.col0 != 0 or d.out_c != d.in_c or d.to_out)),
        (E.DW_RANGE, dw and d.w_base + d.k_h * d.k_w * d.in_c > cfg.dw_depth),
        (E.DW_SUM, dw and d.k_h * d.k_w * ((1 << d.in_bits) - 1) * 2 ** (cfg.dw_weight_bits - 1) >=
         2 ** (cfg.dw_sum_bits - 1)),
    ]
    assert {code for code, _ in pred} == set(E) - RUN_CODES
    for code, bad in pred:
        if bad() if callable(bad) else bad:   # geometry divides by the stride: only after ZERO_SIZE
            return code
    return E.NONE


def run_check(cfg: AonCimConfig, descs: list[LayerDescriptor]) -> list[tuple[int, int]]:
    dut = DescriptorCheck(cfg)
    sim = Simulator(dut)
    got = []

    async def tb(ctx):
        for d in descs:
            ctx.set(dut.desc.as_value(), sum(w << (32 * i) for i, w in enumerate(d.pack())))
            got.append((ctx.get(dut.error), ctx.get(dut.code)))

    sim.add_testbench(tb)
    sim.run()
    return got


# A 3x3 conv padded 1 above and below and 2 beside (a 5x7 input to 5x9), padded with code 3.
CONV = LayerDescriptor(opcode=Op.MVM.value, in_bits=4, out_bits=8, stride=1, pad_h=1, pad_w=2, pad_code=3, relu=0,
                       to_out=0, in_bank=0, out_bank=1, shift=4, in_h=5, in_w=7, in_c=4, k_h=3, k_w=3, out_h=5,
                       out_w=9, out_c=6, k_rows=36, row0=0, col0=3, param_base=10, in_base=7, out_base=0)
POOL = LayerDescriptor(opcode=Op.MAXPOOL.value, in_bits=6, out_bits=6, stride=2, pad_h=0, pad_w=0, relu=0, to_out=0,
                       in_bank=1, out_bank=1, shift=0, in_h=6, in_w=6, in_c=5, k_h=2, k_w=2, out_h=3, out_w=3,
                       out_c=5, k_rows=0, row0=0, col0=0, param_base=0, in_base=0, out_base=200)
# A residual add of two 7 x 5 operands at ACT0[300..]: the 2 x 7 x 5 view, a 2x1 window.
ADD = LayerDescriptor(opcode=Op.ADD.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0,
                      in_bank=0, out_bank=0, shift=1, in_h=2, in_w=7, in_c=5, k_h=2, k_w=1, out_h=1, out_w=7,
                      out_c=5, k_rows=0, row0=0, col0=0, param_base=20, in_base=300, out_base=0)
# A 3x3 depthwise convolution of a 5x6x5 map at stride 2, padded 1 above and below and 2 beside with
# code 17, its 45 weights at DWW[100..144].
DW = LayerDescriptor(opcode=Op.DWCONV.value, in_bits=8, out_bits=6, stride=2, pad_h=1, pad_w=2, pad_code=17, relu=0,
                     to_out=0, in_bank=1, out_bank=0, shift=9, in_h=5, in_w=6, in_c=5, k_h=3, k_w=3, out_h=3, out_w=4,
                     out_c=5, k_rows=0, row0=0, col0=0, param_base=40, in_base=0, out_base=64, w_base=100)
R = dataclasses.replace
# One corruption per ErrorCode (the lowest failing code is the one named).
TARGETED = {
    E.BAD_OPCODE: [R(CONV, opcode=0), R(CONV, opcode=15), R(CONV, opcode=6, in_bits=3), R(ADD, opcode=6),
                   R(DW, opcode=6)],
    E.BAD_BITS: [R(CONV, in_bits=5), R(CONV, out_bits=0), R(POOL, in_bits=2, out_bits=2)],
    E.ZERO_SIZE: [R(CONV, stride=0), R(CONV, k_w=0), R(CONV, out_c=0), R(POOL, in_c=0, out_c=0)],
    E.BAD_GEOMETRY: [R(CONV, out_h=4), R(CONV, out_w=8), R(CONV, k_rows=35), R(POOL, out_w=4),
                     R(CONV, pad_h=0, k_h=8, k_rows=96, out_h=1),
                     # pad_h and pad_w each on their own axis: swapped, both sizes are off
                     R(CONV, pad_h=2, pad_w=1), R(CONV, pad_h=2), R(CONV, pad_w=1),
                     R(ADD, out_w=6), R(DW, out_w=3), R(DW, pad_h=0), R(DW, stride=1)],
    E.ARRAY_ROWS: [R(CONV, row0=1), R(CONV, in_c=1, k_rows=9, row0=24)],
    E.ARRAY_COLS: [R(CONV, col0=59), R(CONV, in_c=8, k_rows=72, col0=47)],
    E.BAD_POOL: [R(POOL, k_rows=1), R(POOL, col0=2), R(POOL, out_c=4), R(POOL, to_out=1), R(POOL, out_bits=8),
                 R(POOL, opcode=Op.AVGPOOL.value, pad_h=1, pad_w=1, out_h=4, out_w=4),
                 R(POOL, pad_h=1, out_h=4), R(POOL, pad_w=1, out_w=4),
                 # residual add: not the 2 x positions x C view with a 2x1 window at stride 1
                 R(ADD, in_h=3, out_h=2), R(ADD, in_h=3, k_h=3), R(ADD, in_h=1, k_h=1), R(ADD, k_h=1, out_h=2),
                 R(ADD, k_w=2, out_w=6), R(ADD, stride=2, out_w=4), R(ADD, pad_w=1, out_w=9),
                 R(ADD, out_c=4), R(ADD, col0=1),
                 # a max pool padded as a depthwise layer is: still refused
                 R(DW, opcode=Op.MAXPOOL.value, out_bits=8, shift=0)],
    E.POOL_SUM: [R(POOL, opcode=Op.AVGPOOL.value, in_bits=8, out_bits=8, k_h=16, k_w=17, in_h=16, in_w=17, out_h=1,
                   out_w=1, stride=1, in_c=1, out_c=1)],
    E.PARAM_RANGE: [R(CONV, param_base=123), R(POOL, param_base=124)],
    E.BAD_SHIFT: [R(CONV, shift=CFG.pp_shift_max + 1), R(CONV, shift=63)],
    E.IN_RANGE: [R(CONV, in_base=413), R(CONV, in_base=2**16 - 1)],
    E.OUT_RANGE: [R(CONV, out_base=CFG.act_depth - CONV.positions * CONV.out_c + 1), R(CONV, to_out=1, out_base=0),
                  R(POOL, out_base=500), R(ADD, to_out=1, out_base=CFG.out_depth - ADD.positions * ADD.out_c + 1)],
    # Overlaps of one word, at the input's start and at its end (adjacent regions are legal: see
    # test_descriptors_at_the_limits_are_accepted).
    E.ACT_OVERLAP: [R(CONV, out_bank=0), R(POOL, in_base=30),
                    R(CONV, out_bank=0, in_base=CONV.positions * CONV.out_c - 1),
                    R(CONV, out_bank=0, in_base=0, out_base=CONV.in_h * CONV.in_w * CONV.in_c - 1),
                    R(ADD, out_base=ADD.in_base - ADD.positions * ADD.out_c + 1)],
    # One past the input's largest code, on any opcode (the golden model pads with it on MVM layers).
    E.BAD_PAD_CODE: [R(CONV, pad_code=16), R(CONV, pad_code=255), R(CONV, in_bits=6, pad_code=64),
                     R(POOL, pad_code=64), R(ADD, in_bits=4, pad_code=16), R(DW, in_bits=6, pad_code=64)],
    # A depthwise layer uses no array, keeps its channels and writes an activation bank.
    E.BAD_DWCONV: [R(DW, k_rows=45), R(DW, row0=1), R(DW, col0=7), R(DW, out_c=4), R(DW, out_c=6),
                   R(DW, to_out=1, out_base=0)],
    # Its weights inside the DWW: one word past the end, or a base beyond it.
    E.DW_RANGE: [R(DW, w_base=CFG.dw_depth - 45 + 1), R(DW, w_base=CFG.dw_depth), R(DW, w_base=2**16 - 1),
                 R(DW, in_c=6, out_c=6, w_base=CFG.dw_depth - 54 + 1)],
    # k_h*k_w*255*128 >= 2**19 from a 4x5 window at 8 bits (4x4 is the largest that fits).
    E.DW_SUM: [R(DW, k_h=4, k_w=5, out_h=2, out_w=3, w_base=0), R(DW, k_h=5, k_w=4, out_h=2, out_w=4, w_base=0),
               R(DW, k_h=17, k_w=1, in_h=17, pad_h=0, out_h=1, out_w=5, out_base=0, w_base=0),
               # a window whose unweighted sum would not fit pool_sum_bits either: still DW_SUM
               R(DW, k_h=16, k_w=17, in_h=16, in_w=17, in_c=1, out_c=1, pad_h=0, pad_w=0, stride=1, out_h=1, out_w=1,
                 out_base=0, w_base=0)],
}


def test_targeted_descriptors_raise_each_error_code():
    assert set(TARGETED) == set(E) - RUN_CODES
    descs = [CONV, POOL, ADD, DW] + [d for ds in TARGETED.values() for d in ds]
    wants = [E.NONE] * 4 + [code for code, ds in TARGETED.items() for _ in ds]
    assert [want_code(CFG, d) for d in descs] == wants       # the predicates name the intended code
    assert run_check(CFG, descs) == [(int(w != E.NONE), int(w)) for w in wants]


@pytest.mark.parametrize("seed", range(3))
def test_random_corruptions_match_predicates_and_check(seed):
    rng = np.random.default_rng(seed)
    names = list(FIELD_BITS)
    descs = []
    for _ in range(400):
        d = [CONV, POOL, ADD, DW][int(rng.choice(4, p=[0.4, 0.2, 0.15, 0.25]))]
        for _ in range(int(rng.integers(1, 4))):
            f = names[int(rng.integers(len(names)))]
            bits = FIELD_BITS[f]
            # Near the old value (boundaries), small, or anywhere in the field.
            v = [getattr(d, f) + int(rng.integers(-2, 3)), int(rng.integers(0, 8)),
                 int(rng.integers(0, 1 << bits))][int(rng.integers(3))]
            d = R(d, **{f: min(max(v, 0), (1 << bits) - 1)})
        descs.append(d)
    got = run_check(CFG, descs)
    for d, (err, code) in zip(descs, got):
        want = want_code(CFG, d)
        assert (err, code) == (int(want != E.NONE), int(want)), d
        try:
            d.check(CFG)
            accepted = True
        except (ProgramError, ValueError):
            accepted = False
        assert accepted == (want == E.NONE), d
    assert len({c for _, c in got}) >= 8    # the corruptions reach most codes


def test_descriptors_at_the_limits_are_accepted():
    """Each range check's boundary: exactly at the limit is legal (one past it is in TARGETED)."""
    at_limit = [
        R(CONV, shift=CFG.pp_shift_max),
        R(CONV, param_base=CFG.param_depth - CONV.out_c),
        R(CONV, in_base=CFG.act_depth - CONV.in_h * CONV.in_w * CONV.in_c),
        R(CONV, out_base=CFG.act_depth - CONV.positions * CONV.out_c),
        R(CONV, to_out=1, out_c=1, out_base=CFG.out_depth - CONV.positions),
        R(CONV, col0=CFG.cols - CONV.tiles(CFG.rows) * CONV.out_c),
        R(CONV, in_c=1, k_rows=9, row0=CFG.rows - 9),
        R(CONV, out_bank=0, in_base=CONV.positions * CONV.out_c),            # output ends where input starts
        R(POOL, opcode=Op.AVGPOOL.value, in_bits=8, out_bits=8, k_h=16, k_w=16, in_h=16, in_w=16, out_h=1, out_w=1,
          stride=1, in_c=1, out_c=1, out_bank=0),                             # window sum 256 * 255 < 2**16
        R(CONV, pad_h=2, out_h=7), R(CONV, pad_w=0, out_w=5), R(CONV, pad_h=0, pad_w=0, out_h=3, out_w=5),
        R(CONV, pad_code=15), R(CONV, in_bits=8, pad_code=255), R(POOL, pad_code=63),   # the largest code
        R(ADD, to_out=1, out_base=CFG.out_depth - ADD.positions * ADD.out_c),
        R(ADD, out_base=ADD.in_base - ADD.positions * ADD.out_c),          # output ends where input starts
        R(ADD, in_w=1, out_w=1, in_c=CFG.load_lanes + 1, out_c=CFG.load_lanes + 1),  # one position
        R(DW, w_base=CFG.dw_depth - 45),                                    # weights end at the DWW's end
        R(DW, k_h=4, k_w=4, out_h=2, out_w=4),                              # 16 * 255 * 128 < 2**19
        R(DW, in_bits=6, pad_code=63, k_h=7, k_w=7, in_h=7, in_w=7, pad_h=0, pad_w=0, out_h=1, out_w=1, w_base=0),
        R(DW, pad_h=2, pad_w=0, out_h=4, out_w=2, in_base=200),              # padded on one axis only
    ]
    for d in at_limit:
        d.check(CFG)
        assert want_code(CFG, d) == E.NONE, d
    assert run_check(CFG, at_limit) == [(0, int(E.NONE))] * len(at_limit)

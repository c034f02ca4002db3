"""The layer FSM and beat control (hw/sequencer.py `LayerSequencer`) on their own, in the Amaranth
simulator, with the memories and the crossbar as stubs (the program memory answers a descriptor, the
activation banks a code that is a function of its address and the array random codes, a cycle
later): a program of MVM (tiled and not, padded with pad_h != pad_w and a pad code), pooling and
residual-add layers runs in the cycles `perf.cycles.layer_cycles` counts, with the MVMS counter,
one conversion per ADC slot of every MVM under its read-noise counter, every MVM's DAC registers
loaded with its im2col vector (padding with the layer's pad_code, rows past it with 0), every
output issued to post-processing once with its layer's constants (a pooling layer's, and the
residual add's, with its window's max or sum; a depthwise layer's, padded and strided, over more
channels than the load lanes, with its window's sum of codes times the stub weight memory's
weights), and step mode, CONTINUE and the run's ErrorCodes as the register map describes them.
The arithmetic after the array is the co-simulation's to check.
"""
import dataclasses

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.sequencer import LayerSequencer
from aoncim.model.bittrue import dwconv_sums, im2col, pool_windows
from aoncim.perf.cycles import _slots, layer_cycles
from aoncim.program import LayerDescriptor, Op
from aoncim.regmap import ErrorCode

CFG = AonCimConfig(rows=16, cols=64, n_adcs=8, load_lanes=4, pp_lanes=2, act_depth=512, out_depth=64,
                   param_depth=128, max_layers=8)


def layer(op: Op, **f) -> LayerDescriptor:
    d = LayerDescriptor(**(dict(opcode=op.value, in_bits=4, out_bits=4, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0,
                                in_bank=0, out_bank=1, shift=0, k_rows=0, row0=0, col0=0, param_base=0, in_base=0,
                                out_base=0) | f))
    d.check(CFG)
    return d


PROGRAM = [
    # 27 im2col rows on 16: two row tiles; 5 channels from column 5 (slots 0-1, then 1); padded 1
    # above and below, 2 beside, with code 9
    layer(Op.MVM, in_h=5, in_w=5, in_c=3, k_h=3, k_w=3, pad_h=1, pad_w=2, pad_code=9, out_h=5, out_w=7, out_c=5,
          k_rows=27, col0=5, param_base=7, in_bits=4, in_base=300),
    layer(Op.MAXPOOL, in_h=5, in_w=7, in_c=5, k_h=2, k_w=2, stride=2, out_h=2, out_w=3, out_c=5, in_bank=1,
          out_bank=0),
    layer(Op.AVGPOOL, in_h=2, in_w=3, in_c=5, k_h=2, k_w=3, out_h=1, out_w=1, out_c=5, out_base=100, shift=2),
    # residual add of the max pool's two rows (a 2 x 3 x 5 view): 3 positions, 2 groups of channels each
    layer(Op.ADD, in_h=2, in_w=3, in_c=5, k_h=2, k_w=1, out_h=1, out_w=3, out_c=5, out_base=200, shift=1,
          param_base=30),
    # depthwise 3x3, stride 2, padded 1 above and below and 2 beside with code 11, 6 channels (two
    # groups of the 4 load lanes), weights from DWW word 70
    layer(Op.DWCONV, in_h=4, in_w=5, in_c=6, k_h=3, k_w=3, stride=2, pad_h=1, pad_w=2, pad_code=11, out_h=2,
          out_w=4, out_c=6, in_base=20, out_base=300, shift=6, param_base=50, w_base=70, in_bits=4, out_bits=6),
    # depthwise 2x1, stride 1, padded only above and below, weights at the DWW's end
    layer(Op.DWCONV, in_h=3, in_w=2, in_c=3, k_h=2, k_w=1, pad_h=1, out_h=4, out_w=2, out_c=3, in_bank=1,
          out_bank=0, out_base=400, param_base=60, w_base=CFG.dw_depth - 6, in_bits=6, out_bits=4),
    # one position, one tile from row 5, 3 channels to the output memory
    layer(Op.MVM, in_h=1, in_w=1, in_c=5, k_h=1, k_w=1, out_h=1, out_w=1, out_c=3, k_rows=5, row0=5, col0=20,
          in_bank=1, in_base=100, to_out=1, relu=1, in_bits=6, out_bits=8),
]


def act_code(addr: int) -> int:
    """The stub activation banks' code at an address (4 bits: every layer's input fits)."""
    return (7 * addr + 3) % 16


def dw_code(addr: int) -> int:
    """The stub DWW's weight at an address (signed 8 bits, both signs)."""
    return (37 * addr + 5) % 256 - 128


DWW = np.array([dw_code(a) for a in range(CFG.dw_depth)])


def run_program(layers, *, step=False, num_layers=None, mvm_base=1000, seed=0):
    """Run `layers` from START to DONE / ERROR; returns what the sequencer did."""
    rng = np.random.default_rng(seed)
    dut = LayerSequencer(CFG)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    alphas = [int(rng.integers(0, 2**CFG.alpha_bits)) for _ in range(CFG.max_layers)]
    rec = dict(convs=[], issues=[], pauses=[], events=[], loads=[])
    q = CFG.pp_lanes
    load = None     # a load issued last cycle: its x arrives now

    async def tb(ctx):
        run = dut.run

        async def step_():
            nonlocal load
            prog_addr, conv, raddr = ctx.get(dut.prog_addr), ctx.get(dut.conv.stb), ctx.get(dut.act_raddr)
            waddr = ctx.get(dut.dw_raddr)
            if load is not None:
                rec["loads"].append(load | dict(x=[ctx.get(dut.load.x[j]) for j in range(CFG.load_lanes)]))
            load = dict(layer=ctx.get(run.layer), row=ctx.get(dut.load.row), first=ctx.get(dut.load.first)) \
                if ctx.get(dut.load.valid) else None
            if conv:
                rec["convs"].append((ctx.get(run.layer), ctx.get(dut.conv.slot), ctx.get(dut.conv.mvm)))
            if valid := ctx.get(dut.pp.valid):
                rec["issues"].append(dict(
                    layer=ctx.get(run.layer), addrs=[ctx.get(dut.pp.addr) + i for i in range(q) if valid >> i & 1],
                    codes=[ctx.get(dut.pp.code[i]) for i in range(q) if valid >> i & 1],
                    consts={k: ctx.get(getattr(dut.pp, k)) for k in ("alpha", "shift", "out_bits", "to_out",
                                                                        "relu", "passthrough", "bank")}))
            await ctx.tick()
            # The stubs answer a cycle later: program memory, activation banks, the array.
            d = layers[prog_addr] if prog_addr < len(layers) else layers[0]
            ctx.set(dut.prog_data.as_value(), sum(w << (32 * i) for i, w in enumerate(d.pack())))
            for j in range(CFG.load_lanes):
                ctx.set(dut.act_rdata[j], act_code((raddr + j) % CFG.act_depth))
                ctx.set(dut.dw_rdata[j], dw_code((waddr + j) % CFG.dw_depth))
            if conv:
                for i in range(CFG.n_adcs):
                    ctx.set(dut.codes[i], int(rng.integers(-CFG.adc_max, CFG.adc_max + 1)))
            ctx.set(run.alpha, alphas[ctx.get(run.layer)])
            for ev in ("ev_done", "ev_paused", "ev_error"):
                if ctx.get(getattr(run, ev)):
                    rec["events"].append(ev)

        ctx.set(run.num_layers, len(layers) if num_layers is None else num_layers)
        ctx.set(run.mvm_base, mvm_base)
        ctx.set(run.step, step)
        await step_()
        ctx.set(run.start, 1)
        await step_()
        ctx.set(run.start, 0)
        for _ in range(20_000):
            if ctx.get(run.paused):
                rec["pauses"].append((ctx.get(run.layer), ctx.get(run.cycles)))
                for _ in range(3):                       # the host reads the layer's output
                    await step_()
                assert ctx.get(run.paused) and ctx.get(run.busy)
                ctx.set(run.cont, 1)
                await step_()
                ctx.set(run.cont, 0)
            if not ctx.get(run.busy):
                break
            await step_()
        rec.update({k: ctx.get(getattr(run, k)) for k in ("done", "error", "error_code", "layer", "cycles", "mvms")})
        rec["alphas"] = alphas

    sim.add_testbench(tb)
    sim.run()
    return rec


def check_run(layers, rec, mvm_base=1000):
    assert (rec["done"], rec["error"], rec["layer"]) == (1, 0, len(layers) - 1)
    assert rec["cycles"] == sum(layer_cycles(CFG, d) for d in layers)
    # MVMs position-major, then row tile.
    mvms = [(i, col0) for i, d in enumerate(layers) for _ in range(d.positions) for *_, col0 in d.tile_rects(CFG.rows)]
    assert rec["mvms"] == len(mvms)
    # Per MVM, in order, one conversion per ADC slot of its tile, under read-noise counter base + k.
    want = []
    for k, (i, col0) in enumerate(mvms):
        want += [(i, s, mvm_base + k) for s, _ in _slots(CFG, col0, layers[i].out_c)]
    assert rec["convs"] == want
    # Every MVM's DAC registers: its tile of the im2col vector of the stub's codes (padding: the
    # pad code), the rows a lane past the last run reaches 0; MVMs in the order above.
    vectors = []
    for ld in rec["loads"]:
        if ld["first"]:
            vectors.append((ld["layer"], {}))
        for j, x in enumerate(ld["x"]):
            vectors[-1][1][ld["row"] + j] = x
    want = []
    for i, d in enumerate(layers):
        if d.is_mvm:
            n_in = d.in_h * d.in_w * d.in_c
            x = torch.tensor([act_code(d.in_base + a) for a in range(n_in)]).reshape(1, d.in_h, d.in_w, d.in_c)
            rows = im2col(x, d)[0]
            for p in range(d.positions):
                for lo, n, row0, _ in d.tile_rects(CFG.rows):
                    want.append((i, {row0 + k: int(rows[p, lo + k]) for k in range(n)}))
    assert len(vectors) == len(want)
    for (gi, got), (wi, w) in zip(vectors, want):
        assert gi == wi and {r: got[r] for r in w} == w and all(got[r] == 0 for r in set(got) - set(w)), wi
    # Every output once, with its layer's constants; a pooling layer's (the residual add's) window
    # max or sum of the stub's codes (the MVM layers' codes are the stub array's).
    for i, d in enumerate(layers):
        issues = [x for x in rec["issues"] if x["layer"] == i]
        addrs = sorted(a for x in issues for a in x["addrs"])
        assert addrs == list(range(d.out_base, d.out_base + d.positions * d.out_c)), i
        if not d.is_mvm:
            got = {a: v for x in issues for a, v in zip(x["addrs"], x["codes"])}
            x = torch.tensor([act_code(d.in_base + a) for a in range(d.in_h * d.in_w * d.in_c)])
            x = x.reshape(1, d.in_h, d.in_w, d.in_c)
            if d.op.uses_dww:
                y = dwconv_sums(x, d, DWW)[0].reshape(-1)
            else:
                win = pool_windows(x, d)[0]
                y = (win.amax(-1) if d.op.keeps_bits else win.sum(-1)).reshape(-1)
            assert got == {d.out_base + k: int(v) for k, v in enumerate(y)}, i
        consts = dict(alpha=rec["alphas"][i], shift=d.shift, out_bits=d.out_bits, to_out=d.to_out, relu=d.relu,
                      passthrough=int(d.opcode == Op.MAXPOOL.value), bank=d.out_bank)
        assert all(x["consts"] == consts for x in issues), i


def test_program_runs_in_the_modelled_cycles():
    rec = run_program(PROGRAM)
    check_run(PROGRAM, rec)
    assert rec["events"] == ["ev_done"] and rec["pauses"] == []


def test_two_layers_step_mode_pauses_after_each_and_continues():
    layers = PROGRAM[:2]
    rec = run_program(layers, step=True, mvm_base=7, seed=1)
    check_run(layers, rec, mvm_base=7)
    # Paused after layer 0 with LAYER pointing at the next; the pause is not counted in CYCLES.
    assert rec["pauses"] == [(1, layer_cycles(CFG, layers[0]))]
    assert rec["events"] == ["ev_paused", "ev_done"]


@pytest.mark.parametrize("num_layers, code", [(0, ErrorCode.NO_LAYERS),
                                              (CFG.max_layers + 1, ErrorCode.TOO_MANY_LAYERS)])
def test_run_errors(num_layers, code):
    rec = run_program(PROGRAM, num_layers=num_layers)
    assert (rec["done"], rec["error"], rec["error_code"], rec["cycles"], rec["mvms"]) == (0, 1, code, 0, 0)
    assert rec["events"] == ["ev_error"] and rec["convs"] == []


def test_bad_descriptor_stops_before_its_layer():
    bad = dataclasses.replace(PROGRAM[1], shift=CFG.pp_shift_max + 1)
    rec = run_program([PROGRAM[0], bad, PROGRAM[2]])
    assert (rec["done"], rec["error"], rec["error_code"], rec["layer"]) == (0, 1, ErrorCode.BAD_SHIFT, 1)
    assert rec["mvms"] == PROGRAM[0].mvms(CFG.rows) and rec["events"] == ["ev_error"]
    assert not any(x["layer"] == 1 for x in rec["issues"])


def test_dwconv_runs_on_the_pooling_path():
    """The depthwise layers alone: the pooling schedule's cycles (R reads a window element of a
    group a cycle, weights alongside; S issues), no MVM, and every output its padded window's sum
    of codes times weights (check_run)."""
    dws = [d for d in PROGRAM if d.op is Op.DWCONV]
    rec = run_program(dws, seed=3)
    check_run(dws, rec)
    assert rec["mvms"] == 0 and rec["convs"] == [] and rec["loads"] == []
    # The cycle model's schedule is average pooling's over the same windows: padding and weights
    # cost no cycle of their own.
    for d in dws:
        assert layer_cycles(CFG, d) == layer_cycles(CFG, dataclasses.replace(d, opcode=Op.AVGPOOL.value))


def test_residual_add_runs_as_average_pooling():
    """A residual add alone: the cycles of `perf.cycles`, which are an average pool's with the same
    2x1 window, and every output its operand pair's sum (check_run)."""
    add = PROGRAM[3]
    rec = run_program([add], seed=2)
    check_run([add], rec)
    assert rec["cycles"] == layer_cycles(CFG, add) == layer_cycles(CFG, dataclasses.replace(add, opcode=Op.AVGPOOL.value))

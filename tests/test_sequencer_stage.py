"""The layer FSM and beat control (hw/sequencer.py `LayerSequencer`) on their own, in the Amaranth
simulator, with the memories and the crossbar as stubs (the program memory answers a descriptor, the
activation banks and the array random codes, a cycle later): a program of MVM (tiled and not) and
pooling layers runs in the cycles `perf.cycles.layer_cycles` counts, with the MVMS counter, one
conversion per ADC slot of every MVM under its read-noise counter, every output issued to
post-processing once with its layer's constants, and step mode, CONTINUE and the run's ErrorCodes
as the register map describes them. The values themselves are the co-simulation's to check.
"""
import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.sequencer import LayerSequencer
from aoncim.perf.cycles import _slots, layer_cycles
from aoncim.program import LayerDescriptor, Op
from aoncim.regmap import ErrorCode

CFG = AonCimConfig(rows=16, cols=64, n_adcs=8, load_lanes=4, pp_lanes=2, act_depth=512, out_depth=64,
                   param_depth=128, max_layers=4)


def layer(op: Op, **f) -> LayerDescriptor:
    d = LayerDescriptor(**(dict(opcode=op.value, in_bits=4, out_bits=4, stride=1, pad=0, relu=0, to_out=0, in_bank=0,
                                out_bank=1, shift=0, k_rows=0, row0=0, col0=0, param_base=0, in_base=0,
                                out_base=0) | f))
    d.check(CFG)
    return d


PROGRAM = [
    # 27 im2col rows on 16: two row tiles; 5 channels from column 5 (slots 0-1, then 1)
    layer(Op.MVM, in_h=5, in_w=5, in_c=3, k_h=3, k_w=3, pad=1, out_h=5, out_w=5, out_c=5, k_rows=27, col0=5,
          param_base=7, in_bits=4),
    layer(Op.MAXPOOL, in_h=5, in_w=5, in_c=5, k_h=2, k_w=2, stride=2, out_h=2, out_w=2, out_c=5, in_bank=1,
          out_bank=0),
    layer(Op.AVGPOOL, in_h=2, in_w=2, in_c=5, k_h=2, k_w=2, out_h=1, out_w=1, out_c=5, out_base=100, shift=2),
    # one position, one tile from row 5, 3 channels to the output memory
    layer(Op.MVM, in_h=1, in_w=1, in_c=5, k_h=1, k_w=1, out_h=1, out_w=1, out_c=3, k_rows=5, row0=5, col0=20,
          in_bank=1, in_base=100, to_out=1, relu=1, in_bits=6, out_bits=8),
]


def run_program(layers, *, step=False, num_layers=None, mvm_base=1000, seed=0):
    """Run `layers` from START to DONE / ERROR; returns what the sequencer did."""
    rng = np.random.default_rng(seed)
    dut = LayerSequencer(CFG)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    alphas = [int(rng.integers(0, 2**CFG.alpha_bits)) for _ in range(CFG.max_layers)]
    rec = dict(convs=[], issues=[], pauses=[], events=[])
    q = CFG.pp_lanes

    async def tb(ctx):
        run = dut.run

        async def step_():
            prog_addr, conv = ctx.get(dut.prog_addr), ctx.get(dut.conv.stb)
            if conv:
                rec["convs"].append((ctx.get(run.layer), ctx.get(dut.conv.slot), ctx.get(dut.conv.mvm)))
            if valid := ctx.get(dut.pp.valid):
                rec["issues"].append(dict(
                    layer=ctx.get(run.layer), addrs=[ctx.get(dut.pp.addr) + i for i in range(q) if valid >> i & 1],
                    consts={k: ctx.get(getattr(dut.pp, k)) for k in ("alpha", "shift", "out_bits", "to_out",
                                                                        "relu", "passthrough", "bank")}))
            await ctx.tick()
            # The stubs answer a cycle later: program memory, activation banks, the array.
            d = layers[prog_addr] if prog_addr < len(layers) else layers[0]
            ctx.set(dut.prog_data.as_value(), sum(w << (32 * i) for i, w in enumerate(d.pack())))
            for j in range(CFG.load_lanes):
                ctx.set(dut.act_rdata[j], int(rng.integers(0, 16)))
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
    # Every output once, with its layer's constants.
    for i, d in enumerate(layers):
        issues = [x for x in rec["issues"] if x["layer"] == i]
        addrs = sorted(a for x in issues for a in x["addrs"])
        assert addrs == list(range(d.out_base, d.out_base + d.positions * d.out_c)), i
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

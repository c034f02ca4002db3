"""Contract spec of the layer sequencer (hw/sequencer.py): no descriptor hangs it.

On a tiny chip (`TINY`: 2x2 array, 2-bit activations, 4-word banks), for *any* descriptor in the
program memory (`AnyConst`: every field any value, so every descriptor the checker accepts or
rejects), any NUM_LAYERS and any codes from the array and the activation banks (`AnySeq`), a run
started once reaches DONE or ERROR within `BOUND` cycles, and stays there. `BOUND` is the longest
run of an accepted one-layer program on TINY (by enumeration with the cycle model, perf/cycles.py:
48 cycles) plus START's fetch; a rejected descriptor must end in ERROR within the check's few
cycles, which the same bound covers. Bounded model checking to BOUND + 2 cycles from reset.
"""
from __future__ import annotations

import itertools

import pytest
from amaranth import Elaboratable, Module, ResetSignal, Signal
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Cover

from aoncim.config import AonCimConfig
from aoncim.hw.sequencer import LayerSequencer
from aoncim.program import LayerDescriptor, Op, ProgramError
from aoncim.sim import formal

# Every size a power of two and as small as the config allows, yet row tiling (k_rows up to 4 on
# 2 rows), padding, strides, both pooling ops, the residual add, the depthwise convolution (padded,
# every window up to 2x2 within its 2-bit weights' sum width) and the output memory all occur.
TINY = AonCimConfig(rows=2, cols=2, n_adcs=2, dac_bits=2, act_bits_supported=(2,), gcode_bits=2, adc_bits=4,
                    load_lanes=2, pp_lanes=1, act_depth=4, out_depth=2, max_layers=1, param_depth=4, pool_sum_bits=4,
                    dw_weight_bits=2, dw_sum_bits=6, dw_depth=16)
LONGEST = 48  # cycles of TINY's slowest accepted layer (test_longest_layer_on_tiny)
BOUND = LONGEST + 8  # plus START's fetch and the run's end


def accepted_layers(cfg: AonCimConfig):
    """Every one-layer program `cfg` accepts, up to placement, bases and the pad code (which do not
    change the count): every op, the residual add included, shape, kernel, stride and padding
    above/below and beside whose tensors fit the banks."""
    n = cfg.act_depth
    bits = max(cfg.act_bits_supported)
    for op in Op:
        for in_h, in_w, in_c in itertools.product(range(1, n + 1), repeat=3):
            if in_h * in_w * in_c > n:
                continue
            for k_h, k_w, stride, pad_h, pad_w in itertools.product(range(1, cfg.rows + 1), range(1, cfg.rows + 1),
                                                                    (1, 2), (0, 1), (0, 1)):
                oh, ow = (in_h + 2 * pad_h - k_h) // stride + 1, (in_w + 2 * pad_w - k_w) // stride + 1
                for out_c in (range(1, cfg.cols + 1) if op.uses_array else [in_c]):
                    d = LayerDescriptor(opcode=op.value, in_bits=bits, out_bits=bits, stride=stride, pad_h=pad_h,
                                        pad_w=pad_w, relu=0, to_out=0, in_bank=0, out_bank=1, shift=0, in_h=in_h,
                                        in_w=in_w, in_c=in_c, k_h=k_h, k_w=k_w, out_h=max(oh, 1), out_w=max(ow, 1),
                                        out_c=out_c, k_rows=k_h * k_w * in_c if op.uses_array else 0, row0=0, col0=0,
                                        param_base=0, in_base=0, out_base=0)
                    try:
                        d.check(cfg)
                    except ProgramError:
                        continue
                    yield d


def longest_layer(cfg: AonCimConfig) -> int:
    """Cycles of the slowest one-layer program `cfg` accepts (`accepted_layers`)."""
    from aoncim.perf.cycles import layer_cycles

    return max(layer_cycles(cfg, d) for d in accepted_layers(cfg))


class NoHangContract(Elaboratable):
    def __init__(self, cfg: AonCimConfig, bound: int, dut: LayerSequencer | None = None):
        self.cfg, self.bound = cfg, bound
        self.dut = dut or LayerSequencer(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.dut
        run = seq.run
        m.d.comb += Assume(~ResetSignal())
        desc = AnyConst(len(seq.prog_data.as_value()))
        m.d.comb += [seq.prog_data.eq(desc), seq.act_rdata.eq(AnySeq(len(seq.act_rdata.as_value()))),
                     seq.dw_rdata.eq(AnySeq(len(seq.dw_rdata.as_value()))),
                     seq.codes.eq(AnySeq(len(seq.codes.as_value()))),
                     run.num_layers.eq(AnyConst(2)), run.mvm_base.eq(AnySeq(32)), run.alpha.eq(AnySeq(len(run.alpha))),
                     run.cont.eq(0), run.step.eq(0)]
        cycle = Signal(range(self.bound + 8))
        with m.If(cycle < self.bound + 7):
            m.d.sync += cycle.eq(cycle + 1)
        m.d.comb += run.start.eq(cycle == 1)
        ended = Signal()
        with m.If(run.done | run.error):
            m.d.sync += ended.eq(1)
        with m.If(ended):
            m.d.comb += [Assert(run.done | run.error), Assert(~run.busy)]
        with m.If(cycle == self.bound + 2):
            m.d.comb += Assert(run.done | run.error)
        m.d.comb += [Cover(run.done & (cycle > 20)), Cover(run.error)]
        return m


def test_longest_layer_on_tiny():
    assert longest_layer(TINY) == LONGEST
    # The bound covers every op (the residual add among them) and padding on either axis alone.
    layers = list(accepted_layers(TINY))
    assert {d.op for d in layers} == set(Op)
    assert any(d.pad_h != d.pad_w for d in layers)
    assert any(d.op is Op.DWCONV and d.pad_h != d.pad_w for d in layers)   # the pooling walk's padding


def test_sequencer_never_hangs(tmp_path):
    formal.check(NoHangContract(TINY, BOUND), "seq_no_hang", tmp_path, mode="bmc", depth=BOUND + 4)


@pytest.mark.slow
def test_no_hang_contract_catches_a_hanging_sequencer(tmp_path):
    """A stage A whose PWM window never ends (it waits for a count its counter cannot reach) hangs
    every MVM layer: the contract fails."""
    from aoncim.sim.mutation import mutant_module

    broken = mutant_module("aoncim.hw.array_control", "with m.If(pwm == (1 << d.in_bits) - 1):",
                            "with m.If(pwm == (1 << (d.in_bits + 1))):")
    import aoncim.hw.sequencer as seq_mod
    seq = mutant_module("aoncim.hw.sequencer", "from .array_control import ArrayControl",
                        "ArrayControl = None  # replaced below")
    seq.ArrayControl = broken.ArrayControl
    with pytest.raises(formal.FormalFailure, match="failed assertion"):
        formal.check(NoHangContract(TINY, BOUND, seq.LayerSequencer(TINY)), "seq_hang", tmp_path, mode="bmc",
                     depth=BOUND + 4)
    assert seq_mod.LayerSequencer is not seq.LayerSequencer

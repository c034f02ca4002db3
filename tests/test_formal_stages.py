"""Handshake contracts of the sequencer's pipeline stages, proved with SymbiYosys (sim/formal.py).

Every stage of the beat pipeline (hw/sequencer.py) takes the previous stage's item (an MVM, a
pooling group) over at the beat's end (`next`), works on it during the beat, says `done`, and the
beat ends only when every stage is done. The contract of each stage, for any item sequence on
`prev`, any descriptor the check accepts for it and any beat lengths the sequencer may choose
(`next` only while `done`):
  - no lost and no duplicated beat: the work a beat produces (conversions for stage A, issued
    channels for stages P and S) is exactly the work of the item taken over at the beat's start,
    counted over the whole beat (0 for a beat without an item);
  - bounded: the stage is done within its documented number of cycles of the beat's start.
Bounded model checking from reset, `DEPTH` cycles: several beats of the longest item on `STAGE_CFG`.
"""
from __future__ import annotations

import pytest
from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Cover

from aoncim.config import AonCimConfig
from aoncim.hw.array_control import ArrayControl
from aoncim.hw.pool_issue import PoolResultIssue
from aoncim.hw.tile_accumulator import TileAccumulator
from aoncim.sim import formal

# Four ADC slots, two post-processing lanes, four load lanes: slot ranges, lane masks and partial
# groups all occur; 2-bit activations keep the PWM window (4 cycles) short.
STAGE_CFG = AonCimConfig(rows=4, cols=8, n_adcs=2, dac_bits=2, act_bits_supported=(2,), gcode_bits=2, adc_bits=4,
                         load_lanes=4, pp_lanes=2, act_depth=16, out_depth=4, max_layers=1, param_depth=8,
                         pool_sum_bits=4)
DEPTH = 24


class BeatContract(Elaboratable):
    """The common part: the environment (`next` only while done; any `prev`), the per-beat work
    count and the bound. `expected(m, item)` is the work of an item; `work(m)` this cycle's work;
    `bound` the cycles a beat may take at most before the stage is done."""

    latency = 0  # cycles from the work's cause to the output that shows it

    def __init__(self, dut, bound: int):
        self.dut, self.bound = dut, bound

    def environment(self, m, dut):
        """Assumptions on desc and prev beyond `AnySeq`; returns nothing."""

    def expected(self, m, item):
        raise NotImplementedError

    def work(self, m, dut):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += Assume(~ResetSignal())
        m.d.comb += dut.desc.eq(AnyConst(len(dut.desc.as_value())))
        for name, _, port in dut.prev.signature.flatten(dut.prev):
            m.d.comb += port.eq(AnySeq(len(port)))
        m.d.comb += dut.next.eq(AnySeq(1))
        m.d.comb += Assume(~dut.next | dut.done)  # the beat control's obligation
        self.environment(m, dut)

        # The item of the current beat, as taken over at its start.
        item = {name: Signal.like(port, name=f"item_{'_'.join(name)}") for name, _, port in dut.prev.signature.flatten(dut.prev)}
        with m.If(dut.next):
            m.d.sync += [item[n].eq(p) for n, _, p in dut.prev.signature.flatten(dut.prev)]
        # Work is counted per beat. A stage's output may be registered: work lands up to `latency`
        # cycles after the cycle that caused it, so a beat's window is its cycles shifted by that
        # latency, and its end (and expected work) travel down a delay line of that length.
        end, want = dut.next, Signal(8)
        m.d.comb += want.eq(self.expected(m, item))
        for _ in range(self.latency):
            end_q, want_q = Signal(), Signal(8)
            m.d.sync += [end_q.eq(end), want_q.eq(want)]
            end, want = end_q, want_q
        count = Signal(8)
        now = self.work(m, dut)
        with m.If(end):
            m.d.comb += Assert(count + now == want)
            m.d.sync += count.eq(0)
        with m.Else():
            m.d.sync += count.eq(count + now)

        age = Signal(range(self.bound + 2))
        with m.If(dut.next):
            m.d.sync += age.eq(0)
        with m.Elif(age <= self.bound):
            m.d.sync += age.eq(age + 1)
        with m.If(age >= self.bound):
            m.d.comb += Assert(dut.done)
        m.d.comb += Cover(end & (want > 1))
        return m


def _popcount(m, bits):
    n = Signal(range(len(bits) + 1))
    m.d.comb += n.eq(sum(bits[i] for i in range(len(bits))))
    return n


class ArrayControlContract(BeatContract):
    """Stage A: one conversion per ADC slot of the MVM's columns, lowest slot first."""
    latency = 0  # `conv.stb` is combinational

    def environment(self, m, dut):
        c, d, p = STAGE_CFG, dut.desc, dut.prev
        m.d.comb += [Assume(d.in_bits == 2), Assume(d.out_c >= 1),
                     Assume(~p.valid | (p.tcol0 + d.out_c <= c.cols))]
        # Slots come in order, each once: the strobed slot never goes back within a beat.
        seen, last_slot = Signal(), Signal.like(dut.conv.slot)
        with m.If(dut.next):
            m.d.sync += seen.eq(0)
        with m.Elif(dut.conv.stb):
            m.d.sync += [seen.eq(1), last_slot.eq(dut.conv.slot)]
            m.d.comb += Assert(~seen | (dut.conv.slot == last_slot + 1))
            m.d.comb += Assert(dut.conv.bank == dut.mvm.parity)

    def expected(self, m, item):
        n_log2 = (STAGE_CFG.n_adcs - 1).bit_length()
        first = item[("tcol0",)] >> n_log2
        last = (item[("tcol0",)] + self.dut.desc.out_c - 1) >> n_log2
        return Mux(item[("valid",)], last - first + 1, 0)

    def work(self, m, dut):
        return dut.conv.stb


class TileAccumulatorContract(BeatContract):
    """Stage P: on an MVM's last row tile every channel goes to post-processing once; earlier
    tiles issue nothing."""
    latency = 2  # a group's codes are read, summed a cycle later, issued the cycle after

    def environment(self, m, dut):
        c, d, p = STAGE_CFG, dut.desc, dut.prev
        n_tiles = (d.k_rows + c.rows - 1) >> c.row_bits
        m.d.comb += [Assume(d.out_c >= 1), Assume(d.k_rows >= 1), Assume(n_tiles * d.out_c <= c.cols),
                     Assume(~p.valid | ((p.tile < n_tiles) & (p.tcol0 + d.out_c <= c.cols)))]
        m.d.comb += dut.code_rd.data.eq(AnySeq(len(dut.code_rd.data.as_value())))

    def expected(self, m, item):
        d, c = self.dut.desc, STAGE_CFG
        n_tiles = (d.k_rows + c.rows - 1) >> c.row_bits
        return Mux(item[("valid",)] & (item[("tile",)] == n_tiles - 1), d.out_c, 0)

    def work(self, m, dut):
        return _popcount(m, dut.issue.valid)


class PoolResultIssueContract(BeatContract):
    """Stage S: every channel of the group goes to post-processing once."""
    latency = 1  # `issue` is registered

    def environment(self, m, dut):
        p = dut.prev
        m.d.comb += Assume(~p.valid | ((p.n >= 1) & (p.n <= STAGE_CFG.load_lanes)))

    def expected(self, m, item):
        return Mux(item[("valid",)], item[("n",)], 0)

    def work(self, m, dut):
        return _popcount(m, dut.issue.valid)


def _bounds(cfg: AonCimConfig) -> dict[str, int]:
    """Cycles from a beat's start until the stage is done, at most (stage docstrings)."""
    slots = cfg.cols // cfg.n_adcs
    return {"A": 2 ** max(cfg.act_bits_supported) + slots, "P": -(-cfg.cols // cfg.pp_lanes) + 1,
            "S": -(-cfg.load_lanes // cfg.pp_lanes) + 1}


CONTRACTS = {
    "A": lambda dut=None: ArrayControlContract(dut or ArrayControl(STAGE_CFG), _bounds(STAGE_CFG)["A"]),
    "P": lambda dut=None: TileAccumulatorContract(dut or TileAccumulator(STAGE_CFG), _bounds(STAGE_CFG)["P"]),
    "S": lambda dut=None: PoolResultIssueContract(dut or PoolResultIssue(STAGE_CFG), _bounds(STAGE_CFG)["S"]),
}


@pytest.mark.parametrize("stage", list(CONTRACTS))
def test_stage_handshake_contract(tmp_path, stage):
    formal.check(CONTRACTS[stage](), f"stage_{stage}", tmp_path, mode="bmc", depth=DEPTH)


@pytest.mark.parametrize("stage", list(CONTRACTS))
def test_stage_contract_is_not_vacuous(tmp_path, stage):
    formal.check(CONTRACTS[stage](), f"stage_{stage}", tmp_path, mode="cover", depth=DEPTH)


BROKEN = {
    "A": ("aoncim.hw.array_control", "ArrayControl", "m.d.comb += [self.conv.stb.eq(1), last.eq(slot == s_hi)]",
          "m.d.comb += [self.conv.stb.eq(slot != s_lo), last.eq(slot == s_hi)]"),
    "P": ("aoncim.hw.tile_accumulator", "TileAccumulator", "with m.If(pq_valid.any() & pq_last):",
          "with m.If(pq_valid.any()):"),
    "S": ("aoncim.hw.pool_issue", "PoolResultIssue", "m.d.comb += last.eq(sc == steps)", "m.d.comb += last.eq(sc == 1)"),
}


@pytest.mark.parametrize("stage", list(BROKEN))
def test_stage_contract_catches_a_lost_or_duplicated_beat(tmp_path, stage):
    from aoncim.sim.mutation import mutant_module

    module, cls, old, new = BROKEN[stage]
    broken = getattr(mutant_module(module, old, new), cls)(STAGE_CFG)
    with pytest.raises(formal.FormalFailure, match="failed assertion"):
        formal.check(CONTRACTS[stage](broken), f"stage_{stage}_broken", tmp_path, mode="bmc", depth=DEPTH)

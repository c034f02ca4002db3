"""Contract spec of the AXI4-Lite subordinate (hw/axil.py), proved with SymbiYosys (sim/formal.py).

The manager is any AXI4-Lite manager: every input is `AnySeq`, restricted only by the manager's
obligations in the AXI spec (a VALID, once high, stays high with its payload stable until READY).
Asserted, for every such manager:
  - handshakes: BVALID and RVALID, once high, stay high with BRESP / RDATA stable until B/RREADY;
  - one response per request: a B only after an accepted write, an R only after an accepted read,
    never two outstanding (the subordinate takes one transaction at a time);
  - AW and W are accepted together, in one cycle;
  - write strobes: a write with every WSTRB bit set reaches the register bus once, with its address
    and data, and answers OKAY; any other strobe does not reach the bus and answers SLVERR;
  - reads: one register-bus read per accepted AR, at its address; RDATA is what the bus returned
    the cycle after;
  - no starvation: with a read and a write both pending, neither waits more than one transaction.
Covered (reachable): an OKAY write, a SLVERR write, a read, back-to-back read and write.
"""
from __future__ import annotations

import pytest
from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cover

from aoncim.hw.axil import RESP_OKAY, RESP_SLVERR, AxiLiteSubordinate
from aoncim.sim import formal

ADDR_BITS = 6  # small: the contract does not depend on the width; the solver's time does


class AxiLiteContract(Elaboratable):
    """Contract spec of `AxiLiteSubordinate` (module docstring); `dut` may be a mutated subordinate."""

    def __init__(self, dut: AxiLiteSubordinate | None = None):
        self.dut = dut or AxiLiteSubordinate(ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        ax, bus = dut.axil, dut.bus
        full = (1 << (dut.data_bits // 8)) - 1
        m.d.comb += Assume(~ResetSignal())

        # The manager: anything, within its AXI obligations.
        for name in ("awaddr", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr", "arvalid", "rready"):
            port = getattr(ax, name)
            m.d.comb += port.eq(AnySeq(len(port)))
        m.d.comb += bus.r_data.eq(AnySeq(len(bus.r_data)))

        def held(valid, ready, *payload):
            """Last cycle VALID was high without READY: this cycle it is high with the same payload."""
            waiting = Signal(name=f"{valid.name}_waiting")
            last = [Signal.like(p, name=f"{p.name}_last") for p in payload]
            m.d.sync += [waiting.eq(valid & ~ready), *(l.eq(p) for l, p in zip(last, payload))]
            return waiting, [valid, *(p == l for p, l in zip(payload, last))]

        for valid, ready, *payload in ((ax.awvalid, ax.awready, ax.awaddr), (ax.wvalid, ax.wready, ax.wdata, ax.wstrb),
                                       (ax.arvalid, ax.arready, ax.araddr)):
            waiting, stays = held(valid, ready, *payload)
            with m.If(waiting):
                m.d.comb += [Assume(c) for c in stays]
        for valid, ready, *payload in ((ax.bvalid, ax.bready, ax.bresp), (ax.rvalid, ax.rready, ax.rdata)):
            waiting, stays = held(valid, ready, *payload)
            with m.If(waiting):
                m.d.comb += [Assert(c) for c in stays]

        aw_hs, w_hs, ar_hs = ax.awvalid & ax.awready, ax.wvalid & ax.wready, ax.arvalid & ax.arready
        b_hs, r_hs = ax.bvalid & ax.bready, ax.rvalid & ax.rready
        m.d.comb += Assert(aw_hs == w_hs)

        # Outstanding transactions: a response needs a request, and there is at most one of each.
        writes, reads = Signal(2), Signal(2)
        m.d.sync += [writes.eq(writes + aw_hs - b_hs), reads.eq(reads + ar_hs - r_hs)]
        m.d.comb += [Assert(writes + reads <= 1),
                     Assert(~ax.bvalid | (writes == 1)), Assert(~ax.rvalid | (reads == 1)),
                     Assert(~(aw_hs & (writes != 0))), Assert(~(ar_hs & (reads + writes != 0))),
                     Assert(~(aw_hs & ar_hs))]

        # Write strobes: whole words reach the bus, once, with address and data; others SLVERR.
        strobe_ok = Signal()
        with m.If(aw_hs):
            m.d.sync += strobe_ok.eq(ax.wstrb == full)
            m.d.comb += [Assert(bus.w_stb == (ax.wstrb == full)),
                         Assert(bus.addr == ax.awaddr[dut._lsb:]), Assert(bus.w_data == ax.wdata)]
        with m.Else():
            m.d.comb += Assert(~bus.w_stb)
        with m.If(ax.bvalid):
            m.d.comb += Assert(ax.bresp == Mux(strobe_ok, RESP_OKAY, RESP_SLVERR))

        # Reads: one bus read per accepted AR, at its address; RDATA is the bus's answer.
        with m.If(ar_hs):
            m.d.comb += [Assert(bus.r_stb), Assert(bus.addr == ax.araddr[dut._lsb:])]
        with m.Else():
            m.d.comb += Assert(~bus.r_stb)
        r_stb_last, answer = Signal(), Signal(dut.data_bits)
        m.d.sync += r_stb_last.eq(bus.r_stb)
        # Induction invariants: the outstanding counts are what the ports show (a write is
        # outstanding exactly while BVALID is high; a read from its bus read until RVALID drops).
        m.d.comb += [Assert(writes == ax.bvalid), Assert(reads == (ax.rvalid | r_stb_last)),
                     Assert(~(ax.rvalid & r_stb_last))]
        with m.If(r_stb_last):
            m.d.sync += answer.eq(bus.r_data)
        with m.If(ax.rvalid):
            m.d.comb += [Assert(ax.rdata == answer), Assert(ax.rresp == RESP_OKAY)]

        # No starvation: a pending read is taken before a second write, and the other way round.
        wrote_last = Signal()
        with m.If(aw_hs | ar_hs):
            m.d.sync += wrote_last.eq(aw_hs)
        with m.If(aw_hs & wrote_last):
            m.d.comb += Assert(~ax.arvalid)
        m.d.comb += Assert(dut.last_was_write == wrote_last)  # induction invariant

        m.d.comb += [Cover(b_hs & (ax.bresp == RESP_OKAY)), Cover(b_hs & (ax.bresp == RESP_SLVERR)),
                     Cover(r_hs), Cover(ar_hs & wrote_last)]
        return m


def test_axil_contract_holds(tmp_path):
    formal.check(AxiLiteContract(), "axil", tmp_path, mode="prove", depth=8)


def test_axil_contract_is_not_vacuous(tmp_path):
    formal.check(AxiLiteContract(), "axil", tmp_path, mode="cover", depth=12)


# Broken subordinates the contract must reject: each a one-point edit of hw/axil.py.
BROKEN = {
    "B dropped before BREADY": ("with m.If(ax.bready):", "with m.If(1):"),
    "R dropped before RREADY": ("with m.If(ax.rready):", "with m.If(1):"),
    "partial strobe written": ("bus.w_stb.eq(whole)", "bus.w_stb.eq(1)"),
    "AW accepted without W": ("want_w = ax.awvalid & ax.wvalid", "want_w = ax.awvalid"),
    "reads starved": ("~(ax.arvalid & last_was_write)", "1"),
    "RDATA not captured": ("m.d.sync += rdata.eq(bus.r_data)", "pass"),
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_axil_contract_catches_a_broken_subordinate(tmp_path, what):
    from aoncim.sim.mutation import mutant_module

    broken = mutant_module("aoncim.hw.axil", *BROKEN[what]).AxiLiteSubordinate(ADDR_BITS)
    with pytest.raises(formal.FormalFailure, match="failed assertion"):
        formal.check(AxiLiteContract(broken), "axil_broken", tmp_path, mode="prove", depth=8)

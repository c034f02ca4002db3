"""AXI4-Lite subordinate: the chip's host port, bridged to the internal register bus.

One transaction at a time, no outstanding reads or writes: a write costs two cycles (accept with
the register-bus strobe, then the response), a read three (accept, capture, response). Reads and
writes alternate when both are pending so neither starves.

Every register and window element is a whole 32-bit word (docs/architecture.md), so a write whose
WSTRB is not all ones is refused with SLVERR and has no effect, instead of being widened silently.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus import RegisterBusSignature

RESP_OKAY, RESP_SLVERR = 0b00, 0b10


class AxiLiteSignature(wiring.Signature):
    """Manager's view; the chip's port is `In(AxiLiteSignature(...))`. Names follow the AXI spec so
    the generated ports read `s_axil__awaddr`, ... for cocotbext-axi's `AxiLiteBus.from_prefix`."""

    def __init__(self, addr_bits: int, data_bits: int = 32):
        self.addr_bits = addr_bits
        self.data_bits = data_bits
        super().__init__({
            "awaddr": Out(addr_bits), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AxiLiteSubordinate(wiring.Component):
    def __init__(self, addr_bits: int, data_bits: int = 32):
        self.addr_bits = addr_bits
        self.data_bits = data_bits
        self._lsb = (data_bits // 8 - 1).bit_length()
        super().__init__({
            "axil": In(AxiLiteSignature(addr_bits, data_bits)),
            "bus": Out(RegisterBusSignature(addr_bits - self._lsb, data_bits)),
        })
        # Arbitration state: the last transaction was a write, so a pending read goes first next.
        # An attribute so that the contract spec can state it as an induction invariant.
        self.last_was_write = Signal()

    def elaborate(self, platform):
        m = Module()
        ax, bus = self.axil, self.bus
        full_strb = (1 << (self.data_bits // 8)) - 1

        last_was_write = self.last_was_write
        bresp = Signal(2)
        rdata = Signal(self.data_bits)
        m.d.comb += [ax.bresp.eq(bresp), ax.rresp.eq(RESP_OKAY), ax.rdata.eq(rdata),
                     bus.w_data.eq(ax.wdata), bus.w_strb.eq(ax.wstrb)]

        with m.FSM():
            with m.State("IDLE"):
                want_w = ax.awvalid & ax.wvalid
                pick_w = Signal()
                m.d.comb += pick_w.eq(want_w & ~(ax.arvalid & last_was_write))
                with m.If(pick_w):
                    whole = ax.wstrb == full_strb
                    m.d.comb += [ax.awready.eq(1), ax.wready.eq(1),
                                 bus.addr.eq(ax.awaddr[self._lsb:]), bus.w_stb.eq(whole)]
                    m.d.sync += [bresp.eq(Mux(whole, RESP_OKAY, RESP_SLVERR)), last_was_write.eq(1)]
                    m.next = "B"
                with m.Elif(ax.arvalid):
                    m.d.comb += [ax.arready.eq(1), bus.addr.eq(ax.araddr[self._lsb:]), bus.r_stb.eq(1)]
                    m.d.sync += last_was_write.eq(0)
                    m.next = "R_CAPTURE"
            with m.State("B"):
                m.d.comb += ax.bvalid.eq(1)
                with m.If(ax.bready):
                    m.next = "IDLE"
            with m.State("R_CAPTURE"):
                # The register bus answers exactly one cycle after r_stb; hold it for RVALID.
                m.d.sync += rdata.eq(bus.r_data)
                m.next = "R"
            with m.State("R"):
                m.d.comb += ax.rvalid.eq(1)
                with m.If(ax.rready):
                    m.next = "IDLE"
        return m

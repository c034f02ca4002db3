"""cocotb side of the host bus: the driver's HostBus protocol over AXI4-Lite.

Two managers, both behind the same protocol (`make_host_bus` picks one, `$AONCIM_HOST_BUS`
overrides: `fast` or `cocotbext`):

- `FastAxiLiteHostBus` (default): a minimal AXI4-Lite manager of our own for bursts of single-word
  transactions. One coroutine per burst keeps the next address (and data) valid as soon as the
  chip's subordinate has taken the previous one and counts responses; it wakes once per clock edge
  while a burst is on the bus and not at all otherwise. About 4x fewer Python cycles per word than
  cocotbext-axi's general master, which matters when loading the default chip's conductances
  (~180 k words for AnalogNet-KWS) and reading every layer's output.
- `AxiLiteHostBus`: cocotbext-axi's `AxiLiteMaster` (queues, events and a coroutine per channel),
  the reference the fast one is checked against (tests/test_cosim.py).

Handshakes are sampled as cocotbext-axi samples them: the value of READY/VALID read right after a
rising edge is the value the flip-flops saw at that edge.
"""
from __future__ import annotations

import logging
import os
import struct

from cocotb.triggers import RisingEdge


class BusError(RuntimeError):
    """The subordinate answered a transaction with an error response."""


class AxiLiteHostBus:
    """Bulk transfers go out as one AxiLiteMaster call, so the master pipelines them."""

    def __init__(self, dut, prefix: str = "s_axil_"):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster

        self.dut = dut
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, prefix), dut.clk, dut.rst)
        # cocotbext-axi logs every transaction at INFO: on a program load or a memory dump that is
        # megabytes of log (and ~5 % of the wall time). Warnings and errors still show.
        for port in (self.master.write_if, self.master.read_if):
            port.log.setLevel(logging.WARNING)

    async def write_words(self, addr: int, words: list[int]) -> None:
        if words:
            await self.master.write(addr, struct.pack(f"<{len(words)}I", *words))

    async def read_words(self, addr: int, n: int) -> list[int]:
        data = await self.master.read(addr, 4 * n)
        return list(struct.unpack(f"<{n}I", data.data))

    async def wait_irq(self) -> None:
        # The RTL runs on its own between host transactions; we only wake on its interrupt.
        if not int(self.dut.irq.value):
            await RisingEdge(self.dut.irq)


class FastAxiLiteHostBus:
    """A lean AXI4-Lite manager for the chip's one-transaction-at-a-time subordinate (hw/axil.py).

    A write burst holds AWVALID and WVALID with word i until the subordinate takes both (AWREADY
    and WREADY at an edge), then presents word i+1; BREADY and RREADY stay high, and every B or R
    beat is checked (a non-OKAY response raises BusError). Reads are the same on AR and R, data
    in order. One burst at a time (the driver awaits each call)."""

    def __init__(self, dut, prefix: str = "s_axil_"):
        self.dut = dut
        sig = lambda name: getattr(dut, f"{prefix}_{name}")  # noqa: E731
        self.awaddr, self.awvalid, self.awready = sig("awaddr"), sig("awvalid"), sig("awready")
        self.wdata, self.wstrb, self.wvalid, self.wready = sig("wdata"), sig("wstrb"), sig("wvalid"), sig("wready")
        self.bresp, self.bvalid, self.bready = sig("bresp"), sig("bvalid"), sig("bready")
        self.araddr, self.arvalid, self.arready = sig("araddr"), sig("arvalid"), sig("arready")
        self.rdata, self.rresp, self.rvalid, self.rready = sig("rdata"), sig("rresp"), sig("rvalid"), sig("rready")
        self.edge = RisingEdge(dut.clk)
        self.awvalid.value = 0
        self.wvalid.value = 0
        self.arvalid.value = 0
        self.awaddr.value = 0
        self.araddr.value = 0
        self.wdata.value = 0
        self.wstrb.value = (1 << len(self.wstrb)) - 1
        self.bready.value = 1
        self.rready.value = 1

    def idle(self) -> None:
        """Drop every VALID (after a burst was cancelled, e.g. by a timeout)."""
        self.awvalid.value = 0
        self.wvalid.value = 0
        self.arvalid.value = 0

    async def write_words(self, addr: int, words: list[int]) -> None:
        n = len(words)
        if not n:
            return
        sent = pending = 0
        self.awaddr.value = addr
        self.wdata.value = words[0] & 0xFFFFFFFF
        self.awvalid.value = 1
        self.wvalid.value = 1
        edge, awready, wready, bvalid = self.edge, self.awready, self.wready, self.bvalid
        while sent < n or pending:
            await edge
            if pending and bvalid.value:
                pending -= 1
                if int(self.bresp.value):
                    self.awvalid.value = 0
                    self.wvalid.value = 0
                    raise BusError(f"write of {addr + 4 * (sent - 1):#x} answered with BRESP {int(self.bresp.value)}")
            if sent < n and awready.value and wready.value:
                sent += 1
                pending += 1
                if sent < n:
                    self.awaddr.value = addr + 4 * sent
                    self.wdata.value = words[sent] & 0xFFFFFFFF
                else:
                    self.awvalid.value = 0
                    self.wvalid.value = 0

    async def read_words(self, addr: int, n: int) -> list[int]:
        if n <= 0:
            return []
        out: list[int] = []
        sent = 0
        self.araddr.value = addr
        self.arvalid.value = 1
        edge, arready, rvalid, rdata = self.edge, self.arready, self.rvalid, self.rdata
        while len(out) < n:
            await edge
            if rvalid.value:
                if int(self.rresp.value):
                    self.arvalid.value = 0
                    raise BusError(f"read of {addr + 4 * len(out):#x} answered with RRESP {int(self.rresp.value)}")
                out.append(int(rdata.value))
            if sent < n and arready.value:
                sent += 1
                if sent < n:
                    self.araddr.value = addr + 4 * sent
                else:
                    self.arvalid.value = 0
        return out

    async def wait_irq(self) -> None:
        if not int(self.dut.irq.value):
            await RisingEdge(self.dut.irq)


def make_host_bus(dut, kind: str | None = None):
    kind = kind or os.environ.get("AONCIM_HOST_BUS", "fast")
    if kind == "fast":
        return FastAxiLiteHostBus(dut)
    if kind == "cocotbext":
        return AxiLiteHostBus(dut)
    raise ValueError(f"AONCIM_HOST_BUS={kind!r}: choose fast or cocotbext")

"""cocotb side of the host bus: the driver's HostBus protocol over cocotbext-axi's AXI4-Lite master."""
from __future__ import annotations

import logging
import struct

from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster


class AxiLiteHostBus:
    """Bulk transfers go out as one AxiLiteMaster call, so the master pipelines them."""

    def __init__(self, dut, prefix: str = "s_axil_"):
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

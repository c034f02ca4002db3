"""The driver's HostBus protocol over Amaranth's Python simulator (register-bus level).

Lets the same host driver run the core in `amaranth.sim` — slower than Verilator but with no
build step, used for block-level tests and the simulator-speed benchmark.
"""
from __future__ import annotations


class AmaranthHostBus:
    def __init__(self, ctx, bus, irq):
        self.ctx, self.bus, self.irq = ctx, bus, irq

    async def write_words(self, addr: int, words: list[int]) -> None:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.w_stb, 1)
        for i, w in enumerate(words):
            ctx.set(bus.addr, (addr >> 2) + i)
            ctx.set(bus.w_data, w)
            await ctx.tick()
        ctx.set(bus.w_stb, 0)

    async def read_words(self, addr: int, n: int) -> list[int]:
        ctx, bus = self.ctx, self.bus
        out = []
        for i in range(n):
            ctx.set(bus.addr, (addr >> 2) + i)
            ctx.set(bus.r_stb, 1)
            await ctx.tick()
            ctx.set(bus.r_stb, 0)
            out.append(ctx.get(bus.r_data))
        return out

    async def wait_irq(self) -> None:
        if not self.ctx.get(self.irq):
            await self.ctx.tick().until(self.irq)

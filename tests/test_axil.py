"""AXI4-Lite subordinate against a word memory behind the register bus (Amaranth simulator)."""
import numpy as np
from amaranth import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from aoncim.hw.axil import RESP_OKAY, RESP_SLVERR, AxiLiteSubordinate

ADDR_BITS, DEPTH = 8, 64


class Harness(Elaboratable):
    """The subordinate in front of a synchronous-read memory: the register bus contract."""

    def __init__(self):
        self.dut = AxiLiteSubordinate(ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.mem = mem = Memory(shape=32, depth=DEPTH, init=[])
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(dut.bus.addr), w.data.eq(dut.bus.w_data), w.en.eq(dut.bus.w_stb),
                     r.addr.eq(dut.bus.addr), dut.bus.r_data.eq(r.data)]
        return m


async def axi_write(ctx, ax, addr, data, strb=0xF):
    ctx.set(ax.awaddr, addr), ctx.set(ax.awvalid, 1)
    ctx.set(ax.wdata, data), ctx.set(ax.wstrb, strb), ctx.set(ax.wvalid, 1)
    await ctx.tick().until(ax.awready & ax.wready)
    ctx.set(ax.awvalid, 0), ctx.set(ax.wvalid, 0), ctx.set(ax.bready, 1)
    (resp,) = await ctx.tick().sample(ax.bresp).until(ax.bvalid)
    ctx.set(ax.bready, 0)
    return resp


async def axi_read(ctx, ax, addr):
    ctx.set(ax.araddr, addr), ctx.set(ax.arvalid, 1)
    await ctx.tick().until(ax.arready)
    ctx.set(ax.arvalid, 0), ctx.set(ax.rready, 1)
    data, resp = await ctx.tick().sample(ax.rdata, ax.rresp).until(ax.rvalid)
    ctx.set(ax.rready, 0)
    return data, resp


def run(testbench):
    h = Harness()
    sim = Simulator(h)
    sim.add_clock(1e-8)

    async def bench(ctx):
        await testbench(ctx, h.dut.axil)

    sim.add_testbench(bench)
    sim.run()


def test_write_then_read_every_word():
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(0, 2**32, DEPTH, dtype=np.uint64)]
    got = []

    async def tb(ctx, ax):
        for i, v in enumerate(values):
            assert await axi_write(ctx, ax, 4 * i, v) == RESP_OKAY
        for i in range(DEPTH):
            data, resp = await axi_read(ctx, ax, 4 * i)
            assert resp == RESP_OKAY
            got.append(data)

    run(tb)
    assert got == values


def test_partial_write_is_refused_and_has_no_effect():
    async def tb(ctx, ax):
        assert await axi_write(ctx, ax, 8, 0x11223344) == RESP_OKAY
        assert await axi_write(ctx, ax, 8, 0xDEADBEEF, strb=0b0011) == RESP_SLVERR
        assert await axi_read(ctx, ax, 8) == (0x11223344, RESP_OKAY)

    run(tb)


def test_read_data_held_while_rready_low():
    """AXI requires RDATA stable while RVALID is high and RREADY low, even if the source changes."""
    async def tb(ctx, ax):
        await axi_write(ctx, ax, 0, 0xAAAA5555)
        ctx.set(ax.araddr, 0), ctx.set(ax.arvalid, 1)
        await ctx.tick().until(ax.arready)
        ctx.set(ax.arvalid, 0)
        await ctx.tick().until(ax.rvalid)
        for _ in range(5):
            assert ctx.get(ax.rvalid) and ctx.get(ax.rdata) == 0xAAAA5555
            await ctx.tick()
        ctx.set(ax.rready, 1)
        await ctx.tick()
        ctx.set(ax.rready, 0)
        assert not ctx.get(ax.rvalid)

    run(tb)


def test_reads_and_writes_alternate_under_contention():
    """With a write and a read both pending every cycle, neither channel starves."""
    order = []

    async def tb(ctx, ax):
        ctx.set(ax.awvalid, 1), ctx.set(ax.wvalid, 1), ctx.set(ax.wstrb, 0xF), ctx.set(ax.arvalid, 1)
        ctx.set(ax.bready, 1), ctx.set(ax.rready, 1)
        for _ in range(40):
            await ctx.tick()
            if ctx.get(ax.bvalid):
                order.append("w")
            if ctx.get(ax.rvalid):
                order.append("r")

    run(tb)
    assert order.count("w") >= 5 and order.count("r") >= 5
    assert "ww" not in "".join(order) and "rr" not in "".join(order)

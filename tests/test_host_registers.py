"""The host registers from the bus side, checked by their effect (Amaranth simulator, no Verilator).

`HostInterface` (hw/host.py) alone: every writable register is written at the byte address the
register table gives (`aoncim.regmap.REGISTERS`: word offset x 4 in the REGS region) and checked on
the ports it drives -- NUM_LAYERS on `run.num_layers`, MVM_BASE on `run.mvm_base`, NOISE_SEED on
`noise_seed`, ALPHA[i] on `run.alpha` while `run.layer == i` (every layer, the last included), CTRL's
bits as the start/continue strobes and the step level, IRQ_ENABLE and IRQ_STATUS on the interrupt
line, ACT_PACK on `act_pack` -- and the read-only registers are driven from the sequencer's side and
read at their offsets, STATUS field by field at the table's bit positions. A write to any other word
of the REGS region must change none of these effects.

The memory windows the same way (`check_window_decode`): a write anywhere in a window's region
(the depthwise weights' DWW among them) strobes that window's write enable alone, with the offset
and data; a read returns that window's data (DWW: the top level's sign-extended weight); the
regions past the last window strobe nothing and read 0.

Why not read-back: a decoder that puts a register at the wrong offset reads it back from the same
wrong offset, so a write-then-read test passes (an ALPHA decode one word off did). An effect on
another port cannot share that bug. `check_register_effects` takes the component class, so the same
check runs on mutants of hw/host.py and must fail on each (`test_effect_check_catches_decode_bugs`).
"""
import pytest
from amaranth.sim import Simulator

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.regmap import REGION_BITS, REGISTER, REGISTERS, AddressMap, Region, can_pack_act
from aoncim.sim.jobs import SMALL_CFG

SMALL = SMALL_CFG
# Enough layers that the ALPHA registers overflow 64 words: the REGS window grows to 128.
MANY = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=256, out_depth=64, param_depth=128, max_layers=64)
CONFIGS = pytest.mark.parametrize("cfg", [DEFAULT_CONFIG, SMALL, MANY], ids=["default", "small", "many-layers"])

# The registers whose effect is checked, and the ports each drives (ALPHA: one effect per layer).
WRITABLE = ("CTRL", "IRQ_STATUS", "IRQ_ENABLE", "NUM_LAYERS", "NOISE_SEED", "MVM_BASE", "ACT_PACK", "ALPHA")


def bit(reg: str, field: str) -> int:
    """The mask of a field, from the table (not from the names the RTL imports)."""
    f = REGISTER[reg].field(field)
    return ((1 << f.width) - 1) << f.lsb


def check_register_effects(host_cls, cfg: AonCimConfig) -> None:
    """Simulate `host_cls(cfg)` (HostInterface or a mutant of it) and assert every register's
    effect, as described in the module docstring; raises AssertionError naming the first wrong one."""
    dut = host_cls(cfg)
    amap = AddressMap(cfg)
    run = dut.run
    # The bus is word-addressed: a register's bus address is its byte address / 4.
    regs_word = amap.base(Region.REGS) // 4
    n_words = amap.window_words[Region.REGS]
    alpha_reg = REGISTER["ALPHA"]
    alpha_words = {alpha_reg.word + i: i for i in range(alpha_reg.length(cfg))}
    irq_bits = [bit("IRQ_STATUS", n) for n in ("DONE", "PAUSED", "ERROR")]

    async def bench(ctx):
        strobes = {"start": 0, "cont": 0}  # of the last write

        async def write(word: int, value: int) -> None:
            ctx.set(dut.bus.addr, regs_word + word)
            ctx.set(dut.bus.w_data, value)
            ctx.set(dut.bus.w_stb, 1)
            await ctx.tick()
            ctx.set(dut.bus.w_stb, 0)
            # The strobes are one-cycle pulses in the cycle after the write: note them, then check
            # they fall again.
            strobes["start"], strobes["cont"] = ctx.get(run.start), ctx.get(run.cont)
            await ctx.tick()
            assert not ctx.get(run.start) and not ctx.get(run.cont), f"word {word}: strobe longer than a cycle"

        async def read(word: int) -> int:
            ctx.set(dut.bus.addr, regs_word + word)
            ctx.set(dut.bus.r_stb, 1)
            await ctx.tick()
            ctx.set(dut.bus.r_stb, 0)
            return ctx.get(dut.bus.r_data)  # one cycle after r_stb

        async def events(mask: int) -> None:
            """The sequencer's one-cycle interrupt events (IRQ bit order: done, paused, error)."""
            for ev, b in zip((run.ev_done, run.ev_paused, run.ev_error), irq_bits):
                ctx.set(ev, bool(mask & b))
            await ctx.tick()
            for ev in (run.ev_done, run.ev_paused, run.ev_error):
                ctx.set(ev, 0)

        def effects() -> dict:
            """What the registers drive, seen on the ports: ALPHA[i] as `run.alpha` with run.layer = i."""
            e = {"num_layers": ctx.get(run.num_layers), "mvm_base": ctx.get(run.mvm_base),
                 "noise_seed": ctx.get(dut.noise_seed), "step": ctx.get(run.step), "act_pack": ctx.get(dut.act_pack),
                 "irq": ctx.get(dut.irq)}
            for i in range(cfg.max_layers):
                ctx.set(run.layer, i)
                e[f"alpha[{i}]"] = ctx.get(run.alpha)
            ctx.set(run.layer, 0)
            return e

        def changed(before: dict, after: dict) -> dict:
            return {k: (before[k], after[k]) for k in before if before[k] != after[k]}

        async def expect(word: int, value: int, what: str, start: int = 0, cont: int = 0, **want) -> None:
            """Write `value` at `word`: exactly the effects `want` change, to the values given, and
            the strobes pulse as given."""
            before = effects()
            await write(word, value)
            got = changed(before, effects())
            want = {k: (before[k], v) for k, v in want.items() if before[k] != v}
            assert got == want, f"{what} (word {word}, {value:#x}): effects changed {got}, expected {want}"
            assert strobes == {"start": start, "cont": cont}, f"{what} (word {word}, {value:#x}): strobes {strobes}"

        # ---------------------------------------------------------------- writable registers
        w = {r.name: r.word for r in REGISTERS}
        await expect(w["NUM_LAYERS"], 0x1234_5677, "NUM_LAYERS", num_layers=0x1234_5677)
        await expect(w["MVM_BASE"], 0xFFFF_0011, "MVM_BASE", mvm_base=0xFFFF_0011)
        await expect(w["NOISE_SEED"], 0x8765_4322, "NOISE_SEED", noise_seed=0x8765_4322)
        # Every layer's own value, neither 0 nor all ones (the stray writes below write those).
        alphas = [1 + (0x5A5 * (i + 1)) % ((1 << cfg.alpha_bits) - 2) for i in range(cfg.max_layers)]
        alphas = [a + 1 if a == cfg.alpha_one else a for a in alphas]  # not the reset value: a visible change
        for word, i in alpha_words.items():
            await expect(word, alphas[i], f"ALPHA[{i}]", **{f"alpha[{i}]": alphas[i]})
        # CTRL: START and CONTINUE pulse once; STEP is a level.
        await expect(w["CTRL"], bit("CTRL", "START"), "CTRL.START", start=1)
        await expect(w["CTRL"], bit("CTRL", "CONTINUE") | bit("CTRL", "STEP"), "CTRL.CONTINUE|STEP", cont=1, step=1)
        await expect(w["CTRL"], bit("CTRL", "STEP"), "CTRL.STEP", step=1)
        await expect(w["CTRL"], 0, "CTRL = 0", step=0)
        await expect(w["CTRL"], bit("CTRL", "STEP"), "CTRL.STEP", step=1)
        if can_pack_act(cfg):
            await expect(w["ACT_PACK"], bit("ACT_PACK", "PACK"), "ACT_PACK.PACK", act_pack=1)
        # Interrupts, one source at a time: an event raises irq only where IRQ_ENABLE has its bit,
        # and writing the bit to IRQ_STATUS (W1C) clears it.
        for b in irq_bits:
            await events(b)
            assert not ctx.get(dut.irq), f"IRQ bit {b:#x}: interrupt with IRQ_ENABLE = 0"
            await expect(w["IRQ_ENABLE"], b, f"IRQ_ENABLE {b:#x} with the event pending", irq=1)
            await expect(w["IRQ_ENABLE"], 0b111 & ~b, f"IRQ_ENABLE without {b:#x}", irq=0)
            await expect(w["IRQ_ENABLE"], b, f"IRQ_ENABLE {b:#x}", irq=1)
            await expect(w["IRQ_STATUS"], 0b111 & ~b, f"IRQ_STATUS W1C of the other bits than {b:#x}")
            await expect(w["IRQ_STATUS"], b, f"IRQ_STATUS W1C {b:#x}", irq=0)
        # Leave every event pending and enabled: a stray write to an alias of IRQ_ENABLE (zero) or
        # IRQ_STATUS (ones) then drops the interrupt.
        await events(0b111)
        await expect(w["IRQ_ENABLE"], 0b111, "IRQ_ENABLE all", irq=1)

        # ---------------------------------------------------------------- no aliasing
        # Every other word of the REGS region, written with all ones and with zero, changes nothing
        # (all ones would start a run, enable and clear interrupts, pack, ...; zero would clear
        # any register it aliased, as every value set above is non-zero).
        decoded = {w[n] for n in WRITABLE if n != "ALPHA"} | set(alpha_words)
        for word in range(n_words):
            if word in decoded:
                continue
            for value in (0xFFFF_FFFF, 0):
                await expect(word, value, "write outside every writable register")

        # ---------------------------------------------------------------- read-only registers
        status = REGISTER["STATUS"]
        drive = {"BUSY": run.busy, "DONE": run.done, "PAUSED": run.paused, "ERROR": run.error,
                 "LAYER": run.layer, "ERROR_CODE": run.error_code}
        assert set(drive) == {f.name for f in status.all_fields()}, "a STATUS field this test does not drive"
        for k, (layer, code, flags) in enumerate([(cfg.max_layers - 1, 0xA5, 0b1010), (1, 0x5A, 0b0101),
                                                  (0, 0xFF, 0b1111), (cfg.max_layers - 1, 1, 0)]):
            vals = {"BUSY": flags & 1, "DONE": flags >> 1 & 1, "PAUSED": flags >> 2 & 1, "ERROR": flags >> 3 & 1,
                    "LAYER": layer, "ERROR_CODE": code}
            for name, sig in drive.items():
                ctx.set(sig, vals[name])
            ctx.set(run.cycles, 0x0BAD_F00D + k)
            ctx.set(run.mvms, 0x00C0_FFEE + k)
            want = sum(vals[f.name] << f.lsb for f in status.all_fields())
            assert await read(w["STATUS"]) == want, f"STATUS with {vals}"
            assert await read(w["CYCLES"]) == 0x0BAD_F00D + k, "CYCLES"
            assert await read(w["MVMS"]) == 0x00C0_FFEE + k, "MVMS"
        ctx.set(run.layer, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def check_window_decode(host_cls, cfg: AonCimConfig) -> None:
    """Simulate `host_cls(cfg)` and assert the window decode of every region (module docstring)."""
    dut = host_cls(cfg)
    amap = AddressMap(cfg)
    rb = amap.region_word_bits
    size = amap.window_words

    async def bench(ctx):
        # Every window's read data distinct (and the DWW's a negative weight, sign-extended).
        data = {r: (0x1000_0001 * (int(r) + 1)) & 0xFFFF_FFFF for r in Region if r != Region.REGS}
        data[Region.DWW] = 0xFFFF_FF85
        for r, v in data.items():
            ctx.set(dut.win_rdata[r], v)
        for region in range(1, 1 << REGION_BITS):
            mapped = region < len(Region)
            words = size[Region(region)] if mapped else 1 << rb
            for k in sorted({0, 1, words // 3, words - 1}):
                value = (0xA5A5_0000 + 31 * region + k) & 0xFFFF_FFFF
                ctx.set(dut.bus.addr, (region << rb) + k)
                ctx.set(dut.bus.w_data, value)
                ctx.set(dut.bus.w_stb, 1)
                we = [ctx.get(dut.win_we[r]) for r in Region if r != Region.REGS]
                want = [int(r == region) for r in Region if r != Region.REGS]
                assert we == want, f"region {region} word {k}: write strobes {we}, expected {want}"
                assert (ctx.get(dut.win_addr), ctx.get(dut.win_wdata)) == (k, value), f"region {region} word {k}"
                await ctx.tick()
                ctx.set(dut.bus.w_stb, 0)
                ctx.set(dut.bus.r_stb, 1)
                await ctx.tick()
                ctx.set(dut.bus.r_stb, 0)
                got = ctx.get(dut.bus.r_data)
                assert got == (data[Region(region)] if mapped else 0), f"region {region} word {k}: read {got:#x}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@CONFIGS
def test_every_window_is_decoded_at_its_region(cfg):
    from aoncim.hw.host import HostInterface

    assert Region.DWW in Region and len(Region) <= 1 << REGION_BITS
    check_window_decode(HostInterface, cfg)


@CONFIGS
def test_every_register_has_its_effect_at_the_tables_offset(cfg):
    from aoncim.hw.host import HostInterface

    check_register_effects(HostInterface, cfg)


# Decode bugs a read-back test cannot see (the read path decodes the same wrong offset) or sees only
# by chance; each must fail the effect check.
DECODE_BUGS = {
    "alpha one word late": ("alpha_off.eq(word - ALPHA_BASE)", "alpha_off.eq(word - ALPHA_BASE - 1)"),
    "last alpha not decoded": ("(word < ALPHA_BASE + cfg.max_layers)", "(word < ALPHA_BASE + cfg.max_layers - 1)"),
    "NUM_LAYERS decoded at MVM_BASE": ("with m.Case(Reg.NUM_LAYERS):", "with m.Case(Reg.MVM_BASE, Reg.NUM_LAYERS):"),
    "CONTINUE from the STEP bit": ("run.cont.eq(bus.w_data[CTRL_CONTINUE.bit_length() - 1])",
                                   "run.cont.eq(bus.w_data[CTRL_STEP.bit_length() - 1])"),
    "STATUS.LAYER one bit low": ("run.error, Signal(4), run.layer", "run.error, Signal(3), run.layer"),
}


@pytest.mark.parametrize("bug", list(DECODE_BUGS))
def test_effect_check_catches_decode_bugs(bug):
    from aoncim.sim.mutation import mutant_module

    broken = mutant_module("aoncim.hw.host", *DECODE_BUGS[bug])
    with pytest.raises(AssertionError):
        check_register_effects(broken.HostInterface, SMALL)


WINDOW_BUGS = {
    # the region select one bit short: DWW (region 8) aliases REGS, the unused regions alias windows
    "three region bits": ("region = Signal(REGION_BITS)", "region = Signal(3)"),
    "DWW reads as GCODE": ("m.d.comb += win_q.eq(self.win_rdata[reg])",
                           "m.d.comb += win_q.eq(self.win_rdata[min(reg, Region.GCODE)])"),
}


@pytest.mark.parametrize("bug", list(WINDOW_BUGS))
def test_window_check_catches_decode_bugs(bug):
    from aoncim.sim.mutation import mutant_module

    broken = mutant_module("aoncim.hw.host", *WINDOW_BUGS[bug])
    with pytest.raises(AssertionError):
        check_window_decode(broken.HostInterface, SMALL)

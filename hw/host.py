"""Host register file and window decoder behind the register bus.

Registers and their bits are defined in `aoncim.regmap`; this block implements them and routes
window accesses (program, parameters, activations, output, conductances) to the top level, which
owns the memories. Reads answer one cycle after `r_stb`, as the bus contract requires. Writes are
whole words (byte strobes are ignored: every register and window element is a word).
"""
from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.regmap import (ALPHA_BASE, CHIP_ID, CTRL_CONTINUE, CTRL_START, CTRL_STEP, IRQ_DONE, IRQ_ERROR,
                           IRQ_PAUSED, REGION_BITS, AddressMap, Reg, Region, can_pack_act)

from .bus import RegisterBusSignature


class RunControlSignature(wiring.Signature):
    """The host's control of a run and the run's status (host registers to `LayerSequencer`).

    Control (CTRL and the registers of the run, `aoncim.regmap`):
      start, cont  one-cycle strobes of CTRL.START / CTRL.CONTINUE
      step         CTRL.STEP: pause after every layer
      num_layers   NUM_LAYERS, the whole register (a value beyond max_layers is refused, not wrapped)
      mvm_base     MVM_BASE: the read-noise MVM counter of the run's first MVM
      alpha        the ALPHA register of layer `layer` (combinational)
    Status (STATUS, CYCLES, MVMS) and the interrupt events, from the sequencer:
      busy, done, paused, error, error_code, layer, cycles, mvms
      ev_done, ev_paused, ev_error  one-cycle events into IRQ_STATUS
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "start": Out(1), "cont": Out(1), "step": Out(1), "num_layers": Out(32), "mvm_base": Out(32),
            "alpha": Out(cfg.alpha_bits),
            "busy": In(1), "done": In(1), "paused": In(1), "error": In(1), "error_code": In(8),
            "layer": In(range(cfg.max_layers)), "cycles": In(32), "mvms": In(32),
            "ev_done": In(1), "ev_paused": In(1), "ev_error": In(1),
        })


class HostInterface(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        self.amap = AddressMap(cfg)
        rb = self.amap.region_word_bits
        super().__init__({
            "bus": In(RegisterBusSignature(self.amap.word_addr_bits)),
            "run": Out(RunControlSignature(cfg)),
            # the array's noise seed, packed activation reads, the interrupt
            "noise_seed": Out(32), "act_pack": Out(1), "irq": Out(1),
            # windows: offset within the region, a write strobe per region, read data per region
            "win_addr": Out(rb),
            "win_wdata": Out(32),
            "win_we": Out(data.ArrayLayout(1, len(Region))),
            "win_rdata": In(data.ArrayLayout(32, len(Region))),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        bus = self.bus
        run = self.run
        rb = self.amap.region_word_bits
        region = Signal(REGION_BITS)
        m.d.comb += [region.eq(bus.addr[rb:]), self.win_addr.eq(bus.addr[:rb]), self.win_wdata.eq(bus.w_data)]
        for reg in Region:
            if reg != Region.REGS:
                m.d.comb += self.win_we[reg].eq(bus.w_stb & (region == reg))

        irq_status = Signal(3)
        irq_enable = Signal(3)
        m.d.comb += self.irq.eq((irq_status & irq_enable).any())
        events = Cat(run.ev_done, run.ev_paused, run.ev_error)
        irq_clear = Signal(3)

        reg_w = bus.w_stb & (region == Region.REGS)
        word = bus.addr[:rb]

        # One alpha register per layer, reset to 1.0 so a host that never calibrates runs uncompensated.
        alphas = Array(Signal(cfg.alpha_bits, init=cfg.alpha_one, name=f"alpha{i}") for i in range(cfg.max_layers))
        alpha_off = Signal(range(cfg.max_layers))
        is_alpha = Signal()
        m.d.comb += [
            alpha_off.eq(word - ALPHA_BASE),
            is_alpha.eq((word >= ALPHA_BASE) & (word < ALPHA_BASE + cfg.max_layers)),
            run.alpha.eq(alphas[run.layer]),
        ]
        with m.If(reg_w & is_alpha):
            m.d.sync += alphas[alpha_off].eq(bus.w_data)
        m.d.sync += [run.start.eq(0), run.cont.eq(0)]
        with m.If(reg_w):
            with m.Switch(word):
                with m.Case(Reg.CTRL):
                    m.d.sync += [
                        run.start.eq(bus.w_data[CTRL_START.bit_length() - 1]),
                        run.cont.eq(bus.w_data[CTRL_CONTINUE.bit_length() - 1]),
                        run.step.eq(bus.w_data[CTRL_STEP.bit_length() - 1]),
                    ]
                with m.Case(Reg.IRQ_STATUS):
                    m.d.comb += irq_clear.eq(bus.w_data[:3])
                with m.Case(Reg.IRQ_ENABLE):
                    m.d.sync += irq_enable.eq(bus.w_data[:3])
                with m.Case(Reg.NUM_LAYERS):
                    m.d.sync += run.num_layers.eq(bus.w_data)
                with m.Case(Reg.NOISE_SEED):
                    m.d.sync += self.noise_seed.eq(bus.w_data)
                with m.Case(Reg.MVM_BASE):
                    m.d.sync += run.mvm_base.eq(bus.w_data)
                with m.Case(Reg.ACT_PACK):
                    if can_pack_act(cfg):
                        m.d.sync += self.act_pack.eq(bus.w_data[0])
        # Events set, write-one clears; a new event wins over a clear in the same cycle.
        m.d.sync += irq_status.eq((irq_status & ~irq_clear) | events)
        assert (IRQ_DONE, IRQ_PAUSED, IRQ_ERROR) == (1, 2, 4)

        status = Cat(run.busy, run.done, run.paused, run.error, Signal(4), run.layer,
                     Signal(8 - run.layer.shape().width), run.error_code)
        reg_rdata = Signal(32)
        with m.If(is_alpha):
            m.d.comb += reg_rdata.eq(alphas[alpha_off])
        with m.Switch(word):
            for reg, value in (
                (Reg.ID, CHIP_ID), (Reg.CONFIG_HASH, cfg.config_hash),
                (Reg.CTRL, run.step << (CTRL_STEP.bit_length() - 1)),
                (Reg.STATUS, status), (Reg.IRQ_STATUS, irq_status), (Reg.IRQ_ENABLE, irq_enable),
                (Reg.NUM_LAYERS, run.num_layers), (Reg.NOISE_SEED, self.noise_seed),
                (Reg.CYCLES, run.cycles), (Reg.MVMS, run.mvms), (Reg.MVM_BASE, run.mvm_base),
                (Reg.ACT_PACK, self.act_pack),
            ):
                with m.Case(reg):
                    m.d.comb += reg_rdata.eq(value)
        reg_q = Signal(32)
        region_q = Signal(REGION_BITS)
        m.d.sync += [reg_q.eq(reg_rdata), region_q.eq(region)]
        # The regions past the last window read 0 (and no write strobe reaches them).
        win_q = Signal(32)
        with m.Switch(region_q):
            for reg in Region:
                if reg != Region.REGS:
                    with m.Case(reg):
                        m.d.comb += win_q.eq(self.win_rdata[reg])
        m.d.comb += bus.r_data.eq(Mux(region_q == Region.REGS, reg_q, win_q))
        return m

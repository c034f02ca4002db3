"""Stage A of an MVM layer: the array's part of one MVM a beat. The PWM window of 2**in_bits
cycles integrates the DAC-register bank's inputs, then one ADC conversion per slot the tile's
columns touch; the codes land in the MVM's half of the code buffer, where stage P reads them during
the next beat.

Split out of `LayerSequencer` so that the array's timing (which conversions, when, into which
half) is specified and tested (tests/test_array_control_stage.py) on its own; its cycle count is
`perf.cycles.array_cycles`.
"""
from amaranth import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .array_port import ConvertSignature, codes_layout
from .descriptor import descriptor_layout
from .postproc import pp_addr_bits


class MvmHandoffSignature(wiring.Signature):
    """The MVM a stage of the MVM pipeline holds this beat, as the next stage takes it over at the
    beat's end (stage L to A, A to P).

      valid     the stage has an MVM this beat
      tcol0     array column of the MVM's row tile (col0 + tile * out_c)
      parity    MVM k's DAC-register bank and code-buffer half (k mod 2)
      tile      its row tile
      out_base  output address of its position's channel 0
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "valid": Out(1), "tcol0": Out(range(cfg.cols)), "parity": Out(1),
            "tile": Out(range(cfg.max_row_tiles)), "out_base": Out(pp_addr_bits(cfg)),
        })


class CodeReadSignature(wiring.Signature):
    """Stage P's read of the code buffer (reader to buffer): the codes of ADC slot `slot` and of the
    next slot (wrapping) in half `parity`, `data` lane i + n_adcs * k = ADC i's code of slot
    slot + k, a cycle after the address. Two slots, because `pp_lanes` consecutive columns lie in at
    most two (pp_lanes <= n_adcs)."""

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "parity": Out(1), "slot": Out(range(cfg.cols // cfg.n_adcs)),
            "data": In(data.ArrayLayout(codes_layout(cfg).elem_shape, 2 * cfg.n_adcs)),
        })


class ArrayControl(wiring.Component):
    """Stage A: per beat, the MVM taken over from stage L (`prev`) at the previous beat's end.

    `desc` is the layer's descriptor, stable for the layer. At `next` (the beat's end) the stage
    takes `prev` over and offers the MVM it held on `mvm`; with `mvm.valid` it counts the PWM
    window, 2**in_bits cycles from the cycle after `next`, then strobes `conv` once per ADC slot of
    the tile's columns tcol0 .. tcol0 + out_c - 1, lowest first, a slot a cycle, on DAC-register bank
    `mvm.parity` with read-noise counter `noise_mvm`. `done` is high in the cycles the stage has
    nothing left to do this beat: no MVM, conversions over, or the last one now. The `codes` a
    conversion returns a cycle later go to code-buffer half `parity`, word `slot`; `code_rd` reads
    them (stage P, the next beat).
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "desc": In(descriptor_layout()),
            "next": In(1),
            "prev": In(MvmHandoffSignature(cfg)),
            "mvm": Out(MvmHandoffSignature(cfg)),
            "done": Out(1),
            "noise_mvm": In(32),
            "conv": Out(ConvertSignature(cfg)),
            "codes": In(codes_layout(cfg)),
            "code_rd": In(CodeReadSignature(cfg)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        d = self.desc
        n_log2 = (c.n_adcs - 1).bit_length()
        n_slots = c.cols // c.n_adcs
        mvm = self.mvm

        fin = Signal()                  # the MVM's conversions are over
        pwm = Signal(c.dac_bits + 1)
        converting = Signal()           # the PWM window is over
        slot = Signal(range(n_slots))
        s_lo, s_hi = Signal.like(slot), Signal.like(slot)
        tcol_end = Signal(range(c.cols))
        m.d.comb += [
            tcol_end.eq(mvm.tcol0 + d.out_c - 1),
            s_lo.eq(mvm.tcol0 >> n_log2), s_hi.eq(tcol_end >> n_log2),
            self.conv.slot.eq(slot), self.conv.bank.eq(mvm.parity), self.conv.bits.eq(d.in_bits),
            self.conv.mvm.eq(self.noise_mvm),
        ]
        last = Signal()
        m.d.comb += self.done.eq(~mvm.valid | fin | last)
        with m.If(mvm.valid & ~fin):
            with m.If(~converting):
                m.d.sync += pwm.eq(pwm + 1)
                with m.If(pwm == (1 << d.in_bits) - 1):
                    m.d.sync += [converting.eq(1), slot.eq(s_lo)]
            with m.Else():
                m.d.comb += [self.conv.stb.eq(1), last.eq(slot == s_hi)]
                m.d.sync += slot.eq(slot + 1)
                with m.If(slot == s_hi):
                    m.d.sync += fin.eq(1)
        # After the work above: the beat's end restarts the stage on the MVM stage L hands over.
        with m.If(self.next):
            m.d.sync += [fin.eq(0), pwm.eq(0), converting.eq(0)]
            m.d.sync += [mvm.valid.eq(self.prev.valid), mvm.tcol0.eq(self.prev.tcol0),
                         mvm.parity.eq(self.prev.parity), mvm.tile.eq(self.prev.tile),
                         mvm.out_base.eq(self.prev.out_base)]

        # Codes of a conversion arrive a cycle later; they go to the code-buffer half of the MVM.
        m.submodules.code_buf = code_buf = Memory(shape=codes_layout(c), depth=2 * n_slots, init=[])
        cb_w = code_buf.write_port()
        cq_stb, cq_slot, cq_par = Signal(), Signal.like(slot), Signal()
        m.d.sync += [cq_stb.eq(self.conv.stb), cq_slot.eq(slot), cq_par.eq(mvm.parity)]
        m.d.comb += [cb_w.addr.eq(cq_par * n_slots + cq_slot), cb_w.data.eq(self.codes), cb_w.en.eq(cq_stb)]
        rd = self.code_rd
        slot_bits = (n_slots - 1).bit_length()
        ports = [code_buf.read_port(transparent_for=(cb_w,)) for _ in range(2)]
        for k, port in enumerate(ports):
            at = (rd.slot + k)[:slot_bits] if slot_bits else 0
            m.d.comb += port.addr.eq(rd.parity * n_slots + at)
        m.d.comb += rd.data.eq(Cat(port.data for port in ports))
        return m

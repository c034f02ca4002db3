"""One ADC lane of the behavioural array (simulation model): fixed-gain transfer in integers.

Twin of `aoncim.adc.AdcTransfer.transfer` (the golden model's `AdcTransfer` runs that one):
    code = clamp((I * gain(bits) + noise * noise_mult + rounding) >> gain_shift, +-adc_max)
Every constant and width comes from `cfg.adc_transfer`; tests/test_datapath_blocks.py holds the
lane to the reference on both rails and on exact rounding ties.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


class AdcLane(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        self.transfer = t = cfg.adc_transfer
        super().__init__({
            "col_sum": In(signed(t.col_sum_bits)),
            "noise": In(signed(t.noise_bits)),
            "bits": In(4),
            "code": Out(signed(t.adc_bits)),
        })

    def elaborate(self, platform):
        t = self.transfer
        m = Module()
        # The integrator gain step per precision: one multiplier per supported activation width.
        gain = Signal(range(t.gain_bound))
        with m.Switch(self.bits):
            for b in t.act_bits:
                with m.Case(b):
                    m.d.comb += gain.eq(t.gain(b))
        v = Signal(signed(t.v_bits))
        m.d.comb += v.eq(self.col_sum * gain + self.noise * t.noise_mult + t.rounding)
        q = Signal(signed(t.v_bits))
        m.d.comb += q.eq(v >> t.gain_shift)
        m.d.comb += self.code.eq(Mux(q > t.adc_max, t.adc_max, Mux(q < -t.adc_max, -t.adc_max, q)))
        return m

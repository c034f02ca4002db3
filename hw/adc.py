"""One ADC lane of the behavioural array (simulation model): fixed-gain transfer in integers.

Twin of `aoncim.model.bittrue.AdcTransfer`:
    code = clamp((I * (mult << (dac_bits - bits)) + noise * noise_mult + 2**(shift-1)) >> shift, +-adc_max)
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


class AdcLane(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "col_sum": In(signed(cfg.col_sum_bits)),
            "noise": In(signed(cfg.noise_bits)),
            "bits": In(4),
            "code": Out(signed(cfg.adc_bits)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        # The integrator gain step per precision: one multiplier per supported activation width.
        gain = Signal(range(c.adc_gain_mult << c.dac_bits))
        with m.Switch(self.bits):
            for b in c.act_bits_supported:
                with m.Case(b):
                    m.d.comb += gain.eq(c.adc_gain_mult << (c.dac_bits - b))
        width = c.col_sum_bits + gain.shape().width + 2
        v = Signal(signed(width))
        m.d.comb += v.eq(self.col_sum * gain + self.noise * c.noise_mult + (1 << (c.adc_gain_shift - 1)))
        q = Signal(signed(width))
        m.d.comb += q.eq(v >> c.adc_gain_shift)
        m.d.comb += self.code.eq(Mux(q > c.adc_max, c.adc_max, Mux(q < -c.adc_max, -c.adc_max, q)))
        return m

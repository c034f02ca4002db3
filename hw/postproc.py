"""Post-processing unit: per-channel fixed-point requantisation, one channel per cycle.

Twin of `aoncim.model.bittrue.PostProcessing`:
    y = (code * scale + bias + 2**(shift-1)) >> shift
then clamp to the next layer's unsigned activation range, or (to_out) to signed out_bits with an
optional ReLU. One register stage: in_valid at t gives out_valid/out_y at t+1, with the
destination (`in_addr`, `in_to_out`) carried alongside.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


class PostProcessor(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        addr_bits = max(cfg.act_addr_bits, (cfg.out_depth - 1).bit_length())
        super().__init__({
            "in_valid": In(1),
            "in_code": In(signed(cfg.adc_bits)),
            "in_scale": In(signed(cfg.pp_scale_bits)),
            "in_bias": In(signed(cfg.pp_bias_bits)),
            "in_addr": In(addr_bits),
            "shift": In(6),
            "out_bits": In(4),
            "to_out": In(1),
            "relu": In(1),
            "out_valid": Out(1),
            "out_addr": Out(addr_bits),
            "out_y": Out(signed(cfg.out_bits)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        width = max(c.adc_bits + c.pp_scale_bits, c.pp_bias_bits) + 3
        acc = Signal(signed(width))
        m.d.comb += acc.eq(self.in_code * self.in_scale + self.in_bias + ((1 << self.shift) >> 1))
        y = Signal(signed(width))
        m.d.comb += y.eq(acc >> self.shift)

        out_max = (1 << (c.out_bits - 1)) - 1
        act_max = Signal(c.dac_bits)
        m.d.comb += act_max.eq((1 << self.out_bits) - 1)
        hi = Signal(signed(c.out_bits + 1))
        lo = Signal(signed(c.out_bits + 1))
        m.d.comb += [
            hi.eq(Mux(self.to_out, out_max, act_max)),
            lo.eq(Mux(self.to_out & ~self.relu, -out_max - 1, 0)),
        ]
        m.d.sync += [
            self.out_valid.eq(self.in_valid),
            self.out_addr.eq(self.in_addr),
            self.out_y.eq(Mux(y > hi, hi, Mux(y < lo, lo, y))),
        ]
        return m

"""Pooling reduction: the max or the sum of one window of activation codes, one code per cycle.

Twin of the window reduction in `aoncim.model.bittrue.BitTrueExecutor._pool` (contract step 8).
The sequencer streams a window's codes in any order with `in_first` on the first and `in_last`
on the last; the result is valid combinationally in the cycle of the last code (`out_valid`), so
it can be registered into post-processing without an extra stage. `sum` selects average pooling
(window sum S, fed through post-processing) over max pooling (the largest code, bits unchanged).
The sequencer refuses a window whose sum could exceed pool_sum_bits, so the sum never wraps.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


class PoolUnit(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "sum": In(1),
            "in_valid": In(1),
            "in_first": In(1),
            "in_last": In(1),
            "in_x": In(cfg.dac_bits),
            "out_valid": Out(1),
            "out_value": Out(cfg.pool_sum_bits),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(self.cfg.pool_sum_bits)
        value = Signal.like(acc)
        reduced = Mux(self.sum, acc + self.in_x, Mux(self.in_x > acc, self.in_x, acc))
        m.d.comb += [
            value.eq(Mux(self.in_first, self.in_x, reduced)),
            self.out_valid.eq(self.in_valid & self.in_last),
            self.out_value.eq(value),
        ]
        with m.If(self.in_valid):
            m.d.sync += acc.eq(value)
        return m

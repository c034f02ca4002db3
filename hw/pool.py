"""Pooling-lane reduction: the max, the sum or the weighted sum of one window of activation codes,
one code per cycle.

Twin of the window reduction in `aoncim.model.bittrue.BitTrueExecutor._pool` and `_dwconv`
(contract steps 8 and 8a). The sequencer streams a window's codes in any order with `in_first` on
the first and `in_last` on the last; the result is valid combinationally in the cycle of the last
code (`out_valid`), so it can be registered into post-processing without an extra stage. `sum`
selects average pooling (window sum S, fed through post-processing) over max pooling (the largest
code, bits unchanged); `mac` (over both) the depthwise convolution's multiply-accumulate, S = sum
of code x weight with `in_w` a signed DWW weight. The sequencer refuses a window whose sum could
exceed pool_sum_bits (dw_sum_bits for `mac`), so the accumulator, `pool_acc_bits` signed, never
wraps.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


def pool_acc_bits(cfg: AonCimConfig) -> int:
    """Signed width of a lane's accumulator and result: an unsigned pooling sum of pool_sum_bits,
    or a signed depthwise sum of dw_sum_bits."""
    return max(cfg.pool_sum_bits + 1, cfg.dw_sum_bits)


class PoolUnit(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "sum": In(1),
            "mac": In(1),
            "in_valid": In(1),
            "in_first": In(1),
            "in_last": In(1),
            "in_x": In(cfg.dac_bits),
            "in_w": In(signed(cfg.dw_weight_bits)),
            "out_valid": Out(1),
            "out_value": Out(signed(pool_acc_bits(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(pool_acc_bits(self.cfg)))
        value = Signal.like(acc)
        # What one element adds to a sum: its code, or (depthwise) its code times its weight.
        term = Signal(signed(self.cfg.dac_bits + self.cfg.dw_weight_bits + 1))
        m.d.comb += term.eq(Mux(self.mac, self.in_x * self.in_w, self.in_x))
        reduced = Mux(self.sum | self.mac, acc + term, Mux(self.in_x > acc, self.in_x, acc))
        m.d.comb += [
            value.eq(Mux(self.in_first, term, reduced)),
            self.out_valid.eq(self.in_valid & self.in_last),
            self.out_value.eq(value),
        ]
        with m.If(self.in_valid):
            m.d.sync += acc.eq(value)
        return m

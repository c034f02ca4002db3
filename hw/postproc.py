"""Post-processing unit: per-channel fixed-point requantisation, one channel per cycle.

Twin of `aoncim.model.bittrue.PostProcessing` (contract step 6), with the layer's drift-compensation
constant alpha (f = alpha_frac_bits fractional bits):
    y = (code * alpha * scale + (bias << f) + 2**(shift+f-1)) >> (shift + f)
then clamp to the next layer's unsigned activation range, or (to_out) to signed out_bits with an
optional ReLU. `code` is an ADC code (summed over the row tiles of a tiled layer) or, for average
pooling and the residual add, a window sum of activation codes, or, for a depthwise convolution, its
signed window sum of codes times weights.
In `passthrough` (max pooling) y = code: the clamp then leaves it unchanged, because the sequencer
only runs a max pool whose out_bits equal its in_bits.

One register stage: in_valid at t gives out_valid/out_y at t+1, with the destination (`in_addr`)
carried alongside.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


def pp_code_bits(cfg: AonCimConfig) -> int:
    """Signed width of the post-processing input: an ADC code summed over a layer's row tiles, an
    (unsigned) pooling window sum or a (signed) depthwise window sum (`AonCimConfig.pp_code_bits`)."""
    return cfg.pp_code_bits


def pp_addr_bits(cfg: AonCimConfig) -> int:
    """Destination address width: an activation bank or the output memory."""
    return max(cfg.act_addr_bits, (cfg.out_depth - 1).bit_length())


def pp_acc_bits(cfg: AonCimConfig) -> int:
    """Signed width that holds code*alpha*scale + (bias << f) + rounding without overflow.

    |code*alpha*scale| < 2**(code_bits-1) * 2**alpha_bits * 2**(scale_bits-1); the bias term is
    pp_bias_bits + f signed bits; the rounding constant is below 2**(pp_shift_max + f). One bit
    for the sum of the three, one for the sign.
    """
    f = cfg.alpha_frac_bits
    prod = pp_code_bits(cfg) + cfg.alpha_bits + cfg.pp_scale_bits - 1
    return max(prod, cfg.pp_bias_bits + f, cfg.pp_shift_max + f + 1) + 2


class PostProcessor(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "in_valid": In(1),
            "in_code": In(signed(pp_code_bits(cfg))),
            "in_scale": In(signed(cfg.pp_scale_bits)),
            "in_bias": In(signed(cfg.pp_bias_bits)),
            "in_addr": In(pp_addr_bits(cfg)),
            # per layer, held while the layer runs
            "alpha": In(cfg.alpha_bits),
            "shift": In(6),
            "out_bits": In(4),
            "to_out": In(1),
            "relu": In(1),
            "passthrough": In(1),
            "out_valid": Out(1),
            "out_addr": Out(pp_addr_bits(cfg)),
            "out_y": Out(signed(cfg.out_bits)),
        })

    def elaborate(self, platform):
        c = self.cfg
        f = c.alpha_frac_bits
        m = Module()
        width = pp_acc_bits(c)

        # The sequencer refuses shift > pp_shift_max, so the total shift fits this range and the
        # rounding constant its width.
        total_shift = Signal(range(c.pp_shift_max + f + 1))
        m.d.comb += total_shift.eq(self.shift + f)
        rnd = Signal(c.pp_shift_max + f)
        m.d.comb += rnd.eq((1 << total_shift) >> 1)

        # alpha and scale first: both are known one cycle before the code could be, which leaves a
        # pipelining cut here if a real implementation needs one.
        alpha_scale = Signal(signed(c.alpha_bits + c.pp_scale_bits + 1))
        m.d.comb += alpha_scale.eq(self.in_scale * self.alpha)
        acc = Signal(signed(width))
        m.d.comb += acc.eq(self.in_code * alpha_scale + (self.in_bias << f) + rnd)
        y = Signal(signed(width))
        m.d.comb += y.eq(Mux(self.passthrough, self.in_code, acc >> total_shift))

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

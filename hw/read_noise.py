"""Deterministic read-noise source of the behavioural array (simulation model).

Twin of `aoncim.model.bittrue.ReadNoise`: lowbias32(counter ^ seed), Irwin-Hall sum of its four
bytes minus 510. Combinational, one instance per ADC lane.
"""
from amaranth import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig


def _lowbias32(m: Module, x_in, name: str):
    stages = []
    x = x_in
    for i, (shift, mult) in enumerate(((16, 0x7FEB352D), (15, 0x846CA68B), (16, None))):
        s = Signal(32, name=f"{name}_h{i}")
        m.d.comb += s.eq(x ^ (x >> shift))
        x = s
        if mult is not None:
            p = Signal(32, name=f"{name}_p{i}")
            m.d.comb += p.eq((x * mult)[:32])
            x = p
        stages.append(x)
    return x


class ReadNoiseSource(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "seed": In(32),
            "mvm": In(32),
            "col": In(cfg.col_bits),
            "sample": Out(signed(cfg.noise_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        ctr = Signal(32)
        # mvm * cols + col, with cols a power of two, truncated to 32 bits as in the model.
        m.d.comb += ctr.eq(Cat(self.col, self.mvm)[:32] if self.cfg.col_bits else self.mvm)
        h = _lowbias32(m, ctr ^ self.seed, "noise")
        m.d.comb += self.sample.eq(h[0:8] + h[8:16] + h[16:24] + h[24:32] - self.cfg.NOISE_MEAN_RAW)
        return m

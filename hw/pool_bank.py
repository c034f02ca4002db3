"""Stage R's datapath: `load_lanes` pooling units, one per channel of a group, and the two halves
of their results (stage S reads half b while stage R fills the other), folded for a layer whose
reads hold several window elements."""
from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .pool import PoolUnit, pool_acc_bits


class PoolWindowSignature(wiring.Signature):
    """One window element of a group of `load_lanes` channels, as stage R delivers it (the cycle
    after its read, with the read data): `valid`, `first`/`last` element of the window, `half`
    of the result buffer the group's results go to, `x` lane j = the code of channel c0 + j (the
    layer's pad_code for an element in the padding), `w` lane j = channel c0 + j's DWW weight for
    the element (depthwise only)."""

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "valid": Out(1), "first": Out(1), "last": Out(1), "half": Out(1),
            "x": Out(data.ArrayLayout(unsigned(cfg.dac_bits), cfg.load_lanes)),
            "w": Out(data.ArrayLayout(signed(cfg.dw_weight_bits), cfg.load_lanes)),
        })


class PoolBank(wiring.Component):
    """Twin of the window reduction of `model.bittrue` pooling (`pool_windows(x, d).amax(-1)`, or
    `.sum(-1)` for average pooling, or `dwconv_sums` for a depthwise layer) for a group of
    `load_lanes` channels.

    `sum` selects the window sum (AVGPOOL, ADD) over the max (MAXPOOL) for the layer, `mac` (over
    both) the sum of code x weight (DWCONV). Lane j reduces
    lane j of `win.x` over the elements from `win.first` to `win.last`; at the last, the results of
    all lanes are stored in half `win.half`, where they stay until the next group for that half
    ends. `result` is half `rd_half` (lane j: channel c0 + j of the group stored there), folded
    `fold` levels: level k adds (or, for max pooling, maxes) lane j + load_lanes/2**k into lane j,
    so a layer of C = load_lanes/2**fold channels whose reads put channel j mod C in lane j
    (`Im2colWalker`'s runs) has channel c's window result in lane c. Lanes a read does not use
    carry 0, which neither the sum nor the max of unsigned codes notices. The fold sits after the
    result register, on stage S's side, so it does not lengthen the units' path from the SRAM.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "sum": In(1), "mac": In(1),
            "win": In(PoolWindowSignature(cfg)),
            "rd_half": In(1),
            # at least one bit: a zero-width port is a `[-1:0]` wire in Verilog
            "fold": In(range(max(2, cfg.pool_fold_levels + 1))),
            "result": Out(data.ArrayLayout(signed(pool_acc_bits(cfg)), cfg.load_lanes)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        W = c.load_lanes
        res = [[Signal(signed(pool_acc_bits(c)), name=f"pool_res{b}_{j}") for j in range(W)] for b in range(2)]
        for j in range(W):
            unit = PoolUnit(c)
            m.submodules[f"pool{j}"] = unit
            m.d.comb += [
                unit.sum.eq(self.sum), unit.mac.eq(self.mac), unit.in_valid.eq(self.win.valid),
                unit.in_first.eq(self.win.first), unit.in_last.eq(self.win.last), unit.in_x.eq(self.win.x[j]),
                unit.in_w.eq(self.win.w[j]),
            ]
            with m.If(unit.out_valid):
                for b in range(2):
                    with m.If(self.win.half == b):
                        m.d.sync += res[b][j].eq(unit.out_value)
        stored = [Signal(signed(pool_acc_bits(c)), name=f"pool_rd{j}") for j in range(W)]
        for j in range(W):
            m.d.comb += stored[j].eq(Array(res[b][j] for b in range(2))[self.rd_half])
        # The fold: each level halves the lanes that matter; a layer's `fold` says how many apply.
        # No width grows: a fold's sum is part of the window's sum, which the descriptor check
        # bounds to pool_sum_bits (dw_sum_bits).
        lanes = stored
        for k in range(1, c.pool_fold_levels + 1):
            half = W >> k
            folded = []
            for j in range(half):
                a, b = lanes[j], lanes[j + half]
                v = Signal(signed(pool_acc_bits(c)), name=f"pool_fold{k}_{j}")
                m.d.comb += v.eq(Mux(self.fold >= k, Mux(self.sum | self.mac, a + b, Mux(b > a, b, a)), a))
                folded.append(v)
            lanes = folded + lanes[half:]
        for j in range(W):
            m.d.comb += self.result[j].eq(lanes[j])
        return m

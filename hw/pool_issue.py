"""Stage S of a pooling layer: the results of the group stage R reduced in the previous beat, from
their half of the `PoolBank`, to post-processing, `pp_lanes` channels a cycle.

Split out of `LayerSequencer` so that the issue order and lane masks are specified and tested
(tests/test_pool_issue_stage.py) on their own; its cycle count is `perf.cycles` stage S,
1 + ceil(channels / pp_lanes) a beat.
"""
from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .descriptor import descriptor_layout, dim_bits
from .pool import pool_acc_bits
from .postproc import pp_addr_bits
from .postproc_port import PostprocIssueSignature


class GroupHandoffSignature(wiring.Signature):
    """The pooling group stage R reads this beat, as stage S takes it over at the beat's end.

      valid     stage R has a group this beat
      c0, n     the group's first channel and channel count (n <= load_lanes)
      out_base  output address of its position's channel 0
      parity    the `PoolBank` result half of the group (k mod 2 for group k)
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "valid": Out(1), "c0": Out(dim_bits()), "n": Out(range(cfg.load_lanes + 1)),
            "out_base": Out(pp_addr_bits(cfg)), "parity": Out(1),
        })


class PoolResultIssue(wiring.Component):
    """Stage S: per beat, the group taken over from stage R (`prev`) at the previous beat's end.

    `desc` is the layer's descriptor, stable for the layer. At `next` (the beat's end) the stage
    takes `prev` over. With a group: its first cycle lets the group's results land in `PoolBank`
    half `rd_half` (= the group's parity; `result` is that half); each further cycle issues
    channels c0 + i .. c0 + i + Q - 1 (Q = pp_lanes, i = 0, Q, ... < n), lanes past n not valid, to
    address out_base + c0 + i; `issue.param_addr` (param_base + c0 + i) leads `issue.valid` by a
    cycle. `done` is high in the cycles the stage has nothing left to do this beat.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "desc": In(descriptor_layout()),
            "next": In(1),
            "prev": In(GroupHandoffSignature(cfg)),
            "done": Out(1),
            "rd_half": Out(1),
            "result": In(data.ArrayLayout(signed(pool_acc_bits(cfg)), cfg.load_lanes)),
            "issue": Out(PostprocIssueSignature(cfg)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        d = self.desc
        W, Q = c.load_lanes, c.pp_lanes
        q_log2 = (Q - 1).bit_length()
        grp = GroupHandoffSignature(c).create(path=("grp",))   # the group of this beat
        fin, last = Signal(), Signal()
        m.d.comb += self.done.eq(~grp.valid | fin | last)
        sc = Signal(range(W + 1))       # 0: the results land; then Q channels a cycle
        lane = Signal(range(W + Q))     # first channel of the cycle within the group
        steps = Signal(range(W + 1))
        m.d.comb += [lane.eq((sc - 1) << q_log2), steps.eq((grp.n + (Q - 1)) >> q_log2),
                     self.rd_half.eq(grp.parity), self.issue.param_addr.eq(d.param_base + grp.c0 + lane)]
        issue = self.issue
        m.d.sync += issue.valid.eq(0)
        with m.If(grp.valid & ~fin):
            m.d.comb += last.eq(sc == steps)
            m.d.sync += sc.eq(sc + 1)
            with m.If(sc != 0):
                m.d.sync += issue.addr.eq(grp.out_base + grp.c0 + lane)
                for q in range(Q):
                    m.d.sync += [issue.valid[q].eq(lane + q < grp.n),
                                 issue.code[q].eq(self.result[(lane + q)[:max(1, (W - 1).bit_length())]
                                                              if W > 1 else 0])]
            with m.If(sc == steps):
                m.d.sync += fin.eq(1)
        # After the work above: the beat's end restarts the stage on the group stage R hands over.
        with m.If(self.next):
            m.d.sync += [fin.eq(0), sc.eq(0)]
            m.d.sync += [grp.valid.eq(self.prev.valid), grp.c0.eq(self.prev.c0), grp.n.eq(self.prev.n),
                         grp.out_base.eq(self.prev.out_base), grp.parity.eq(self.prev.parity)]
        return m

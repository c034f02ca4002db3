"""Stage P of an MVM layer: the codes of the MVM stage A converted in the previous beat, `pp_lanes`
channels a cycle from the code buffer, added to the channels' partial sums over the earlier row
tiles of the position and, after the last tile, issued to post-processing.

Twin of the row-tile sum of contract step 12 (`model.bittrue`: a tiled layer's codes summed over
its tiles, then post-processed once). Split out of `LayerSequencer` so that the sums and the issue
order are specified and tested (tests/test_tile_accumulator_stage.py) on its own; its cycle count
is `perf.cycles` stage P, ceil(out_c / pp_lanes) a beat.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESCRIPTOR_FIELDS

from .array_control import CodeReadSignature, MvmHandoffSignature
from .descriptor import descriptor_layout, dim_bits
from .postproc_port import PostprocIssueSignature


class TileAccumulator(wiring.Component):
    """Stage P: per beat, the MVM taken over from stage A (`prev`) at the previous beat's end.

    `desc` is the layer's descriptor, stable for the layer. At `next` (the beat's end) the stage
    takes `prev` over. With an MVM it reads, from the cycle after `next`, channels pc .. pc + Q - 1
    (Q = pp_lanes, pc = 0, Q, ...) of the MVM's columns tcol0 .. from code-buffer half `parity` over
    `code_rd`, a group a cycle; `done` is high in the cycles it has nothing left to do this beat.
    A cycle after its read, group pc's codes are added to their partial sums (tile 0: to 0); the
    sums of the position's last tile go out on `issue` (lanes of channels >= out_c not valid), the
    others are kept for the next tile. `issue.param_addr` (param_base + pc) leads `issue.valid` by
    a cycle, as the parameter memories need.

    Partial sums: a `cols/2` entry memory, Q channels an entry (a tiled layer has at most cols/2
    channels: two tiles of it fit the array).
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "desc": In(descriptor_layout()),
            "next": In(1),
            "prev": In(MvmHandoffSignature(cfg)),
            "done": Out(1),
            "code_rd": Out(CodeReadSignature(cfg)),
            "issue": Out(PostprocIssueSignature(cfg)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        d = self.desc
        Q = c.pp_lanes
        q_log2 = (Q - 1).bit_length()
        n_log2 = (c.n_adcs - 1).bit_length()
        db = dim_bits()
        k_rows_bits = dict(DESCRIPTOR_FIELDS)["k_rows"]
        n_tiles = Signal(max(1, k_rows_bits - c.row_bits + 1))
        # Row tiles (contract step 12): ceil(k_rows / rows), a shift because rows is a power of two.
        m.d.comb += n_tiles.eq((d.k_rows + (c.rows - 1)) >> c.row_bits)

        mvm = MvmHandoffSignature(c).create(path=("mvm",))   # the MVM of this beat
        fin, last = Signal(), Signal()
        m.d.comb += self.done.eq(~mvm.valid | fin | last)
        pc = Signal(db)           # first channel of this cycle's Q (a multiple of Q)
        col = Signal(range(2 * c.cols))
        m.d.comb += [col.eq(mvm.tcol0 + pc), self.code_rd.parity.eq(mvm.parity),
                     # Only read for channels < out_c: tcol0 + out_c <= cols, so the slot fits.
                     self.code_rd.slot.eq(col >> n_log2)]
        # Partial code sums of a tiled layer over its tiles so far.
        m.submodules.tile_acc = tile_acc = Memory(shape=data.ArrayLayout(signed(c.code_sum_bits), Q),
                                                  depth=max(1, c.cols // 2 // Q), init=[])
        acc_w = tile_acc.write_port()
        acc_r = tile_acc.read_port(transparent_for=(acc_w,))
        m.d.comb += acc_r.addr.eq(pc >> q_log2)

        # The group read this cycle, a cycle later when its codes and partial sums are there.
        pq_valid, pq_first, pq_last = Signal(Q), Signal(), Signal()
        pq_lane0, pq_ch, pq_addr = Signal(range(c.n_adcs)), Signal(db), Signal.like(mvm.out_base)
        m.d.sync += pq_valid.eq(0)
        code_sum = Signal(data.ArrayLayout(signed(c.code_sum_bits), Q))
        for q in range(Q):
            m.d.comb += code_sum[q].eq(Mux(pq_first, 0, acc_r.data[q]) + self.code_rd.data[pq_lane0 + q])
        m.d.comb += [acc_w.addr.eq(pq_ch >> q_log2), acc_w.data.eq(code_sum), acc_w.en.eq(pq_valid.any() & ~pq_last),
                     self.issue.param_addr.eq(d.param_base + pq_ch)]
        issue = self.issue
        m.d.sync += issue.valid.eq(0)
        with m.If(pq_valid.any() & pq_last):
            m.d.sync += [issue.valid.eq(pq_valid), issue.addr.eq(pq_addr)]
            for q in range(Q):
                m.d.sync += issue.code[q].eq(code_sum[q])
        lanes_ok = Signal(Q)
        for q in range(Q):
            m.d.comb += lanes_ok[q].eq(pc + q < d.out_c)

        with m.If(mvm.valid & ~fin):
            # Channel pc's code and partial sum are read now, summed next cycle.
            m.d.comb += last.eq(pc + Q >= d.out_c)
            m.d.sync += [
                pq_valid.eq(lanes_ok), pq_first.eq(mvm.tile == 0), pq_last.eq(mvm.tile == n_tiles - 1),
                pq_lane0.eq(col[:n_log2] if n_log2 else 0), pq_ch.eq(pc),
                pq_addr.eq(mvm.out_base + pc), pc.eq(pc + Q),
            ]
            with m.If(pc + Q >= d.out_c):
                m.d.sync += fin.eq(1)
        # After the work above: the beat's end restarts the stage on the MVM stage A hands over.
        with m.If(self.next):
            m.d.sync += [fin.eq(0), pc.eq(0)]
            m.d.sync += [mvm.valid.eq(self.prev.valid), mvm.tcol0.eq(self.prev.tcol0),
                         mvm.parity.eq(self.prev.parity), mvm.tile.eq(self.prev.tile),
                         mvm.out_base.eq(self.prev.out_base)]
        return m

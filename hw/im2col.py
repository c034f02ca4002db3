"""Stage L/R's address generator: the walk over a layer's output positions and, per position, over
the activation-SRAM reads that feed the array (MVM layers) or the pooling units (pooling layers).

Split out of `LayerSequencer` so that the im2col address sequence is specified, and tested
(tests/test_im2col_stage.py), on its own; the sequencer keeps the beat control and the datapath.
"""
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESCRIPTOR_FIELDS, Op

from .descriptor import descriptor_layout, dim_bits, pool_fold_levels
from .postproc import pp_addr_bits


class ActReadSignature(wiring.Signature):
    """One activation-SRAM read request a cycle, from the walker (the source) to the sequencer.

    `valid`: a request is pending (the stage has a current MVM / pooling group whose reads are
    not all taken). The sink asserts `take` in a cycle it issues the read; the walker then moves
    to the next request. The fields are meaningful while `valid`:

      addr   first code of the read (`load_lanes` consecutive codes from here; modulo act_depth,
             so that a run starting in the padding above/left of the map still hits lanes j with
             in-map codes at addr + j)
      lanes  lane j is inside the map and the run (MVM) or the group (pooling: j < the group's
             channel count); it loads code addr + j
      pads   lane j is inside the run / group but in the padding around the map (it loads the
             layer's pad_code; pooling: the window element is outside the map, which only a
             depthwise layer's padding reaches); lanes past the run / group (in neither) load 0
      waddr  depthwise: the DWW word of lane 0's weight, w_base + (ky*k_w + kx)*in_c + c0 (lane j:
             waddr + j, channel c0 + j; a folding layer: w_base + ky*k_w*in_c + the run's offset
             in the kernel row); modulo dw_depth
      row    MVM: the array row of lane 0 (row0 + row within the row tile)
      first  MVM: first run of the MVM (row 0 of the tile); pooling: first window element
             (folding: first run of the window)
      last   MVM: last run of the MVM (end of the tile or of the position's im2col rows);
             pooling: last window element (folding: last run of the window)
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "valid": Out(1), "take": In(1),
            "addr": Out(cfg.act_addr_bits), "lanes": Out(cfg.load_lanes), "pads": Out(cfg.load_lanes),
            "waddr": Out(cfg.dw_addr_bits), "row": Out(cfg.row_bits),
            "first": Out(1), "last": Out(1),
        })


class Im2colWalker(wiring.Component):
    """Twin of `model.bittrue.im2col` (MVM layers) and `model.bittrue.pool_windows` (pooling and
    depthwise layers, padded with pad_code like im2col) as a stream of activation-SRAM reads, in the
    order stage L/R issues them.

    MVM layer: MVMs position-major (output (oy, ox) row-major), then row tile t = 0.. (contract
    step 12: im2col rows t*rows ..); an MVM's reads are runs of at most `load_lanes` im2col rows
    that stay within one kernel row (whose `k_w * in_c` codes are consecutive HWC addresses) and
    within the row tile. Pooling (and depthwise) layer: per position, groups of `load_lanes`
    channels; a group's reads are its window's elements, (ky, kx) with kx innermost, each with
    the DWW address of the group's weights for that element. A pooling-type layer that folds
    (`AonCimConfig.pool_folds`: in_c a power of two, at most load_lanes/2) is one group per
    position whose reads are runs like an MVM's: per kernel row ky its k_w*in_c codes, at most
    `load_lanes` a read, so lane j holds channel j mod in_c of some window element.

    Protocol: `desc` is the layer's descriptor, stable for the layer. `start` (one cycle) loads the
    layer's first MVM / group. `read` then offers its reads one at a time (see `ActReadSignature`);
    after the last is taken `read.valid` stays low until `next`, which moves to the following MVM
    / group (`next` may come in the cycle the last read is taken; it is ignored when `active` is
    low). `active` goes low at the `next` after the layer's last MVM / group.

    Per current MVM / group: `tile`, `tcol0` (array column of the tile: col0 + tile * out_c),
    `out_base` (output address of the position's channel 0), `c0`, `n` (pooling: the group's
    first channel and channel count).
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        db = dim_bits()
        super().__init__({
            "desc": In(descriptor_layout()),
            "start": In(1), "next": In(1),
            "active": Out(1),
            "read": Out(ActReadSignature(cfg)),
            "tile": Out(range(cfg.max_row_tiles)), "tcol0": Out(range(cfg.cols)),
            "out_base": Out(pp_addr_bits(cfg)),
            "c0": Out(db), "n": Out(range(cfg.load_lanes + 1)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        W = c.load_lanes
        d = self.desc
        db = dim_bits()
        k_rows_bits = dict(DESCRIPTOR_FIELDS)["k_rows"]
        is_mvm = d.opcode == Op.MVM
        fold = pool_fold_levels(c, d) != 0
        runs = is_mvm | fold            # reads are runs of a kernel row, not single window elements
        # Signed address arithmetic (padding reaches below the map): in_base + iy * in_w * in_c + ...
        addr = signed(max(c.act_addr_bits, dict(DESCRIPTOR_FIELDS)["in_base"]) + 3 * db + 3)

        active, loaded = Signal(), Signal()      # the stage has an MVM / group; its reads are all taken
        m.d.comb += [self.active.eq(active), self.read.valid.eq(active & ~loaded)]

        # ------------------------------------------------------------ position
        # Output (oy, ox), its input window's corner (iy0, ix0) and output address.
        oy, ox = Signal(db), Signal(db)
        iy0, ix0 = Signal(signed(db + 2)), Signal(signed(db + 2))
        last_pos = Signal()
        m.d.comb += last_pos.eq((ox == d.out_w - 1) & (oy == d.out_h - 1))

        def next_position():
            m.d.sync += self.out_base.eq(self.out_base + d.out_c)
            with m.If(ox == d.out_w - 1):
                m.d.sync += [ox.eq(0), ix0.eq(-d.pad_w)]
                with m.If(oy != d.out_h - 1):
                    m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + d.stride)]
            with m.Else():
                m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + d.stride)]

        # ------------------------------------------------------------ window element / run
        ky, kx = Signal(db), Signal(db)
        w_off = Signal(dict(DESCRIPTOR_FIELDS)["w_base"] + 1)  # (ky*k_w + kx) * in_c (depthwise weights)
        off = Signal(2 * db)            # code within the kernel row's run (MVM)
        r = Signal(k_rows_bits)         # im2col row of the position (MVM)
        rl = Signal(range(c.rows))      # row within the current row tile (MVM)
        posdone = Signal()              # the taken MVM was its position's last tile
        seg_len, row_len = Signal(2 * db), Signal(2 * db)
        iy, ix = Signal(signed(db + 2)), Signal(signed(db + 2))
        row_lo, seg_a, pool_a = Signal(addr), Signal(addr), Signal(addr)
        m.d.comb += [
            # A kernel row's (kx, c) codes are one contiguous run of the HWC activation memory.
            seg_len.eq(d.k_w * d.in_c), row_len.eq(d.in_w * d.in_c),
            iy.eq(iy0 + ky), ix.eq(ix0 + kx),
            row_lo.eq(d.in_base + iy * row_len),
            seg_a.eq(row_lo + ix0 * d.in_c + off),
            pool_a.eq(row_lo + (ix0 + kx) * d.in_c + self.c0),
        ]
        # This cycle's run: n = min(W, rest of the kernel row, rest of the row tile) codes.
        seg_left, n1, n = Signal(2 * db), Signal(range(W + 1)), Signal(range(W + 1))
        tile_left = Signal(range(c.rows + 1))
        m.d.comb += [
            seg_left.eq(seg_len - off), tile_left.eq(c.rows - rl),
            n1.eq(Mux(seg_left < W, seg_left, W)), n.eq(Mux(is_mvm & (tile_left < n1), tile_left, n1)),
        ]
        iy_in = (iy >= 0) & (iy < d.in_h)
        # Pooling: the window element (iy, ix) is in the map for every lane of the group, or in the
        # padding (only a depthwise layer has any) for every lane.
        elem_in = iy_in & (ix >= 0) & (ix < d.in_w)
        # A run's lane j is in the map's row iff row_lo <= seg_a + j < row_lo + row_len: with the
        # run's start relative to the row computed once, each lane compares against its constant j
        # instead of adding and comparing full addresses (64 lanes x two 49-bit compares before).
        lo_rel, hi_rel = Signal(signed(3 * db + 4)), Signal(signed(3 * db + 4))
        m.d.comb += [lo_rel.eq(-(ix0 * d.in_c) - off), hi_rel.eq(lo_rel + row_len)]
        for j in range(W):
            in_map = Mux(runs, iy_in & (lo_rel <= j) & (hi_rel > j), elem_in)
            used = Mux(runs, n > j, self.n > j)
            m.d.comb += [self.read.lanes[j].eq(used & in_map), self.read.pads[j].eq(used & ~in_map)]
        seg_end, pos_end, mvm_end, win_last = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            seg_end.eq(seg_left == n),
            pos_end.eq(r + n == d.k_rows),
            mvm_end.eq(pos_end | (rl + n == c.rows)),
            win_last.eq((ky == d.k_h - 1) & Mux(fold, seg_end, kx == d.k_w - 1)),
            self.read.addr.eq(Mux(runs, seg_a, pool_a)[:c.act_addr_bits]),
            self.read.waddr.eq((d.w_base + w_off + self.c0)[:c.dw_addr_bits]),
            self.read.row.eq(d.row0 + rl),
            self.read.first.eq(Mux(is_mvm, rl == 0, (ky == 0) & Mux(fold, off == 0, kx == 0))),
            self.read.last.eq(Mux(is_mvm, mvm_end, win_last)),
        ]
        # Pooling group: up to W channels from c0.
        grp_left, last_grp = Signal(db + 1), Signal()
        m.d.comb += [
            grp_left.eq(d.in_c - self.c0), self.n.eq(Mux(grp_left < W, grp_left, W)),
            last_grp.eq(grp_left <= W),
        ]

        with m.If(self.start):
            m.d.sync += [
                oy.eq(0), ox.eq(0), iy0.eq(-d.pad_h), ix0.eq(-d.pad_w), self.out_base.eq(d.out_base),
                ky.eq(0), kx.eq(0), w_off.eq(0), off.eq(0), r.eq(0), rl.eq(0), self.c0.eq(0),
                self.tile.eq(0), self.tcol0.eq(d.col0), active.eq(1), loaded.eq(0),
            ]

        with m.If(self.read.take):
            with m.If(is_mvm):
                m.d.sync += [r.eq(r + n), rl.eq(rl + n)]
                with m.If(seg_end):
                    m.d.sync += [off.eq(0), ky.eq(ky + 1)]
                with m.Else():
                    m.d.sync += off.eq(off + n)
                with m.If(mvm_end):
                    # The counters run on into the next tile's rows, or restart for the next position.
                    m.d.sync += [loaded.eq(1), posdone.eq(pos_end), rl.eq(0)]
                    with m.If(pos_end):
                        m.d.sync += [ky.eq(0), off.eq(0), r.eq(0)]
            with m.Elif(fold):
                # A kernel row's weights are as contiguous as its codes: w_off follows the run.
                m.d.sync += w_off.eq(w_off + n)
                with m.If(seg_end):
                    m.d.sync += [off.eq(0), ky.eq(ky + 1)]
                with m.Else():
                    m.d.sync += off.eq(off + n)
                with m.If(win_last):
                    m.d.sync += [ky.eq(0), off.eq(0), w_off.eq(0), loaded.eq(1)]
            with m.Else():
                m.d.sync += w_off.eq(w_off + d.in_c)
                with m.If(kx != d.k_w - 1):
                    m.d.sync += kx.eq(kx + 1)
                with m.Else():
                    m.d.sync += kx.eq(0)
                    with m.If(ky != d.k_h - 1):
                        m.d.sync += ky.eq(ky + 1)
                    with m.Else():
                        m.d.sync += [ky.eq(0), w_off.eq(0), loaded.eq(1)]

        # After the take above: a `next` in the cycle of the last take wins over its `loaded`.
        with m.If(self.next):
            m.d.sync += loaded.eq(0)
            # Whether the position is done: latched at the last take, or that take is now.
            pos_done = Mux(is_mvm, Mux(loaded, posdone, pos_end), last_grp)
            with m.If(active):
                with m.If(pos_done):
                    m.d.sync += [self.tile.eq(0), self.tcol0.eq(d.col0), self.c0.eq(0)]
                    next_position()
                    with m.If(last_pos):
                        m.d.sync += active.eq(0)
                with m.Elif(is_mvm):
                    m.d.sync += [self.tile.eq(self.tile + 1), self.tcol0.eq(self.tcol0 + d.out_c)]
                with m.Else():
                    m.d.sync += self.c0.eq(self.c0 + W)
        return m

"""Layer-serial sequencer: runs the descriptors one layer after another on the one crossbar.

Per layer: fetch the descriptor and latch the layer's drift-compensation alpha, then check the
descriptor against the configured chip (a malformed one stops the run with an `ErrorCode` before
the layer touches any memory). An MVM layer then runs one array MVM per output position and row
tile (contract step 12) through a three-stage pipeline that advances in *beats*:

  L (load)     streams MVM k's im2col rows from the activation SRAM into DAC-register bank k%2,
               load_lanes rows per cycle (one contiguous run of a kernel row's (kx, c) codes);
  A (array)    MVM k-1: the PWM window of 2**in_bits cycles on bank (k-1)%2, then one ADC
               conversion per slot of the tile's columns into code-buffer half (k-1)%2;
  P (postproc) MVM k-2: one channel per cycle from the code buffer, added to its partial sum over
               the earlier row tiles (tile accumulator) and, after the last tile, post-processed.

A beat lasts as long as its slowest stage; the next beat starts the cycle after. The array is the
one resource no schedule can share, so an MVM layer takes about MVMs x (2**in_bits + slots) cycles
when loading and post-processing keep up (perf/cycles.py has the exact count).

A pooling layer uses the same beats with two stages over (position, group of load_lanes channels):
R reads the group's window, one wide read per window element, into load_lanes pooling units; S
feeds the previous group's results one per cycle to post-processing (max pooling passes through).
"""
import operator
from functools import reduce

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS, DESCRIPTOR_FIELDS, Op
from aoncim.regmap import ErrorCode
from aoncim.schedule import LAYER_END

from .pool import PoolUnit
from .postproc import pp_addr_bits, pp_code_bits


def descriptor_layout() -> data.StructLayout:
    fields = dict(DESCRIPTOR_FIELDS)
    fields["_pad"] = DESC_BITS - sum(fields.values())
    return data.StructLayout(fields)


class LayerSequencer(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        c = cfg
        lanes = data.ArrayLayout(unsigned(c.dac_bits), c.load_lanes)
        super().__init__({
            # control / status
            "start": In(1), "cont": In(1), "step": In(1),
            # The whole register, so that a value beyond max_layers is refused rather than wrapped.
            "num_layers": In(32),
            # Read-noise MVM counter of the run's first MVM (MVM_BASE), latched at START.
            "mvm_base": In(32),
            "busy": Out(1), "done": Out(1), "paused": Out(1), "error": Out(1),
            "error_code": Out(8), "layer": Out(range(c.max_layers)),
            "cycles": Out(32), "mvms": Out(32),
            "ev_done": Out(1), "ev_paused": Out(1), "ev_error": Out(1),
            # program memory read (1-cycle latency)
            "prog_addr": Out(range(c.max_layers)),
            "prog_data": In(descriptor_layout()),
            # the host's alpha register of layer `layer` (combinational)
            "alpha": In(c.alpha_bits),
            # activation SRAM: a run of load_lanes codes from act_raddr (1-cycle latency); the top
            # selects the bank
            "act_raddr": Out(c.act_addr_bits),
            "act_rbank": Out(1),
            "act_rdata": In(lanes),
            # behavioural array
            "load_valid": Out(1), "load_first": Out(1), "load_row": Out(c.row_bits), "load_bank": Out(1),
            "load_x": Out(lanes),
            "conv_stb": Out(1), "conv_slot": Out(range(c.cols // c.n_adcs)), "conv_bank": Out(1),
            "conv_bits": Out(4), "conv_mvm": Out(32),
            "codes": In(data.ArrayLayout(signed(c.adc_bits), c.n_adcs)),
            # post-processing, pp_lanes channels a cycle: parameter address at t, the rest at t+1
            # with the parameter data
            "param_addr": Out(range(c.param_depth)),
            # lane q: channel param_addr + q to address pp_addr + q
            "pp_valid": Out(c.pp_lanes), "pp_code": Out(data.ArrayLayout(signed(pp_code_bits(c)), c.pp_lanes)),
            "pp_addr": Out(pp_addr_bits(c)),
            "pp_alpha": Out(c.alpha_bits),
            "pp_shift": Out(6), "pp_out_bits": Out(4), "pp_to_out": Out(1), "pp_relu": Out(1),
            "pp_passthrough": Out(1),
            "wr_bank": Out(1),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        W = c.load_lanes
        n_log2 = (c.n_adcs - 1).bit_length()
        n_slots = c.cols // c.n_adcs

        d = Signal(descriptor_layout())
        alpha = Signal(c.alpha_bits)
        layer = Signal(range(c.max_layers))
        # Latched at START: a host write to NUM_LAYERS during a run must not make it run past the end.
        n_layers = Signal(range(c.max_layers + 1))
        # Array MVMs of this run (the MVMS counter, from 0) and the read-noise MVM counter (from
        # MVM_BASE): they step together, once per row tile of every output position, as stage A
        # finishes an MVM.
        mvm = Signal(32)
        noise_mvm = Signal(32)
        is_mvm, is_max, is_avg = d.opcode == Op.MVM, d.opcode == Op.MAXPOOL, d.opcode == Op.AVGPOOL
        fields = dict(DESCRIPTOR_FIELDS)
        k_rows_bits = fields["k_rows"]
        dim_bits = fields["in_c"]           # a size or channel count of the descriptor
        assert all(fields[f] == dim_bits for f in ("in_h", "in_w", "k_h", "k_w", "out_h", "out_w", "out_c"))
        # Signed address arithmetic (padding reaches below the map): in_base + iy * in_w * in_c + ...
        addr = signed(max(c.act_addr_bits, fields["in_base"]) + 3 * dim_bits + 3)
        n_tiles = Signal(max(1, k_rows_bits - c.row_bits + 1))
        seg_len, row_len = Signal(2 * dim_bits), Signal(2 * dim_bits)
        m.d.comb += [
            # Row tiles (contract step 12): ceil(k_rows / rows), a shift because rows is a power of two.
            n_tiles.eq((d.k_rows + (c.rows - 1)) >> c.row_bits),
            # A kernel row's (kx, c) codes are one contiguous run of the HWC activation memory.
            seg_len.eq(d.k_w * d.in_c), row_len.eq(d.in_w * d.in_c),
        ]

        # ---------------------------------------------------------------- beat control
        # Stage L (pooling: R) works on MVM k, A on k-1, P (pooling: S) on k-2. `*_on`: the stage
        # has work this beat; `*_fin`: it has finished it; `*_last`: this cycle is its last.
        l_on, a_on, p_on = Signal(), Signal(), Signal()
        l_fin, a_fin, p_fin = Signal(), Signal(), Signal()
        l_last, a_last, p_last = Signal(), Signal(), Signal()
        running = Signal()
        beat_end = Signal()
        m.d.comb += beat_end.eq(running & (~l_on | l_fin | l_last) & (~a_on | a_fin | a_last) &
                                (~p_on | p_fin | p_last))

        # Stage L/R position: output (oy, ox), its input window's corner (iy0, ix0), output address.
        oy, ox = Signal(dim_bits), Signal(dim_bits)
        iy0, ix0 = Signal(signed(dim_bits + 2)), Signal(signed(dim_bits + 2))
        pos_base = Signal(self.pp_addr.shape())
        last_pos = Signal()
        m.d.comb += last_pos.eq((ox == d.out_w - 1) & (oy == d.out_h - 1))

        def next_position():
            m.d.sync += pos_base.eq(pos_base + d.out_c)
            with m.If(ox == d.out_w - 1):
                m.d.sync += [ox.eq(0), ix0.eq(-d.pad)]
                with m.If(oy != d.out_h - 1):
                    m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + d.stride)]
            with m.Else():
                m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + d.stride)]

        # ---------------------------------------------------------------- stage L: load
        ky, kx = Signal(dim_bits), Signal(dim_bits)
        off = Signal(2 * dim_bits)      # code within the kernel row's run
        r = Signal(k_rows_bits)         # im2col row of the position
        rl = Signal(range(c.rows))      # row within the current row tile
        l_tile, l_tcol0, l_par = Signal(range(c.max_row_tiles)), Signal(range(c.cols)), Signal()
        l_posdone = Signal()
        iy = Signal(signed(dim_bits + 2))
        row_lo, seg_a = Signal(addr), Signal(addr)
        m.d.comb += [
            iy.eq(iy0 + ky),
            row_lo.eq(d.in_base + iy * row_len),
            seg_a.eq(row_lo + ix0 * d.in_c + off),
        ]
        # This cycle's run: n = min(W, rest of the kernel row, rest of the row tile) codes.
        seg_left, n1, n = Signal(2 * dim_bits), Signal(range(W + 1)), Signal(range(W + 1))
        tile_left = Signal(range(c.rows + 1))
        m.d.comb += [
            seg_left.eq(seg_len - off), tile_left.eq(c.rows - rl),
            n1.eq(Mux(seg_left < W, seg_left, W)), n.eq(Mux(tile_left < n1, tile_left, n1)),
        ]
        # Lanes inside the map; the others (zero padding, past the run) load code 0.
        lane_ok, lane_ok_q = Signal(W), Signal(W)
        iy_in = (iy >= 0) & (iy < d.in_h)
        for j in range(W):
            m.d.comb += lane_ok[j].eq((n > j) & iy_in & (seg_a + j >= row_lo) & (seg_a + j < row_lo + row_len))
        m.d.sync += lane_ok_q.eq(lane_ok)
        for j in range(W):
            m.d.comb += self.load_x[j].eq(Mux(lane_ok_q[j], self.act_rdata[j], 0))
        seg_end, pos_end, mvm_end = Signal(), Signal(), Signal()
        m.d.comb += [
            seg_end.eq(seg_left == n),
            pos_end.eq(r + n == d.k_rows),
            mvm_end.eq(pos_end | (rl + n == c.rows)),
            self.load_row.eq(d.row0 + rl), self.load_first.eq(rl == 0), self.load_bank.eq(l_par),
        ]
        posdone_now = Mux(l_fin, l_posdone, pos_end)

        # ---------------------------------------------------------------- stage R: pooling reads
        goff = Signal(dim_bits)         # first channel of the group
        grp_left, n_grp = Signal(dim_bits + 1), Signal(range(W + 1))
        last_grp = Signal()
        pool_a = Signal(addr)
        m.d.comb += [
            grp_left.eq(d.in_c - goff), n_grp.eq(Mux(grp_left < W, grp_left, W)),
            last_grp.eq(grp_left <= W),
            pool_a.eq(row_lo + (ix0 + kx) * d.in_c + goff),
            self.act_raddr.eq(Mux(is_mvm, seg_a, pool_a)[:c.act_addr_bits]),
        ]
        pv_q, pfirst_q, plast_q, ppar_q = Signal(), Signal(), Signal(), Signal()
        m.d.sync += pv_q.eq(0)
        win_last = Signal()
        m.d.comb += win_last.eq((ky == d.k_h - 1) & (kx == d.k_w - 1))
        pres = [[Signal(c.pool_sum_bits, name=f"pool_res{b}_{j}") for j in range(W)] for b in range(2)]
        for j in range(W):
            unit = PoolUnit(c)
            m.submodules[f"pool{j}"] = unit
            m.d.comb += [
                unit.sum.eq(is_avg), unit.in_valid.eq(pv_q), unit.in_first.eq(pfirst_q),
                unit.in_last.eq(plast_q), unit.in_x.eq(self.act_rdata[j]),
            ]
            with m.If(unit.out_valid):
                for b in range(2):
                    with m.If(ppar_q == b):
                        m.d.sync += pres[b][j].eq(unit.out_value)

        # ---------------------------------------------------------------- stage A: array
        a_tcol0, a_par, a_tile = Signal(range(c.cols)), Signal(), Signal.like(l_tile)
        a_pos_base = Signal.like(pos_base)
        pwm = Signal(c.dac_bits + 1)
        a_conv = Signal()
        slot = Signal(range(n_slots))
        a_s_lo, a_s_hi = Signal.like(slot), Signal.like(slot)
        a_tcol_end = Signal(range(c.cols))
        m.d.comb += [
            a_tcol_end.eq(a_tcol0 + d.out_c - 1),
            a_s_lo.eq(a_tcol0 >> n_log2), a_s_hi.eq(a_tcol_end >> n_log2),
            self.conv_slot.eq(slot), self.conv_bank.eq(a_par), self.conv_bits.eq(d.in_bits),
            self.conv_mvm.eq(noise_mvm),
        ]
        # Codes of a conversion arrive a cycle later; they go to the code-buffer half of the MVM.
        m.submodules.code_buf = code_buf = Memory(
            shape=data.ArrayLayout(signed(c.adc_bits), c.n_adcs), depth=2 * n_slots, init=[])
        cb_w = code_buf.write_port()
        cb_r = code_buf.read_port(transparent_for=(cb_w,))
        cq_stb, cq_slot, cq_par = Signal(), Signal.like(slot), Signal()
        m.d.sync += [cq_stb.eq(self.conv_stb), cq_slot.eq(slot), cq_par.eq(a_par)]
        m.d.comb += [cb_w.addr.eq(cq_par * n_slots + cq_slot), cb_w.data.eq(self.codes), cb_w.en.eq(cq_stb)]

        # ---------------------------------------------------------------- stage P: post-processing
        Q = c.pp_lanes
        q_log2 = (Q - 1).bit_length()
        p_tcol0, p_par, p_tile = Signal(range(c.cols)), Signal(), Signal.like(l_tile)
        p_pos_base = Signal.like(pos_base)
        pc = Signal(dim_bits)           # first channel of this cycle's Q (a multiple of Q)
        p_col = Signal(range(2 * c.cols))
        p_slot = Signal(range(2 * n_slots))
        m.d.comb += [p_col.eq(p_tcol0 + pc), p_slot.eq(p_col >> n_log2)]
        # Q consecutive columns lie in at most two code-buffer words (Q <= n_adcs).
        cb_r2 = code_buf.read_port(transparent_for=(cb_w,))
        slot_bits = (n_slots - 1).bit_length()
        m.d.comb += [cb_r.addr.eq(p_par * n_slots + p_slot),
                     cb_r2.addr.eq(p_par * n_slots + ((p_slot + 1)[:slot_bits] if slot_bits else 0))]
        # Partial code sums of a tiled layer over its tiles so far, Q channels per entry (a tiled
        # layer has at most cols/2 channels).
        m.submodules.tile_acc = tile_acc = Memory(shape=data.ArrayLayout(signed(c.code_sum_bits), Q),
                                                  depth=max(1, c.cols // 2 // Q), init=[])
        acc_w = tile_acc.write_port()
        acc_r = tile_acc.read_port(transparent_for=(acc_w,))
        m.d.comb += acc_r.addr.eq(pc >> q_log2)
        pq_valid, pq_first, pq_last = Signal(Q), Signal(), Signal()
        pq_lane0, pq_ch, pq_addr = Signal(range(c.n_adcs)), Signal(dim_bits), Signal.like(pos_base)
        m.d.sync += pq_valid.eq(0)
        codes2 = Signal(data.ArrayLayout(signed(c.adc_bits), 2 * c.n_adcs))
        m.d.comb += [codes2.as_value()[:len(cb_r.data.as_value())].eq(cb_r.data.as_value()),
                     codes2.as_value()[len(cb_r.data.as_value()):].eq(cb_r2.data.as_value())]
        code_sum = Signal(data.ArrayLayout(signed(c.code_sum_bits), Q))
        for q in range(Q):
            m.d.comb += code_sum[q].eq(Mux(pq_first, 0, acc_r.data[q]) + codes2[pq_lane0 + q])
        m.d.comb += [acc_w.addr.eq(pq_ch >> q_log2), acc_w.data.eq(code_sum), acc_w.en.eq(pq_valid.any() & ~pq_last)]
        pp_valid, pp_code, pp_addr = Signal.like(self.pp_valid), Signal.like(self.pp_code), Signal.like(self.pp_addr)
        m.d.comb += [self.pp_valid.eq(pp_valid), self.pp_code.eq(pp_code), self.pp_addr.eq(pp_addr)]
        m.d.sync += pp_valid.eq(0)
        with m.If(pq_valid.any() & pq_last):
            m.d.sync += [pp_valid.eq(pq_valid), pp_addr.eq(pq_addr)]
            for q in range(Q):
                m.d.sync += pp_code[q].eq(code_sum[q])
        p_lanes_ok = Signal(Q)
        for q in range(Q):
            m.d.comb += p_lanes_ok[q].eq(pc + q < d.out_c)

        # ---------------------------------------------------------------- stage S: pooling results
        s_goff, s_n = Signal.like(goff), Signal.like(n_grp)
        sc = Signal(range(W + 1))       # 0: the results land; then Q channels a cycle
        s_lane = Signal(range(W + Q))   # first channel of the cycle within the group
        s_steps = Signal(range(W + 1))
        m.d.comb += [s_lane.eq((sc - 1) << q_log2), s_steps.eq((s_n + (Q - 1)) >> q_log2)]
        with m.If(is_mvm):
            m.d.comb += self.param_addr.eq(d.param_base + pq_ch)
        with m.Else():
            m.d.comb += self.param_addr.eq(d.param_base + s_goff + s_lane)

        m.d.comb += [
            self.layer.eq(layer), self.mvms.eq(mvm),
            self.act_rbank.eq(d.in_bank), self.wr_bank.eq(d.out_bank),
            self.pp_alpha.eq(alpha), self.pp_shift.eq(d.shift), self.pp_out_bits.eq(d.out_bits),
            self.pp_to_out.eq(d.to_out), self.pp_relu.eq(d.relu), self.pp_passthrough.eq(is_max),
            self.prog_addr.eq(layer),
        ]

        # Descriptor checks (docs/architecture.md, "Host address map"): evaluated in CHECK from the
        # latched descriptor, reported in ErrorCode order so the lowest failing code wins.
        bits_ok = [reduce(operator.or_, [b == v for v in c.act_bits_supported]) for b in (d.in_bits, d.out_bits)]

        def dim_ok(out, inp, k):
            # out == (inp + 2*pad - k) // stride + 1, without a divider: span >= k and
            # (out-1)*stride <= span - k < out*stride.
            span = inp + 2 * d.pad
            return (span >= k) & (out * d.stride + k <= span + d.stride) & (out * d.stride + k > span)

        in_end = d.in_base + d.in_h * d.in_w * d.in_c
        out_end = d.out_base + d.out_h * d.out_w * d.out_c
        max_code = (1 << d.in_bits) - 1
        checks = [
            (ErrorCode.BAD_OPCODE, ~(is_mvm | is_max | is_avg)),
            (ErrorCode.BAD_BITS, ~(bits_ok[0] & bits_ok[1])),
            (ErrorCode.ZERO_SIZE, (d.stride == 0) | (d.k_h == 0) | (d.k_w == 0) | (d.in_h == 0) | (d.in_w == 0) |
             (d.in_c == 0) | (d.out_h == 0) | (d.out_w == 0) | (d.out_c == 0)),
            (ErrorCode.BAD_GEOMETRY, ~dim_ok(d.out_h, d.in_h, d.k_h) | ~dim_ok(d.out_w, d.in_w, d.k_w) |
             (is_mvm & (d.k_rows != d.k_h * d.k_w * d.in_c))),
            (ErrorCode.ARRAY_ROWS, is_mvm & (d.row0 + Mux(d.k_rows > c.rows, c.rows, d.k_rows) > c.rows)),
            (ErrorCode.ARRAY_COLS, is_mvm & (d.col0 + n_tiles * d.out_c > c.cols)),
            (ErrorCode.BAD_POOL, ~is_mvm & ((d.k_rows != 0) | (d.row0 != 0) | (d.col0 != 0) | (d.out_c != d.in_c) |
                                            (d.pad != 0) | (is_max & ((d.out_bits != d.in_bits) | d.to_out)))),
            (ErrorCode.POOL_SUM, ~is_mvm & (d.k_h * d.k_w * max_code >= (1 << c.pool_sum_bits))),
            (ErrorCode.PARAM_RANGE, d.param_base + d.out_c > c.param_depth),
            (ErrorCode.BAD_SHIFT, d.shift > c.pp_shift_max),
            (ErrorCode.IN_RANGE, in_end > c.act_depth),
            (ErrorCode.OUT_RANGE, out_end > Mux(d.to_out, c.out_depth, c.act_depth)),
            (ErrorCode.ACT_OVERLAP, ~d.to_out & (d.in_bank == d.out_bank) & (out_end > d.in_base) &
             (in_end > d.out_base)),
        ]
        assert [code for code, _ in checks] == sorted(code for code, _ in checks)

        busy = Signal()
        paused = Signal()
        drain = Signal(range(LAYER_END))
        m.d.comb += [self.busy.eq(busy), self.paused.eq(paused)]
        m.d.sync += [self.ev_done.eq(0), self.ev_paused.eq(0), self.ev_error.eq(0)]
        with m.If(busy & ~paused):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        def fail(code: ErrorCode):
            m.d.sync += [self.error.eq(1), self.error_code.eq(code), self.ev_error.eq(1), busy.eq(0)]
            m.next = "IDLE"

        def end_of_layer():
            m.d.sync += drain.eq(LAYER_END - 1)
            m.next = "LAYER_END"

        pres_arr = Array(Array(row) for row in pres)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [
                        layer.eq(0), mvm.eq(0), noise_mvm.eq(self.mvm_base), self.cycles.eq(0), self.done.eq(0),
                        self.error.eq(0), self.error_code.eq(0),
                    ]
                    with m.If(self.num_layers == 0):
                        fail(ErrorCode.NO_LAYERS)
                    with m.Elif(self.num_layers > c.max_layers):
                        fail(ErrorCode.TOO_MANY_LAYERS)
                    with m.Else():
                        m.d.sync += [busy.eq(1), n_layers.eq(self.num_layers)]
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.next = "DECODE"
            with m.State("DECODE"):
                # Latched per layer: a host write to ALPHA during the layer cannot split it.
                m.d.sync += [d.eq(self.prog_data), alpha.eq(self.alpha)]
                m.next = "CHECK"
            with m.State("CHECK"):
                for i, (code, bad) in enumerate(checks):
                    with (m.If if i == 0 else m.Elif)(bad):
                        fail(code)
                with m.Else():
                    m.d.sync += [
                        oy.eq(0), ox.eq(0), iy0.eq(-d.pad), ix0.eq(-d.pad), pos_base.eq(d.out_base),
                        ky.eq(0), kx.eq(0), off.eq(0), r.eq(0), rl.eq(0), goff.eq(0),
                        l_tile.eq(0), l_tcol0.eq(d.col0), l_par.eq(0),
                        l_on.eq(1), a_on.eq(0), p_on.eq(0), l_fin.eq(0), a_fin.eq(0), p_fin.eq(0),
                        pwm.eq(0), a_conv.eq(0), pc.eq(0), sc.eq(0),
                    ]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(is_mvm):
                    with m.If(l_on & ~l_fin):
                        # L: one run of up to W im2col rows per cycle into DAC bank l_par.
                        m.d.comb += [self.load_valid.eq(1), l_last.eq(mvm_end)]
                        m.d.sync += [r.eq(r + n), rl.eq(rl + n)]
                        with m.If(seg_end):
                            m.d.sync += [off.eq(0), ky.eq(ky + 1)]
                        with m.Else():
                            m.d.sync += off.eq(off + n)
                        with m.If(mvm_end):
                            # The im2col counters run on into the next tile's rows, or restart.
                            m.d.sync += [l_fin.eq(1), l_posdone.eq(pos_end), rl.eq(0)]
                            with m.If(pos_end):
                                m.d.sync += [ky.eq(0), off.eq(0), r.eq(0)]
                    with m.If(a_on & ~a_fin):
                        # A: the analog integration window of 2**in_bits cycles, then the slots.
                        with m.If(~a_conv):
                            m.d.sync += pwm.eq(pwm + 1)
                            with m.If(pwm == (1 << d.in_bits) - 1):
                                m.d.sync += [a_conv.eq(1), slot.eq(a_s_lo)]
                        with m.Else():
                            m.d.comb += [self.conv_stb.eq(1), a_last.eq(slot == a_s_hi)]
                            m.d.sync += slot.eq(slot + 1)
                            with m.If(slot == a_s_hi):
                                m.d.sync += a_fin.eq(1)
                    with m.If(p_on & ~p_fin):
                        # P: channel pc's code and partial sum are read now, summed next cycle.
                        m.d.comb += p_last.eq(pc + Q >= d.out_c)
                        m.d.sync += [
                            pq_valid.eq(p_lanes_ok), pq_first.eq(p_tile == 0), pq_last.eq(p_tile == n_tiles - 1),
                            pq_lane0.eq(p_col[:n_log2] if n_log2 else 0), pq_ch.eq(pc),
                            pq_addr.eq(p_pos_base + pc), pc.eq(pc + Q),
                        ]
                        with m.If(pc + Q >= d.out_c):
                            m.d.sync += p_fin.eq(1)
                    with m.If(beat_end):
                        m.d.sync += [
                            l_fin.eq(0), a_fin.eq(0), p_fin.eq(0), pwm.eq(0), a_conv.eq(0), pc.eq(0),
                            a_on.eq(l_on), a_tcol0.eq(l_tcol0), a_par.eq(l_par), a_tile.eq(l_tile),
                            a_pos_base.eq(pos_base),
                            p_on.eq(a_on), p_tcol0.eq(a_tcol0), p_par.eq(a_par), p_tile.eq(a_tile),
                            p_pos_base.eq(a_pos_base),
                        ]
                        with m.If(a_on):
                            m.d.sync += [mvm.eq(mvm + 1), noise_mvm.eq(noise_mvm + 1)]
                        with m.If(l_on):
                            m.d.sync += l_par.eq(~l_par)
                            with m.If(posdone_now):
                                m.d.sync += [l_tile.eq(0), l_tcol0.eq(d.col0)]
                                next_position()
                                with m.If(last_pos):
                                    m.d.sync += l_on.eq(0)
                            with m.Else():
                                m.d.sync += [l_tile.eq(l_tile + 1), l_tcol0.eq(l_tcol0 + d.out_c)]
                        with m.If(~l_on & ~a_on):
                            end_of_layer()
                with m.Else():
                    with m.If(l_on & ~l_fin):
                        # R: one window element of W channels per cycle, (ky, kx) innermost.
                        m.d.comb += l_last.eq(win_last)
                        m.d.sync += [pv_q.eq(1), pfirst_q.eq((ky == 0) & (kx == 0)), plast_q.eq(win_last),
                                     ppar_q.eq(l_par)]
                        with m.If(kx != d.k_w - 1):
                            m.d.sync += kx.eq(kx + 1)
                        with m.Else():
                            m.d.sync += kx.eq(0)
                            with m.If(ky != d.k_h - 1):
                                m.d.sync += ky.eq(ky + 1)
                            with m.Else():
                                m.d.sync += [ky.eq(0), l_fin.eq(1)]
                    with m.If(p_on & ~p_fin):
                        # S: cycle 0 lets the group's results land; then one channel per cycle.
                        m.d.comb += p_last.eq(sc == s_steps)
                        m.d.sync += sc.eq(sc + 1)
                        with m.If(sc != 0):
                            m.d.sync += pp_addr.eq(p_pos_base + s_goff + s_lane)
                            for q in range(Q):
                                m.d.sync += [pp_valid[q].eq(s_lane + q < s_n),
                                             pp_code[q].eq(pres_arr[p_par][(s_lane + q)[:max(1, (W - 1).bit_length())]
                                                                          if W > 1 else 0])]
                        with m.If(sc == s_steps):
                            m.d.sync += p_fin.eq(1)
                    with m.If(beat_end):
                        m.d.sync += [l_fin.eq(0), p_fin.eq(0), sc.eq(0), p_on.eq(l_on), s_goff.eq(goff),
                                     s_n.eq(n_grp), p_pos_base.eq(pos_base), p_par.eq(l_par)]
                        with m.If(l_on):
                            m.d.sync += l_par.eq(~l_par)
                            with m.If(last_grp):
                                m.d.sync += goff.eq(0)
                                next_position()
                                with m.If(last_pos):
                                    m.d.sync += l_on.eq(0)
                            with m.Else():
                                m.d.sync += goff.eq(goff + W)
                        with m.Else():
                            end_of_layer()
            with m.State("LAYER_END"):
                # Let the last post-processed values land before anyone reads them.
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    with m.If(layer == n_layers - 1):
                        m.d.sync += [self.done.eq(1), self.ev_done.eq(1), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        with m.If(self.step):
                            m.d.sync += [paused.eq(1), self.ev_paused.eq(1)]
                            m.next = "PAUSED"
                        with m.Else():
                            m.next = "FETCH"
            with m.State("PAUSED"):
                with m.If(self.cont):
                    m.d.sync += paused.eq(0)
                    m.next = "FETCH"
        return m

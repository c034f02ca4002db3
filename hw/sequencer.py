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

Composition: this block keeps the layer FSM, the beat control and stages A, P and S; its stages
with a contract of their own are components, each tested alone against its golden-model twin:
  `DescriptorCheck`  (desc_check.py) the CHECK state's ErrorCode of a latched descriptor
                     (tests/test_desc_check_stage.py);
  `Im2colWalker`     (im2col.py) stage L/R's positions, MVMs / pooling groups and activation
                     reads, streamed over an `ActReadSignature` (tests/test_im2col_stage.py);
  `PoolBank`         (pool_bank.py) stage R's pooling units and result halves, fed over a
                     `PoolWindowSignature` (tests/test_pool_bank_stage.py).
"""
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESCRIPTOR_FIELDS, Op
from aoncim.regmap import ErrorCode
from aoncim.schedule import LAYER_END

from .desc_check import DescriptorCheck
from .descriptor import descriptor_layout, dim_bits
from .im2col import Im2colWalker
from .pool_bank import PoolBank, PoolWindowSignature
from .postproc import pp_addr_bits, pp_code_bits


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
        db = dim_bits()
        k_rows_bits = dict(DESCRIPTOR_FIELDS)["k_rows"]
        n_tiles = Signal(max(1, k_rows_bits - c.row_bits + 1))
        # Row tiles (contract step 12): ceil(k_rows / rows), a shift because rows is a power of two.
        m.d.comb += n_tiles.eq((d.k_rows + (c.rows - 1)) >> c.row_bits)

        # ---------------------------------------------------------------- beat control
        # Stage L (pooling: R) works on MVM k, A on k-1, P (pooling: S) on k-2. `*_on`: the stage
        # has work this beat; `*_fin`: it has finished it; `*_last`: this cycle is its last. Stage
        # L/R's own state (position, MVM / group, reads) is the walker's: l_on is `walk.active`,
        # and it has work left this beat while `walk.read.valid`.
        m.submodules.walk = walk = Im2colWalker(c)
        a_on, p_on = Signal(), Signal()
        a_fin, p_fin = Signal(), Signal()
        l_last, a_last, p_last = Signal(), Signal(), Signal()
        l_on = walk.active
        l_par = Signal()                # DAC-register bank / pooling-result half of stage L/R's MVM
        running = Signal()
        beat_end = Signal()
        m.d.comb += beat_end.eq(running & (~walk.read.valid | l_last) & (~a_on | a_fin | a_last) &
                                (~p_on | p_fin | p_last))
        m.d.comb += [
            walk.desc.eq(d),
            # Stage L/R takes one read a cycle while it has any; the last ends its part of the beat.
            walk.read.take.eq(running & walk.read.valid),
            l_last.eq(walk.read.take & walk.read.last),
            walk.next.eq(beat_end),
            self.act_raddr.eq(walk.read.addr),
        ]
        pos_base = walk.out_base

        # ---------------------------------------------------------------- stage L: load
        # The read data of a run arrive a cycle after its address; so do its lanes' in-map flags.
        # Lanes outside the map (zero padding) or past the run load code 0.
        lane_ok_q = Signal(W)
        m.d.sync += lane_ok_q.eq(walk.read.lanes)
        for j in range(W):
            m.d.comb += self.load_x[j].eq(Mux(lane_ok_q[j], self.act_rdata[j], 0))
        m.d.comb += [
            self.load_valid.eq(is_mvm & walk.read.take),
            self.load_row.eq(walk.read.row), self.load_first.eq(walk.read.first), self.load_bank.eq(l_par),
        ]

        # ---------------------------------------------------------------- stage R: pooling reads
        # A window element reaches the pooling units with its read data, a cycle after the read.
        m.submodules.pool = pool = PoolBank(c)
        pool_win = PoolWindowSignature(c).create(path=("pool_win",))
        wiring.connect(m, pool_win, pool.win)
        m.d.sync += pool_win.valid.eq(0)
        m.d.comb += [pool.sum.eq(is_avg), pool_win.x.eq(self.act_rdata)]

        # ---------------------------------------------------------------- stage A: array
        a_tcol0, a_par, a_tile = Signal(range(c.cols)), Signal(), Signal.like(walk.tile)
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
        p_tcol0, p_par, p_tile = Signal(range(c.cols)), Signal(), Signal.like(walk.tile)
        p_pos_base = Signal.like(pos_base)
        pc = Signal(db)           # first channel of this cycle's Q (a multiple of Q)
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
        pq_lane0, pq_ch, pq_addr = Signal(range(c.n_adcs)), Signal(db), Signal.like(pos_base)
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
        s_goff, s_n = Signal.like(walk.c0), Signal.like(walk.n)
        sc = Signal(range(W + 1))       # 0: the results land; then Q channels a cycle
        s_lane = Signal(range(W + Q))   # first channel of the cycle within the group
        s_steps = Signal(range(W + 1))
        m.d.comb += [s_lane.eq((sc - 1) << q_log2), s_steps.eq((s_n + (Q - 1)) >> q_log2),
                     pool.rd_half.eq(p_par)]
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
        # latched descriptor.
        m.submodules.check = check = DescriptorCheck(c)
        m.d.comb += check.desc.eq(d)

        busy = Signal()
        paused = Signal()
        drain = Signal(range(LAYER_END))
        m.d.comb += [self.busy.eq(busy), self.paused.eq(paused)]
        m.d.sync += [self.ev_done.eq(0), self.ev_paused.eq(0), self.ev_error.eq(0)]
        with m.If(busy & ~paused):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        def fail(code):
            m.d.sync += [self.error.eq(1), self.error_code.eq(code), self.ev_error.eq(1), busy.eq(0)]
            m.next = "IDLE"

        def end_of_layer():
            m.d.sync += drain.eq(LAYER_END - 1)
            m.next = "LAYER_END"

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
                with m.If(check.error):
                    fail(check.code)
                with m.Else():
                    m.d.comb += walk.start.eq(1)
                    m.d.sync += [
                        l_par.eq(0), a_on.eq(0), p_on.eq(0), a_fin.eq(0), p_fin.eq(0),
                        pwm.eq(0), a_conv.eq(0), pc.eq(0), sc.eq(0),
                    ]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(is_mvm):
                    # L: one run of up to W im2col rows per cycle into DAC bank l_par (the walker
                    # takes it, above).
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
                            a_fin.eq(0), p_fin.eq(0), pwm.eq(0), a_conv.eq(0), pc.eq(0),
                            a_on.eq(l_on), a_tcol0.eq(walk.tcol0), a_par.eq(l_par), a_tile.eq(walk.tile),
                            a_pos_base.eq(pos_base),
                            p_on.eq(a_on), p_tcol0.eq(a_tcol0), p_par.eq(a_par), p_tile.eq(a_tile),
                            p_pos_base.eq(a_pos_base),
                        ]
                        with m.If(a_on):
                            m.d.sync += [mvm.eq(mvm + 1), noise_mvm.eq(noise_mvm + 1)]
                        # The walker moves on to the next MVM (walk.next).
                        with m.If(l_on):
                            m.d.sync += l_par.eq(~l_par)
                        with m.If(~l_on & ~a_on):
                            end_of_layer()
                with m.Else():
                    with m.If(walk.read.take):
                        # R: one window element of W channels per cycle, (ky, kx) innermost.
                        m.d.sync += [pool_win.valid.eq(1), pool_win.first.eq(walk.read.first),
                                     pool_win.last.eq(walk.read.last), pool_win.half.eq(l_par)]
                    with m.If(p_on & ~p_fin):
                        # S: cycle 0 lets the group's results land; then one channel per cycle.
                        m.d.comb += p_last.eq(sc == s_steps)
                        m.d.sync += sc.eq(sc + 1)
                        with m.If(sc != 0):
                            m.d.sync += pp_addr.eq(p_pos_base + s_goff + s_lane)
                            for q in range(Q):
                                m.d.sync += [pp_valid[q].eq(s_lane + q < s_n),
                                             pp_code[q].eq(pool.result[(s_lane + q)[:max(1, (W - 1).bit_length())]
                                                               if W > 1 else 0])]
                        with m.If(sc == s_steps):
                            m.d.sync += p_fin.eq(1)
                    with m.If(beat_end):
                        m.d.sync += [p_fin.eq(0), sc.eq(0), p_on.eq(l_on), s_goff.eq(walk.c0),
                                     s_n.eq(walk.n), p_pos_base.eq(pos_base), p_par.eq(l_par)]
                        # The walker moves on to the next group (walk.next).
                        with m.If(l_on):
                            m.d.sync += l_par.eq(~l_par)
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

"""Layer-serial sequencer: runs the descriptors one layer after another on the one crossbar.

Per layer: fetch the descriptor and latch the layer's drift-compensation alpha, then check the
descriptor against the configured chip (a malformed one stops the run with an `ErrorCode` before
the layer touches any memory). An MVM layer then runs, per output position and per row tile (one
tile unless the layer has more im2col rows than the array: contract step 12), one array MVM:
stream the tile's rows of the im2col input vector from the activation SRAM into the DAC registers
(the behavioural array sums as rows arrive), hold the PWM window for 2**in_bits cycles, then
convert the tile's column window slot by slot (n_adcs columns per slot). Each channel's code is
added to its partial sum over the earlier tiles (a small accumulator memory, one entry per
channel); after the last tile the sum goes through post-processing. A pooling layer streams each
output's window, channel by channel, from the activation SRAM through the pooling unit (`pool.py`)
into post-processing, which passes a max pool's result through unchanged. The schedule is strictly
sequential; its cycle count is documented in docs/architecture.md.
"""
import operator
from functools import reduce

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS, DESCRIPTOR_FIELDS, OP_AVGPOOL, OP_MAXPOOL, OP_MVM
from aoncim.regmap import ErrorCode

from .pool import PoolUnit
from .postproc import pp_addr_bits, pp_code_bits

PP_LATENCY = 2    # parameter read + post-processing register, before the activation write lands
POOL_LATENCY = 1  # a pooling window's last code arrives one activation-read cycle after its address


def descriptor_layout() -> data.StructLayout:
    fields = dict(DESCRIPTOR_FIELDS)
    fields["_pad"] = DESC_BITS - sum(fields.values())
    return data.StructLayout(fields)


class LayerSequencer(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        c = cfg
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
            # activation SRAM read (1-cycle latency); the top selects the bank
            "act_raddr": Out(c.act_addr_bits),
            "act_rbank": Out(1),
            "act_rdata": In(c.dac_bits),
            # behavioural array
            "load_valid": Out(1), "load_first": Out(1), "load_row": Out(c.row_bits), "load_x": Out(c.dac_bits),
            "conv_stb": Out(1), "conv_slot": Out(range(c.cols // c.n_adcs)), "conv_bits": Out(4), "conv_mvm": Out(32),
            "codes": In(data.ArrayLayout(signed(c.adc_bits), c.n_adcs)),
            # post-processing: parameter address at t, the rest at t+1 with the parameter data
            "param_addr": Out(range(c.param_depth)),
            "pp_valid": Out(1), "pp_code": Out(signed(pp_code_bits(c))),
            "pp_addr": Out(pp_addr_bits(c)),
            "pp_alpha": Out(c.alpha_bits),
            "pp_shift": Out(6), "pp_out_bits": Out(4), "pp_to_out": Out(1), "pp_relu": Out(1),
            "pp_passthrough": Out(1),
            "wr_bank": Out(1),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        n_log2 = (c.n_adcs - 1).bit_length()
        m.submodules.pool = pool = PoolUnit(c)

        d = Signal(descriptor_layout())
        alpha = Signal(c.alpha_bits)
        layer = Signal(range(c.max_layers))
        # Latched at START: a host write to NUM_LAYERS during a run must not make it run past the end.
        n_layers = Signal(range(c.max_layers + 1))
        # Array MVMs of this run (the MVMS counter, from 0) and the read-noise MVM counter (from
        # MVM_BASE): they step together, once per row tile of every output position.
        mvm = Signal(32)
        noise_mvm = Signal(32)
        is_mvm, is_max, is_avg = d.opcode == OP_MVM, d.opcode == OP_MAXPOOL, d.opcode == OP_AVGPOOL
        # position and im2col counters
        oy, ox = Signal(12), Signal(12)
        iy0, ix0 = Signal(signed(14)), Signal(signed(14))
        ky, kx, ci = Signal(12), Signal(12), Signal(12)
        r = Signal(16)                  # im2col row of the position
        rl = Signal(range(c.rows))      # row within the current row tile
        pos_base = Signal(self.pp_addr.shape())
        pwm = Signal(c.dac_bits + 1)
        slot = Signal(range(c.cols // c.n_adcs))
        lane = Signal(range(c.n_adcs))
        # Row tiles (contract step 12): ceil(k_rows / rows), a shift because rows is a power of two;
        # tile t's columns start at tcol0 = col0 + t * out_c.
        k_rows_bits = dict(DESCRIPTOR_FIELDS)["k_rows"]
        n_tiles = Signal(max(1, k_rows_bits - c.row_bits + 1))
        tile = Signal(range(c.max_row_tiles))
        tcol0 = Signal(range(c.cols))
        last_tile = Signal()
        m.d.comb += [n_tiles.eq((d.k_rows + (c.rows - 1)) >> c.row_bits), last_tile.eq(tile == n_tiles - 1)]
        # The current tile's ADC slots and the lanes of its first and last column.
        s_lo, s_hi = Signal.like(slot), Signal.like(slot)
        lane_first, lane_last = Signal.like(lane), Signal.like(lane)
        tcol_end = Signal(range(c.cols))
        m.d.comb += [
            tcol_end.eq(tcol0 + d.out_c - 1),
            s_lo.eq(tcol0 >> n_log2), s_hi.eq(tcol_end >> n_log2),
            lane_first.eq(tcol0[:n_log2] if n_log2 else 0), lane_last.eq(tcol_end[:n_log2] if n_log2 else 0),
        ]
        drain = Signal(range(PP_LATENCY + POOL_LATENCY + 1))

        m.d.comb += [
            self.layer.eq(layer), self.mvms.eq(mvm),
            self.act_rbank.eq(d.in_bank), self.wr_bank.eq(d.out_bank),
            self.pp_alpha.eq(alpha), self.pp_shift.eq(d.shift), self.pp_out_bits.eq(d.out_bits),
            self.pp_to_out.eq(d.to_out), self.pp_relu.eq(d.relu), self.pp_passthrough.eq(is_max),
            self.conv_bits.eq(d.in_bits), self.conv_mvm.eq(noise_mvm), self.conv_slot.eq(slot),
            self.prog_addr.eq(layer),
        ]

        # Input address of (iy0 + ky, ix0 + kx, ci); for an MVM, rows outside the map are zero padding.
        iy, ix = Signal(signed(14)), Signal(signed(14))
        inside = Signal()
        m.d.comb += [
            iy.eq(iy0 + ky), ix.eq(ix0 + kx),
            inside.eq((iy >= 0) & (iy < d.in_h) & (ix >= 0) & (ix < d.in_w)),
            self.act_raddr.eq(d.in_base + (iy.as_unsigned()[:12] * d.in_w + ix.as_unsigned()[:12]) * d.in_c + ci),
            self.load_row.eq(d.row0 + rl),
        ]
        pad_q = Signal()
        m.d.sync += pad_q.eq(~inside)
        m.d.comb += self.load_x.eq(Mux(pad_q, 0, self.act_rdata))

        # Post-processing issue stage, aligned with the parameter read.
        pp_valid, pp_code, pp_addr = Signal(), Signal.like(self.pp_code), Signal.like(self.pp_addr)
        m.d.comb += [self.pp_valid.eq(pp_valid), self.pp_code.eq(pp_code), self.pp_addr.eq(pp_addr)]
        ch = Signal(12)
        m.d.comb += ch.eq((slot << n_log2) + lane - tcol0)
        m.d.sync += pp_valid.eq(0)

        # Partial code sums of a tiled layer over its tiles so far, one entry per channel (a tiled
        # layer has at most cols/2 channels). The read is issued one cycle ahead: in CONVERT for the
        # first channel of the slot, in POSTPROC for the next channel, so the partial sum arrives
        # with the channel's code and the sum adds no cycle to the schedule.
        m.submodules.tile_acc = tile_acc = Memory(shape=signed(c.code_sum_bits), depth=max(1, c.cols // 2), init=[])
        acc_r, acc_w = tile_acc.read_port(), tile_acc.write_port()
        code_sum = Signal(signed(c.code_sum_bits))
        m.d.comb += [
            acc_r.addr.eq(ch + 1), acc_w.addr.eq(ch), acc_w.data.eq(code_sum),
            code_sum.eq(Mux(tile == 0, 0, acc_r.data) + self.codes[lane]),
        ]

        # Pooling: the code read for (ci, ky, kx) arrives a cycle later with these tags.
        pv_q, pfirst_q, plast_q = Signal(), Signal(), Signal()
        pch_q, paddr_q = Signal.like(ci), Signal.like(pos_base)
        m.d.sync += pv_q.eq(0)
        m.d.comb += [
            pool.sum.eq(is_avg), pool.in_valid.eq(pv_q), pool.in_first.eq(pfirst_q),
            pool.in_last.eq(plast_q), pool.in_x.eq(self.act_rdata),
            self.param_addr.eq(d.param_base + Mux(is_mvm, ch, pch_q)),
        ]
        with m.If(pool.out_valid):
            m.d.sync += [pp_valid.eq(1), pp_code.eq(pool.out_value), pp_addr.eq(paddr_q)]

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
        m.d.comb += [self.busy.eq(busy), self.paused.eq(paused)]
        m.d.sync += [self.ev_done.eq(0), self.ev_paused.eq(0), self.ev_error.eq(0)]
        with m.If(busy & ~paused):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        def fail(code: ErrorCode):
            m.d.sync += [self.error.eq(1), self.error_code.eq(code), self.ev_error.eq(1), busy.eq(0)]
            m.next = "IDLE"

        def end_of_layer(drain_cycles: int):
            m.d.sync += drain.eq(drain_cycles - 1)
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
                for i, (code, bad) in enumerate(checks):
                    with (m.If if i == 0 else m.Elif)(bad):
                        fail(code)
                with m.Else():
                    m.d.sync += [
                        oy.eq(0), ox.eq(0), iy0.eq(-d.pad), ix0.eq(-d.pad), pos_base.eq(d.out_base),
                        tile.eq(0), tcol0.eq(d.col0), ky.eq(0), kx.eq(0), ci.eq(0), r.eq(0), rl.eq(0),
                    ]
                    with m.If(is_mvm):
                        m.next = "LOAD"
                    with m.Else():
                        m.next = "POOL"
            with m.State("LOAD"):
                m.d.comb += [self.load_valid.eq(1), self.load_first.eq(rl == 0)]
                m.d.sync += [r.eq(r + 1), rl.eq(rl + 1)]
                with m.If(ci == d.in_c - 1):
                    m.d.sync += ci.eq(0)
                    with m.If(kx == d.k_w - 1):
                        m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                    with m.Else():
                        m.d.sync += kx.eq(kx + 1)
                with m.Else():
                    m.d.sync += ci.eq(ci + 1)
                # The tile ends at the array's last row or at the layer's last im2col row.
                with m.If((r == d.k_rows - 1) | (rl == c.rows - 1)):
                    m.d.sync += [pwm.eq(0), slot.eq(s_lo)]
                    m.next = "PWM"
            with m.State("PWM"):
                # The analog integration window: 2**in_bits input-clock cycles.
                m.d.sync += pwm.eq(pwm + 1)
                with m.If(pwm == (1 << d.in_bits) - 1):
                    m.next = "CONVERT"
            with m.State("CONVERT"):
                m.d.comb += self.conv_stb.eq(1)
                first_lane = Mux(slot == s_lo, lane_first, 0)
                m.d.comb += acc_r.addr.eq((slot << n_log2) + first_lane - tcol0)
                m.d.sync += lane.eq(first_lane)
                m.next = "POSTPROC"
            with m.State("POSTPROC"):
                with m.If(last_tile):
                    m.d.sync += [pp_valid.eq(1), pp_code.eq(code_sum), pp_addr.eq(pos_base + ch)]
                with m.Else():
                    m.d.comb += acc_w.en.eq(1)
                with m.If((slot == s_hi) & (lane == lane_last)):
                    with m.If(last_tile):
                        m.next = "NEXT_POS"
                    with m.Else():
                        m.next = "NEXT_TILE"
                with m.Elif(lane == c.n_adcs - 1):
                    m.d.sync += slot.eq(slot + 1)
                    m.next = "CONVERT"
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
            with m.State("NEXT_TILE"):
                # The im2col counters run on into the next tile's rows.
                m.d.sync += [mvm.eq(mvm + 1), noise_mvm.eq(noise_mvm + 1), tile.eq(tile + 1),
                             tcol0.eq(tcol0 + d.out_c), rl.eq(0)]
                m.next = "LOAD"
            with m.State("NEXT_POS"):
                m.d.sync += [mvm.eq(mvm + 1), noise_mvm.eq(noise_mvm + 1), pos_base.eq(pos_base + d.out_c),
                             tile.eq(0), tcol0.eq(d.col0), ky.eq(0), kx.eq(0), ci.eq(0), r.eq(0), rl.eq(0)]
                m.next = "LOAD"
                with m.If(ox == d.out_w - 1):
                    m.d.sync += [ox.eq(0), ix0.eq(-d.pad)]
                    with m.If(oy == d.out_h - 1):
                        end_of_layer(PP_LATENCY)
                    with m.Else():
                        m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + d.stride)]
                with m.Else():
                    m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + d.stride)]
            with m.State("POOL"):
                # One code per cycle: window (ky, kx) innermost, then channel, then position, so a
                # single accumulator serves every channel.
                m.d.sync += [
                    pv_q.eq(1), pfirst_q.eq((ky == 0) & (kx == 0)),
                    plast_q.eq((ky == d.k_h - 1) & (kx == d.k_w - 1)),
                    pch_q.eq(ci), paddr_q.eq(pos_base + ci),
                ]
                with m.If(kx != d.k_w - 1):
                    m.d.sync += kx.eq(kx + 1)
                with m.Else():
                    m.d.sync += kx.eq(0)
                    with m.If(ky != d.k_h - 1):
                        m.d.sync += ky.eq(ky + 1)
                    with m.Else():
                        m.d.sync += ky.eq(0)
                        with m.If(ci != d.in_c - 1):
                            m.d.sync += ci.eq(ci + 1)
                        with m.Else():
                            m.d.sync += [ci.eq(0), pos_base.eq(pos_base + d.out_c)]
                            with m.If(ox != d.out_w - 1):
                                m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + d.stride)]
                            with m.Else():
                                m.d.sync += [ox.eq(0), ix0.eq(0)]
                                with m.If(oy != d.out_h - 1):
                                    m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + d.stride)]
                                with m.Else():
                                    end_of_layer(POOL_LATENCY + PP_LATENCY)
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

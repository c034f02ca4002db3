"""Layer-serial sequencer: runs the descriptors one layer after another on the one crossbar.

Per layer: fetch the descriptor and latch the layer's drift-compensation alpha, then check the
descriptor against the configured chip (a malformed one stops the run with an `ErrorCode` before
the layer touches any memory). An MVM layer then runs one array MVM per output position and row
tile (contract step 12) through a three-stage pipeline that advances in *beats*:

  L (load)     streams MVM k's im2col rows from the activation SRAM into DAC-register bank k%2,
               load_lanes rows per cycle (one contiguous run of a kernel row's (kx, c) codes);
  A (array)    MVM k-1: the PWM window of 2**in_bits cycles on bank (k-1)%2, then one ADC
               conversion per slot of the tile's columns into code-buffer half (k-1)%2;
  P (postproc) MVM k-2: pp_lanes channels per cycle from the code buffer, added to their partial
               sums over the earlier row tiles (tile accumulator) and, after the last tile,
               post-processed.

A beat lasts as long as its slowest stage; the next beat starts the cycle after. The array is the
one resource no schedule can share, so an MVM layer takes about MVMs x (2**in_bits + slots) cycles
when loading and post-processing keep up (perf/cycles.py has the exact count).

A pooling layer uses the same beats with two stages over (position, group of load_lanes channels):
R reads the group's window, one wide read per window element, into load_lanes pooling units; S
feeds the previous group's results, pp_lanes per cycle, to post-processing (max pooling passes
through). A layer of few channels (`AonCimConfig.pool_folds`) reads a kernel row's elements in one
run instead, and the pooling bank folds the lanes that hold one channel. A residual add (Op.ADD) runs as average pooling: its 2x1 window over the 2 x positions x C
view of its operands sums operand A and B of each element. A depthwise convolution (Op.DWCONV) runs
on the same stages: each read of R also reads the group's load_lanes weights of the window element
from the DWW memory (the same cycle, the same latency), window elements in the padding read the
layer's pad_code, and the pooling units multiply-accumulate.

Composition: this block keeps the layer FSM, the beat control (when a beat ends, what each stage
takes over) and stage L/R's few wires to the array and the pooling units; the stages are
components, each with a signature of its own and tested alone against a model of it:
  `DescriptorCheck`  (desc_check.py) the CHECK state's ErrorCode of a latched descriptor
                     (tests/test_desc_check_stage.py);
  `Im2colWalker`     (im2col.py) stage L/R's positions, MVMs / pooling groups and activation
                     reads, streamed over an `ActReadSignature` (tests/test_im2col_stage.py);
  `ArrayControl`     (array_control.py) stage A: PWM window, ADC slots over a `ConvertSignature`
                     (array_port.py), the code buffer (tests/test_array_control_stage.py);
  `TileAccumulator`  (tile_accumulator.py) stage P: row-tile sums from the code buffer over a
                     `CodeReadSignature`, issued to post-processing
                     (tests/test_tile_accumulator_stage.py);
  `PoolBank`         (pool_bank.py) stage R's pooling units and result halves, fed over a
                     `PoolWindowSignature` (tests/test_pool_bank_stage.py);
  `PoolResultIssue`  (pool_issue.py) stage S: the pooling results to post-processing
                     (tests/test_pool_issue_stage.py).
Stage L hands its MVM to A and A to P over an `MvmHandoffSignature`, R its group to S over a
`GroupHandoffSignature`; P and S issue over a `PostprocIssueSignature`, one of the two (by the
layer's opcode) driving the `PostprocSignature` port (postproc_port.py). The host controls a run
over a `RunControlSignature` (host.py). The FSM and the beats are tested with stub memories and
array in tests/test_sequencer_stage.py.
"""
from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import Op
from aoncim.regmap import ErrorCode
from aoncim.schedule import LAYER_END

from .array_control import ArrayControl
from .array_port import ConvertSignature, LoadSignature, codes_layout
from .desc_check import DescriptorCheck
from .descriptor import descriptor_layout, pool_fold_levels
from .host import RunControlSignature
from .im2col import Im2colWalker
from .pool_bank import PoolBank, PoolWindowSignature
from .pool_issue import PoolResultIssue
from .postproc_port import PostprocIssueSignature, PostprocSignature
from .tile_accumulator import TileAccumulator


class LayerSequencer(wiring.Component):
    """The layer FSM and the beats of its stages (module docstring).

    Ports: `run` from the host registers; the program memory (`prog_addr`, `prog_data`, a cycle
    later) and the activation banks (`act_raddr`/`act_rbank`, `act_rdata` a cycle later); the
    crossbar's `load` and `conv` (`codes` a cycle later); the post-processing lanes' `pp`.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        c = cfg
        super().__init__({
            "run": In(RunControlSignature(c)),
            # program memory read (1-cycle latency)
            "prog_addr": Out(range(c.max_layers)),
            "prog_data": In(descriptor_layout()),
            # activation SRAM: a run of load_lanes codes from act_raddr (1-cycle latency); the top
            # selects the bank
            "act_raddr": Out(c.act_addr_bits),
            "act_rbank": Out(1),
            "act_rdata": In(LoadSignature(c).members["x"].shape),
            # the depthwise weight memory: load_lanes weights from dw_raddr (1-cycle latency)
            "dw_raddr": Out(c.dw_addr_bits),
            "dw_rdata": In(PoolWindowSignature(c).members["w"].shape),
            # the crossbar: stage L's loads, stage A's conversions and their codes
            "load": Out(LoadSignature(c)),
            "conv": Out(ConvertSignature(c)),
            "codes": In(codes_layout(c)),
            # the post-processing lanes, from stage P (MVM layers) or S (pooling layers)
            "pp": Out(PostprocSignature(c)),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        run = self.run

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

        m.submodules.check = check = DescriptorCheck(c)
        m.d.comb += check.desc.eq(d)
        running = Signal()              # the FSM is in RUN: the pipeline's beats advance
        l_par = Signal()                # DAC-register bank / pooling-result half of stage L/R's MVM
        walk, arr, beat_end = self._pipeline(m, d, alpha, noise_mvm, running, l_par)
        m.d.comb += [run.layer.eq(layer), run.mvms.eq(mvm), self.act_rbank.eq(d.in_bank), self.prog_addr.eq(layer)]

        # ---------------------------------------------------------------- layer FSM
        busy = Signal()
        paused = Signal()
        drain = Signal(range(LAYER_END))
        m.d.comb += [run.busy.eq(busy), run.paused.eq(paused)]
        m.d.sync += [run.ev_done.eq(0), run.ev_paused.eq(0), run.ev_error.eq(0)]
        with m.If(busy & ~paused):
            m.d.sync += run.cycles.eq(run.cycles + 1)

        def fail(code):
            m.d.sync += [run.error.eq(1), run.error_code.eq(code), run.ev_error.eq(1), busy.eq(0)]
            m.next = "IDLE"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(run.start):
                    m.d.sync += [
                        layer.eq(0), mvm.eq(0), noise_mvm.eq(run.mvm_base), run.cycles.eq(0), run.done.eq(0),
                        run.error.eq(0), run.error_code.eq(0),
                    ]
                    with m.If(run.num_layers == 0):
                        fail(ErrorCode.NO_LAYERS)
                    with m.Elif(run.num_layers > c.max_layers):
                        fail(ErrorCode.TOO_MANY_LAYERS)
                    with m.Else():
                        m.d.sync += [busy.eq(1), n_layers.eq(run.num_layers)]
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.next = "DECODE"
            with m.State("DECODE"):
                # Latched per layer: a host write to ALPHA during the layer cannot split it.
                m.d.sync += [d.eq(self.prog_data), alpha.eq(run.alpha)]
                m.next = "CHECK"
            with m.State("CHECK"):
                # Descriptor checks (docs/architecture.md, "Host address map") of the latched descriptor.
                with m.If(check.error):
                    fail(check.code)
                with m.Else():
                    # Stages A, P and S are empty here: the previous layer ended with them so.
                    m.d.comb += walk.start.eq(1)
                    m.d.sync += l_par.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(beat_end):
                    with m.If(arr.mvm.valid):
                        m.d.sync += [mvm.eq(mvm + 1), noise_mvm.eq(noise_mvm + 1)]
                    # The walker moves on to the next MVM / group (walk.next).
                    with m.If(walk.active):
                        m.d.sync += l_par.eq(~l_par)
                    with m.Elif(~arr.mvm.valid):
                        # Stage A's last MVM (pooling: none) is done; P's or S's ends with this beat.
                        m.d.sync += drain.eq(LAYER_END - 1)
                        m.next = "LAYER_END"
            with m.State("LAYER_END"):
                # Let the last post-processed values land before anyone reads them.
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    with m.If(layer == n_layers - 1):
                        m.d.sync += [run.done.eq(1), run.ev_done.eq(1), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                        with m.If(run.step):
                            m.d.sync += [paused.eq(1), run.ev_paused.eq(1)]
                            m.next = "PAUSED"
                        with m.Else():
                            m.next = "FETCH"
            with m.State("PAUSED"):
                with m.If(run.cont):
                    m.d.sync += paused.eq(0)
                    m.next = "FETCH"
        return m

    def _pipeline(self, m: Module, d, alpha, noise_mvm, running, l_par):
        """The stages of a layer and their beats: the walker (L/R), `ArrayControl` (A),
        `TileAccumulator` (P), `PoolBank` (R's units) and `PoolResultIssue` (S), all on the latched
        descriptor `d`; returns the walker, stage A and the beat's end for the layer FSM."""
        c = self.cfg
        W = c.load_lanes
        is_mvm, is_max = d.opcode == Op.MVM, d.opcode == Op.MAXPOOL
        # Opcode decode: a residual add runs as average pooling (its 2x1 window sums operand A and B
        # through post-processing), a depthwise convolution multiply-accumulates its window with the
        # DWW weights; DescriptorCheck has refused any other opcode.
        win_sum = (d.opcode == Op.AVGPOOL) | (d.opcode == Op.ADD)
        win_mac = d.opcode == Op.DWCONV
        m.submodules.walk = walk = Im2colWalker(c)
        m.submodules.array_ctl = arr = ArrayControl(c)
        m.submodules.tile_sum = acc = TileAccumulator(c)
        m.submodules.pool = pool = PoolBank(c)
        m.submodules.pool_issue = res = PoolResultIssue(c)
        for stage in (walk, arr, acc, res):
            m.d.comb += stage.desc.eq(d)

        # ---------------------------------------------------------------- beat control
        # Stage L (pooling: R) works on MVM k, A on k-1, P (pooling: S) on k-2. Each stage holds
        # its own MVM / group and says when its part of the beat is `done`; the walker, stage L/R's
        # state, has work left this beat while `walk.read.valid`. At the beat's end (`next`) every
        # stage takes over the previous one's.
        l_last, beat_end = Signal(), Signal()
        m.d.comb += [
            beat_end.eq(running & (~walk.read.valid | l_last) & arr.done & acc.done & res.done),
            # Stage L/R takes one read a cycle while it has any; the last ends its part of the beat.
            walk.read.take.eq(running & walk.read.valid),
            l_last.eq(walk.read.take & walk.read.last),
            walk.next.eq(beat_end),
            arr.next.eq(beat_end & is_mvm), acc.next.eq(beat_end & is_mvm), res.next.eq(beat_end & ~is_mvm),
            arr.prev.valid.eq(walk.active), arr.prev.tcol0.eq(walk.tcol0), arr.prev.parity.eq(l_par),
            arr.prev.tile.eq(walk.tile), arr.prev.out_base.eq(walk.out_base),
            res.prev.valid.eq(walk.active), res.prev.c0.eq(walk.c0), res.prev.n.eq(walk.n),
            res.prev.out_base.eq(walk.out_base), res.prev.parity.eq(l_par),
            self.act_raddr.eq(walk.read.addr), self.dw_raddr.eq(walk.read.waddr),
        ]
        wiring.connect(m, arr.mvm, acc.prev)

        # ---------------------------------------------------------------- stage L: load
        # The read data of a run arrive a cycle after its address; so do its lanes' flags. Lanes in
        # the padding load the layer's pad_code (the input's zero point), lanes past the run code 0:
        # their array rows may hold another layer's conductances. Stage R's lanes take the same
        # codes (a depthwise window element in the padding reads pad_code).
        lane_ok_q, lane_pad_q = Signal(W), Signal(W)
        m.d.sync += [lane_ok_q.eq(walk.read.lanes), lane_pad_q.eq(walk.read.pads)]
        x = PoolWindowSignature(c).members["x"].shape
        lane_x = Signal(x)
        for j in range(W):
            m.d.comb += lane_x[j].eq(Mux(lane_ok_q[j], self.act_rdata[j], Mux(lane_pad_q[j], d.pad_code, 0)))
        m.d.comb += self.load.x.eq(lane_x)
        m.d.comb += [
            self.load.valid.eq(is_mvm & walk.read.take),
            self.load.row.eq(walk.read.row), self.load.first.eq(walk.read.first), self.load.bank.eq(l_par),
        ]

        # ---------------------------------------------------------------- stage R: pooling reads
        # A window element reaches the pooling units with its read data, a cycle after the read.
        pool_win = PoolWindowSignature(c).create(path=("pool_win",))
        wiring.connect(m, pool_win, pool.win)
        m.d.sync += pool_win.valid.eq(0)
        m.d.comb += [pool.sum.eq(win_sum), pool.mac.eq(win_mac), pool.fold.eq(pool_fold_levels(c, d)),
                     pool_win.x.eq(lane_x), pool_win.w.eq(self.dw_rdata)]
        with m.If(~is_mvm & walk.read.take):
            # One window element of W channels per cycle, (ky, kx) innermost (a folding layer: one
            # run of a kernel row's elements).
            m.d.sync += [pool_win.valid.eq(1), pool_win.first.eq(walk.read.first),
                         pool_win.last.eq(walk.read.last), pool_win.half.eq(l_par)]

        # ---------------------------------------------------------------- stages A, P and S
        wiring.connect(m, arr.conv, wiring.flipped(self.conv))
        wiring.connect(m, acc.code_rd, arr.code_rd)
        m.d.comb += [arr.codes.eq(self.codes), arr.noise_mvm.eq(noise_mvm),
                     pool.rd_half.eq(res.rd_half), res.result.eq(pool.result)]
        # P and S never issue in the same layer: the layer's kind picks the stage.
        for name in PostprocIssueSignature(c).members:
            m.d.comb += getattr(self.pp, name).eq(Mux(is_mvm, getattr(acc.issue, name), getattr(res.issue, name)))
        m.d.comb += [
            self.pp.alpha.eq(alpha), self.pp.shift.eq(d.shift), self.pp.out_bits.eq(d.out_bits),
            self.pp.to_out.eq(d.to_out), self.pp.relu.eq(d.relu), self.pp.passthrough.eq(is_max),
            self.pp.bank.eq(d.out_bank),
        ]

        return walk, arr, beat_end

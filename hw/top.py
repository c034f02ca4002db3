"""AON-CiM top level: AXI4-Lite host port, memories, sequencer, post-processing, crossbar model.

The top owns every memory (the host interface keeps the per-layer alpha registers) so that each
block stays a pure datapath/controller with ports:
  program   max_layers descriptors (one row each, written a word at a time)
  scale/bias per-channel post-processing constants
  act0/act1 ping-pong activation banks (host writes the input to act0, reads any layer output)
  out       signed outputs of the final layer
  dww       depthwise weights (Op.DWCONV), interleaved like an activation bank
"""
from amaranth import Array, C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS
from aoncim.regmap import ACT_PACK_BITS, ACT_PACK_CODES, AddressMap, Region, can_pack_act

from .axil import AxiLiteSignature, AxiLiteSubordinate
from .bus import RegisterBusSignature
from .host import HostInterface
from .pcm_array import PcmArray
from .postproc import PostProcessor
from .sequencer import LayerSequencer


def before(b: int, addr, lanes: int) -> Value:
    """Whether SRAM b of `lanes` interleaved SRAMs comes before `addr`'s own (b < addr mod lanes):
    its word of a run from `addr` is then in the next row. Never for the last SRAM (nor with one
    SRAM), which Verilator would flag as a constant comparison."""
    lw = (lanes - 1).bit_length()
    return C(0, 1) if b == lanes - 1 else b < addr[:lw]


def rotate_lanes(m: Module, name: str, lanes: list, amount) -> list:
    """Lane j of the result is `lanes[(j + amount) mod W]` (W = len(lanes), a power of two): a
    log2(W)-stage rotator of W * width * log2(W) two-input multiplexers. A W-to-1 multiplexer per
    lane (`Array(lanes)[amount + j]`) costs W * width * (W - 1): 64 lanes of 8-bit codes took
    32 k cells per rotator that way."""
    width = len(Value.cast(lanes[0]))
    total = width * len(lanes)
    vec = Cat(*(Value.cast(v).as_unsigned() for v in lanes))
    for k in range(len(amount)):
        stage = Signal(total, name=f"{name}_rot{k}")
        m.d.comb += stage.eq(Mux(amount[k], vec.rotate_right((width << k) % total), vec))
        vec = stage
    return [vec[j * width : (j + 1) * width] for j in range(len(lanes))]


class AonCim(wiring.Component):
    """The chip as the outside sees it: an AXI4-Lite subordinate port and an interrupt.

    `array`: the crossbar model's class (default `PcmArray`; Verilog generation passes its
    Verilog twin, hw/pcm_array_verilog.py)."""

    def __init__(self, cfg: AonCimConfig, array=None):
        self.cfg = cfg
        self.array_cls = array
        self.amap = AddressMap(cfg)
        super().__init__({
            "s_axil": In(AxiLiteSignature(self.amap.byte_addr_bits)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = axil = AxiLiteSubordinate(self.amap.byte_addr_bits)
        m.submodules.core = core = AonCimCore(self.cfg, array=self.array_cls)
        wiring.connect(m, wiring.flipped(self.s_axil), axil.axil)
        wiring.connect(m, axil.bus, core.bus)
        m.d.comb += self.irq.eq(core.irq)
        return m


class AonCimCore(wiring.Component):
    """Everything behind the bus adapter; simulated directly by the Amaranth-level tests."""

    def __init__(self, cfg: AonCimConfig, array=None):
        self.cfg = cfg
        self.array_cls = array
        self.amap = AddressMap(cfg)
        super().__init__({
            "bus": In(RegisterBusSignature(self.amap.word_addr_bits)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        m.submodules.host = host = HostInterface(c)
        m.submodules.seq = seq = LayerSequencer(c)
        Q = c.pp_lanes
        pps = [PostProcessor(c) for _ in range(Q)]
        for q, unit in enumerate(pps):
            m.submodules[f"pp{q}" if Q > 1 else "pp"] = unit
        m.submodules.array = array = (self.array_cls or PcmArray)(c)
        wiring.connect(m, wiring.flipped(self.bus), host.bus)
        m.d.comb += self.irq.eq(host.irq)
        # control and status of a run
        wiring.connect(m, host.run, seq.run)

        a = host.win_addr
        rdata = host.win_rdata

        # program: 256-bit descriptors, host-written one 32-bit lane at a time
        lanes = DESC_BITS // 32
        m.submodules.program = prog = Memory(shape=unsigned(DESC_BITS), depth=c.max_layers, init=[])
        prog_w, prog_hr, prog_sr = prog.write_port(granularity=32), prog.read_port(), prog.read_port()
        lane_q = Signal(range(lanes))
        m.d.sync += lane_q.eq(a[:3])
        m.d.comb += [
            prog_w.addr.eq(a >> 3), prog_w.data.eq(host.win_wdata.replicate(lanes)),
            prog_w.en.eq(host.win_we[Region.PROGRAM] << a[:3]),
            prog_hr.addr.eq(a >> 3), rdata[Region.PROGRAM].eq(prog_hr.data.word_select(lane_q, 32)),
            prog_sr.addr.eq(seq.prog_addr), seq.prog_data.eq(prog_sr.data),
        ]

        # post-processing parameters
        params = {}
        for region, shape in ((Region.SCALE, signed(c.pp_scale_bits)), (Region.BIAS, signed(c.pp_bias_bits))):
            mem = Memory(shape=shape, depth=c.param_depth, init=[])
            m.submodules[region.name.lower()] = mem
            w, hr = mem.write_port(), mem.read_port()
            m.d.comb += [
                w.addr.eq(a), w.data.eq(host.win_wdata), w.en.eq(host.win_we[region]),
                hr.addr.eq(a), rdata[region].eq(hr.data),
            ]
            # One read port per post-processing lane: lane q reads channel param_addr + q.
            params[region] = []
            for q in range(Q):
                sr = mem.read_port()
                m.d.comb += sr.addr.eq(seq.pp.param_addr + q)
                params[region].append(sr.data)

        self._activation_banks(m, host, seq, pps)
        self._dw_weights(m, host, seq)

        # final-layer outputs
        m.submodules.out = out = Memory(shape=signed(c.out_bits), depth=c.out_depth, init=[])
        ohr = out.read_port()
        m.d.comb += [ohr.addr.eq(a), rdata[Region.OUT].eq(ohr.data.as_signed())]
        for q, unit in enumerate(pps):
            ow = out.write_port()
            m.d.comb += [ow.addr.eq(pps[0].out_addr + q), ow.data.eq(unit.out_y),
                         ow.en.eq(unit.out_valid & seq.pp.to_out)]

        # post-processing
        pp_in = seq.pp
        for q, pp in enumerate(pps):
            m.d.comb += [
                pp.in_valid.eq(pp_in.valid[q]), pp.in_code.eq(pp_in.code[q]), pp.in_addr.eq(pp_in.addr),
                pp.in_scale.eq(params[Region.SCALE][q]), pp.in_bias.eq(params[Region.BIAS][q]),
                pp.alpha.eq(pp_in.alpha), pp.shift.eq(pp_in.shift), pp.out_bits.eq(pp_in.out_bits),
                pp.to_out.eq(pp_in.to_out), pp.relu.eq(pp_in.relu), pp.passthrough.eq(pp_in.passthrough),
            ]

        # crossbar model: the sequencer's loads and conversions; the host's conductance window
        wiring.connect(m, seq.load, array.load)
        wiring.connect(m, seq.conv, array.conv)
        col_bits = c.col_bits
        m.d.comb += [
            seq.codes.eq(array.codes), array.noise_seed.eq(host.noise_seed),
            array.host_row.eq(a >> col_bits), array.host_col.eq(a[:col_bits]),
            array.host_w_stb.eq(host.win_we[Region.GCODE]),
            array.host_w_data.gp.eq(host.win_wdata[:c.gcode_bits]),
            array.host_w_data.gm.eq(host.win_wdata[16:16 + c.gcode_bits]),
            rdata[Region.GCODE].eq(array.host_r_data.gp | (array.host_r_data.gm << 16)),
        ]
        return m

    def _dw_weights(self, m: Module, host: HostInterface, seq: LayerSequencer) -> None:
        """The depthwise weight memory (DWW): interleaved over load_lanes SRAMs by address mod
        load_lanes, as an activation bank is, so the load_lanes consecutive weights of a group's
        channels (stage R's read) hit each SRAM once; the host writes and reads one signed weight
        a word (sign-extended)."""
        c = self.cfg
        W = c.load_lanes
        lw = (W - 1).bit_length()
        a = host.win_addr
        ra = seq.dw_raddr
        ra_lane_q = a_lane_q = C(0, 1)
        if lw:
            ra_lane_q, a_lane_q = Signal(lw, name="dww_rlane_q"), Signal(lw, name="dww_hlane_q")
            m.d.sync += [ra_lane_q.eq(ra[:lw]), a_lane_q.eq(a[:lw])]
        host_r, seq_r = [], []
        # SRAM b holds the read's weight at ra + ((b - ra) mod W): word ra >> lw of the SRAMs from
        # ra's own on, the next word of those before it.
        row = ra >> lw
        row_next = Signal.like(row, name="dww_row_next")
        m.d.comb += row_next.eq(row + 1)
        for b in range(W):
            mem = Memory(shape=signed(c.dw_weight_bits), depth=c.dw_depth // W, init=[])
            m.submodules[f"dww_{b}"] = mem
            wp, hr, sr = mem.write_port(), mem.read_port(), mem.read_port()
            m.d.comb += [
                wp.addr.eq(a >> lw), wp.data.eq(host.win_wdata),
                wp.en.eq(host.win_we[Region.DWW] & ((a[:lw] == b) if lw else 1)),
                hr.addr.eq(a >> lw), sr.addr.eq(Mux(before(b, ra, W), row_next, row)),
            ]
            host_r.append(hr.data)
            seq_r.append(sr.data)
        weight = Signal(signed(c.dw_weight_bits))
        m.d.comb += [weight.eq(Array(host_r)[a_lane_q]), host.win_rdata[Region.DWW].eq(weight)]
        got = rotate_lanes(m, "dww", seq_r, ra_lane_q) if lw else seq_r
        for j in range(W):
            m.d.comb += seq.dw_rdata[j].eq(got[j])

    def _activation_banks(self, m: Module, host: HostInterface, seq: LayerSequencer, pps: list) -> None:
        """The two activation banks: host window (plain and packed reads), the sequencer's
        load_lanes-wide reads and the post-processing lanes' writes."""
        c = self.cfg
        Q = c.pp_lanes
        a = host.win_addr
        rdata = host.win_rdata
        # Activation banks, each interleaved over load_lanes SRAMs by address mod load_lanes, so any
        # run of load_lanes consecutive codes (what the sequencer reads per cycle) hits each SRAM
        # once. Host and post-processing access one code at a time.
        W = c.load_lanes
        lw = (W - 1).bit_length()
        # Post-processing lane q writes address out_addr + q: Q <= W consecutive addresses, so
        # each SRAM takes at most one lane, lane (b - out_addr) mod W.
        pp_addr0 = pps[0].out_addr
        ra = seq.act_raddr
        rbank_q = Signal()
        m.d.sync += rbank_q.eq(seq.act_rbank)
        # Zero-width signals would be `[-1:0]` wires in Verilog: with one SRAM a bank, lane 0.
        ra_lane_q = a_lane_q = C(0, 1)
        if lw:
            ra_lane_q, a_lane_q = Signal(lw), Signal(lw)
            m.d.sync += [ra_lane_q.eq(ra[:lw]), a_lane_q.eq(a[:lw])]
        # Packed host reads (Reg.ACT_PACK): word a holds codes 4a..4a+3, which sit in the four SRAMs
        # (4a mod W) + k at the same SRAM address, so one read cycle serves them.
        pack = can_pack_act(c)
        P = ACT_PACK_CODES
        if pack:
            pack_q = Signal()
            m.d.sync += pack_q.eq(host.act_pack)
            host_word = Mux(host.act_pack, (a << (P - 1).bit_length()) >> lw, a >> lw)
            pa_lane_q = Signal(lw)
            m.d.sync += pa_lane_q.eq((a << (P - 1).bit_length())[:lw])
        else:
            host_word = a >> lw
        # SRAM b holds the run's code at ra + ((b - ra) mod W) (word ra >> lw of the SRAMs from ra's
        # own on, the next word of those before it); post-processing lane (b - out_addr) mod W
        # writes it, its value brought to SRAM b by one rotator for both banks.
        row, pp_row = ra >> lw, pp_addr0 >> lw
        row_next, pp_row_next = Signal.like(row, name="act_row_next"), Signal.like(pp_row, name="act_pp_row_next")
        m.d.comb += [row_next.eq(row + 1), pp_row_next.eq(pp_row + 1)]
        pp_lanes = [Cat(u.out_y, u.out_valid & ~seq.pp.to_out) for u in pps]
        pp_lanes += [C(0, len(pp_lanes[0]))] * (W - Q)
        if lw:
            pp_back = Signal(lw, name="act_pp_rot")
            m.d.comb += pp_back.eq(-pp_addr0[:lw])
            pp_lanes = rotate_lanes(m, "act_pp", pp_lanes, pp_back)
        seq_rdata = []
        for bank, region in enumerate((Region.ACT0, Region.ACT1)):
            host_r, seq_r = [], []
            for b in range(W):
                mem = Memory(shape=unsigned(c.dac_bits), depth=c.act_depth // W, init=[])
                m.submodules[f"{region.name.lower()}_{b}"] = mem
                hw_, hr, sr, pw = mem.write_port(), mem.read_port(), mem.read_port(), mem.write_port()
                m.d.comb += [
                    hw_.addr.eq(a >> lw), hw_.data.eq(host.win_wdata),
                    hw_.en.eq(host.win_we[region] & ((a[:lw] == b) if lw else 1)),
                    hr.addr.eq(host_word),
                    sr.addr.eq(Mux(before(b, ra, W), row_next, row)),
                    pw.addr.eq(Mux(before(b, pp_addr0, W), pp_row_next, pp_row)),
                    pw.data.eq(pp_lanes[b][:c.dac_bits]),
                    pw.en.eq(pp_lanes[b][-1] & (seq.pp.bank == bank)),
                ]
                host_r.append(hr.data)
                seq_r.append(sr.data)
            one = Array(host_r)[a_lane_q]
            if pack:
                byte = [Signal(ACT_PACK_BITS, name=f"{region.name.lower()}_pack{k}") for k in range(P)]
                m.d.comb += [byte[k].eq(Array(host_r)[pa_lane_q + k]) for k in range(P)]
                packed = Cat(*byte)
                m.d.comb += rdata[region].eq(Mux(pack_q, packed, one))
            else:
                m.d.comb += rdata[region].eq(one)
            seq_rdata.append(seq_r)
        lane = [Mux(rbank_q, seq_rdata[1][b], seq_rdata[0][b]) for b in range(W)]
        got = rotate_lanes(m, "act", lane, ra_lane_q) if lw else lane
        for j in range(W):
            m.d.comb += seq.act_rdata[j].eq(got[j])

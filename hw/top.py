"""AON-CiM top level: AXI4-Lite host port, memories, sequencer, post-processing, crossbar model.

The top owns every memory (the host interface keeps the per-layer alpha registers) so that each
block stays a pure datapath/controller with ports:
  program   max_layers descriptors (one row each, written a word at a time)
  scale/bias per-channel post-processing constants
  act0/act1 ping-pong activation banks (host writes the input to act0, reads any layer output)
  out       signed outputs of the final layer
"""
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS
from aoncim.regmap import AddressMap, Region

from .axil import AxiLiteSignature, AxiLiteSubordinate
from .bus import RegisterBusSignature
from .host import HostInterface
from .pcm_array import PcmArray
from .postproc import PostProcessor
from .sequencer import LayerSequencer


class AonCim(wiring.Component):
    """The chip as the outside sees it: an AXI4-Lite subordinate port and an interrupt."""

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        self.amap = AddressMap(cfg)
        super().__init__({
            "s_axil": In(AxiLiteSignature(self.amap.byte_addr_bits)),
            "irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = axil = AxiLiteSubordinate(self.amap.byte_addr_bits)
        m.submodules.core = core = AonCimCore(self.cfg)
        wiring.connect(m, wiring.flipped(self.s_axil), axil.axil)
        wiring.connect(m, axil.bus, core.bus)
        m.d.comb += self.irq.eq(core.irq)
        return m


class AonCimCore(wiring.Component):
    """Everything behind the bus adapter; simulated directly by the Amaranth-level tests."""

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
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
        m.submodules.pp = pp = PostProcessor(c)
        m.submodules.array = array = PcmArray(c)
        wiring.connect(m, wiring.flipped(self.bus), host.bus)
        m.d.comb += self.irq.eq(host.irq)

        # control and status
        m.d.comb += [
            seq.start.eq(host.start), seq.cont.eq(host.cont), seq.step.eq(host.step),
            seq.num_layers.eq(host.num_layers), seq.mvm_base.eq(host.mvm_base),
            host.alpha_sel.eq(seq.layer), seq.alpha.eq(host.alpha),
        ]
        for name in ("busy", "done", "paused", "error", "error_code", "layer", "cycles", "mvms",
                     "ev_done", "ev_paused", "ev_error"):
            m.d.comb += getattr(host, name).eq(getattr(seq, name))

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
            w, hr, sr = mem.write_port(), mem.read_port(), mem.read_port()
            m.d.comb += [
                w.addr.eq(a), w.data.eq(host.win_wdata), w.en.eq(host.win_we[region]),
                hr.addr.eq(a), rdata[region].eq(hr.data),
                sr.addr.eq(seq.param_addr),
            ]
            params[region] = sr.data

        # activation banks: host write/read, sequencer read, post-processing write
        pp_we = pp.out_valid & ~seq.pp_to_out
        bank_rdata = []
        for bank, region in enumerate((Region.ACT0, Region.ACT1)):
            mem = Memory(shape=unsigned(c.dac_bits), depth=c.act_depth, init=[])
            m.submodules[region.name.lower()] = mem
            hw_, hr, sr, pw = mem.write_port(), mem.read_port(), mem.read_port(), mem.write_port()
            m.d.comb += [
                hw_.addr.eq(a), hw_.data.eq(host.win_wdata), hw_.en.eq(host.win_we[region]),
                hr.addr.eq(a), rdata[region].eq(hr.data),
                sr.addr.eq(seq.act_raddr),
                pw.addr.eq(pp.out_addr), pw.data.eq(pp.out_y), pw.en.eq(pp_we & (seq.wr_bank == bank)),
            ]
            bank_rdata.append(sr.data)
        rbank_q = Signal()
        m.d.sync += rbank_q.eq(seq.act_rbank)
        m.d.comb += seq.act_rdata.eq(Mux(rbank_q, bank_rdata[1], bank_rdata[0]))

        # final-layer outputs
        m.submodules.out = out = Memory(shape=signed(c.out_bits), depth=c.out_depth, init=[])
        ow, ohr = out.write_port(), out.read_port()
        m.d.comb += [
            ow.addr.eq(pp.out_addr), ow.data.eq(pp.out_y), ow.en.eq(pp.out_valid & seq.pp_to_out),
            ohr.addr.eq(a), rdata[Region.OUT].eq(ohr.data.as_signed()),
        ]

        # post-processing
        m.d.comb += [
            pp.in_valid.eq(seq.pp_valid), pp.in_code.eq(seq.pp_code), pp.in_addr.eq(seq.pp_addr),
            pp.in_scale.eq(params[Region.SCALE]), pp.in_bias.eq(params[Region.BIAS]),
            pp.alpha.eq(seq.pp_alpha), pp.shift.eq(seq.pp_shift), pp.out_bits.eq(seq.pp_out_bits),
            pp.to_out.eq(seq.pp_to_out), pp.relu.eq(seq.pp_relu), pp.passthrough.eq(seq.pp_passthrough),
        ]

        # crossbar model
        col_bits = c.col_bits
        m.d.comb += [
            array.load_valid.eq(seq.load_valid), array.load_first.eq(seq.load_first),
            array.load_row.eq(seq.load_row), array.load_x.eq(seq.load_x),
            array.conv_stb.eq(seq.conv_stb), array.conv_slot.eq(seq.conv_slot),
            array.conv_bits.eq(seq.conv_bits), array.conv_mvm.eq(seq.conv_mvm),
            array.noise_seed.eq(host.noise_seed), seq.codes.eq(array.codes),
            array.host_row.eq(a >> col_bits), array.host_col.eq(a[:col_bits]),
            array.host_w_stb.eq(host.win_we[Region.GCODE]),
            array.host_w_data.gp.eq(host.win_wdata[:c.gcode_bits]),
            array.host_w_data.gm.eq(host.win_wdata[16:16 + c.gcode_bits]),
            rdata[Region.GCODE].eq(array.host_r_data.gp | (array.host_r_data.gm << 16)),
        ]
        return m

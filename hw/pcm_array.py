"""Behavioural PCM crossbar with its ADC bank — a SIMULATION MODEL, not synthesisable intent.

It stands in for the analog macro so the digital chip can be verified bit for bit against the
golden model (docs/architecture.md, "bit-true contract"): it holds integer conductance codes,
accumulates exact column sums while the sequencer streams the input vector, load_lanes rows per
cycle, into the DAC registers, and converts n_adcs columns per conversion through the column mux,
adding deterministic read noise.

The DAC registers are double-buffered (bank 0/1): the next MVM's inputs load into one bank while
the previous MVM integrates and converts from the other. The model keeps one set of column sums
per bank and forms them as the rows arrive, which is the same integer the PWM window of that bank
integrates.

Interfaces (all in the sync domain):
  load:    `LoadSignature` (hw/array_port.py): cycle t: load.valid/row/first/bank; cycle t+1:
           load.x[j] (the DAC code of row load.row + j, zero for lanes the sequencer does not
           load, arriving with the activation-SRAM read issued at t).
  convert: `ConvertSignature`: cycle t: conv.stb/slot/bank/bits/mvm; cycle t+1: codes[i] for
           column conv.slot * n_adcs + i of that bank's sums.
  host:    one pair per access; read data one cycle after host_r_stb.
"""
from amaranth import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .adc import AdcLane
from .array_port import ConvertSignature, LoadSignature, codes_layout
from .read_noise import ReadNoiseSource


def pair_layout(cfg: AonCimConfig) -> data.StructLayout:
    return data.StructLayout({"gp": unsigned(cfg.gcode_bits), "gm": unsigned(cfg.gcode_bits)})


class PcmArray(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        pair = pair_layout(cfg)
        super().__init__({
            # Flattened, these are the Verilog twin's ports load_valid, ..., conv_stb, ...
            "load": In(LoadSignature(cfg)),
            "conv": In(ConvertSignature(cfg)),
            "noise_seed": In(32),
            "codes": Out(codes_layout(cfg)),
            "host_row": In(cfg.row_bits),
            "host_col": In(cfg.col_bits),
            "host_w_stb": In(1),
            "host_w_data": In(pair),
            "host_r_data": Out(pair),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        pair = pair_layout(c)
        m.submodules.cells = cells = Memory(shape=data.ArrayLayout(pair, c.cols), depth=c.rows, init=[])
        host_w = cells.write_port(granularity=1)
        host_r = cells.read_port()

        # Host access: one pair lane of the row.
        host_col_q = Signal.like(self.host_col)
        m.d.sync += host_col_q.eq(self.host_col)
        m.d.comb += [
            host_w.addr.eq(self.host_row),
            host_r.addr.eq(self.host_row),
            host_w.en.eq(self.host_w_stb << self.host_col),
            self.host_r_data.eq(host_r.data[host_col_q]),
        ]
        for j in range(c.cols):
            m.d.comb += host_w.data[j].eq(self.host_w_data)

        # Load: the row reads issued with the activation reads, so both arrive together at t+1.
        mac_r = [cells.read_port() for _ in range(c.load_lanes)]
        for j, port in enumerate(mac_r):
            m.d.comb += port.addr.eq(self.load.row + j)  # wraps past the last row: its x is zero
        valid_q, first_q, bank_q = Signal(), Signal(), Signal()
        m.d.sync += [valid_q.eq(self.load.valid), first_q.eq(self.load.first), bank_q.eq(self.load.bank)]
        acc = [[Signal(signed(c.col_sum_bits), name=f"col_sum{b}_{j}") for j in range(c.cols)] for b in range(2)]
        with m.If(valid_q):
            for j in range(c.cols):
                prods = [self.load.x[k] * (port.data[j].gp - port.data[j].gm) for k, port in enumerate(mac_r)]
                rows_sum = sum(prods[1:], prods[0])
                for b in range(2):
                    with m.If(bank_q == b):
                        with m.If(first_q):
                            m.d.sync += acc[b][j].eq(rows_sum)
                        with m.Else():
                            m.d.sync += acc[b][j].eq(acc[b][j] + rows_sum)

        # Convert: ADC lane i sees columns i, i + n_adcs, ... through its column mux.
        per_lane = c.cols // c.n_adcs
        for i in range(c.n_adcs):
            noise = ReadNoiseSource(c)
            lane = AdcLane(c)
            m.submodules[f"noise{i}"] = noise
            m.submodules[f"adc{i}"] = lane
            col = Signal(c.col_bits, name=f"adc{i}_col")
            m.d.comb += [
                col.eq(self.conv.slot * c.n_adcs + i),
                noise.seed.eq(self.noise_seed),
                noise.mvm.eq(self.conv.mvm),
                noise.col.eq(col),
                lane.col_sum.eq(Array(acc[b][i + c.n_adcs * k] for b in range(2) for k in range(per_lane))
                                [self.conv.bank * per_lane + self.conv.slot]),
                lane.noise.eq(noise.sample),
                lane.bits.eq(self.conv.bits),
            ]
            with m.If(self.conv.stb):
                m.d.sync += self.codes[i].eq(lane.code)
        return m

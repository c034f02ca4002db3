"""Behavioural PCM crossbar with its ADC bank — a SIMULATION MODEL, not synthesisable intent.

It stands in for the analog macro so the digital chip can be verified bit for bit against the
golden model (docs/architecture.md, "bit-true contract"): it holds integer conductance codes,
accumulates exact column sums while the sequencer streams the input vector row by row into the
DAC registers, and converts n_adcs columns per conversion through the column mux, adding
deterministic read noise.

Interfaces (all in the sync domain):
  load:    cycle t: load_valid/load_row/load_first; cycle t+1: load_x (the DAC code of that row,
           arriving with the activation-SRAM read issued at t).
  convert: cycle t: conv_stb/conv_slot/conv_bits/conv_mvm; cycle t+1: codes[i] for column
           conv_slot * n_adcs + i.
  host:    one pair per access; read data one cycle after host_r_stb.
"""
from amaranth import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .adc import AdcLane
from .read_noise import ReadNoiseSource


def pair_layout(cfg: AonCimConfig) -> data.StructLayout:
    return data.StructLayout({"gp": unsigned(cfg.gcode_bits), "gm": unsigned(cfg.gcode_bits)})


class PcmArray(wiring.Component):
    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        pair = pair_layout(cfg)
        super().__init__({
            "load_valid": In(1),
            "load_first": In(1),
            "load_row": In(cfg.row_bits),
            "load_x": In(cfg.dac_bits),
            "conv_stb": In(1),
            "conv_slot": In(range(cfg.cols // cfg.n_adcs)),
            "conv_bits": In(4),
            "conv_mvm": In(32),
            "noise_seed": In(32),
            "codes": Out(data.ArrayLayout(signed(cfg.adc_bits), cfg.n_adcs)),
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
        mac_r = cells.read_port()

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

        # Load: the row read issued with the activation read, so both arrive together at t+1.
        m.d.comb += mac_r.addr.eq(self.load_row)
        valid_q, first_q = Signal(), Signal()
        m.d.sync += [valid_q.eq(self.load_valid), first_q.eq(self.load_first)]
        acc = [Signal(signed(c.col_sum_bits), name=f"col_sum{j}") for j in range(c.cols)]
        with m.If(valid_q):
            for j in range(c.cols):
                cell = mac_r.data[j]
                prod = self.load_x * (cell.gp - cell.gm)
                with m.If(first_q):
                    m.d.sync += acc[j].eq(prod)
                with m.Else():
                    m.d.sync += acc[j].eq(acc[j] + prod)

        # Convert: ADC lane i sees columns i, i + n_adcs, ... through its column mux.
        per_lane = c.cols // c.n_adcs
        for i in range(c.n_adcs):
            noise = ReadNoiseSource(c)
            lane = AdcLane(c)
            m.submodules[f"noise{i}"] = noise
            m.submodules[f"adc{i}"] = lane
            col = Signal(c.col_bits, name=f"adc{i}_col")
            m.d.comb += [
                col.eq(self.conv_slot * c.n_adcs + i),
                noise.seed.eq(self.noise_seed),
                noise.mvm.eq(self.conv_mvm),
                noise.col.eq(col),
                lane.col_sum.eq(Array(acc[i + c.n_adcs * k] for k in range(per_lane))[self.conv_slot]),
                lane.noise.eq(noise.sample),
                lane.bits.eq(self.conv_bits),
            ]
            with m.If(self.conv_stb):
                m.d.sync += self.codes[i].eq(lane.code)
        return m

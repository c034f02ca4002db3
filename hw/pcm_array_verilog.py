"""`PcmArray` for the generated Verilog: the same ports, wired to `aoncim_pcm_array_model`
(hw/pcm_array_model.v), a hand-written Verilog twin of the behavioural crossbar.

The Amaranth model (hw/pcm_array.py) stays the reference in Amaranth's simulator; in Verilog its
rows x cols multiply-accumulate would be evaluated every clock cycle, loaded or not, and cost the
co-simulation most of its time. Both twins compute contract steps 3-5 exactly; the co-simulation
compares the Verilog one with the golden model, tests/test_core_amaranth.py the Amaranth one.

`PcmArrayModelPorts` is the other way round: the Amaranth `PcmArray` behind the Verilog twin's
module ports, so that `generate_verilog(cfg, array="amaranth")` (hw/verilog.py) can put the
Amaranth twin, converted to Verilog, where the hand-written module was, and co-simulate it.
"""
import re
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig

from .pcm_array import PcmArray

MODEL_NAME = "aoncim_pcm_array_model"
MODEL_SOURCE = Path(__file__).with_name("pcm_array_model.v")


def model_parameters(cfg: AonCimConfig) -> dict[str, int]:
    """The Verilog twin's parameters. Its ADC (twin of `aoncim.adc.AdcTransfer.transfer`) takes its
    constants and intermediate width from `cfg.adc_transfer`; the Verilog forms the per-precision
    gain (GAIN_MULT <<< (DAC_BITS - bits)), the rounding constant and the clamp from them."""
    c, t = cfg, cfg.adc_transfer
    return {
        "ROWS": c.rows, "COLS": c.cols, "LANES": c.load_lanes,
        "ROW_BITS": max(1, c.row_bits), "COL_BITS": max(1, c.col_bits),
        "SLOT_BITS": max(1, (c.cols // c.n_adcs - 1).bit_length()), "CTR_SHIFT": c.col_bits,
        "DAC_BITS": t.dac_bits, "GBITS": c.gcode_bits, "ADC_BITS": t.adc_bits, "N_ADCS": c.n_adcs,
        "SUM_BITS": t.col_sum_bits, "V_BITS": t.v_bits,
        "GAIN_MULT": t.gain_mult, "GAIN_SHIFT": t.gain_shift, "NOISE_MULT": t.noise_mult,
        "NOISE_MEAN": c.NOISE_MEAN_RAW,
    }


def model_ports(array: PcmArray):
    """(Verilog port name, flow, Verilog width, the array's value) of every port of the twin
    module but clk and rst, in the order of `PcmArray`'s signature."""
    params = model_parameters(array.cfg)
    widths = {"load_row": params["ROW_BITS"], "host_row": params["ROW_BITS"], "host_col": params["COL_BITS"],
              "conv_slot": params["SLOT_BITS"]}
    for path, member, value in array.signature.flatten(array):
        name, v = "_".join(map(str, path)), Value.cast(value)
        # A port Amaranth makes zero bits wide (e.g. one ADC slot) is one bit in Verilog.
        yield name, member.flow, widths.get(name, len(v)), v


class PcmArrayVerilog(PcmArray):
    """Subclassing keeps the signature identical to `PcmArray`; only `elaborate` differs."""

    def elaborate(self, platform):
        m = Module()
        params = model_parameters(self.cfg)
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for name, flow, w, v in model_ports(self):
            if flow == wiring.In:
                s = Signal(w, name=f"{name}_port")
                m.d.comb += s.eq(v)
                ports[f"i_{name}"] = s
            else:
                s = Signal(w, name=f"{name}_port")
                m.d.comb += v.eq(s)
                ports[f"o_{name}"] = s
        m.submodules.model = Instance(MODEL_NAME, **{f"p_{k}": v for k, v in params.items()}, **ports)
        return m


class PcmArrayModelPorts(wiring.Component):
    """The Amaranth `PcmArray` (or `array`, a subclass of it) behind the ports of
    `aoncim_pcm_array_model`: converted under that name, it is a drop-in for hw/pcm_array_model.v.
    Amaranth names the sync domain's clock and reset `clk` and `rst`, as the Verilog twin does."""

    def __init__(self, cfg: AonCimConfig, array: type[PcmArray] = PcmArray):
        self.cfg = cfg
        self.array = array(cfg)
        self._ports = list(model_ports(self.array))
        super().__init__({name: (In if flow == wiring.In else Out)(w) for name, flow, w, _ in self._ports})

    def elaborate(self, platform):
        m = Module()
        m.submodules.twin = self.array
        for name, flow, _, v in self._ports:
            port = getattr(self, name)
            m.d.comb += v.eq(port) if flow == wiring.In else port.eq(v)
        return m


def amaranth_model_source(cfg: AonCimConfig, array: type[PcmArray] = PcmArray) -> str:
    """The Amaranth twin `array` converted to Verilog as module `aoncim_pcm_array_model`: a drop-in
    for hw/pcm_array_model.v in the generated Verilog, whose top instantiates it with the
    parameters of `model_parameters`. Amaranth's module has none of its own (the config is
    elaborated in), so it declares them, overridable, and stops at time 0 if the instance passes
    values other than those of the config it was converted for."""
    from amaranth.back import verilog

    params = model_parameters(cfg)
    text = verilog.convert(PcmArrayModelPorts(cfg, array), name=MODEL_NAME, emit_src=False)
    head = re.search(rf"^module {MODEL_NAME}\(.*?\);\n", text, re.M | re.S)
    if head is None:
        raise RuntimeError(f"no `module {MODEL_NAME}(...);` in Amaranth's Verilog of the crossbar")
    # No parameter list in the header: body `parameter`s are the overridable ones.
    decl = "".join(f"  parameter {k} = 0;\n" for k in params)
    differs = " || ".join(f"{k} != {v}" for k, v in params.items())
    check = (f"  initial begin\n    if ({differs})\n"
             f'      $fatal(1, "{MODEL_NAME} (Amaranth twin): instance parameters differ from the config it was '
             f'converted for ({cfg.config_hash:#010x})");\n  end\n')
    note = ("// Behavioural PCM crossbar with its ADC bank: the Amaranth twin (hw/pcm_array.py), converted by\n"
            "// hw/pcm_array_verilog.py `amaranth_model_source` in place of hw/pcm_array_model.v.\n")
    return text[:head.start()] + note + head.group(0) + decl + check + text[head.end():]

"""`PcmArray` for the generated Verilog: the same ports, wired to `aoncim_pcm_array_model`
(hw/pcm_array_model.v), a hand-written Verilog twin of the behavioural crossbar.

The Amaranth model (hw/pcm_array.py) stays the reference in Amaranth's simulator; in Verilog its
rows x cols multiply-accumulate would be evaluated every clock cycle, loaded or not, and cost the
co-simulation most of its time. Both twins compute contract steps 3-5 exactly; the co-simulation
compares the Verilog one with the golden model, tests/test_core_amaranth.py the Amaranth one.
"""
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring

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


class PcmArrayVerilog(PcmArray):
    """Subclassing keeps the signature identical to `PcmArray`; only `elaborate` differs."""

    def elaborate(self, platform):
        m = Module()
        params = model_parameters(self.cfg)
        widths = {"load_row": params["ROW_BITS"], "host_row": params["ROW_BITS"], "host_col": params["COL_BITS"],
                  "conv_slot": params["SLOT_BITS"]}
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in self.signature.flatten(self):
            name, v = "_".join(map(str, path)), Value.cast(value)
            # A port Amaranth makes zero bits wide (e.g. one ADC slot) is one bit in Verilog.
            w = widths.get(name, len(v))
            if member.flow == wiring.In:
                s = Signal(w, name=f"{name}_port")
                m.d.comb += s.eq(v)
                ports[f"i_{name}"] = s
            else:
                s = Signal(w, name=f"{name}_port")
                m.d.comb += v.eq(s)
                ports[f"o_{name}"] = s
        m.submodules.model = Instance(MODEL_NAME, **{f"p_{k}": v for k, v in params.items()}, **ports)
        return m

"""The crossbar's port as the sequencer drives it: the load and the convert interface.

`PcmArray` (hw/pcm_array.py) and its Verilog twin implement it; the sequencer's stage L drives
`LoadSignature` and stage A (`ArrayControl`, hw/array_control.py) `ConvertSignature`. The array
flattens them to the port names of the Verilog twin, hw/pcm_array_model.v (`load_valid`, ...,
`conv_stb`, ...): member names here are part of that model's port list.
"""
from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from aoncim.config import AonCimConfig


class LoadSignature(wiring.Signature):
    """One run of up to `load_lanes` rows into a DAC-register bank, a run a cycle (sequencer to
    array).

      valid  cycle t: a run loads
      first  the MVM's first run: the bank's column sums restart with it
      row    the array row of lane 0 (lane j loads row + j)
      bank   the DAC-register bank
      x      cycle t+1: lane j's DAC code, arriving with the activation-SRAM read issued at t (0
             for a lane outside the map or the run)
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "valid": Out(1), "first": Out(1), "row": Out(cfg.row_bits), "bank": Out(1),
            "x": Out(data.ArrayLayout(unsigned(cfg.dac_bits), cfg.load_lanes)),
        })


class ConvertSignature(wiring.Signature):
    """One ADC conversion a cycle (stage A to array).

      stb   cycle t: convert
      slot  the ADC slot: ADC i converts column slot * n_adcs + i
      bank  the DAC-register bank whose column sums are converted
      bits  the layer's input precision (the ADC's range follows it, contract step 4)
      mvm   the read-noise MVM counter of the conversion (contract step 5)

    The array answers at t+1 on its `codes` output (not a member: the Verilog twin's port is
    `codes`, not `conv_codes`).
    """

    def __init__(self, cfg: AonCimConfig):
        super().__init__({
            "stb": Out(1), "slot": Out(range(cfg.cols // cfg.n_adcs)), "bank": Out(1),
            "bits": Out(4), "mvm": Out(32),
        })


def codes_layout(cfg: AonCimConfig) -> data.ArrayLayout:
    """The codes of one conversion: lane i is ADC i's."""
    return data.ArrayLayout(signed(cfg.adc_bits), cfg.n_adcs)

"""The one definition of the fixed-gain ADC transfer (docs/architecture.md, contract step 5).

    code = clamp((I * gain(bits) + n * noise_mult + rounding) >> gain_shift, -adc_max, adc_max)
    gain(bits) = gain_mult << (dac_bits - bits),   rounding = 2**(gain_shift - 1)

Five places need this arithmetic or a constant of it: the golden model (`model/bittrue.py`), the
Amaranth ADC lane (`hw/adc.py`), the Verilog twin of the crossbar (its parameters in
`hw/pcm_array_verilog.py`), the float analog model (`model/analog.py`, its LSB and clip) and the
compiler and calibration (`firmware/compiler.py`, `model/snapshot.py`, the real-valued gain). They
all read it from one `AdcTransfer`, built from the config by `AonCimConfig.adc_transfer`, so a new
gain rule, rounding or saturation is written once here; the twins that must stay separate
implementations (RTL, golden, float) each have one equivalence test against `transfer`.

This module knows nothing of the config (the config imports it), so it holds plain parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AdcTransfer:
    """The ADC's parameters and every constant derived from them; `transfer` is the integer
    reference. Build it with `AonCimConfig.adc_transfer`, not by hand."""

    dac_bits: int               # the DAC's full precision: the gain step is 2**(dac_bits - bits)
    act_bits: tuple[int, ...]   # the activation precisions the chip supports (one gain each)
    adc_bits: int               # signed, symmetric output code
    gain_mult: int              # fixed gain = gain_mult / 2**gain_shift codes per column-sum unit (8-bit input)
    gain_shift: int
    read_noise_lsb: float       # read-noise std-dev in ADC LSBs
    noise_std_raw: float        # std-dev of one raw noise sample of the read-noise source
    noise_bits: int             # signed width of one raw noise sample
    col_sum_bits: int           # signed width of an exact column sum
    unit_col_sum: int           # column sum of one row at full-scale input and full conductance

    # ------------------------------------------------------------------ integer constants (RTL, golden)
    @property
    def adc_max(self) -> int:
        """Largest code magnitude; the transfer is symmetric, -adc_max..adc_max."""
        return (1 << (self.adc_bits - 1)) - 1

    def gain(self, in_bits: int) -> int:
        """Integer gain multiplier of a layer with `in_bits` activations: the integrator gain step
        2**(dac_bits - in_bits) keeps full-scale input at full scale at every precision."""
        return self.gain_mult << (self.dac_bits - in_bits)

    @property
    def gain_bound(self) -> int:
        """Exclusive upper bound of `gain(b)` for every b >= 1: the range of the RTL's gain register."""
        return self.gain_mult << self.dac_bits

    @property
    def rounding(self) -> int:
        """Added before the shift: round half up (towards +infinity) instead of floor."""
        return 1 << (self.gain_shift - 1)

    @property
    def noise_mult(self) -> int:
        """Scales one raw noise sample to `read_noise_lsb` ADC LSBs (at 2**gain_shift)."""
        return round(self.read_noise_lsb * 2**self.gain_shift / self.noise_std_raw)

    @property
    def v_bits(self) -> int:
        """Signed width of the value before the shift, `I * gain + n * noise_mult + rounding`, for
        any column sum and noise sample: the RTL twins' intermediate width (Verilog `V_BITS`,
        Amaranth signal shapes). The largest of the three terms plus headroom for their sum; the
        Verilog twin also holds the gain and the noise sample in this width."""
        gain_bits = self.gain_bound.bit_length() + 1
        return max(self.col_sum_bits + gain_bits, self.noise_bits + self.noise_mult.bit_length() + 1,
                   self.gain_shift + 1) + 3

    # ------------------------------------------------------------------ real-valued views (compiler, float model)
    def code_gain(self, in_bits: int) -> float:
        """ADC codes per column-sum unit (before rounding and clipping) at `in_bits` activations:
        what the compiler divides out of its scales and the calibration expects."""
        return self.gain(in_bits) / 2**self.gain_shift

    def full_scale_col_sum(self, in_bits: int) -> float:
        """The column sum that converts to `adc_max` (before rounding) at `in_bits` activations."""
        return self.adc_max * 2**self.gain_shift / self.gain(in_bits)

    @property
    def bound(self) -> float:
        """Full scale in the float model's units, full-scale input x full-scale conductance rows
        (the config's `adc_bound`; 2302.08469's "bound")."""
        return self.adc_max * 2**self.gain_shift / (self.gain_mult * self.unit_col_sum)

    @property
    def lsb(self) -> float:
        """One ADC code in the float model's units: one LSB there is one LSB of `transfer`."""
        return self.bound / self.adc_max

    @property
    def out_noise_std(self) -> float:
        """The read noise in the float model's units (the config's `out_noise_std`)."""
        return self.read_noise_lsb * self.bound / self.adc_max

    # ------------------------------------------------------------------ the reference
    def before_shift(self, col_sum, noise, in_bits: int):
        """The value `transfer` rounds and shifts, `I * gain + n * noise_mult` (without the rounding
        term): what the golden model's datapath coverage reads rounding ties and saturation from
        (model/bittrue.py `DatapathEvents`). `transfer` is `clamp((before_shift + rounding) >>
        gain_shift)`, which tests/test_datapath_coverage.py checks."""
        return col_sum * self.gain(in_bits) + noise * self.noise_mult

    def transfer(self, col_sum, noise, in_bits: int):
        """ADC codes of exact column sums `col_sum` with raw noise samples `noise` (contract step 5).

        Works on Python ints, numpy or torch integer arrays alike (the golden model passes torch
        int64 tensors); `>>` is the arithmetic (floor) shift of each. The RTL twins (hw/adc.py,
        hw/pcm_array_model.v) compute the same in `v_bits`-wide signed arithmetic.
        """
        v = col_sum * self.gain(in_bits) + noise * self.noise_mult
        return _clamp((v + self.rounding) >> self.gain_shift, -self.adc_max, self.adc_max)


def _clamp(x, lo: int, hi: int):
    """Clip an int, a torch tensor or a numpy array to lo..hi, keeping its type."""
    if isinstance(x, int):
        return min(max(x, lo), hi)
    if hasattr(x, "clamp"):  # torch, without importing it into the ground layer
        return x.clamp(lo, hi)
    return np.clip(x, lo, hi)

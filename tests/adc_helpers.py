"""Shared by the ADC equivalence tests (golden vs Amaranth, float vs golden, the reference itself)."""
import numpy as np

from aoncim.config import AonCimConfig

# A second ADC beside the default: 6 bits, a small even gain and a large noise multiplier, so exact
# rounding ties are common and the gain's factors of two are not all in the gain step.
ODD_ADC = AonCimConfig(rows=64, cols=64, n_adcs=8, act_depth=256, out_depth=64, param_depth=128, max_layers=4,
                       adc_bits=6, adc_gain_mult=12, adc_gain_shift=11, read_noise_lsb=1.5,
                       act_bits_supported=(8, 5, 3))


def adc_ties(t, bits, rng, count, noise=range(-510, 511)):
    """Up to `count` (col_sum, noise) pairs inside the ADC's range whose value before the shift is
    exactly half an LSB above a code (I*gain + n*noise_mult = 2**(shift-1) mod 2**shift): the
    rounding rule decides their code. `t` is a config's `adc_transfer`."""
    g, mod = t.gain(bits), 1 << t.gain_shift
    e = (g & -g).bit_length() - 1  # factors of two in the gain
    step = max(1, mod >> e)        # the column sums with one residue are `step` apart
    fs = int(t.full_scale_col_sum(bits))
    out = []
    for n in rng.choice(np.asarray(noise), 50 * count):
        target = (t.rounding - int(n) * t.noise_mult) % mod
        if target % (1 << e):
            continue  # no column sum makes a tie with this noise sample
        c = (target >> e) * pow(g >> e, -1, step) % step + step * int(rng.integers(-(fs // step) - 1, fs // step + 1))
        if abs(c * g + int(n) * t.noise_mult) < t.adc_max << t.gain_shift:  # unclipped, and so is (-c, -n)
            out.append((c, int(n)))
        if len(out) == count:
            break
    return out

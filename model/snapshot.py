"""The chip's view of programmed and drifted PCM: conductance snapshots and per-layer alpha.

The bit-true contract (docs/architecture.md) holds integer conductance codes; a device at g µS is
the code round(g / g_max * gcode_max), clipped to the code range. A Program compiled from a model
carries the *target* codes; `snapshot` swaps in the codes of conductances some device model
produced (programming noise, drift and read noise at time t), and `drift_alpha` does what the host
does for global drift compensation: read each layer's array with a fixed calibration input right
after programming (r0) and again at time t (r_t), and set the layer's alpha = r0 / r_t.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from aoncim.config import AonCimConfig
from aoncim.program import Program

from .bittrue import AdcTransfer, ReadNoise

CALIB_READS = 16      # calibration reads averaged per layer, to beat down the read noise
CALIB_FULL_SCALE = 0.5  # the calibration input drives the largest column to this fraction of the ADC range
# Calibration reads use counter values no inference uses (inferences count MVMs from 0).
CALIB_MVM_BASE = 0xFFFF0000
# Offset calibration skips columns whose read is within this fraction of ADC full scale (clipped).
CALIB_SATURATION = 0.9


def codes_to_us(codes: np.ndarray, cfg: AonCimConfig) -> np.ndarray:
    return np.asarray(codes, dtype=np.float64) / cfg.gcode_max * cfg.g_max_us


def us_to_codes(g_us: np.ndarray, cfg: AonCimConfig) -> np.ndarray:
    """Quantise conductances to the snapshot's codes (negative or above g_max saturate)."""
    return np.clip(np.rint(np.asarray(g_us, dtype=np.float64) / cfg.g_max_us * cfg.gcode_max), 0, cfg.gcode_max
                   ).astype(np.int64)


def target_conductances(prog: Program, cfg: AonCimConfig) -> tuple[np.ndarray, np.ndarray]:
    """(g+, g-) in µS that the compiler asks to be programmed, over the whole array."""
    return codes_to_us(prog.g_plus, cfg), codes_to_us(prog.g_minus, cfg)


def snapshot(prog: Program, cfg: AonCimConfig, g_plus_us: np.ndarray, g_minus_us: np.ndarray) -> Program:
    """`prog` with the codes of the given conductances in its placed rectangles (zero elsewhere)."""
    shape = (cfg.rows, cfg.cols)
    if np.shape(g_plus_us) != shape or np.shape(g_minus_us) != shape:
        raise ValueError(f"conductance arrays must be {cfg.rows}x{cfg.cols} (the whole array), got "
                         f"{np.shape(g_plus_us)} and {np.shape(g_minus_us)}")
    mask = np.zeros(shape, dtype=bool)
    for i in prog.mvm_layers:
        r0, nr, c0, nc = prog.used_rect(i)
        mask[r0 : r0 + nr, c0 : c0 + nc] = True
    gp = np.where(mask, us_to_codes(g_plus_us, cfg), 0)
    gm = np.where(mask, us_to_codes(g_minus_us, cfg), 0)
    return dataclasses.replace(prog, g_plus=gp, g_minus=gm)


def calibration_codes(prog: Program, cfg: AonCimConfig) -> np.ndarray:
    """Per layer, the constant DAC code fed to every row of its rectangle for calibration reads:
    as large as possible while the largest target column sum stays within CALIB_FULL_SCALE of the
    ADC range (0 for pooling layers)."""
    out = np.zeros(len(prog.layers), dtype=np.int64)
    for i in prog.mvm_layers:
        d = prog.layers[i]
        r0, nr, c0, nc = prog.used_rect(i)
        dg = prog.g_plus[r0 : r0 + nr, c0 : c0 + nc] - prog.g_minus[r0 : r0 + nr, c0 : c0 + nc]
        peak = max(int(np.abs(dg.sum(0)).max()), 1)
        gain = cfg.adc_gain_mult << (cfg.dac_bits - d.in_bits)
        fs = cfg.adc_max * 2**cfg.adc_gain_shift / gain  # column sum at the ADC's full scale
        out[i] = int(np.clip(CALIB_FULL_SCALE * fs // peak, 1, (1 << d.in_bits) - 1))
    return out


def _layer_dg(prog: Program, layer: int) -> np.ndarray:
    r0, nr, c0, nc = prog.used_rect(layer)
    return prog.g_plus[r0 : r0 + nr, c0 : c0 + nc] - prog.g_minus[r0 : r0 + nr, c0 : c0 + nc]


def calibration_codes_read(prog: Program, cfg: AonCimConfig, layer: int, x: np.ndarray, seed: int,
                           base: int = CALIB_MVM_BASE) -> np.ndarray:
    """Mean ADC code of each of a layer's columns for the input codes `x` on its rows, over
    CALIB_READS noisy reads at MVM counters base+k: what the host measures with calibration MVMs."""
    d = prog.layers[layer]
    _, _, c0, nc = prog.used_rect(layer)
    sums = np.asarray(x, dtype=np.int64) @ _layer_dg(prog, layer)
    col_sums = torch.as_tensor(sums, dtype=torch.int64)[None, :].expand(CALIB_READS, nc)
    mvm = base + np.arange(CALIB_READS, dtype=np.int64)[:, None]
    noise = torch.from_numpy(ReadNoise(cfg, seed).raw(mvm, c0 + np.arange(nc)[None, :])) \
        if cfg.read_noise_lsb > 0 else torch.zeros_like(col_sums)
    return AdcTransfer(cfg)(col_sums, noise, d.in_bits).double().mean(0).numpy()


def calibration_read(prog: Program, cfg: AonCimConfig, layer: int, code: int, seed: int) -> float:
    """Mean |ADC code| over a layer's columns for a constant input `code` on every row (alpha's readout)."""
    x = np.full(prog.layers[layer].k_rows, code, dtype=np.int64)
    return float(np.abs(calibration_codes_read(prog, cfg, layer, x, seed)).mean())


def drift_alpha(reference: Program, drifted: Program, cfg: AonCimConfig, seed: int = 0) -> np.ndarray:
    """Per-layer fixed-point alpha = r0 / r_t for global drift compensation (1.0 for pooling layers).

    `reference` is the array read right after programming, `drifted` the same array at time t; both
    are read with the calibration input chosen from `reference`."""
    alpha = np.full(len(reference.layers), cfg.alpha_one, dtype=np.int64)
    codes = calibration_codes(reference, cfg)
    for i in reference.mvm_layers:
        r0 = calibration_read(reference, cfg, i, int(codes[i]), seed)
        rt = calibration_read(drifted, cfg, i, int(codes[i]), seed + 1)
        a = r0 / rt if rt > 0 else float(2 ** (cfg.alpha_bits - cfg.alpha_frac_bits))
        alpha[i] = int(np.clip(round(a * cfg.alpha_one), 0, (1 << cfg.alpha_bits) - 1))
    return alpha


def ideal_codes(target: Program, cfg: AonCimConfig, layer: int, x: np.ndarray) -> np.ndarray:
    """The ADC codes the compiled (target) conductances would give for input codes `x`, before
    rounding, clipping and noise: what the host expects, computed from the image."""
    d = target.layers[layer]
    gain = cfg.adc_gain_mult * 2 ** (cfg.dac_bits - d.in_bits) / 2**cfg.adc_gain_shift
    return (np.asarray(x, dtype=np.float64) @ _layer_dg(target, layer)) * gain


def offset_bias(target: Program, drifted: Program, cfg: AonCimConfig, seed: int = 0) -> np.ndarray:
    """Per-column offset calibration: post-processing biases corrected for each column's error on
    the layer's mean input.

    Activations are unsigned, so a layer's inputs share a large common component (their mean,
    `target.calib_codes`); a conductance error dG then shifts the column output by about
    mean_x . dG for every input -- a per-column offset that batch norm's folded bias amplifies and
    that no global alpha removes. The host reads every column with the mean input (CALIB_READS
    noisy reads), compares alpha * measured with the codes the target conductances give, and
    subtracts the difference, times the column's scale, from its bias. Columns whose calibration
    read is near ADC saturation keep their bias (the measurement would be clipped)."""
    if target.calib_codes is None:
        raise ValueError("the program has no offset-calibration inputs (calib_codes): recompile it")
    bias = np.array(drifted.pp_bias, dtype=np.int64)
    alphas = drifted.alphas(cfg) / cfg.alpha_one
    lim = (1 << (cfg.pp_bias_bits - 1)) - 1
    for i in target.mvm_layers:
        d, x = target.layers[i], target.calib_codes[i]
        got = calibration_codes_read(drifted, cfg, i, x, seed + 2, CALIB_MVM_BASE + CALIB_READS)
        want = ideal_codes(target, cfg, i, x)
        ok = (np.abs(got) < CALIB_SATURATION * cfg.adc_max) & (np.abs(want) < CALIB_SATURATION * cfg.adc_max)
        sl = slice(d.param_base, d.param_base + d.out_c)
        delta = np.where(ok, alphas[i] * got - want, 0.0)
        bias[sl] = np.clip(bias[sl] - np.rint(drifted.pp_scale[sl] * delta).astype(np.int64), -lim, lim)
    return bias


def compensated(reference: Program, drifted: Program, cfg: AonCimConfig, seed: int = 0,
                target: Program | None = None) -> Program:
    """`drifted` with what the host's compensation routine loads: the global-drift alphas, and, when
    the compiled `target` program is given (and carries calib_codes), offset-calibrated biases."""
    out = dataclasses.replace(drifted, alpha=drift_alpha(reference, drifted, cfg, seed))
    if target is not None and target.calib_codes is not None:
        out = dataclasses.replace(out, pp_bias=offset_bias(target, out, cfg, seed))
    return out


class ProgrammedArray:
    """The whole crossbar after programming a Program's target codes onto PCM devices (spec
    section 2): programming noise and drift exponents are drawn once per device; every `at(t)`
    is one read of the array at inference time t (fresh read noise), as a snapshot Program."""

    def __init__(self, prog: Program, cfg: AonCimConfig, seed: int = 0):
        from .pcm import DriftExponent, ProgrammingNoise

        self.prog, self.cfg, self.seed = prog, cfg, seed
        gen = torch.Generator().manual_seed(seed)
        self._g_target = [torch.from_numpy(g) for g in target_conductances(prog, cfg)]
        prog_noise, exponent = ProgrammingNoise(cfg.g_max_us), DriftExponent(cfg.g_max_us)
        self._g_prog = [prog_noise(g, gen) for g in self._g_target]
        self._nu = [exponent(g, gen) for g in self._g_target]

    def at(self, t_inf: float, read_seed: int = 0) -> Program:
        from .pcm import Drift, ReadNoise, check_time

        t = check_time(t_inf)
        c = self.cfg
        gen = torch.Generator().manual_seed(hash((self.seed, read_seed, t)) & 0xFFFFFFFF)
        drift, read = Drift(c.drift_t0_s), ReadNoise(c.g_max_us, c.drift_t0_s, c.t_read_s)
        g = [read(drift(gp, nu, t), gp, t, gen).numpy() for gp, nu in zip(self._g_prog, self._nu)]
        return snapshot(self.prog, c, g[0], g[1])

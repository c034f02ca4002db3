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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from aoncim.config import AonCimConfig
from aoncim.program import Program

from .bittrue import AdcTransfer, ReadNoise

CALIB_READS = 16      # calibration reads averaged per layer, to beat down the read noise
CALIB_FULL_SCALE = 0.5  # the calibration input drives the largest column to this fraction of the ADC range
# Calibration reads use counter values no inference uses (inferences count MVMs from 0; the host
# starts a calibration run's counter here through the MVM_BASE register).
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
    """`prog` with the codes of the given conductances in its placed tiles (zero elsewhere)."""
    shape = (cfg.rows, cfg.cols)
    if np.shape(g_plus_us) != shape or np.shape(g_minus_us) != shape:
        raise ValueError(f"conductance arrays must be {cfg.rows}x{cfg.cols} (the whole array), got "
                         f"{np.shape(g_plus_us)} and {np.shape(g_minus_us)}")
    mask = np.zeros(shape, dtype=bool)
    for i in prog.mvm_layers:
        for _, n, r0, c0 in prog.tile_rects(i):
            mask[r0 : r0 + n, c0 : c0 + prog.layers[i].out_c] = True
    gp = np.where(mask, us_to_codes(g_plus_us, cfg), 0)
    gm = np.where(mask, us_to_codes(g_minus_us, cfg), 0)
    return dataclasses.replace(prog, g_plus=gp, g_minus=gm)


def _tile_dg(prog: Program, layer: int) -> list[tuple[int, int, int, np.ndarray]]:
    """Per row tile of a layer: (first im2col row, rows, first column, G+ - G- of the tile)."""
    oc = prog.layers[layer].out_c
    return [(lo, n, c0, prog.g_plus[r0 : r0 + n, c0 : c0 + oc] - prog.g_minus[r0 : r0 + n, c0 : c0 + oc])
            for lo, n, r0, c0 in prog.tile_rects(layer)]


def calibration_codes(prog: Program, cfg: AonCimConfig) -> np.ndarray:
    """Per layer, the constant DAC code fed to every row of its rectangle for calibration reads:
    as large as possible while the largest target column sum of any row tile stays within
    CALIB_FULL_SCALE of the ADC range (0 for pooling layers)."""
    out = np.zeros(len(prog.layers), dtype=np.int64)
    for i in prog.mvm_layers:
        d = prog.layers[i]
        peak = max(max(int(np.abs(dg.sum(0)).max()) for *_, dg in _tile_dg(prog, i)), 1)
        fs = cfg.adc_transfer.full_scale_col_sum(d.in_bits)
        out[i] = int(np.clip(CALIB_FULL_SCALE * fs // peak, 1, (1 << d.in_bits) - 1))
    return out


# ---------------------------------------------------------------------------------------------
# The host's compensation routine, with the measurement pluggable: the same read plans and the
# same arithmetic serve the golden model (`model_measure`: the contract's integers) and the chip
# (`firmware.driver.AonCimDriver`, which runs each CalibRead as calibration MVMs), so the two
# cannot diverge. A measurement returns the raw ADC codes; all averaging happens here.

# Noise seeds of the routine's three measurements, as offsets from the routine's seed.
SEED_REFERENCE, SEED_DRIFT, SEED_OFFSET = 0, 1, 2


@dataclass(frozen=True)
class CalibRead:
    """One calibration measurement: CALIB_READS conversions of every column of MVM layer `layer`
    with the im2col input codes `x` on its rows, at NOISE_SEED `seed`. Read k of a layer with T
    row tiles converts tile t at read-noise MVM counter base + k*T + t: exactly a run of
    CALIB_READS output positions started with MVM_BASE = base."""

    layer: int
    x: np.ndarray
    seed: int
    base: int


# measure(read) -> int array (CALIB_READS, out_c): each read's ADC code of each of the layer's
# columns (summed over row tiles, as post-processing sees it).
Measure = Callable[[CalibRead], np.ndarray]


@dataclass(frozen=True)
class CalibReference:
    """What the host keeps from the reads right after programming: per layer the constant
    calibration code and r0, the mean |ADC code| over the layer's columns (0 for pooling layers)."""

    codes: np.ndarray
    r0: np.ndarray


def read_codes(prog: Program, cfg: AonCimConfig, read: CalibRead) -> np.ndarray:
    """The golden measurement (contract steps 3-5 and 12): the codes the chip holding `prog`'s
    conductances returns for `read`."""
    d = prog.layers[read.layer]
    x = np.asarray(read.x, dtype=np.int64)
    tiles = _tile_dg(prog, read.layer)
    adc, total = AdcTransfer(cfg), None
    for t, (lo, n, c0, dg) in enumerate(tiles):
        col_sums = torch.as_tensor(x[lo : lo + n] @ dg, dtype=torch.int64)[None, :].expand(CALIB_READS, d.out_c)
        mvm = read.base + t + len(tiles) * np.arange(CALIB_READS, dtype=np.int64)[:, None]
        noise = torch.from_numpy(ReadNoise(cfg, read.seed).raw(mvm, c0 + np.arange(d.out_c)[None, :])) \
            if cfg.read_noise_lsb > 0 else torch.zeros_like(col_sums)
        codes = adc(col_sums, noise, d.in_bits)
        total = codes if total is None else total + codes
    return total.numpy()


def model_measure(prog: Program, cfg: AonCimConfig) -> Measure:
    """The golden model's Measure on an array holding `prog`'s conductances."""
    return lambda read: read_codes(prog, cfg, read)


def mean_codes(codes: np.ndarray) -> np.ndarray:
    """Mean code per column over the reads (exact: integer sums over a power-of-two count)."""
    return np.asarray(codes, dtype=np.float64).mean(0)


def mean_abs_code(codes: np.ndarray) -> float:
    """r of contract step 10: the mean |ADC code| over the layer's columns."""
    return float(np.abs(mean_codes(codes)).mean())


def alpha_reads(prog: Program, codes: np.ndarray, seed: int) -> list[CalibRead]:
    """Contract step 10's reads: a constant code on every row of each MVM layer."""
    return [CalibRead(i, np.full(prog.layers[i].k_rows, int(codes[i]), dtype=np.int64), seed, CALIB_MVM_BASE)
            for i in prog.mvm_layers]


def reference_reads(reference: Program, cfg: AonCimConfig, seed: int = 0) -> list[CalibRead]:
    """Reads right after programming, with the calibration codes chosen from `reference`."""
    return alpha_reads(reference, calibration_codes(reference, cfg), seed + SEED_REFERENCE)


def reference_from(reference: Program, cfg: AonCimConfig, reads: list[CalibRead],
                   measured: list[np.ndarray]) -> CalibReference:
    r0 = np.zeros(len(reference.layers))
    for read, codes in zip(reads, measured, strict=True):
        r0[read.layer] = mean_abs_code(codes)
    return CalibReference(calibration_codes(reference, cfg), r0)


def drift_reads(prog: Program, ref: CalibReference, seed: int = 0) -> list[CalibRead]:
    """Reads at time t, with the reference's calibration codes."""
    return alpha_reads(prog, ref.codes, seed + SEED_DRIFT)


def alpha_from(prog: Program, cfg: AonCimConfig, ref: CalibReference, reads: list[CalibRead],
               measured: list[np.ndarray]) -> np.ndarray:
    """Per-layer fixed-point alpha = r0 / r_t (1.0 for pooling layers)."""
    alpha = np.full(len(prog.layers), cfg.alpha_one, dtype=np.int64)
    for read, codes in zip(reads, measured, strict=True):
        i, rt = read.layer, mean_abs_code(codes)
        a = ref.r0[i] / rt if rt > 0 else float(2 ** (cfg.alpha_bits - cfg.alpha_frac_bits))
        alpha[i] = int(np.clip(round(a * cfg.alpha_one), 0, (1 << cfg.alpha_bits) - 1))
    return alpha


def offset_reads(target: Program, seed: int = 0) -> list[CalibRead]:
    """Contract step 11's reads: each MVM layer's mean input (target.calib_codes), at counters
    after the alpha reads' (base CALIB_MVM_BASE + CALIB_READS * T for T row tiles)."""
    if target.calib_codes is None:
        raise ValueError("the program has no offset-calibration inputs (calib_codes): recompile it")
    return [CalibRead(i, np.asarray(target.calib_codes[i], dtype=np.int64), seed + SEED_OFFSET,
                      CALIB_MVM_BASE + CALIB_READS * target.layers[i].tiles(target.rows))
            for i in target.mvm_layers]


def ideal_tile_codes(target: Program, cfg: AonCimConfig, layer: int, x: np.ndarray) -> np.ndarray:
    """(T, out_c): the ADC codes each row tile of the compiled (target) conductances would give for
    input codes `x`, before rounding, clipping and noise: what the host expects, from the image."""
    d = target.layers[layer]
    gain = cfg.adc_transfer.code_gain(d.in_bits)
    x = np.asarray(x, dtype=np.float64)
    return np.stack([(x[lo : lo + n] @ dg) * gain for lo, n, _, dg in _tile_dg(target, layer)])


def ideal_codes(target: Program, cfg: AonCimConfig, layer: int, x: np.ndarray) -> np.ndarray:
    """The expected codes of `ideal_tile_codes`, summed over the row tiles (post-processing's input)."""
    return ideal_tile_codes(target, cfg, layer, x).sum(0)


def bias_from(target: Program, prog: Program, cfg: AonCimConfig, reads: list[CalibRead],
              measured: list[np.ndarray]) -> np.ndarray:
    """`prog`'s biases corrected for each column's offset (contract step 11), with `prog`'s alphas.
    A column keeps its bias when its measured code sum or any tile's expected code is within
    CALIB_SATURATION of the ADC range (the measurement would be clipped)."""
    bias = np.array(prog.pp_bias, dtype=np.int64)
    alphas = prog.alphas(cfg) / cfg.alpha_one
    lim = (1 << (cfg.pp_bias_bits - 1)) - 1
    sat = CALIB_SATURATION * cfg.adc_max
    for read, codes in zip(reads, measured, strict=True):
        i, d = read.layer, target.layers[read.layer]
        got = mean_codes(codes)
        want_t = ideal_tile_codes(target, cfg, i, read.x)
        want = want_t.sum(0)
        ok = (np.abs(got) < sat * len(want_t)) & (np.abs(want_t) < sat).all(0)
        sl = slice(d.param_base, d.param_base + d.out_c)
        delta = np.where(ok, alphas[i] * got - want, 0.0)
        bias[sl] = np.clip(bias[sl] - np.rint(prog.pp_scale[sl] * delta).astype(np.int64), -lim, lim)
    return bias


def calibration_codes_read(prog: Program, cfg: AonCimConfig, layer: int, x: np.ndarray, seed: int,
                           base: int = CALIB_MVM_BASE) -> np.ndarray:
    """Mean ADC code of each of a layer's columns for the input codes `x` on its rows, over
    CALIB_READS noisy reads from MVM counter base: what the host measures with calibration MVMs."""
    return mean_codes(read_codes(prog, cfg, CalibRead(layer, np.asarray(x), seed, base)))


def calibration_read(prog: Program, cfg: AonCimConfig, layer: int, code: int, seed: int) -> float:
    """Mean |ADC code| over a layer's columns for a constant input `code` on every row (alpha's readout)."""
    x = np.full(prog.layers[layer].k_rows, code, dtype=np.int64)
    return mean_abs_code(read_codes(prog, cfg, CalibRead(layer, x, seed, CALIB_MVM_BASE)))


def calibrate_reference(reference: Program, cfg: AonCimConfig, seed: int = 0,
                        measure: Measure | None = None) -> CalibReference:
    """The reads right after programming (golden measurement unless `measure` is given)."""
    measure = measure or model_measure(reference, cfg)
    reads = reference_reads(reference, cfg, seed)
    return reference_from(reference, cfg, reads, [measure(r) for r in reads])


def drift_alpha(reference: Program, drifted: Program, cfg: AonCimConfig, seed: int = 0) -> np.ndarray:
    """Per-layer fixed-point alpha = r0 / r_t for global drift compensation (1.0 for pooling layers).

    `reference` is the array read right after programming, `drifted` the same array at time t; both
    are read with the calibration input chosen from `reference`."""
    ref = calibrate_reference(reference, cfg, seed)
    reads, measure = drift_reads(drifted, ref, seed), model_measure(drifted, cfg)
    return alpha_from(drifted, cfg, ref, reads, [measure(r) for r in reads])


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
    reads, measure = offset_reads(target, seed), model_measure(drifted, cfg)
    return bias_from(target, drifted, cfg, reads, [measure(r) for r in reads])


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

"""Calibrated phase-change-memory device model (paper-targets section 2; Nandakumar et al. ICECS 2019 /
Joshi et al. Nat. Commun. 2020, as published in IBM aihwkit's PCMLikeNoiseModel).

One class per device effect, applied in the order a device lives through them:

    weights --ConductanceMapping--> targets g_T --ProgrammingNoise--> g_prog
    g_T --DriftExponent--> nu;   g_prog, nu --Drift--> g_drift(t);   g_drift --ReadNoise--> g(t)
    GlobalDriftCompensation: alpha = r0 / r_t, one digital constant per layer.

`PcmCrossbar` composes them for one weight matrix: it programs once (programming noise and drift
exponents are sampled once, like the physical devices) and reads at any inference time t (read
noise is sampled on every read). Conductances are in microsiemens, times in seconds, arithmetic in
float64. Device constants (g_max, t0, t_read) come from `AonCimConfig`; the fitted coefficients of
the published model are named constants below because they are the equations, not chip choices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aoncim.config import AonCimConfig

# Evaluation time grid of the AnalogNets group (paper-targets section 1): seconds after programming.
_DAY = 86400.0
INFERENCE_TIMES_S: dict[str, float] = {
    "1s": 1.0,
    "1h": 3600.0,
    "1d": _DAY,
    "10d": 10 * _DAY,
    "30d": 30 * _DAY,
    "1y": 365 * _DAY,
}

# sigma_prog polynomial in g_T/g_max, fitted at g_max = 25 uS (hence the g_max/25 rescale).
PROG_NOISE_COEFFS = (0.26348, 1.9650, -1.1731)
PROG_NOISE_REF_GMAX_US = 25.0
# mu_nu = clip(a*ln g + b, lo, hi) and sigma_nu likewise, g = g_T/g_max.
DRIFT_MU = (-0.0155, 0.0244, 0.049, 0.1)
DRIFT_SIGMA = (-0.0125, -0.0059, 0.008, 0.045)
# Smallest normalised conductance fed to ln() for the drift exponent ("tiny" in docs/paper-targets.md).
DRIFT_G_FLOOR = 1e-6
# Q_s = min(c / max((g_prog/g_max)^e, floor), cap).
READ_NOISE_Q = (0.0088, 0.65, 1e-3, 0.2)

DTYPE = torch.float64


def _as64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=DTYPE)


# The drift and 1/f read-noise laws are fitted on devices measured up to about a year after
# programming; ten years is as far as extrapolating a power law in time is still a statement about
# the device and not about the arithmetic (at 1e300 s every conductance underflows to zero).
MAX_TIME_S = 10 * 365 * _DAY


def check_time(t_inf: float, name: str = "t_inf") -> float:
    """Inference times are seconds after programming, in [0, MAX_TIME_S]: negative ones have no
    physical meaning, and the device model is not a model of the chip far beyond its data."""
    try:
        t = float(t_inf)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={t_inf!r}: expected a time in seconds after programming") from None
    if not math.isfinite(t) or not 0 <= t <= MAX_TIME_S:
        raise ValueError(f"{name}={t_inf!r}: must be a time from 0 to {MAX_TIME_S:.3g} s (10 years) after "
                         "programming, the range the PCM drift and read-noise models describe")
    return t


class ConductanceMapping:
    """Weight -> differential pair (paper-targets section 2, first bullet):
    g+ = clamp(w*s, 0, g_max), g- = clamp(-w*s, 0, g_max), s = g_max / max|W|.

    W is (out, in): every output is one crossbar column. `per_column` gives each column its own
    max|W| (the optional channel-wise remap); otherwise one s per layer, as the compiler does.
    """

    def __init__(self, g_max_us: float, per_column: bool = False):
        self.g_max = float(g_max_us)
        self.per_column = per_column

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        """s in uS per weight unit: shape () per layer, (out, 1) per column. All-zero W -> s = g_max."""
        w = _as64(weight).reshape(weight.shape[0], -1).abs()
        w_max = w.amax(dim=1, keepdim=True) if self.per_column else w.amax()
        # A zero weight column maps to zero conductance whatever s is; avoid dividing by zero.
        return self.g_max / torch.where(w_max > 0, w_max, torch.ones_like(w_max))

    def to_pairs(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(out, in) weights -> (g+, g-, s); g in uS."""
        w = _as64(weight).reshape(weight.shape[0], -1)
        s = self.scale(w)
        return (w * s).clamp(0, self.g_max), (-w * s).clamp(0, self.g_max), s

    @staticmethod
    def to_weights(g_plus: torch.Tensor, g_minus: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Inverse map: w = (g+ - g-) / s."""
        return (g_plus - g_minus) / s


class ProgrammingNoise:
    """Write noise (paper-targets section 2): g_prog = max(0, g_T + sigma_prog*N(0,1)),
    sigma_prog = (0.26348 + 1.9650 g + -1.1731 g^2) * g_max/25, g = g_T/g_max."""

    def __init__(self, g_max_us: float):
        self.g_max = float(g_max_us)

    def sigma(self, g_target: torch.Tensor) -> torch.Tensor:
        g = _as64(g_target) / self.g_max
        c0, c1, c2 = PROG_NOISE_COEFFS
        return (c0 + c1 * g + c2 * g * g) * (self.g_max / PROG_NOISE_REF_GMAX_US)

    def __call__(self, g_target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        g_t = _as64(g_target)
        z = torch.randn(g_t.shape, generator=generator, dtype=DTYPE)
        return (g_t + self.sigma(g_t) * z).clamp_min(0.0)


class DriftExponent:
    """Per-device drift exponent (paper-targets section 2): g = max(g_T/g_max, tiny),
    mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1), sigma_nu = clip(-0.0125 ln g - 0.0059, 0.008, 0.045),
    nu = |N(mu_nu, sigma_nu)|. Depends on the *target*, so it is sampled once at programming."""

    def __init__(self, g_max_us: float):
        self.g_max = float(g_max_us)

    def _log_g(self, g_target: torch.Tensor) -> torch.Tensor:
        return torch.log((_as64(g_target) / self.g_max).clamp_min(DRIFT_G_FLOOR))

    def mean(self, g_target: torch.Tensor) -> torch.Tensor:
        a, b, lo, hi = DRIFT_MU
        return (a * self._log_g(g_target) + b).clamp(lo, hi)

    def std(self, g_target: torch.Tensor) -> torch.Tensor:
        a, b, lo, hi = DRIFT_SIGMA
        return (a * self._log_g(g_target) + b).clamp(lo, hi)

    def __call__(self, g_target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(_as64(g_target).shape, generator=generator, dtype=DTYPE)
        return (self.mean(g_target) + self.std(g_target) * z).abs()


class Drift:
    """Structural relaxation (paper-targets section 2): g_drift = g_prog * (t/t0)^-nu with t = t_inf + t0, so the
    programmed value is what a read at t_inf = 0 (time t0 after the write) sees."""

    def __init__(self, t0_s: float):
        self.t0 = float(t0_s)

    def factor(self, nu: torch.Tensor, t_inf: float) -> torch.Tensor:
        t = check_time(t_inf) + self.t0
        return (t / self.t0) ** (-_as64(nu))

    def __call__(self, g_prog: torch.Tensor, nu: torch.Tensor, t_inf: float) -> torch.Tensor:
        return _as64(g_prog) * self.factor(nu, t_inf)


class ReadNoise:
    """Accumulated 1/f read noise (paper-targets section 2): Q_s = min(0.0088 / max((g_prog/g_max)^0.65, 1e-3), 0.2),
    g(t) = max(0, g_drift + |g_drift| * Q_s * sqrt(ln((t + t_read) / (2 t_read))) * N(0,1)), t = t_inf + t0.
    Q_s depends on the programmed (not drifted) conductance."""

    def __init__(self, g_max_us: float, t0_s: float, t_read_s: float):
        self.g_max = float(g_max_us)
        self.t0 = float(t0_s)
        self.t_read = float(t_read_s)

    def q_s(self, g_prog: torch.Tensor) -> torch.Tensor:
        c, e, floor, cap = READ_NOISE_Q
        return (c / ((_as64(g_prog) / self.g_max) ** e).clamp_min(floor)).clamp_max(cap)

    def time_factor(self, t_inf: float) -> float:
        t = check_time(t_inf) + self.t0
        return math.sqrt(math.log((t + self.t_read) / (2 * self.t_read)))

    def sigma(self, g_drift: torch.Tensor, g_prog: torch.Tensor, t_inf: float) -> torch.Tensor:
        """Std of the read before the clamp at zero."""
        return _as64(g_drift).abs() * self.q_s(g_prog) * self.time_factor(t_inf)

    def __call__(self, g_drift: torch.Tensor, g_prog: torch.Tensor, t_inf: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        g_d = _as64(g_drift)
        z = torch.randn(g_d.shape, generator=generator, dtype=DTYPE)
        return (g_d + self.sigma(g_d, g_prog, t_inf) * z).clamp_min(0.0)


class GlobalDriftCompensation:
    """Global drift compensation (paper-targets section 2): read the array with a fixed calibration input after
    programming, r0 = mean_j |sum_i x_i (g+_ij - g-_ij)|; at time t read again (r_t) and scale the
    digital output by alpha = r0 / r_t. One alpha per layer: in hardware a fixed-point constant
    folded into the post-processing scale.

    The readout is taken on the column currents; the chip would take it through the ADC, so a real
    calibration input must be small enough not to clip there (the default full-scale ones vector
    is the idealised readout of aihwkit).
    """

    def __init__(self, calib_input: torch.Tensor | None = None):
        self.calib_input = None if calib_input is None else _as64(calib_input).reshape(-1)

    def readout(self, g_plus: torch.Tensor, g_minus: torch.Tensor) -> torch.Tensor:
        """r = mean |column current| for the calibration input; g are (out, in)."""
        dg = _as64(g_plus) - _as64(g_minus)
        x = torch.ones(dg.shape[1], dtype=DTYPE) if self.calib_input is None else self.calib_input
        if x.numel() != dg.shape[1]:
            raise ValueError(f"calibration input has {x.numel()} entries for {dg.shape[1]} crossbar rows")
        return (dg @ x).abs().mean()

    @staticmethod
    def alpha(r0: torch.Tensor, r_t: torch.Tensor) -> float:
        r_t = float(r_t)
        # A layer whose readout vanished (all-zero weights) has nothing to compensate.
        return float(r0) / r_t if r_t > 0 else 1.0


@dataclass(frozen=True)
class CrossbarRead:
    """One read of a programmed crossbar at t_inf: conductances (uS), weights and alpha."""

    t_inf: float
    g_plus: torch.Tensor
    g_minus: torch.Tensor
    weights: torch.Tensor      # (g+ - g-) / s, in the units of the programmed weight matrix
    alpha: float               # global drift compensation factor (1.0 when not compensated)

    @property
    def compensated_weights(self) -> torch.Tensor:
        return self.weights * self.alpha


class PcmCrossbar:
    """A weight matrix programmed once into PCM pairs and read at any time after.

    Programming samples g_prog (ProgrammingNoise) and one drift exponent per device (DriftExponent)
    from `seed`; `read(t_inf)` applies Drift and samples ReadNoise afresh. The reference readout r0
    of GlobalDriftCompensation is taken right after programming (a read at t_inf = 0, with its read
    noise, as the chip would see it). W is (out, in); higher-rank (conv) weights are flattened per
    output.
    """

    def __init__(self, cfg: AonCimConfig, weight: torch.Tensor, *, per_column: bool = False,
                 seed: int = 0, calib_input: torch.Tensor | None = None):
        self.cfg = cfg
        self.shape = tuple(weight.shape)
        self.mapping = ConductanceMapping(cfg.g_max_us, per_column)
        self.prog_noise = ProgrammingNoise(cfg.g_max_us)
        self.drift_exponent = DriftExponent(cfg.g_max_us)
        self.drift = Drift(cfg.drift_t0_s)
        self.read_noise = ReadNoise(cfg.g_max_us, cfg.drift_t0_s, cfg.t_read_s)
        self.gdc = GlobalDriftCompensation(calib_input)

        gen = torch.Generator().manual_seed(int(seed))
        self.g_target_plus, self.g_target_minus, self.scale = self.mapping.to_pairs(weight.detach().cpu())
        self.g_prog_plus = self.prog_noise(self.g_target_plus, gen)
        self.g_prog_minus = self.prog_noise(self.g_target_minus, gen)
        self.nu_plus = self.drift_exponent(self.g_target_plus, gen)
        self.nu_minus = self.drift_exponent(self.g_target_minus, gen)
        self._read_gen = torch.Generator().manual_seed(int(seed) ^ 0x5EED_0F_5EAD)
        self.r0 = self.gdc.readout(*self.conductances(0.0))

    def conductances(self, t_inf: float, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(g+, g-) in uS at t_inf seconds after programming, (out, in); fresh read noise each call."""
        gen = self._read_gen if generator is None else generator
        gp = self.read_noise(self.drift(self.g_prog_plus, self.nu_plus, t_inf), self.g_prog_plus, t_inf, gen)
        gm = self.read_noise(self.drift(self.g_prog_minus, self.nu_minus, t_inf), self.g_prog_minus, t_inf, gen)
        return gp, gm

    def read(self, t_inf: float, *, compensate: bool = True,
             generator: torch.Generator | None = None) -> CrossbarRead:
        """One read at t_inf: conductances, effective weights (original shape) and alpha."""
        gp, gm = self.conductances(t_inf, generator)
        alpha = self.gdc.alpha(self.r0, self.gdc.readout(gp, gm)) if compensate else 1.0
        w = self.mapping.to_weights(gp, gm, self.scale).reshape(self.shape)
        return CrossbarRead(check_time(t_inf), gp, gm, w, alpha)

    def weights(self, t_inf: float, *, compensate: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Effective weights at t_inf (alpha applied when compensating), original shape."""
        return self.read(t_inf, compensate=compensate, generator=generator).compensated_weights

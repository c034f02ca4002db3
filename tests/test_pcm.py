"""PCM device model (model/pcm.py) against the equations of paper-targets section 2, within sampling error.

Expected values are computed here from the formulas of docs/paper-targets.md (and closed forms of the folded normal),
not from the model's own helper methods, so a wrong coefficient or a wrong time origin fails.
"""
import math

import pytest
import torch

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.config import AonCimConfig
from aoncim.model.pcm import (
    INFERENCE_TIMES_S,
    ConductanceMapping,
    Drift,
    DriftExponent,
    GlobalDriftCompensation,
    PcmCrossbar,
    ProgrammingNoise,
    ReadNoise,
)

G_MAX, T0, T_READ = CFG.g_max_us, CFG.drift_t0_s, CFG.t_read_s
N = 200_000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def sigma_prog(g_t, g_max=G_MAX):
    g = g_t / g_max
    return (0.26348 + 1.9650 * g - 1.1731 * g * g) * g_max / 25


def nu_params(g_t):
    g = max(g_t / G_MAX, 1e-6)
    mu = min(max(-0.0155 * math.log(g) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(g) - 0.0059, 0.008), 0.045)
    return mu, sd


def folded_normal_moments(mu, sd):
    mean = sd * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sd * sd)) + mu * math.erf(mu / (sd * math.sqrt(2)))
    return mean, math.sqrt(mu * mu + sd * sd - mean * mean)


def test_time_grid_is_the_papers():
    assert list(INFERENCE_TIMES_S.values()) == [1.0, 3600.0, 86400.0, 864000.0, 2592000.0, 31536000.0]


def test_mapping_roundtrip_and_pair_form():
    w = torch.randn(16, 40, generator=gen(), dtype=torch.float64)
    m = ConductanceMapping(G_MAX)
    gp, gm, s = m.to_pairs(w)
    assert float(s) == pytest.approx(G_MAX / float(w.abs().max()))
    assert gp.min() >= 0 and gm.min() >= 0 and max(gp.max(), gm.max()) == pytest.approx(G_MAX)
    assert torch.all((gp == 0) | (gm == 0)), "only one device of a pair is programmed"
    torch.testing.assert_close(m.to_weights(gp, gm, s), w, rtol=0, atol=1e-12)

    gp, gm, s = ConductanceMapping(G_MAX, per_column=True).to_pairs(w)
    assert s.shape == (16, 1)
    torch.testing.assert_close(torch.maximum(gp, gm).amax(dim=1), torch.full((16,), G_MAX, dtype=torch.float64))
    torch.testing.assert_close(ConductanceMapping.to_weights(gp, gm, s), w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("frac", [0.2, 0.5, 0.8, 1.0])
def test_programming_noise_mean_and_std(frac):
    g_t = frac * G_MAX
    g = ProgrammingNoise(G_MAX)(torch.full((N,), g_t), gen(1))
    sd = sigma_prog(g_t)
    assert abs(float(g.mean()) - g_t) < 4 * sd / math.sqrt(N)
    assert abs(float(g.std()) - sd) < 4 * sd / math.sqrt(2 * N)


def test_programming_noise_of_an_off_device_is_rectified():
    # g_T = 0: g_prog = max(0, sigma*N) is a rectified normal.
    sd = sigma_prog(0.0)
    g = ProgrammingNoise(G_MAX)(torch.zeros(N), gen(2))
    assert float(g.min()) == 0.0
    assert float(g.mean()) == pytest.approx(sd / math.sqrt(2 * math.pi), rel=0.02)
    assert float(g.std()) == pytest.approx(sd * math.sqrt(0.5 - 1 / (2 * math.pi)), rel=0.02)
    assert float((g == 0).double().mean()) == pytest.approx(0.5, abs=0.01)


def test_programming_noise_scales_with_g_max():
    cfg = AonCimConfig(g_max_us=50.0)
    sig = ProgrammingNoise(cfg.g_max_us).sigma(torch.tensor([25.0, 50.0]))
    torch.testing.assert_close(sig, torch.tensor([sigma_prog(25.0, 50.0), sigma_prog(50.0, 50.0)], dtype=torch.float64))
    assert float(sig[1]) == pytest.approx(2 * (0.26348 + 1.9650 - 1.1731))


@pytest.mark.parametrize("g_t", [0.0, 0.5, 2.5, 10.0, 25.0])
def test_drift_exponent_statistics(g_t):
    de = DriftExponent(G_MAX)
    mu, sd = nu_params(g_t)
    assert float(de.mean(torch.tensor(g_t))) == pytest.approx(mu)
    assert float(de.std(torch.tensor(g_t))) == pytest.approx(sd)
    nu = de(torch.full((N,), g_t), gen(3))
    # |N|: negative draws fold over (a clamp at zero would pile ~2 % of the devices at nu = 0).
    assert float(nu.min()) > 0
    m, s = folded_normal_moments(mu, sd)
    assert abs(float(nu.mean()) - m) < 4 * s / math.sqrt(N)
    assert float(nu.std()) == pytest.approx(s, rel=0.02)


def test_drift_exponent_clipping_ends():
    de = DriftExponent(G_MAX)
    # g_T = g_max: ln g = 0 -> mu = clip(0.0244) = 0.049, sigma = clip(-0.0059) = 0.008.
    assert float(de.mean(torch.tensor(G_MAX))) == pytest.approx(0.049)
    assert float(de.std(torch.tensor(G_MAX))) == pytest.approx(0.008)
    # Off devices drift fastest: both clip at their upper ends.
    assert float(de.mean(torch.tensor(0.0))) == pytest.approx(0.1)
    assert float(de.std(torch.tensor(0.0))) == pytest.approx(0.045)


def test_drift_law_and_time_origin():
    nu = torch.tensor([0.0, 0.05, 0.1])
    d = Drift(T0)
    torch.testing.assert_close(d.factor(nu, 0.0), torch.ones(3, dtype=torch.float64))
    t = INFERENCE_TIMES_S["1d"]
    torch.testing.assert_close(d(torch.full((3,), 10.0), nu, t),
                               10.0 * ((t + T0) / T0) ** -nu.double())


@pytest.mark.parametrize("g_t", [2.0, 12.5, 25.0])
def test_mean_drift_factor_after_one_day(g_t):
    t = INFERENCE_TIMES_S["1d"]
    nu = DriftExponent(G_MAX)(torch.full((N,), g_t), gen(4))
    got = float(Drift(T0).factor(nu, t).mean())
    # E[exp(-k|nu|)] for nu ~ N(mu, sd), k = ln(t/t0), t = t_inf + t0 (closed form of the folded normal).
    mu, sd = nu_params(g_t)
    k = math.log((t + T0) / T0)
    want = (math.exp(-k * mu + (k * sd) ** 2 / 2) * phi((mu - k * sd * sd) / sd)
            + math.exp(k * mu + (k * sd) ** 2 / 2) * phi(-(mu + k * sd * sd) / sd))
    assert got == pytest.approx(want, rel=2e-3)
    assert got < 0.75, "one day of drift must visibly lower the conductance"


def rectified_normal_moments(m, s):
    """Mean and std of max(0, N(m, s))."""
    a = m / s
    pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    mean = m * phi(a) + s * pdf
    second = (m * m + s * s) * phi(a) + m * s * pdf
    return mean, math.sqrt(second - mean * mean)


@pytest.mark.parametrize("g_prog, t_key", [(10.0, "1d"), (25.0, "1h"), (5.0, "1y"), (0.05, "1d")])
def test_read_noise_std(g_prog, t_key):
    t = INFERENCE_TIMES_S[t_key]
    q_s = min(0.0088 / max((g_prog / G_MAX) ** 0.65, 1e-3), 0.2)
    sd = g_prog * q_s * math.sqrt(math.log((t + T0 + T_READ) / (2 * T_READ)))
    rn = ReadNoise(G_MAX, T0, T_READ)
    assert float(rn.sigma(torch.tensor(g_prog), torch.tensor(g_prog), t)) == pytest.approx(sd)
    g = rn(torch.full((N,), g_prog), torch.full((N,), g_prog), t, gen(5))
    # Low conductances (Q_s at its 0.2 cap) are noisy enough for the clamp at 0 to matter.
    mean, std = rectified_normal_moments(g_prog, sd)
    assert float(g.mean()) == pytest.approx(mean, abs=4 * std / math.sqrt(N))
    assert float(g.std()) == pytest.approx(std, rel=0.02)
    assert float(g.min()) >= 0


def test_read_noise_grows_with_time():
    rn = ReadNoise(G_MAX, T0, T_READ)
    f = [rn.time_factor(t) for t in INFERENCE_TIMES_S.values()]
    assert all(a < b for a, b in zip(f, f[1:]))


def test_global_drift_compensation_restores_mean_output():
    w = torch.randn(256, 128, generator=gen(6), dtype=torch.float64)
    x = torch.rand(512, 128, generator=gen(7), dtype=torch.float64)
    xb = PcmCrossbar(CFG, w, seed=11)
    ideal = (x @ w.T).abs().mean()
    t = INFERENCE_TIMES_S["1d"]
    raw = (x @ xb.weights(t, compensate=False).T).abs().mean() / ideal
    read = xb.read(t, compensate=True)
    comp = (x @ read.compensated_weights.T).abs().mean() / ideal
    assert float(raw) < 0.8, "uncompensated output must have drifted"
    assert float(comp) == pytest.approx(1.0, abs=0.05)
    assert read.alpha == pytest.approx(1 / float(raw), rel=0.05)


def test_compensation_uses_the_calibration_input():
    gp = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    gm = torch.zeros(2, 2)
    assert float(GlobalDriftCompensation().readout(gp, gm)) == pytest.approx(3.0)
    assert float(GlobalDriftCompensation(torch.tensor([1.0, 0.0])).readout(gp, gm)) == pytest.approx(1.0)
    assert GlobalDriftCompensation.alpha(torch.tensor(3.0), torch.tensor(1.5)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="3 entries for 2 crossbar rows"):
        GlobalDriftCompensation(torch.ones(3)).readout(gp, gm)


def test_seeding_is_reproducible_and_reads_are_fresh():
    w = torch.randn(8, 32, generator=gen(8))
    a, b, c = PcmCrossbar(CFG, w, seed=3), PcmCrossbar(CFG, w, seed=3), PcmCrossbar(CFG, w, seed=4)
    assert torch.equal(a.g_prog_plus, b.g_prog_plus) and torch.equal(a.nu_minus, b.nu_minus)
    assert not torch.equal(a.g_prog_plus, c.g_prog_plus)
    t = INFERENCE_TIMES_S["10d"]
    torch.testing.assert_close(a.weights(t), b.weights(t), rtol=0, atol=0)
    assert not torch.equal(a.conductances(t)[0], a.conductances(t)[0]), "read noise is sampled per read"
    torch.testing.assert_close(a.conductances(t, gen(9))[0], a.conductances(t, gen(9))[0], rtol=0, atol=0)


def test_crossbar_keeps_conv_shape_and_programs_once():
    w = torch.randn(4, 3, 3, 3, generator=gen(10))
    xb = PcmCrossbar(CFG, w, seed=0)
    assert xb.weights(0.0).shape == w.shape
    before = xb.g_prog_plus.clone()
    xb.read(INFERENCE_TIMES_S["30d"])
    assert torch.equal(before, xb.g_prog_plus), "reading must not reprogram"


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_invalid_time_raises_one_line(bad):
    xb = PcmCrossbar(CFG, torch.ones(2, 2), seed=0)
    with pytest.raises(ValueError, match="t_inf") as e:
        xb.read(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="t_inf"):
        Drift(T0).factor(torch.zeros(1), bad)

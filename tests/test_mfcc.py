"""MFCC front end: shape, a tone lands in its mel band, equality with a plain numpy reference, errors."""
import math

import numpy as np
import pytest
import torch

from aoncim.model.mfcc import MfccFrontEnd, hz_to_mel


def numpy_mfcc(x: np.ndarray, fe: MfccFrontEnd) -> np.ndarray:
    """Straightforward loop reference, written independently of the module (float64)."""
    sr, win, hop, n_fft = fe.sample_rate, fe.win_length, fe.hop_length, fe.n_fft
    if fe.preemphasis:
        x = np.append(x[0], x[1:] - fe.preemphasis * x[:-1])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)
    edges = imel(np.linspace(mel(fe.f_min), mel(fe.f_max), fe.n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    fb = np.zeros((fe.n_mels, len(freqs)))
    for m in range(fe.n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo < f <= c:
                fb[m, k] = (f - lo) / (c - lo)
            elif c < f < hi:
                fb[m, k] = (hi - f) / (hi - c)
    out = []
    for t in range(1 + (len(x) - win) // hop):
        spec = np.abs(np.fft.rfft(x[t * hop: t * hop + win] * window, n_fft)) ** 2
        logmel = np.log(np.maximum(fb @ spec, fe.log_floor))
        n = fe.n_mels
        coeffs = [np.sqrt((1 if k == 0 else 2) / n) * sum(logmel[i] * math.cos(math.pi * k * (i + 0.5) / n) for i in range(n))
                  for k in range(fe.n_mfcc)]
        out.append(coeffs)
    return np.array(out)


def test_shape_and_dtypes():
    fe = MfccFrontEnd()
    x = torch.randn(3, 16000) * 0.1
    for wave in (x, x[:, None, :]):
        assert fe(wave).shape == (3, 1, 49, 10)
    assert fe(x[0]).shape == (1, 1, 49, 10)
    assert fe(x).dtype == torch.float32 and fe(x.double()).dtype == torch.float64
    assert fe.output_shape == (1, 49, 10)
    assert torch.equal(fe(x), fe(x))  # deterministic


def test_tone_energy_in_expected_mel_band():
    fe = MfccFrontEnd()
    edges = np.linspace(hz_to_mel(fe.f_min), hz_to_mel(fe.f_max), fe.n_mels + 2)
    for f0 in (300.0, 1000.0, 2500.0):
        t = torch.arange(16000, dtype=torch.float64) / 16000
        x = 0.5 * torch.sin(2 * math.pi * f0 * t)
        peak = int(fe.log_mel(x)[0].mean(0).argmax())
        feats = fe(x)[0, 0]
        expected = int(np.argmin(np.abs(edges[1:-1] - hz_to_mel(f0))))
        assert abs(peak - expected) <= 1, (f0, peak, expected)
        assert torch.allclose(feats, feats.mean(0), atol=1e-3 * feats.abs().max())  # stationary tone


def test_matches_numpy_reference():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.hanning(16000) + 0.02 * rng.standard_normal(16000)
    for fe in (MfccFrontEnd(), MfccFrontEnd(n_fft=640, f_max=7600.0, preemphasis=0.97)):
        got = fe(torch.from_numpy(x))[0, 0].numpy()
        np.testing.assert_allclose(got, numpy_mfcc(x, fe), atol=1e-5, rtol=0)
        got32 = fe(torch.from_numpy(x).float())[0, 0].numpy()
        np.testing.assert_allclose(got32, got, atol=2e-3)


def test_rejects_bad_input():
    fe = MfccFrontEnd()
    with pytest.raises(ValueError, match="15999 samples.*pad or crop"):
        fe(torch.zeros(2, 15999))
    with pytest.raises(ValueError, match="8000 Hz.*resample"):
        fe(torch.zeros(16000), sample_rate=8000)
    with pytest.raises(ValueError, match="shape"):
        fe(torch.zeros(2, 2, 16000))
    with pytest.raises(ValueError, match="not floating"):
        fe(torch.zeros(16000, dtype=torch.int16))
    with pytest.raises(ValueError, match="n_fft"):
        MfccFrontEnd(n_fft=512)

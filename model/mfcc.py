"""MFCC front end for keyword spotting: 1 s of 16 kHz audio -> a (1, 49, 10) feature map.

Our own torch implementation (torchaudio/librosa are not available), following the usual
"Hello Edge" / TF micro-speech KWS front end:

    [pre-emphasis] -> frames of 640 samples (40 ms) every 320 samples (20 ms), no padding,
    so 16000 samples give 1 + (16000 - 640) // 320 = 49 frames
    -> periodic Hann window -> |rFFT|^2 with n_fft = 1024 (the frame is zero-padded to the next
    power of two, as tf.signal.stft does; 513 bins of 15.6 Hz)
    -> 40 triangular mel filters, HTK mel scale mel(f) = 2595 log10(1 + f / 700), 20 Hz .. 4 kHz
    (speech energy above 4 kHz adds little for KWS and the narrow band keeps every low filter
    covering at least two FFT bins), unnormalised (peak 1)
    -> natural log of max(mel energy, log_floor) -> DCT-II (orthonormal) -> first 10 coefficients.

The power spectrum is not divided by n_fft or the window energy: the features keep the waveform's
absolute level (input is expected in [-1, 1]), which the downstream quantiser calibrates anyway.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor | float:
    """HTK mel scale."""
    if isinstance(f, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, peak 1, on linear FFT-bin frequencies (float64)."""
    bins_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    edges_mel = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    edges_hz = mel_to_hz(edges_mel)
    lo, centre, hi = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    f = bins_hz[:, None]
    rising = (f - lo) / (centre - lo)
    falling = (hi - f) / (hi - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def dct_ii_ortho(n_in: int, n_out: int) -> torch.Tensor:
    """(n_in, n_out) orthonormal DCT-II matrix: y = x @ D keeps the first n_out coefficients."""
    n = torch.arange(n_in, dtype=torch.float64)[:, None]
    k = torch.arange(n_out, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    d[:, 0] /= math.sqrt(2.0)
    return d


class MfccFrontEnd(nn.Module):
    """Batched, deterministic MFCC: waveform (N, S), (N, 1, S) or (S,) -> (N, 1, frames, n_mfcc).

    Works in the input's floating dtype (float32 or float64). All constants are buffers, so the
    module moves with `.to()` and has no trainable parameters.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        clip_samples: int = CLIP_SAMPLES,
        win_length: int = 640,
        hop_length: int = 320,
        n_fft: int = 1024,
        n_mels: int = 40,
        f_min: float = 20.0,
        f_max: float = 4000.0,
        n_mfcc: int = 10,
        preemphasis: float = 0.0,
        log_floor: float = 1e-6,
    ):
        super().__init__()
        if n_fft < win_length:
            raise ValueError(f"n_fft {n_fft} < win_length {win_length}: use n_fft >= win_length")
        if not 0.0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"mel band {f_min}..{f_max} Hz invalid: need 0 <= f_min < f_max <= {sample_rate / 2}")
        if clip_samples < win_length:
            raise ValueError(f"clip_samples {clip_samples} shorter than one window ({win_length})")
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"n_mfcc {n_mfcc} must be in 1..n_mels ({n_mels})")
        if not 0.0 <= preemphasis < 1.0:
            raise ValueError(f"preemphasis {preemphasis} must be in [0, 1) (0 disables it)")
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.n_mfcc = n_mfcc
        self.preemphasis = preemphasis
        self.log_floor = log_floor
        self.n_frames = 1 + (clip_samples - win_length) // hop_length
        fb = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max)
        if bool((fb.sum(0) == 0).any()):
            raise ValueError(f"some of the {n_mels} mel filters cover no FFT bin: raise n_fft or f_min, or lower n_mels")
        self.register_buffer("window", torch.hann_window(win_length, periodic=True, dtype=torch.float64))
        self.register_buffer("mel_fb", fb)
        self.register_buffer("dct", dct_ii_ortho(n_mels, n_mfcc))

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (1, self.n_frames, self.n_mfcc)

    def params(self) -> dict:
        """The front-end settings, for dataset metadata (rebuild with `MfccFrontEnd(**params)`)."""
        keys = ("sample_rate", "clip_samples", "win_length", "hop_length", "n_fft", "n_mels",
                "f_min", "f_max", "n_mfcc", "preemphasis", "log_floor")
        return {k: getattr(self, k) for k in keys}

    def forward(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """waveform in [-1, 1] -> MFCC (N, 1, frames, n_mfcc) in the waveform's dtype."""
        logmel = self.log_mel(wave, sample_rate)
        return (logmel @ self.dct.to(logmel.dtype)).unsqueeze(1)

    def log_mel(self, wave: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """The log-mel spectrogram (N, frames, n_mels) the cepstra are taken from."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ValueError(f"audio at {sample_rate} Hz, the front end needs {self.sample_rate} Hz: resample first")
        if not isinstance(wave, torch.Tensor):
            raise ValueError(f"waveform must be a torch.Tensor, got {type(wave).__name__}: wrap it with torch.as_tensor")
        if not wave.is_floating_point():
            raise ValueError(f"waveform dtype {wave.dtype} is not floating: convert PCM to float in [-1, 1]")
        x = self._as_batch(wave)
        if self.preemphasis:
            x = torch.cat([x[:, :1], x[:, 1:] - self.preemphasis * x[:, :-1]], dim=1)
        frames = x.unfold(1, self.win_length, self.hop_length) * self.window.to(x.dtype)  # (N, T, W)
        power = torch.fft.rfft(frames, n=self.n_fft, dim=-1).abs().square()  # (N, T, n_fft/2+1)
        return torch.log(torch.clamp(power @ self.mel_fb.to(x.dtype), min=self.log_floor))

    def _as_batch(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 3 and wave.shape[1] == 1:
            wave = wave[:, 0]
        elif wave.dim() == 1:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"waveform shape {tuple(wave.shape)}: expected (S,), (N, S) or (N, 1, S)")
        if wave.shape[1] != self.clip_samples:
            raise ValueError(
                f"clip of {wave.shape[1]} samples, the front end needs exactly {self.clip_samples} "
                f"({self.clip_samples / self.sample_rate:g} s at {self.sample_rate} Hz): pad or crop first")
        return wave

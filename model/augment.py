"""Training-time data augmentation for the two AnalogNets (applied per mini-batch, on [0, 1] inputs).

The offline sets are small (3,000 KWS training clips), so an unaugmented network memorises them and
sits close to its decision boundaries on unseen voices -- exactly where PCM weight noise flips
decisions. Augmentation widens the margins the noise has to cross.
"""
from __future__ import annotations

import torch


class KwsAugment:
    """MFCC (N, 1, frames, coeffs): random time shift (the keyword is not always centred), SpecAugment
    time and coefficient masks, and small additive feature noise."""

    def __init__(self, max_shift: int = 5, time_mask: int = 6, coeff_mask: int = 2, noise: float = 0.02):
        self.max_shift, self.time_mask, self.coeff_mask, self.noise = max_shift, time_mask, coeff_mask, noise

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, frames, coeffs = x.shape
        shift = int(torch.randint(-self.max_shift, self.max_shift + 1, (), generator=gen))
        x = torch.roll(x, shift, dims=2)
        t = torch.arange(frames).view(1, 1, -1, 1)
        c = torch.arange(coeffs).view(1, 1, 1, -1)
        t0 = torch.randint(0, frames, (n, 1, 1, 1), generator=gen)
        tw = torch.randint(0, self.time_mask + 1, (n, 1, 1, 1), generator=gen)
        c0 = torch.randint(1, coeffs, (n, 1, 1, 1), generator=gen)  # keep c0 (energy)
        cw = torch.randint(0, self.coeff_mask + 1, (n, 1, 1, 1), generator=gen)
        mask = ((t >= t0) & (t < t0 + tw)) | ((c >= c0) & (c < c0 + cw))
        fill = x.mean(dim=(2, 3), keepdim=True)
        x = torch.where(mask, fill, x)
        x = x + self.noise * torch.randn(x.shape, generator=gen)
        return x.clamp(0, 1)


class VwwAugment:
    """Grayscale images (N, 1, H, W): horizontal flip, a small translation, brightness/contrast jitter."""

    def __init__(self, max_shift: int = 4, jitter: float = 0.1):
        self.max_shift, self.jitter = max_shift, jitter

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        dy, dx = (int(torch.randint(-self.max_shift, self.max_shift + 1, (), generator=gen)) for _ in range(2))
        x = torch.roll(x, (dy, dx), dims=(2, 3))
        gain = 1 + self.jitter * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        offset = self.jitter * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
        return ((x - 0.5) * gain + 0.5 + offset).clamp(0, 1)


AUGMENTS = {"kws": KwsAugment, "vww": VwwAugment}

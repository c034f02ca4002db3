"""Procedural image-classification data for the walking skeleton: offline, seeded, instant.

Ten classes of small 2-channel images (bars at four orientations, crosses, boxes, blobs, ...) with
random position, contrast and background noise. Channel 0 is the pattern, channel 1 its negative
edge map, so the first layer must use both input channels.
"""
from __future__ import annotations

import numpy as np
import torch

N_CLASSES = 10


def _templates(size: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    t = [
        (np.abs(yy - c) < 1).astype(float),                    # horizontal bar
        (np.abs(xx - c) < 1).astype(float),                    # vertical bar
        (np.abs(yy - xx) < 1).astype(float),                   # diagonal
        (np.abs(yy + xx - 2 * c) < 1).astype(float),           # anti-diagonal
        ((np.abs(yy - c) < 1) | (np.abs(xx - c) < 1)).astype(float),  # cross
        ((np.maximum(np.abs(yy - c), np.abs(xx - c)) > c - 1.5)).astype(float),  # box
        (np.hypot(yy - c, xx - c) < size / 4).astype(float),   # blob
        (np.abs(np.hypot(yy - c, xx - c) - size / 3) < 0.8).astype(float),  # ring
        ((yy + xx) % 4 < 2).astype(float),                     # stripes
        (((yy // 2) + (xx // 2)) % 2).astype(float),           # checker
    ]
    return t


def make_patterns(n: int, seed: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n, 2, size, size) in [0, 1] and labels (n,)."""
    rng = np.random.default_rng(seed)
    tmpl = _templates(size)
    labels = rng.integers(0, N_CLASSES, n)
    x = np.empty((n, 2, size, size))
    for i, lab in enumerate(labels):
        img = np.roll(tmpl[lab], rng.integers(-1, 2, 2), axis=(0, 1))
        img = img * rng.uniform(0.5, 1.0) + rng.normal(0, 0.15, img.shape) + rng.uniform(0, 0.2)
        img = np.clip(img, 0, 1)
        edge = np.abs(np.diff(img, axis=0, prepend=img[:1])) + np.abs(np.diff(img, axis=1, prepend=img[:, :1]))
        x[i, 0], x[i, 1] = img, np.clip(edge, 0, 1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(labels)

"""Training-time augmentation (model/augment.py): range, shape, determinism, and that it changes data."""
import torch

from aoncim.model.augment import KwsAugment, VwwAugment


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_kws_augment_keeps_shape_range_and_is_seeded():
    x = torch.rand(16, 1, 49, 10, generator=_gen(0))
    aug = KwsAugment()
    a, b = aug(x, _gen(1)), aug(x, _gen(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, aug(x, _gen(2)))
    # Time shift moves the frames, it does not rescale them.
    shifted = KwsAugment(max_shift=5, time_mask=0, coeff_mask=0, noise=0.0)(x, _gen(3))
    assert any(torch.equal(shifted, torch.roll(x, s, dims=2)) for s in range(-5, 6))


def test_vww_augment_flips_and_shifts_within_range():
    x = torch.rand(8, 1, 64, 64, generator=_gen(0))
    a = VwwAugment(max_shift=0, jitter=0.0)(x, _gen(4))
    for i in range(8):
        assert torch.equal(a[i], x[i]) or torch.equal(a[i], x[i].flip(-1))
    b = VwwAugment()(x, _gen(5))
    assert b.shape == x.shape and float(b.min()) >= 0 and float(b.max()) <= 1

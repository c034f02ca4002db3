"""Hardware-aware (HWA) training: float pre-training, then retraining through the analog forward.

The recipe (docs/analognets.md has the numbers used for the shipped checkpoints):
1. FP pre-training of the float network (Adam, cosine learning rate, light weight decay).
2. Conversion of every Conv2d/Linear to its analog twin (`model/analog.py`) and calibration of
   each layer's input range x_max on training data (99.9th percentile, the compiler's rule); the
   first layer's range is the input's full scale, 1.0, because the chip's input codes are the
   image/feature codes themselves.
3. HWA retraining in "hwa" mode: DAC and ADC quantisation with straight-through gradients, the
   fixed ADC range, additive output and short-term read noise, weights mapped per column
   (`per_column`), and per mini-batch the weights as fresh simulated PCM devices read them,
   compensated, at a log-uniform time in `pcm_train_times` (drift-aware noise: programming noise,
   drift-exponent spread and 1/f read noise, not a Gaussian stand-in), plus Gaussian weight noise
   of std `weight_noise * w_max`; weights are clipped at `weight_clip_sigma` standard deviations of
   their layer after every step so no outlier sets w_max. Batch norm stays digital: the compiler
   folds it into the per-channel post-processing scale and bias.
Mini-batches are augmented (model/augment.py) and the loss label-smoothed: the offline sets are
small, and margins are what analog noise eats.

One training loop (`_fit`) serves the AnalogNets' in-memory tensors (`train_fp`, `train_hwa`) and
any model on the user's DataLoader (model/convert.py `train_fp_model`, `train_hwa_model`).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from aoncim.config import AonCimConfig

from .analog import analog_layers, calibrate_input_ranges, convert_to_analog, set_analog_mode


@dataclass(frozen=True)
class HwaRecipe:
    fp_epochs: int = 30
    hwa_epochs: int = 15
    batch_size: int = 128
    fp_lr: float = 2e-3
    hwa_lr: float = 5e-4
    weight_decay: float = 1e-4
    # Injected weight noise, relative to w_max: the PCM programming noise is 3.8-4.2 % of g_max
    # over the conductance range, and drift/1-f noise add to it.
    weight_noise: float = 0.05
    # Weights are clipped at this many standard deviations of their layer after every step, so one
    # outlier cannot set w_max (= g_max) and squeeze every other weight into a few conductance codes.
    weight_clip_sigma: float = 2.5
    act_bits: int = 8
    label_smoothing: float = 0.0
    # Channel-wise remap: each column's largest weight maps to g_max (the per-channel digital scale
    # absorbs w_max), so small-weight columns do not sit in the noisy low-conductance range.
    per_column: bool = True
    # Drift-aware noise: every training step programs the weights on fresh simulated PCM devices
    # and reads them, compensated, at a time log-uniform in this range (s); None disables it.
    pcm_train_times: tuple[float, float] | None = (1.0, 365 * 86400.0)
    seed: int = 0

    def __post_init__(self):
        if self.pcm_train_times is not None:  # JSON/checkpoint round trips give lists
            object.__setattr__(self, "pcm_train_times", tuple(float(t) for t in self.pcm_train_times))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochLog:
    phase: str
    epoch: int
    loss: float          # mean training loss of the epoch
    val_acc: float       # validation accuracy (nan: no validation set, or not a classification)
    seconds: float
    samples_per_s: float
    val_loss: float | None = None  # mean validation loss (DataLoader training with a validation set)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    hits = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / max(len(x), 1)


# One epoch's mini-batches, (inputs, targets), drawn when the epoch starts iterating.
Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def _fit(model: nn.Module, batches: Batches, steps_per_epoch: int, validate: Callable[[], tuple[float, float | None]],
         epochs: int, lr: float, recipe: HwaRecipe, phase: str, loss_fn: Callable, after_step=None,
         progress: bool = True) -> list[EpochLog]:
    """The training loop of the recipe, whatever feeds it: AdamW (recipe.weight_decay) under a
    one-cycle learning rate peaking at `lr` over epochs * steps_per_epoch steps, `after_step()`
    after every optimiser step (the HWA weight clipping), `validate() -> (val_acc, val_loss)`
    after every epoch. `batches()` yields one epoch of (inputs, targets): `_fit_tensors` feeds the
    AnalogNets' tensors, model/convert.py a user's DataLoader (`train_hwa_model`)."""
    if epochs <= 0:
        return []
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=recipe.weight_decay)
    steps = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    logs = []
    bar = tqdm(total=steps, desc=f"{phase} training", disable=not progress, leave=False)
    for epoch in range(epochs):
        model.train()
        t0, total, n = time.perf_counter(), 0.0, 0
        for xb, yb in batches():
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step()
            total, n = total + float(loss.detach()) * len(xb), n + len(xb)
            bar.update(1)
        if n == 0:
            raise ValueError(f"{phase} training: epoch {epoch} had no training batches")
        dt = time.perf_counter() - t0
        val_acc, val_loss = validate()
        logs.append(EpochLog(phase, epoch, total / n, val_acc, dt, n / dt, val_loss))
        bar.set_postfix(loss=f"{logs[-1].loss:.3f}", val=f"{logs[-1].val_acc:.3f}")
    bar.close()
    return logs


def _fit_tensors(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 epochs: int, lr: float, recipe: HwaRecipe, phase: str, after_step=None, progress: bool = True,
                 augment=None) -> list[EpochLog]:
    """`_fit` over in-memory (x, y) tensors (the AnalogNets): shuffled mini-batches of
    recipe.batch_size from a generator seeded with recipe.seed, optionally augmented, label-smoothed
    cross entropy, validation accuracy on `val`."""
    x, y = train
    gen = torch.Generator().manual_seed(recipe.seed)

    def batches():
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            yield (x[idx] if augment is None else augment(x[idx], gen)), y[idx]

    def loss_fn(out, target):
        return nn.functional.cross_entropy(out, target, label_smoothing=recipe.label_smoothing)

    return _fit(model, batches, math.ceil(len(x) / recipe.batch_size), lambda: (accuracy(model, *val), None),
                epochs, lr, recipe, phase, loss_fn, after_step, progress)


def train_fp(model: nn.Module, train, val, recipe: HwaRecipe, progress: bool = True, augment=None) -> list[EpochLog]:
    """Float pre-training. augment(x, generator) -> x transforms each mini-batch (model/augment.py)."""
    torch.manual_seed(recipe.seed)
    return _fit_tensors(model, train, val, recipe.fp_epochs, recipe.fp_lr, recipe, "FP", progress=progress,
                        augment=augment)


def to_hwa(model: nn.Module, cfg: AonCimConfig, recipe: HwaRecipe, calib_x: torch.Tensor) -> nn.Module:
    """Convert a float model to analog layers in place and calibrate their input ranges."""
    if recipe.act_bits not in cfg.act_bits_supported:
        raise ValueError(f"act_bits={recipe.act_bits} not supported; choose one of {cfg.act_bits_supported}")
    convert_to_analog(model, cfg, **analog_kwargs(recipe))
    calibrate_input_ranges(model, calib_x)
    first = analog_layers(model)[0][1]
    with torch.no_grad():
        first.input_range.fill_(1.0)
    return model


def analog_kwargs(recipe: HwaRecipe) -> dict:
    """convert_to_analog arguments of a recipe (training and checkpoint loading agree on them)."""
    return {"in_bits": recipe.act_bits, "weight_noise": recipe.weight_noise, "per_channel": recipe.per_column,
            "pcm_train_times": recipe.pcm_train_times}


@torch.no_grad()
def clip_weights(model: nn.Module, n_sigma: float) -> None:
    """Clip every analog layer's weights at +-n_sigma standard deviations of that layer."""
    for _, layer in analog_layers(model):
        lim = n_sigma * layer.weight.std()
        layer.weight.clamp_(-lim, lim)


def train_hwa(model: nn.Module, train, val, cfg: AonCimConfig, recipe: HwaRecipe,
              progress: bool = True, augment=None) -> list[EpochLog]:
    """HWA retraining of a converted model (see module docstring)."""
    torch.manual_seed(recipe.seed + 1)
    set_analog_mode(model, "hwa")
    return _fit_tensors(model, train, val, recipe.hwa_epochs, recipe.hwa_lr, recipe, "HWA",
                        after_step=lambda: clip_weights(model, recipe.weight_clip_sigma), progress=progress,
                        augment=augment)

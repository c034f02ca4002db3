"""Bring your own model: any `nn.Module` converted to analog layers, trained hardware-aware on the
user's own DataLoader, and compiled for the chip (docs/byo-model.md is the worked example).

- `convert_to_analog(module, cfg, recipe, calib)`: a copy of `module` whose every nn.Conv2d (any
  groups), nn.Conv1d and nn.Linear, wherever it sits in the module tree, is its analog twin
  (model/analog.py) with the recipe's analog settings; with `calib` the layers' DAC ranges are
  calibrated as the AnalogNets' are (`to_hwa`).
- `train_hwa_model(model, train_loader, ...)`: the AnalogNets' hardware-aware retraining (drift-aware
  PCM noise at random times, DAC/ADC quantisation, weight clipping, AdamW under a one-cycle
  schedule: model/hwa.py, docs/analognets.md) over any DataLoader of (inputs, targets) batches,
  with any loss (cross entropy by default, MSE for an autoencoder...). `train_fp_model` is the
  recipe's float pre-training over the same loop.
- `compile_module(module, calib, cfg)`: a trained analog (or float) module compiled to a Program
  (`firmware.compiler.compile_network`, through torch.export for any module); the analog layers
  give the compiler their trained DAC ranges and weight mapping.

The analog DAC is unsigned (model/analog.py): inputs of every analog layer should be non-negative
(a ReLU before it; network inputs scaled to [0, 1], as the AnalogNets' are). `convert_to_analog`
warns when calibration shows a layer whose inputs are not.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.program import Program

from . import analog
from .analog import _ideal_pass, analog_layers, calibrate_input_ranges, set_analog_mode
from .hwa import EpochLog, HwaRecipe, _fit, analog_kwargs, clip_weights

__all__ = ["convert_to_analog", "calibrate", "train_hwa_model", "train_fp_model", "compile_module", "recipe_of",
           "SIGNED_INPUT_FRACTION"]

# Attribute under which convert_to_analog records the recipe a model was converted with.
_RECIPE_ATTR = "aoncim_recipe"
# A layer whose calibration inputs are negative more often than this is reported (its DAC clips them).
SIGNED_INPUT_FRACTION = 1e-3
# analog layer keyword -> the HwaRecipe field it overrides.
_LAYER_KW = {"in_bits": "act_bits", "weight_noise": "weight_noise", "per_channel": "per_column",
             "pcm_train_times": "pcm_train_times", "out_noise_std": None, "read_noise_scale": None}


def _inputs(calib) -> list[torch.Tensor]:
    """Calibration inputs as a list of batches: a tensor (N, ...), an array, or an iterable (a
    DataLoader) of tensors or of (inputs, targets) batches."""
    if isinstance(calib, torch.Tensor) or hasattr(calib, "__array__"):
        return [torch.as_tensor(calib)]
    out = [torch.as_tensor(b[0] if isinstance(b, (tuple, list)) else b) for b in calib]
    if not out:
        raise ValueError("calib holds no inputs")
    return out


def _param_dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.get_default_dtype())


def recipe_of(model: nn.Module) -> HwaRecipe | None:
    """The recipe `convert_to_analog` converted `model` with (None for a model it did not convert)."""
    return getattr(model, _RECIPE_ATTR, None)


def convert_to_analog(module: nn.Module, cfg: AonCimConfig = DEFAULT_CONFIG, recipe: HwaRecipe | None = None,
                      calib=None, **layer_kw) -> nn.Module:
    """A deep copy of `module` with every nn.Conv2d (any groups, depthwise included), nn.Conv1d and
    nn.Linear anywhere in its module tree replaced by AnalogConv2d / AnalogConv1d / AnalogLinear
    (model/analog.py) with `recipe`'s analog settings (`analog_kwargs`: activation bits, weight
    noise, per-column mapping, drift-aware PCM training noise; default `HwaRecipe()`).
    `module` itself is not modified.

    layer_kw overrides single analog settings: in_bits, weight_noise, per_channel,
    pcm_train_times, out_noise_std, read_noise_scale.

    calib: inputs of the model (a tensor (N, ...) or an iterable / DataLoader of batches) to set
    every layer's DAC range `input_range` as the AnalogNets' recipe does: the 99.9th percentile of
    the layer's float inputs; a layer that reads the network input directly gets the input grid
    the compiler will use, 1.0 for inputs in [0, 1] (else the largest input). Without it each
    layer calibrates itself on the first batch it sees in "hwa" mode. Warns when a layer's
    calibration inputs are negative (the unsigned DAC clips them; docs/byo-model.md).

    The copy is in "ideal" mode (the float network); `train_hwa_model` trains it, `recipe_of`
    returns the recipe it was converted with (overrides included)."""
    recipe = HwaRecipe() if recipe is None else recipe
    unknown = sorted(set(layer_kw) - set(_LAYER_KW))
    if unknown:
        raise TypeError(f"convert_to_analog got unknown analog setting(s) {', '.join(unknown)}; known: "
                        f"{', '.join(_LAYER_KW)}")
    # The recipe records the overrides it can hold (one in_bits for all layers, not a per-layer map).
    changes = {_LAYER_KW[k]: v for k, v in layer_kw.items()
               if _LAYER_KW[k] is not None and not (k == "in_bits" and (v is None or isinstance(v, Mapping)))}
    recipe = dataclasses.replace(recipe, **changes)
    if recipe.act_bits not in cfg.act_bits_supported:
        raise ValueError(f"act_bits={recipe.act_bits} not supported; choose one of {cfg.act_bits_supported}")
    net = copy.deepcopy(module)
    net = analog.convert_to_analog(net, cfg, **{**analog_kwargs(recipe), **layer_kw})
    if not analog_layers(net):
        raise ValueError(f"{type(module).__name__} has no Conv1d, Conv2d or Linear layer to run on the analog array")
    setattr(net, _RECIPE_ATTR, recipe)
    if calib is not None:
        calibrate(net, calib)
    return net


@torch.no_grad()
def calibrate(model: nn.Module, calib) -> dict[str, float]:
    """Set every analog layer's DAC range from `calib` (see `convert_to_analog`), running the
    network in eval mode (train flags restored, batch-norm statistics untouched); returns
    {layer name: x_max}. Warns about layers whose inputs are signed."""
    move = _to_model(model)
    batches = [move(b)[0] for b in _inputs(calib)]
    reads_input: set[str] = set()
    negative: dict[str, list[int]] = {n: [0, 0] for n, _ in analog_layers(model)}
    # The network as the chip runs it: batch norm on its running statistics (left as they are), no dropout.
    training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        ranges = calibrate_input_ranges(model, batches)
        for xb in batches:
            def hook(n, mod, x, xb=xb):
                if x is xb:
                    reads_input.add(n)
                negative[n][0] += int((x < 0).sum())
                negative[n][1] += x.numel()

            _ideal_pass(model, xb, hook)
    finally:
        for m, flag in training:
            m.training = flag
    lo = min(float(b.min()) for b in batches)
    hi = max(float(b.max()) for b in batches)
    # The compiler's input grid (firmware/compiler.py `_input_grid`): [0, 1] for inputs within it.
    x_max = 1.0 if lo >= 0 and hi <= 1 else (hi if hi > 0 else 1.0)
    for n, layer in analog_layers(model):
        if n in reads_input:
            layer.input_range.fill_(x_max)
            ranges[n] = x_max
    signed = [f"{n} ({neg / total:.1%} < 0)" for n, (neg, total) in negative.items()
              if total and neg / total > SIGNED_INPUT_FRACTION]
    if signed:
        warnings.warn(f"analog layer(s) {', '.join(signed[:4])}{' ...' if len(signed) > 4 else ''} see negative "
                      "inputs: the analog DAC is unsigned and clips them to 0 in training, while the compiler maps "
                      "signed maps with a zero point, so the chip would compute what the network was not trained on; "
                      "put a ReLU before such layers and scale network inputs to [0, 1] (docs/byo-model.md)",
                      stacklevel=3)
    return ranges


# ------------------------------------------------------------------ training over a DataLoader

def _pair(batch, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    what = f"a {len(batch)}-element {type(batch).__name__}" if isinstance(batch, (tuple, list)) else \
        f"a {type(batch).__name__}"
    raise TypeError(f"{where} must yield (inputs, targets) batches, got {what}; for an autoencoder yield (x, x)")


def _steps(loader, where: str) -> int:
    try:
        n = len(loader)
    except TypeError:
        raise ValueError(f"{where} has no len(): the one-cycle learning-rate schedule needs the number of batches "
                         "per epoch (use a map-style Dataset, or give the IterableDataset a __len__)") from None
    if n < 1:
        raise ValueError(f"{where} is empty")
    return n


def _to_model(model: nn.Module) -> Callable[..., tuple[torch.Tensor, ...]]:
    """move(x, *targets): inputs to the model's device and float dtype, targets to its device."""
    p = next(model.parameters())

    def move(x, *targets):
        x = torch.as_tensor(x).to(p.device)
        if x.is_floating_point() and x.dtype != p.dtype:
            x = x.to(p.dtype)
        return (x, *(torch.as_tensor(t).to(p.device) for t in targets))

    return move


def _loader_batches(model: nn.Module, loader: Iterable, where: str):
    move = _to_model(model)

    def batches():
        for batch in loader:
            yield move(*_pair(batch, where))

    return batches


def _classifies(out: torch.Tensor, y: torch.Tensor) -> bool:
    """Integer class targets and one score per class: accuracy means something."""
    return not y.is_floating_point() and not y.is_complex() and out.dim() == y.dim() + 1 and out.shape[0] == y.shape[0]


def _validator(model: nn.Module, loader: Iterable | None, loss_fn) -> Callable[[], tuple[float, float | None]]:
    if loader is None:
        return lambda: (math.nan, None)
    move = _to_model(model)

    @torch.no_grad()
    def validate():
        model.eval()
        total, hits, n, classified = 0.0, 0, 0, True
        for batch in loader:
            x, y = move(*_pair(batch, "val_loader"))
            out = model(x)
            total += float(loss_fn(out, y)) * len(x)
            n += len(x)
            classified = classified and _classifies(out, y)
            if classified:
                hits += int((out.argmax(1) == y).sum())
        if n == 0:
            raise ValueError("val_loader is empty")
        return (hits / n if classified else math.nan), total / n

    return validate


def _loss(loss_fn, recipe: HwaRecipe):
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing) if loss_fn is None else loss_fn


def _train_recipe(model: nn.Module, recipe: HwaRecipe | None) -> HwaRecipe:
    """The recipe to train `model` with: the one it was converted with unless `recipe` is given,
    which must then agree with it on the analog settings the layers already have."""
    converted = recipe_of(model)
    if recipe is None:
        return converted or HwaRecipe()
    if converted is not None and analog_kwargs(recipe) != analog_kwargs(converted):
        diff = {k: (v, analog_kwargs(converted)[k]) for k, v in analog_kwargs(recipe).items()
                if v != analog_kwargs(converted)[k]}
        raise ValueError("the recipe's analog settings differ from those the model was converted with ("
                         + ", ".join(f"{k}: {a} vs {b}" for k, (a, b) in diff.items())
                         + "); convert the float model again with this recipe")
    return recipe


def train_hwa_model(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None,
                    cfg: AonCimConfig | None = None, recipe: HwaRecipe | None = None, epochs: int | None = None,
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    progress: bool = True) -> list[EpochLog]:
    """Hardware-aware training of a converted model (`convert_to_analog`) on the user's DataLoader:
    the AnalogNets' recipe (model/hwa.py `train_hwa`), in "hwa" mode -- DAC/ADC quantisation with
    straight-through gradients, output and short-term read noise, per mini-batch the weights
    programmed on fresh simulated PCM devices and read (compensated) at a random time in
    recipe.pcm_train_times, Gaussian weight noise; AdamW (recipe.weight_decay) under a one-cycle
    schedule peaking at recipe.hwa_lr; weights clipped at recipe.weight_clip_sigma after every step.

    train_loader / val_loader: iterables with len() of (inputs, targets) batches, inputs of any
    shape the model takes. loss_fn(outputs, targets): default cross entropy with
    recipe.label_smoothing; any other for regression (nn.MSELoss() for an autoencoder: targets = inputs).
    recipe: default the one the model was converted with (its analog settings are the layers' own;
    recipe.batch_size and recipe.seed's shuffling belong to the tensor path, the loader batches).
    epochs: default recipe.hwa_epochs. cfg: when given, the config every layer must have been
    converted for. Returns one EpochLog per epoch (val_acc: accuracy for class targets, else nan;
    val_loss: mean loss on val_loader). The model is left in "hwa" mode, eval(); set
    "ideal" / "inference" with `set_analog_mode` to evaluate it otherwise."""
    layers = analog_layers(model)
    if not layers:
        raise ValueError("model has no analog layers: convert it with convert_to_analog first")
    if cfg is not None:
        other = [n for n, m in layers if m.cfg != cfg]
        if other:
            raise ValueError(f"analog layer {other[0]} was converted for another config (hash "
                             f"{dict(layers)[other[0]].cfg.config_hash:#010x}, not {cfg.config_hash:#010x})")
    recipe = _train_recipe(model, recipe)
    epochs = recipe.hwa_epochs if epochs is None else int(epochs)
    loss_fn = _loss(loss_fn, recipe)
    steps = _steps(train_loader, "train_loader")
    torch.manual_seed(recipe.seed + 1)
    set_analog_mode(model, "hwa")
    logs = _fit(model, _loader_batches(model, train_loader, "train_loader"), steps,
                _validator(model, val_loader, loss_fn), epochs, recipe.hwa_lr, recipe, "HWA", loss_fn,
                after_step=lambda: clip_weights(model, recipe.weight_clip_sigma), progress=progress)
    model.eval()
    return logs


def train_fp_model(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None,
                   recipe: HwaRecipe | None = None, epochs: int | None = None,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   progress: bool = True) -> list[EpochLog]:
    """The recipe's float pre-training (model/hwa.py `train_fp`) on the user's DataLoader, before
    `convert_to_analog`: same loop as `train_hwa_model`, recipe.fp_lr, no weight clipping; epochs
    default recipe.fp_epochs. A model with analog layers trains in "ideal" mode (restored after)."""
    recipe = HwaRecipe() if recipe is None else recipe
    epochs = recipe.fp_epochs if epochs is None else int(epochs)
    loss_fn = _loss(loss_fn, recipe)
    steps = _steps(train_loader, "train_loader")
    torch.manual_seed(recipe.seed)
    layers = analog_layers(model)
    modes = [(m, m.mode, m.t_inf) for _, m in layers]
    try:
        for m, _, _ in modes:
            m.mode = "ideal"
        logs = _fit(model, _loader_batches(model, train_loader, "train_loader"), steps,
                    _validator(model, val_loader, loss_fn), epochs, recipe.fp_lr, recipe, "FP", loss_fn,
                    progress=progress)
    finally:
        for m, mode, t_inf in modes:
            m.mode, m.t_inf = mode, t_inf
    model.eval()
    return logs


# ------------------------------------------------------------------ compilation

def compile_module(module: nn.Module, calib, cfg: AonCimConfig = DEFAULT_CONFIG,
                   act_bits: int | None = None) -> Program:
    """A trained module (analog, from `convert_to_analog`, or float) compiled for `cfg`.

    calib: model inputs (N, ...) in the module's own layout ((N, C, H, W), (N, C, L) or (N, F));
    the first is the example torch.export traces with, all of them set the input grid and every
    activation step the trained DAC ranges do not (firmware/compiler.py). act_bits: the chip's
    activation precision, default the in_bits the analog layers were trained with (8 for a float
    module). As `compile_trained` does, the compiler reads the network in "ideal" mode (analog
    layers become plain ones carrying their trained input_range and weight mapping); the layers'
    modes and every module's train/eval flag are restored afterwards. Raises the compiler's
    CompileError (one line) for a network the chip cannot run."""
    from aoncim.firmware.compiler import compile_network

    layers = analog_layers(module)
    if act_bits is None:
        bits = {m.in_bits for _, m in layers}
        act_bits = bits.pop() if len(bits) == 1 else max(cfg.act_bits_supported)
    x = torch.cat([b.reshape(-1, *b.shape[1:]) for b in _inputs(calib)])
    x = x.to(_param_dtype(module)) if x.is_floating_point() else x
    modes = [(m, m.mode, m.t_inf) for _, m in layers]
    training = [(m, m.training) for m in module.modules()]
    try:
        for m, _, _ in modes:
            m.mode = "ideal"
        return compile_network(module, cfg, x, act_bits=act_bits)
    finally:
        for m, mode, t_inf in modes:
            m.mode, m.t_inf = mode, t_inf
        for m, flag in training:
            m.training = flag

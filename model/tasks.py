"""The two AnalogNets tasks as the command line sees them: network, data, input scaling, checkpoint.

Data comes from a local path the user gives (the real Google Speech Commands v2 / VWW folder) or,
without one, from the offline sets (the shipped espeak-ng KWS features, procedural VWW images).

Inputs reach the chip as unsigned DAC codes of [0, 1] values. VWW images already are. MFCCs are
signed, so KWS inputs pass through a fixed per-coefficient affine map to [0, 1] fitted on the
training split (the 0.5th and 99.5th percentiles map to 0 and 1, then clip) — the host applies it
with the front end. Zero padding of the first convolution then means the same thing in float
training and on the chip (the normalised value 0), with no bias correction.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .hwa import HwaRecipe, analog_kwargs

TASKS = ("kws", "vww")
SCALER_PERCENTILES = (0.5, 99.5)
# Training inputs that set every layer's input range and activation scale (training, eval,
# compile and co-simulation use the same ones, so they quantise alike).
CALIB_SAMPLES = 512
VWW_SYNTH_SIZES = {"train": 16384, "val": 2048, "test": 4096}
VWW_SYNTH_SEEDS = {"train": 11, "val": 12, "test": 13}
SPLITS = ("train", "val", "test")
# Any fixed seed: what matters is that training, eval and every later run shuffle a real dataset's
# split alike (training calibrates on the first CALIB_SAMPLES of it, and eval must too).
REAL_DATA_ORDER_SEED = 2024


class InputScaler:
    """Per-feature affine map to [0, 1] (features along the last axis), with clipping."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor):
        self.lo, self.hi = lo.float(), hi.float()

    @classmethod
    def identity(cls, n: int) -> "InputScaler":
        return cls(torch.zeros(n), torch.ones(n))

    @classmethod
    def fit(cls, x: torch.Tensor) -> "InputScaler":
        flat = x.reshape(-1, x.shape[-1]).double().numpy()
        lo, hi = np.percentile(flat, SCALER_PERCENTILES, axis=0)
        return cls(torch.from_numpy(lo), torch.from_numpy(np.maximum(hi, lo + 1e-6)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.lo) / (self.hi - self.lo)).clamp(0, 1)

    def state(self) -> dict:
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist()}

    @classmethod
    def from_state(cls, s: dict) -> "InputScaler":
        return cls(torch.tensor(s["lo"]), torch.tensor(s["hi"]))


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    build: Callable[[], nn.Sequential]
    recipe: HwaRecipe
    needs_scaler: bool

    @property
    def checkpoint_name(self) -> str:
        return f"analognet_{self.name}.pt"

    def load(self, split: str, data: str | Path | None = None,
             limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw inputs (N, 1, H, W) and labels of one split; `data` is the real dataset's folder.

        A real dataset's split comes in a fixed shuffled order (the same on every run): its folders
        list one class after another, and every `x[:n]` taken downstream (the calibration inputs,
        `aoncim eval --samples`) must see all classes. `limit` decodes only the first `limit`
        samples of that order, the same ones `load(split, data)[:limit]` holds.
        """
        if data is None:
            if self.name == "kws":
                from .kws_data import load_kws_synth

                x, y = load_kws_synth(split).tensors()
            else:
                from .vww_data import make_vww_synth

                x, y = (torch.from_numpy(a) for a in make_vww_synth(VWW_SYNTH_SIZES[split], VWW_SYNTH_SEEDS[split]))
            return (x, y) if limit is None else (x[:limit], y[:limit])
        if self.name == "kws":
            from .kws_data import SpeechCommands

            ds = SpeechCommands(data, split)
        else:
            from .vww_data import VisualWakeWords

            ds = VisualWakeWords(data, split)
        order = np.random.default_rng([REAL_DATA_ORDER_SEED, SPLITS.index(split)]).permutation(len(ds))
        return ds.subset_tensors(order if limit is None else order[:limit])

    def scaler_for(self, x_train: torch.Tensor) -> InputScaler:
        return InputScaler.fit(x_train) if self.needs_scaler else InputScaler.identity(x_train.shape[-1])


def _kws():
    from .analognets import analognet_kws

    return analognet_kws()


def _vww():
    from .analognets import analognet_vww

    return analognet_vww()


TASK = {
    "kws": Task("kws", "AnalogNet-KWS", _kws,
                HwaRecipe(fp_epochs=40, hwa_epochs=15, batch_size=64, label_smoothing=0.1), True),
    "vww": Task("vww", "AnalogNet-VWW", _vww,
                HwaRecipe(fp_epochs=12, hwa_epochs=10, batch_size=64, label_smoothing=0.1), False),
}


def get_task(name: str) -> Task:
    if name not in TASK:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASK[name]


# ------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, task: Task, fp_state: dict, hwa_state: dict, scaler: InputScaler,
                    recipe: HwaRecipe, info: dict) -> Path:
    """Validate and write a checkpoint; a training run that diverged (NaN weights) writes nothing."""
    from .checkpoint import CheckpointError, validate_checkpoint

    ck = {"format": 1, "task": task.name, "fp_state": fp_state, "hwa_state": hwa_state,
          "scaler": scaler.state(), "recipe": recipe.to_dict(), "info": info}
    try:
        validate_checkpoint(ck, task)
    except CheckpointError as e:
        raise CheckpointError(f"training produced an unusable network, not written to {path}: "
                              f"{str(e).removeprefix('checkpoint: ')}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed into place: an interrupted run never leaves half a
    # checkpoint where a good one was.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        torch.save(ck, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def shipped_checkpoint(task: Task) -> Path:
    return Path(str(resources.files("aoncim.model.weights").joinpath(task.checkpoint_name)))


def default_checkpoint_out(task: Task) -> Path:
    """Where `aoncim train` writes without -o: the working folder's out/, never the package."""
    return Path("out") / task.checkpoint_name


def load_checkpoint(task: Task, path: str | Path | None, cfg) -> tuple[nn.Module, nn.Module, InputScaler, dict]:
    """(FP model, HWA model with analog layers, input scaler, checkpoint dict); the checkpoint is
    validated whole first (model/checkpoint.py), so a damaged one is one CheckpointError line."""
    from .analog import convert_to_analog
    from .checkpoint import read_checkpoint

    p = Path(path) if path is not None else shipped_checkpoint(task)
    task, ck = read_checkpoint(p, task)
    fp = task.build()
    fp.load_state_dict(ck["fp_state"])
    hwa = task.build()
    saved = dict(ck["recipe"])
    # Checkpoints from before the drift-aware recipe mapped one w_max per layer and trained with
    # Gaussian noise only; reading them with today's defaults would program them wrongly.
    saved.setdefault("per_column", False)
    saved.setdefault("pcm_train_times", None)
    kw = analog_kwargs(HwaRecipe(**saved))
    # Every caller sets the precision it runs at (eval per --bits, compile per --act-bits); a config
    # without the trained one must still load the network.
    if kw["in_bits"] not in cfg.act_bits_supported:
        kw["in_bits"] = None
    convert_to_analog(hwa, cfg, **kw)
    hwa.load_state_dict(ck["hwa_state"])
    return fp.eval(), hwa.eval(), InputScaler.from_state(ck["scaler"]), ck

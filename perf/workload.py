"""The shipped AnalogNets as the performance tools use them: compiled for a config at an activation
precision (model/flows.py, as `aoncim compile` and model/evaluate.py do), and the bit-true accuracy of a
simulated PCM chip after drift with the host's compensation (model/evaluate.py's
`bit_true_accuracy`, on a small sample).

Data and checkpoints are loaded once per process (`task_data`), so a sweep worker that evaluates
many configs of one task pays for them once.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from aoncim.config import AonCimConfig
from aoncim.program import Program


@lru_cache(maxsize=4)
def task_data(name: str, calib_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(test inputs scaled to [0, 1], test labels, calibration inputs) of a task's offline set."""
    from aoncim.config import DEFAULT_CONFIG
    from aoncim.model.tasks import CALIB_SAMPLES, get_task, load_checkpoint

    task = get_task(name)
    _, _, scaler, _ = load_checkpoint(task, None, DEFAULT_CONFIG)
    x, y = task.load("test")
    xc, _ = task.load("train")
    return scaler(x), y, scaler(xc[: calib_samples or CALIB_SAMPLES])


def compile_task(name: str, cfg: AonCimConfig, act_bits: int = 8, calib_samples: int | None = None) -> Program:
    """The shipped checkpoint of `name` compiled for `cfg` with `act_bits` activations. Raises the
    compiler's one-line CompileError when the network does not fit the config."""
    from aoncim.firmware.compiler import CompileError
    from aoncim.model.flows import compile_trained
    from aoncim.model.tasks import get_task, load_checkpoint

    if act_bits not in cfg.act_bits_supported:
        raise CompileError(f"act_bits={act_bits} not supported; choose one of {cfg.act_bits_supported}")
    if name.startswith("mlperf-"):  # an MLPerf Tiny model (model/mlperf.py): random weights, synthetic calibration
        from aoncim.model.mlperf import compile_model

        return compile_model(name, cfg, act_bits)
    _, _, calib = task_data(name, calib_samples)
    _, hwa, _, _ = load_checkpoint(get_task(name), None, cfg)
    return compile_trained(hwa, cfg, calib, act_bits)


def drift_accuracy(name: str, prog: Program, cfg: AonCimConfig, times_s: list[float], samples: int = 256,
                   chips: int = 1, compensate: bool = True) -> list[float]:
    """Bit-true accuracy (mean over `chips` simulated chips) at each time after programming, on the
    first `samples` test inputs, with the host's drift compensation (alpha and offset-corrected
    biases) when `compensate`: model/evaluate.py's bit-true mode."""
    from aoncim.firmware.compiler import quantise_input
    from aoncim.model.evaluate import bit_true_accuracy
    from aoncim.model.flows import programmed_chip

    x, y, _ = task_data(name)
    if samples < 1:
        raise ValueError(f"samples={samples}: need at least one test input")
    if chips < 1:
        raise ValueError(f"chips={chips}: need at least one simulated chip")
    q = quantise_input(x[:samples], prog.layers[0].in_bits)
    yb = y[:samples]
    arrays, refs = zip(*(programmed_chip(prog, cfg, s) for s in range(chips)))
    return [float(np.mean([bit_true_accuracy(arrays[s], refs[s], cfg, q, yb, t, s, compensate)
                           for s in range(chips)])) for t in times_s]

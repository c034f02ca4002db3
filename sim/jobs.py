"""Co-simulation jobs of the shipped AnalogNets: the checkpoint compiled for a config (as
`aoncim compile` does), test inputs through the checkpoint's input scaler, and a simulated PCM chip
read at time t with the host's drift compensation to run on the chip (`run_cosim(...,
calibration=...)`), the embedded TinyNet, a small conv net, and inputs for a user's own image.
Used by `aoncim cosim` (sim/report.py), `aoncim demo` and the co-simulation tests. (The typed job
the runners take is `sim.cosim.CosimJob`.)"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.model.flows import drifted_chip  # noqa: F401  (the drifted chip for run_cosim, re-exported)
from aoncim.model.tasks import CALIB_SAMPLES
from aoncim.program import Program

# The small co-simulation config: elaborates and builds in seconds, so one Verilog and one build
# serve the quick benchmark and the co-simulation, build-cache, register and Amaranth-core tests.
# 16 load lanes and 4 post-processing lanes: several load runs per kernel row and post-processing
# steps per MVM on a small array (the default's 64 and 8 would hide both).
SMALL_CFG = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=256, out_depth=64, param_depth=128, max_layers=4,
                         load_lanes=16, pp_lanes=4)


@dataclass
class AnalogNetJob:
    title: str
    prog: Program              # compiled: target conductance codes
    inputs: list[np.ndarray]   # HWC codes
    seeds: list[int]           # read-noise seed per inference
    labels: np.ndarray


def analognet_job(name: str, cfg: AonCimConfig, n: int, seed: int, act_bits: int = 8,
                  calib_samples: int = CALIB_SAMPLES) -> AnalogNetJob:
    """The shipped checkpoint of task `name` ("kws", "vww") compiled at `act_bits` for `cfg`, and
    `n` test inputs picked by `seed`, with read-noise seeds."""
    from aoncim.firmware.compiler import quantise_input
    from aoncim.model.flows import compile_trained
    from aoncim.model.tasks import get_task, load_checkpoint

    task = get_task(name)
    _, hwa, scaler, _ = load_checkpoint(task, None, cfg)
    x, y = task.load("test")
    if not 1 <= n <= len(x):
        raise ValueError(f"--inputs {n}: the {task.title} test set has {len(x)} samples")
    calib = scaler(task.load("train")[0][:calib_samples])
    prog = compile_trained(hwa, cfg, calib, act_bits)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x), n, replace=False))
    inputs = list(quantise_input(scaler(x[pick]), act_bits))
    seeds = [int(s) for s in rng.integers(0, 2**32, n)]
    return AnalogNetJob(task.title, prog, inputs, seeds, y[pick].numpy())


def mlperf_job(name: str, cfg: AonCimConfig | None, n: int, seed: int, act_bits: int = 8) -> AnalogNetJob:
    """MLPerf Tiny model `name` ("mlperf-kws", ...; model/mlperf.py: random weights, batch norm
    calibrated on synthetic inputs) compiled for `cfg` (default: the model's own config, the
    default chip with what it needs to fit) at `act_bits`, calibrated on synthetic inputs, and `n`
    synthetic test inputs of `seed` quantised as the host does (`Program.io`). No labels: the
    weights are random; bit-exactness and performance are the point."""
    from aoncim.model import mlperf

    m = mlperf.get(name)
    prog = mlperf.compile_model(name, cfg, act_bits)
    d0 = prog.layers[0]
    x = m.inputs(n, seed).double().numpy().reshape(n, d0.in_c, d0.in_h, d0.in_w)
    inputs = list(prog.io.quantise(x, act_bits))
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**32, n)]
    return AnalogNetJob(m.title, prog, inputs, seeds, np.full(n, -1))


def tiny_job(cfg: AonCimConfig, n: int, seed: int, act_bits: int
             ) -> tuple[Program, list[np.ndarray], list[int], np.ndarray]:
    """The embedded TinyNet compiled for `cfg` at `act_bits`, `n` test patterns picked by `seed`
    as input codes, read-noise seeds and the patterns' labels (`aoncim cosim`'s default network)."""
    from aoncim.firmware.compiler import compile_network, quantise_input
    from aoncim.model.patterns import make_patterns
    from aoncim.model.tiny import load_tiny

    net = load_tiny()
    calib, _ = make_patterns(256, seed=1_000_003)
    prog = compile_network(net, cfg, calib, act_bits=act_bits)
    x, labels = make_patterns(n, seed=seed)
    inputs = list(quantise_input(x, act_bits))
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**32, n)]
    return prog, inputs, seeds, labels.numpy()


def small_conv_job(cfg: AonCimConfig, act_bits: int = 8, n: int = 3, seed: int = 0
                   ) -> tuple[Program, list[np.ndarray], list[int]]:
    """A three-layer net (3x3 conv, strided 3x3 conv, linear) on 4x4x2 inputs, compiled for `cfg`,
    with `n` random input codes and read-noise seeds: the quick job of the small-config tests and
    the benchmark's `--quick` run."""
    import torch
    from torch import nn

    from aoncim.firmware.compiler import compile_network

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 6, 3, stride=2, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
    prog = compile_network(net, cfg, torch.rand(32, 2, 4, 4), act_bits=act_bits)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(0, 2**act_bits, (4, 4, 2)) for _ in range(n)]
    return prog, inputs, [int(s) for s in rng.integers(0, 2**32, n)]


class InputFileError(ValueError):
    """An --input file that does not fit the image's first layer; the message names the fix."""


def image_inputs(prog: Program, path: str | None, n: int | None, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Inputs for a user's own image: from `path` (a .npy) or, without one, `n` (default 20)
    random codes over the image's whole input range; and a read-noise seed per inference.

    The file holds either integer codes in the chip's layout, (N, H, W, C) or (H, W, C), each in
    [0, 2**in_bits - 1] (what the host writes to the input memory), or float values in [0, 1] in
    the model's layout, (N, C, H, W) or (C, H, W), quantised as the compiler does."""
    d = prog.layers[0]
    hwc, top = (d.in_h, d.in_w, d.in_c), (1 << d.in_bits) - 1
    rng = np.random.default_rng(seed)
    if path is None:
        n = 20 if n is None else n
        inputs = [rng.integers(0, top + 1, hwc) for _ in range(n)]
    else:
        inputs = _read_input_file(path, hwc, d.in_bits, prog.io)
        if n is not None:
            if n > len(inputs):
                raise InputFileError(f"--inputs {n}: {path} holds {len(inputs)} input(s); ask for at most that many")
            inputs = inputs[:n]
    return inputs, [int(s) for s in rng.integers(0, 2**32, len(inputs))]


def _read_input_file(path: str, hwc: tuple[int, int, int], bits: int, io=None) -> list[np.ndarray]:
    """Input codes from an --input file; float values are quantised with the image's input scale
    (`io`, Program.io) in any of the model's layouts, or without one as [0, 1] values in CHW."""
    from pathlib import Path

    h, w, c = hwc
    p = Path(path)
    try:
        x = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(f"--input {p}: not found") from None
    except (OSError, ValueError, EOFError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputFileError(f"--input {p}: not a NumPy .npy array ({why}); save one with numpy.save") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf" or x.size == 0:
        raise InputFileError(f"--input {p}: holds {x.dtype} data of shape {x.shape}; expected a non-empty array of "
                             "integer codes or float values")
    if x.dtype.kind in "iu":
        if x.shape[-3:] != hwc or x.ndim not in (3, 4):
            raise InputFileError(f"--input {p}: integer codes of shape {x.shape}; the image's first layer takes "
                                 f"(N, {h}, {w}, {c}) or ({h}, {w}, {c}) codes (HWC, the chip's layout)")
        if x.min() < 0 or x.max() > (1 << bits) - 1:
            raise InputFileError(f"--input {p}: codes from {x.min()} to {x.max()}; the first layer's {bits}-bit "
                                 f"inputs take 0..{(1 << bits) - 1} (or give floats in [0, 1])")
        codes = x.reshape(-1, h, w, c).astype(np.int64)
    elif io is not None and not (io.in_zero == 0 and abs(io.in_scale * ((1 << bits) - 1) - 1) < 1e-12):
        # A general input grid (signed or scaled inputs); the [0, 1] grid of images keeps the
        # compiler's own quantisation below (quantise_input), ties and range check included.
        layouts = {(c, h, w)} | ({(c, w)} if h == 1 else set()) | ({(c,)} if h == w == 1 else set())
        shape = next((tuple(x.shape[x.ndim - len(s):]) for s in sorted(layouts, key=len, reverse=True)
                      if tuple(x.shape[x.ndim - len(s):]) == s and x.ndim - len(s) in (0, 1)), None)
        if shape is None:
            want = " or ".join(f"(N, {', '.join(map(str, s))})" for s in sorted(layouts, key=len, reverse=True))
            raise InputFileError(f"--input {p}: float values of shape {x.shape}; the image's model takes {want} "
                                 "(the model's layout)")
        if not np.isfinite(x).all():
            raise InputFileError(f"--input {p}: float values must be finite")
        # Values a little past the grid clip like any activation; far past it, the file is likely
        # scaled differently from the calibration inputs: refuse rather than clip it silently.
        lo, hi = -io.in_zero * io.in_scale, ((1 << bits) - 1 - io.in_zero) * io.in_scale
        slack = 0.25 * (hi - lo)
        if x.min() < lo - slack or x.max() > hi + slack:
            raise InputFileError(f"--input {p}: values {x.min():.4g}..{x.max():.4g} lie far outside the image's input "
                                 f"grid {lo:.4g}..{hi:.4g} (set by its calibration inputs); scale them as the model's "
                                 "input, or recompile with --calib covering them")
        codes = io.quantise(x.reshape(-1, c, h, w), bits)
    else:
        if x.shape[-3:] != (c, h, w) or x.ndim not in (3, 4):
            raise InputFileError(f"--input {p}: float values of shape {x.shape}; the image's first layer takes "
                                 f"(N, {c}, {h}, {w}) or ({c}, {h}, {w}) values in [0, 1] (CHW, the model's layout)")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise InputFileError(f"--input {p}: float values must be finite and in [0, 1] (found "
                                 f"{np.nanmin(x):g}..{np.nanmax(x):g}); scale them as the model's input")
        import torch

        from aoncim.firmware.compiler import quantise_input

        codes = quantise_input(torch.from_numpy(x.reshape(-1, c, h, w).astype(np.float32)), bits)
    return list(codes)

"""The recipes every front end shares, defined once: a trained network compiled to a Program, and
that Program programmed on a simulated PCM chip, read after drift and compensated by the host;
the whole training recipe of an AnalogNet (`train_analognet`, `aoncim train`) and the compile
flow of a checkpoint into an image (`compile_checkpoint`, `aoncim compile`).

Flows that take minutes report through `progress` (see `Progress`): the command line passes its
rich console, a library caller nothing (`QUIET`).

Used by the command line (`aoncim train`, `aoncim compile`, `aoncim cosim --time`), the co-simulation jobs
(sim/jobs.py), the performance tools (perf/workload.py) and the accuracy evaluation (evaluate.py).
It sits in model/ because it needs the analog layers and the compiler (firmware/compiler.py),
which model/ already uses; nothing below the front ends imports it except evaluate.py.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Protocol

from torch import nn

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.summary import Utilisation
from aoncim.program import Program

from .analog import analog_layers, set_analog_mode
from .snapshot import ProgrammedArray, compensated

# The host's reference read of a freshly programmed chip: at REFERENCE_T_S seconds after
# programming, with read-noise seed REFERENCE_READ_SEED + chip seed (the drift-compensation alphas
# and offset calibration compare every later read with it).
REFERENCE_T_S = 1.0
REFERENCE_READ_SEED = 10_000


class Progress(Protocol):
    """Where a long flow reports: `status(msg)` wraps a long step (a spinner on a terminal),
    `print(msg)` is one line of progress (rich markup allowed). A rich Console is one."""

    def status(self, msg: str) -> ContextManager: ...

    def print(self, msg: str) -> None: ...


class _Quiet:
    def status(self, msg: str) -> ContextManager:
        return contextlib.nullcontext()

    def print(self, msg: str) -> None:
        pass


QUIET: Progress = _Quiet()


def compile_trained(hwa: nn.Module, cfg: AonCimConfig, calib, act_bits: int) -> Program:
    """A (HWA-)trained network compiled for `cfg` with `act_bits` activations on every analog
    layer: the compiler reads the trained weights and input ranges in "ideal" mode. Sets the
    layers' in_bits and mode in place. Raises the compiler's CompileError."""
    for _, layer in analog_layers(hwa):
        layer.in_bits = act_bits
    set_analog_mode(hwa, "ideal")
    return compile_network(hwa, cfg, calib, act_bits=act_bits)


def programmed_chip(prog: Program, cfg: AonCimConfig, chip_seed: int) -> tuple[ProgrammedArray, Program]:
    """`prog` programmed on simulated PCM chip `chip_seed`: (the chip, to read at any time, and the
    host's reference read right after programming)."""
    arr = ProgrammedArray(prog, cfg, seed=chip_seed)
    return arr, arr.at(REFERENCE_T_S, read_seed=REFERENCE_READ_SEED + chip_seed)


def drifted_chip(prog: Program, cfg: AonCimConfig, chip_seed: int, t_inf: float) -> tuple[Program, dict]:
    """Program `prog` on simulated PCM chip `chip_seed`: (the conductance snapshot read at
    `t_inf`, the calibration for run_cosim: the reference read right after programming, the
    compiled target and the seed of the calibration reads' noise)."""
    arr, reference = programmed_chip(prog, cfg, chip_seed)
    return arr.at(t_inf, read_seed=chip_seed), {"reference": reference, "target": prog, "seed": chip_seed}


def compensated_chip(prog: Program, cfg: AonCimConfig, chip_seed: int, t_inf: float) -> Program:
    """The drifted snapshot of `drifted_chip` with what the host's compensation loads (alphas and
    offset-calibrated biases): what the chip computes with at `t_inf`."""
    chip, cal = drifted_chip(prog, cfg, chip_seed, t_inf)
    return compensated(cal["reference"], chip, cfg, chip_seed, target=prog)


def train_analognet(task, recipe, out: str | Path, data: str | None = None, cfg: AonCimConfig = DEFAULT_CONFIG,
                    progress: Progress = QUIET) -> dict:
    """Train `task`'s AnalogNet (model/tasks.py) with `recipe` (an HwaRecipe) on the data folder
    `data` (None: the offline synthetic set): float pre-training, conversion to analog layers,
    hardware-aware retraining; writes the checkpoint to `out` (tasks.save_checkpoint: validated,
    written whole) and returns its info entry (validation accuracies, data, augmentation, log).
    The caller checks `out` and the recipe first: this is minutes of work."""
    import copy
    import dataclasses

    from .augment import AUGMENTS
    from .hwa import accuracy, to_hwa, train_fp, train_hwa
    from .tasks import CALIB_SAMPLES, save_checkpoint

    with progress.status(f"loading {task.title} data ({'synthetic, offline' if data is None else data})"):
        (x, y), (xv, yv) = task.load("train", data), task.load("val", data)
    scaler = task.scaler_for(x)
    x, xv = scaler(x), scaler(xv)
    progress.print(f"[bold]{task.title}[/]: {len(x)} train / {len(xv)} val samples, recipe {recipe.to_dict()}")
    net = task.build()
    augment = AUGMENTS[task.name]()
    logs = train_fp(net, (x, y), (xv, yv), recipe, augment=augment)
    fp_state = copy.deepcopy(net.state_dict())
    fp_acc = accuracy(net, xv, yv)
    progress.print(f"FP pre-training: val accuracy {fp_acc:.2%}")
    to_hwa(net, cfg, recipe, x[:CALIB_SAMPLES])
    logs += train_hwa(net, (x, y), (xv, yv), cfg, recipe, augment=augment)
    hwa_acc = logs[-1].val_acc if recipe.hwa_epochs else float("nan")
    progress.print(f"HWA retraining: val accuracy {hwa_acc:.2%} (analog forward with noise)")
    info = {"fp_val_acc": fp_acc, "hwa_val_acc": hwa_acc, "data": data or "offline synthetic",
            "augment": type(augment).__name__, "log": [dataclasses.asdict(e) for e in logs]}
    save_checkpoint(Path(out), task, fp_state, net.state_dict(), scaler, recipe, info)
    return info


@dataclass(frozen=True)
class Compiled:
    """What `compile_checkpoint` made: the program, its image bytes and what a user checks."""

    prog: Program
    blob: bytes
    cfg: AonCimConfig
    title: str          # the task's title
    checkpoint: str     # as the caller named it
    act_bits: int
    codes: str          # what the image's conductance codes are
    utilisation: Utilisation

    def summary(self, image: str | Path) -> list[str]:
        """The lines `aoncim compile` prints after writing the image to `image`."""
        u, prog = self.utilisation, self.prog
        return [f"wrote {image} ({len(self.blob)} bytes): {self.title} ({self.checkpoint}), {len(prog.layers)} "
                f"layers, {prog.mvms} MVMs per inference, {self.act_bits}-bit activations, config hash "
                f"{self.cfg.config_hash:#010x}",
                f"{self.codes}; array utilisation {u.cells} of {u.array} cells ({100 * u.fraction:.2f} %)"]


def compile_checkpoint(checkpoint: str | Path, cfg: AonCimConfig, act_bits: int, t_inf: float | None = None,
                       seed: int | None = None, out: str | Path | None = None,
                       progress: Progress = QUIET) -> Compiled:
    """An AnalogNet checkpoint compiled for `cfg` with `act_bits` activations, calibrated on its
    task's training inputs: the target conductance codes, or with `t_inf` those of simulated chip
    `seed` (default 0) read `t_inf` seconds after programming with the host's compensation. The
    checkpoint is validated whole first (one CheckpointError line); with `out` the image is
    written there (atomically; the caller checks the path first)."""
    from aoncim.firmware.image import write_image
    from aoncim.firmware.summary import utilisation
    from aoncim.outputs import write_atomic

    from .checkpoint import read_checkpoint
    from .tasks import CALIB_SAMPLES, load_checkpoint

    task = read_checkpoint(checkpoint)[0]
    _, hwa, scaler, _ = load_checkpoint(task, checkpoint, cfg)
    with progress.status(f"loading {task.title} calibration inputs"):
        x, _ = task.load("train")
    calib = scaler(x[:CALIB_SAMPLES])
    with progress.status(f"compiling {task.title} for config {cfg.config_hash:#010x}"):
        prog = compile_trained(hwa, cfg, calib, act_bits)
    codes = "target conductance codes"
    if t_inf is not None:
        seed = seed or 0
        with progress.status(f"programming chip {seed} and reading it at t = {t_inf:g} s"):
            prog = compensated_chip(prog, cfg, seed, t_inf)
        codes = (f"conductance codes of simulated chip {seed} at t = {t_inf:g} s after programming, "
                 "with the host's compensation (alpha, offset-corrected biases)")
    blob = write_image(prog, cfg)
    if out is not None:
        write_atomic(out, blob)
    return Compiled(prog, blob, cfg, task.title, str(checkpoint), act_bits, codes, utilisation(prog, cfg))


# Calibration inputs when the user gives none: this many standard-normal inputs in the model's
# layout (docs/byo-model.md). Activation ranges then describe unit-variance data, not the user's:
# `aoncim compile` says so, and --calib with real inputs is the way to calibrate.
FALLBACK_CALIB_SAMPLES = 64
FALLBACK_CALIB_SEED = 0


def calibration_inputs(path: str | Path | None, shape: tuple[int, int, int]) -> tuple["torch.Tensor", str]:
    """(inputs (N, C, H, W) float64, where they came from) for a model whose graph input is
    `shape` (C, H, W): a `.npy` batch in the model's own layout ((N, C, H, W), (N, C, L) for a 1-D
    model, (N, F) for a vector model), or without `path` the documented fallback. A file that
    is missing, not an array, of another shape or not finite is one ValueError line."""
    import numpy as np
    import torch

    c, h, w = shape
    if path is None:
        g = torch.Generator().manual_seed(FALLBACK_CALIB_SEED)
        x = torch.randn(FALLBACK_CALIB_SAMPLES, c, h, w, generator=g, dtype=torch.float64)
        return x, (f"no --calib given: calibrating on {FALLBACK_CALIB_SAMPLES} standard-normal inputs; activation "
                   "ranges describe unit-variance data, pass --calib X.npy with real inputs for yours")
    p = Path(path)
    try:
        a = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"--calib {p}: file not found") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"--calib {p}: not a .npy array ({e})") from None
    layouts = {(c, h, w)} | ({(c, w)} if h == 1 else set()) | ({(c,)} if h == w == 1 else set())
    if a.ndim < 2 or tuple(a.shape[1:]) not in layouts or a.shape[0] < 1:
        want = " or ".join(f"(N, {', '.join(map(str, s))})" for s in sorted(layouts, key=len, reverse=True))
        raise ValueError(f"--calib {p}: shape {a.shape}, the model takes {want}")
    if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
        raise ValueError(f"--calib {p}: holds non-numeric, NaN or infinite values")
    return torch.from_numpy(a.astype(np.float64).reshape(-1, c, h, w)), f"calibrated on {a.shape[0]} inputs of {p}"


def compile_model_file(model: str | Path, cfg: AonCimConfig, act_bits: int, calib: str | Path | None = None,
                       out: str | Path | None = None, progress: Progress = QUIET) -> Compiled:
    """An ONNX file or a saved torch.export program (`.pt2`) compiled for `cfg` with `act_bits`
    activations, calibrated on `calib` (see `calibration_inputs`); with `out` the image is written
    there atomically. Every unsupported node is one GraphError line before anything is written."""
    from aoncim.firmware.compiler import compile_graph
    from aoncim.firmware.frontends import load_model
    from aoncim.firmware.image import write_image
    from aoncim.firmware.summary import utilisation
    from aoncim.outputs import write_atomic

    with progress.status(f"reading {model}"):
        graph = load_model(model)
    x, where = calibration_inputs(calib, graph.input_shape)
    progress.print(where)
    with progress.status(f"compiling {Path(model).name} for config {cfg.config_hash:#010x}"):
        prog = compile_graph(graph, cfg, x, act_bits)
    blob = write_image(prog, cfg)
    if out is not None:
        write_atomic(out, blob)
    return Compiled(prog, blob, cfg, Path(model).name, str(model), act_bits, "target conductance codes",
                    utilisation(prog, cfg))

"""Accuracy under PCM drift: FP, HWA-trained float (statistical model) and bit-true chip arithmetic.

For every activation precision, inference time and seed:
- "FP": the float pre-trained network (no analog effects, no time dependence);
- "HWA float": the HWA-trained network through the statistical analog forward, PCM programmed once
  per seed and read at time t, with and without compensation: the global drift-compensation alpha
  plus per-column offset calibration along each layer's mean input (model/snapshot.py);
- "bit-true": the HWA-trained network compiled to a Program, its conductance codes replaced by a
  PCM snapshot at time t (same device equations), alpha and offset-corrected biases from the host's
  calibration reads when compensated, and run with the chip's integer arithmetic and read noise.
A seed is one chip: one programming of the array, one set of read-noise seeds.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import quantise_input

from .analog import analog_layers, calibrate_offsets, set_analog_mode
from .bittrue import BitTrueExecutor
from .flows import compile_trained, programmed_chip
from .hwa import accuracy
from .snapshot import ProgrammedArray, compensated

# The evaluation grid of the issue: 1 s, 1 h, 1 day, 10 days, 1 year after programming.
EVAL_TIMES_S = {"1s": 1.0, "1h": 3600.0, "1d": 86400.0, "10d": 864000.0, "1y": 365 * 86400.0}


@dataclass
class AccuracyRow:
    mode: str          # "FP" | "HWA float" | "bit-true"
    bits: int
    time: str          # key of EVAL_TIMES_S, or "-" for FP
    compensated: bool
    mean: float
    std: float
    seeds: int


def _stats(accs: list[float]) -> tuple[float, float]:
    a = np.asarray(accs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def hwa_float_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bits: int, t_inf: float,
                       seed: int, compensate: bool) -> float:
    for _, layer in analog_layers(model):
        layer.in_bits = bits
    set_analog_mode(model, "inference", t_inf=t_inf, seed=seed, compensate=compensate)
    return accuracy(model, x, y)


def bit_true_accuracy(prog_array: ProgrammedArray, reference, cfg: AonCimConfig, q: np.ndarray, y: torch.Tensor,
                      t_inf: float, seed: int, compensate: bool, batch: int = 256) -> float:
    prog = prog_array.at(t_inf, read_seed=seed)
    if compensate:
        prog = compensated(reference, prog, cfg, seed, target=prog_array.prog)
    ex = BitTrueExecutor(cfg, prog)
    hits = 0
    for i in range(0, len(q), batch):
        seeds = (seed << 20) + np.arange(i, min(i + batch, len(q)))
        out = ex.run_batch(q[i : i + batch], seeds)[-1].output
        hits += int((out.reshape(out.shape[0], -1).argmax(1) == y[i : i + batch]).sum())
    return hits / max(len(q), 1)


def evaluate(fp_model: nn.Module, hwa_model: nn.Module, cfg: AonCimConfig, x: torch.Tensor, y: torch.Tensor,
             calib: torch.Tensor, bits_list=(8, 6, 4), times: dict[str, float] = EVAL_TIMES_S, seeds: int = 5,
             bit_true: bool = True, bit_true_samples: int | None = None, progress: bool = True) -> list[AccuracyRow]:
    """The accuracy table (see module docstring). `bit_true_samples` limits the bit-true test set."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: need at least one seed")
    rows = [AccuracyRow("FP", 32, "-", False, accuracy(fp_model, x, y), 0.0, 1)]
    model = copy.deepcopy(hwa_model)
    total = len(bits_list) * len(times) * 2 * seeds * (2 if bit_true else 1)
    bar = tqdm(total=total, desc="accuracy under drift", disable=not progress, leave=False)
    xb, yb = (x, y) if bit_true_samples is None else (x[:bit_true_samples], y[:bit_true_samples])
    for bits in bits_list:
        for _, layer in analog_layers(model):
            layer.in_bits = bits
        calibrate_offsets(model, calib)
        if bit_true:
            prog = compile_trained(model, cfg, calib, bits)
            q = quantise_input(xb, bits)
            arrays, refs = zip(*(programmed_chip(prog, cfg, s) for s in range(seeds)))  # + read after programming
        for tkey, t in times.items():
            for comp in (True, False):
                accs = []
                for s in range(seeds):
                    accs.append(hwa_float_accuracy(model, x, y, bits, t, s, comp))
                    bar.update(1)
                rows.append(AccuracyRow("HWA float", bits, tkey, comp, *_stats(accs), seeds))
                if bit_true:
                    accs = []
                    for s in range(seeds):
                        accs.append(bit_true_accuracy(arrays[s], refs[s], cfg, q, yb, t, s, comp))
                        bar.update(1)
                    rows.append(AccuracyRow("bit-true", bits, tkey, comp, *_stats(accs), seeds))
    bar.close()
    return rows


def save_rows(rows: list[AccuracyRow], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1))


def plot_rows(rows: list[AccuracyRow], path: Path, title: str) -> None:
    """Accuracy vs time since programming: one panel per precision, FP as a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = sorted({r.bits for r in rows if r.mode != "FP"}, reverse=True)
    fp = next((r.mean for r in rows if r.mode == "FP"), None)
    fig, axes = plt.subplots(1, len(bits_list), figsize=(4.2 * len(bits_list), 3.6), sharey=True, squeeze=False)
    keys = list(EVAL_TIMES_S)
    for ax, bits in zip(axes[0], bits_list):
        for mode, comp, style in (("HWA float", True, "-o"), ("HWA float", False, "--o"),
                                  ("bit-true", True, "-s"), ("bit-true", False, "--s")):
            sel = [r for r in rows if r.mode == mode and r.bits == bits and r.compensated == comp]
            if not sel:
                continue
            t = [EVAL_TIMES_S[r.time] for r in sel]
            m = np.array([r.mean for r in sel]) * 100
            s = np.array([r.std for r in sel]) * 100
            line, = ax.plot(t, m, style, ms=4, label=f"{mode}{'' if comp else ', no comp.'}")
            ax.fill_between(t, m - s, m + s, color=line.get_color(), alpha=0.15)
        if fp is not None:
            ax.axhline(fp * 100, color="k", lw=0.8, ls=":", label="FP")
        ax.set_xscale("log")
        ax.set_xticks([EVAL_TIMES_S[k] for k in keys], keys)
        ax.set_title(f"{bits}-bit activations")
        ax.set_xlabel("time since programming")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)

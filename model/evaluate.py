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

`evaluate_checkpoint` is `aoncim eval`: a checkpoint's table computed, saved and plotted;
`accuracy_table` and `drift_summary` are what it prints.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import quantise_input

from .analog import analog_layers, calibrate_offsets, set_analog_mode
from .bittrue import BitTrueExecutor
from .flows import QUIET, Progress, compile_trained, programmed_chip
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


@dataclass(frozen=True)
class _Setting:
    """What the units of one `evaluate` call read (sent to each worker once per phase): the
    HWA-trained network and the calibration inputs to prepare each precision from, then the
    prepared precisions and the test set (and its bit-true part)."""

    key: str  # this call's, for the per-process cache of `_chip`
    cfg: AonCimConfig
    bit_true: bool
    calib: torch.Tensor
    hwa: nn.Module | None = None          # phase 1 (`_prepare`)
    prepared: dict | None = None          # phase 2 (`_unit`): bits -> `_prepare`'s result
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    xb: torch.Tensor | None = None
    yb: torch.Tensor | None = None


def _prepare(s: _Setting, bits: int):
    """(network with `bits` activations and its offset-calibration inputs, compiled Program or
    None): from the pristine network, whatever ran before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = copy.deepcopy(s.hwa)
        for _, layer in analog_layers(model):
            layer.in_bits = bits
        calibrate_offsets(model, s.calib)
        return model, compile_trained(model, s.cfg, s.calib, bits) if s.bit_true else None
    finally:
        torch.set_num_threads(threads)


# Per process: one programmed chip, a pure function of its key (so the cache changes how often it
# is computed, never what a unit returns).
_CHIP: dict[tuple, tuple] = {}


def _chip(s: _Setting, bits: int, prog, seed: int):
    key = (s.key, bits, seed)
    if key not in _CHIP:
        _CHIP.clear()
        _CHIP[key] = programmed_chip(prog, s.cfg, seed)  # + read after programming
    return _CHIP[key]


def _unit(s: _Setting, unit: tuple[int, int, str, float]) -> dict[bool, tuple[float, float | None]]:
    """One chip of the Monte-Carlo: precision `bits`, chip seed `seed`, read at time `tkey` (`t`
    seconds): {compensated: (HWA float accuracy, bit-true accuracy or None)}. Depends on its
    parameters alone: every random draw is seeded from them, every state a read leaves in the
    network is reset by the next (`set_analog_mode`), one torch thread as on any worker."""
    bits, seed, _, t = unit
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, prog = s.prepared[bits]
        out = {}
        for comp in (True, False):
            hwa = hwa_float_accuracy(model, s.x, s.y, bits, t, seed, comp)
            bt = None
            if prog is not None:
                arr, ref = _chip(s, bits, prog, seed)
                bt = bit_true_accuracy(arr, ref, s.cfg, quantise_input(s.xb, bits), s.yb, t, seed, comp)
            out[comp] = (hwa, bt)
        return out
    finally:
        torch.set_num_threads(threads)


def evaluate(fp_model: nn.Module, hwa_model: nn.Module, cfg: AonCimConfig, x: torch.Tensor, y: torch.Tensor,
             calib: torch.Tensor, bits_list=(8, 6, 4), times: dict[str, float] = EVAL_TIMES_S, seeds: int = 5,
             bit_true: bool = True, bit_true_samples: int | None = None, progress: bool = True,
             workers: int = 1, dask=None) -> list[AccuracyRow]:
    """The accuracy table (see module docstring). `bit_true_samples` limits the bit-true test set.

    Runs in this process, in `workers` local processes or on the Dask cluster `dask` (an address or
    a client; aoncim/workers.py), in two phases: each precision prepared (offset calibration,
    compilation), then the Monte-Carlo, one unit per (precision, chip seed, time) with both
    compensations and both modes. Every unit is seeded from its own parameters: the rows are the
    same, bit for bit, wherever they ran."""
    import uuid

    from aoncim.workers import Workers, check_workers

    if seeds < 1:
        raise ValueError(f"seeds={seeds}: need at least one seed")
    check_workers(workers, dask)
    bits_list = list(dict.fromkeys(bits_list))
    rows = [AccuracyRow("FP", 32, "-", False, accuracy(fp_model, x, y), 0.0, 1)]
    xb, yb = (x, y) if bit_true_samples is None else (x[:bit_true_samples], y[:bit_true_samples])
    base = _Setting(uuid.uuid4().hex, cfg, bit_true, calib)
    # Precision, then chip, then time: a process computing consecutive units reuses the chip.
    units = [(bits, s, tkey, t) for bits in bits_list for s in range(seeds) for tkey, t in times.items()]
    try:
        with Workers(workers, dask) as w:
            prepared = w.map(_prepare, bits_list, shared=dataclasses.replace(base, hwa=hwa_model),
                             progress=progress, desc="compiling per precision")
            mc = dataclasses.replace(base, prepared=dict(zip(bits_list, prepared)), x=x, y=y, xb=xb, yb=yb)
            res = w.map(_unit, units, shared=mc, progress=progress, desc="accuracy under drift")
    finally:
        _CHIP.clear()
    got = {u[:3]: r for u, r in zip(units, res)}
    for bits in bits_list:
        for tkey in times:
            for comp in (True, False):
                res = [got[(bits, s, tkey)][comp] for s in range(seeds)]
                rows.append(AccuracyRow("HWA float", bits, tkey, comp, *_stats([r[0] for r in res]), seeds))
                if bit_true:
                    rows.append(AccuracyRow("bit-true", bits, tkey, comp, *_stats([r[1] for r in res]), seeds))
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


def accuracy_table(rows: list[AccuracyRow], title: str):
    """The rich Table of `rows` (from `evaluate`): one line per mode, precision and compensation,
    one column per inference time, mean ± std in %; FP first."""
    from rich.table import Table

    drift = [r for r in rows if r.mode != "FP"]
    keys = list(dict.fromkeys(r.time for r in drift))
    seeds = drift[0].seeds if drift else 1
    t = Table(title=f"{title}: accuracy (%) after PCM drift, mean ± std over {seeds} seeds")
    for c in ("mode", "bits", "compensation", *keys):
        t.add_column(c)
    for r in rows:
        if r.mode == "FP":
            t.add_row("FP", "float", "-", *([f"{r.mean * 100:.2f}"] + [""] * (len(keys) - 1)))
    for mode in ("HWA float", "bit-true"):
        for b in dict.fromkeys(r.bits for r in drift):
            for comp in (True, False):
                sel = [r for r in drift if r.mode == mode and r.bits == b and r.compensated == comp]
                if sel:
                    t.add_row(mode, str(b), "yes" if comp else "no",
                              *[f"{r.mean * 100:.2f} ± {r.std * 100:.2f}" for r in sel])
    return t


# Accuracy lost between 1 s and 24 h after programming, 8-bit activations, compensated, as the
# AnalogNets paper reports it per task (%).
PAPER_DRIFT_LOSS = {"kws": "0.8", "vww": "1.2"}


def drift_summary(rows: list[AccuracyRow], task_name: str) -> list[str]:
    """The lines that compare `rows` with the paper: the 8-bit accuracy loss from 1 s to 24 h per
    mode, and the float <-> bit-true gap at 8 bit, 1 s (each when the rows hold it)."""
    by = {(r.mode, r.bits, r.time, r.compensated): r.mean for r in rows}
    lines = []
    for mode in ("HWA float", "bit-true"):
        if (mode, 8, "1s", True) in by and (mode, 8, "1d", True) in by:
            lines.append(f"{mode}, 8 bit, compensated: accuracy loss 1 s -> 24 h = "
                         f"{(by[(mode, 8, '1s', True)] - by[(mode, 8, '1d', True)]) * 100:.2f} points "
                         f"(paper: {PAPER_DRIFT_LOSS.get(task_name, '?')} %)")
    if ("bit-true", 8, "1s", True) in by and ("HWA float", 8, "1s", True) in by:
        lines.append(f"float <-> bit-true gap at 8 bit, 1 s: "
                     f"{(by[('HWA float', 8, '1s', True)] - by[('bit-true', 8, '1s', True)]) * 100:+.2f} points")
    return lines


@dataclass
class Evaluation:
    """What `evaluate_checkpoint` computed and wrote."""

    title: str
    task: str
    rows: list[AccuracyRow]
    json: Path
    png: Path

    def table(self):
        return accuracy_table(self.rows, self.title)

    def summary(self) -> list[str]:
        """The drift-loss lines, then where the table and the plot went."""
        return [*drift_summary(self.rows, self.task), f"wrote {self.json} and {self.png}"]


def evaluate_checkpoint(task, checkpoint: str | Path | None, cfg: AonCimConfig, out: str | Path,
                        data: str | None = None, samples: int | None = None, bits_list=(8, 6, 4),
                        times: dict[str, float] = EVAL_TIMES_S, seeds: int = 5, bit_true: bool = True,
                        bit_true_samples: int | None = None, progress: Progress = QUIET, workers: int = 1,
                        dask=None) -> Evaluation:
    """`evaluate` of `task`'s checkpoint (None: the shipped one) on `samples` of its test set from
    `data` (None: the offline synthetic set), calibrated on its first training inputs; the rows
    written to `out`/accuracy_<task>.json and plotted to .png. The checkpoint is validated whole
    before any data is decoded (one CheckpointError line), and so is the Dask scheduler `dask` (one
    WorkersError line); the caller checks `out` first. `workers`, `dask`: as for `evaluate`."""
    from aoncim.workers import Workers

    from .tasks import CALIB_SAMPLES, load_checkpoint

    fp, hwa, scaler, ck = load_checkpoint(task, checkpoint, cfg)
    with Workers(workers, dask) as pool:  # connected here: a bad address fails before the data
        with progress.status(f"loading {task.title} test data"):
            # Only the samples used are decoded: on the real datasets the training split is tens of
            # thousands of files, of which calibration needs CALIB_SAMPLES.
            (x, y), (xc, _) = task.load("test", data, limit=samples), task.load("train", data, limit=CALIB_SAMPLES)
        x, calib = scaler(x), scaler(xc)
        progress.print(f"[bold]{task.title}[/]: {len(x)} test samples ({ck['info'].get('data', '?')} training), "
                       f"{seeds} seeds (chips), activation bits {tuple(bits_list)}, on {pool.where}")
        rows = evaluate(fp, hwa, cfg, x, y, calib, bits_list=bits_list, seeds=seeds, bit_true=bit_true,
                        bit_true_samples=bit_true_samples, times=times, workers=workers,
                        dask=pool.client if dask is not None else None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev = Evaluation(task.title, task.name, rows, out / f"accuracy_{task.name}.json", out / f"accuracy_{task.name}.png")
    save_rows(rows, ev.json)
    plot_rows(rows, ev.png, f"{task.title}: accuracy under PCM drift")
    return ev

"""What `aoncim cosim` does and shows, for the command line (aoncim/cli.py parses the options and
calls `cosim_network` or `cosim_random` with its console).

A live line while it runs (what is happening, a bar over the inferences once they run), then a
per-layer table (per layer kind for random networks), cycles per inference and wall times, and as
the last line `bit-exact: K/N inferences`; the functions return the exit code (1 on any mismatch).

Heavy imports (torch, the golden model, cocotb) stay inside the functions: the command line's
option errors answer without them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from aoncim.config import AonCimConfig
from aoncim.program import Program


class CosimProgress:
    """One live line: what is happening, and a bar over the inferences once they run."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=console, transient=True)
        self._task = None

    def __enter__(self):
        self._p.start()
        self._task = self._p.add_task("starting...", total=None)
        return self

    def __exit__(self, *exc):
        self._p.stop()

    def status(self, msg: str) -> None:
        self._p.update(self._task, description=msg)

    def progress(self, done: int, total: int) -> None:
        self._p.update(self._task, completed=done, total=total)


def _waves_line(console: Console, r) -> None:
    if r.waves:
        console.print(f"waveform: {r.waves} ({r.waves.suffix[1:].upper()}); open with: gtkwave {r.waves}"
                      f"{' ' + str(r.waves_gtkw) if r.waves_gtkw else ''}", soft_wrap=True, markup=False)


# ------------------------------------------------------------------------------ one network
def cosim_network(console: Console, cfg: AonCimConfig, *, model: str | None = "tiny",
                  image: tuple[str, Program] | None = None, input_path: str | None = None, n: int | None = None,
                  seed: int = 0, act_bits: int | None = None, sim: str = "verilator", waves: bool = False,
                  t_inf: float | None = None, compare: str = "layers", reference=None) -> int:
    """Co-simulate one network: a user's image (`image` = (title, program); inputs from
    `input_path` or random codes), the embedded TinyNet or a shipped AnalogNet (`model`), `n`
    inputs (default 20) picked by `seed`; with `t_inf`, on simulated PCM chip `seed` read that long
    after programming, compensated on the chip. `reference`: the image's float model
    (firmware.frontends.float_reference), whose outputs on the same inputs are compared with the
    chip's (`float_agreement`). Prints the run and its report; returns the exit code. A chip that
    stops with an error or hangs raises CosimError (one line)."""
    from .runner import CosimError, golden_outputs, run_cosim

    bits = act_bits or 8
    labels = None
    t0 = time.perf_counter()
    with CosimProgress(console) as pr:
        if image is not None:
            from .jobs import image_inputs

            title, prog = image
            inputs, seeds = image_inputs(prog, input_path, n, seed)
            bits = prog.layers[0].in_bits
        elif model.startswith("mlperf-"):
            from .jobs import mlperf_job

            pr.status(f"compiling {model} for config {cfg.config_hash:#010x}")
            job = mlperf_job(model, cfg, n or 20, seed, bits)
            title, prog, inputs, seeds = f"{model} ({job.title})", job.prog, job.inputs, job.seeds
        elif model == "tiny":
            from .jobs import tiny_job

            title = "TinyNet"
            prog, inputs, seeds, labels = tiny_job(cfg, n or 20, seed, bits)
        else:
            from .jobs import analognet_job

            pr.status(f"compiling the shipped {model.upper()} checkpoint for config {cfg.config_hash:#010x}")
            job = analognet_job(model, cfg, n or 20, seed, bits)
            title, prog, inputs, seeds, labels = job.title, job.prog, job.inputs, job.seeds, job.labels
        n = len(inputs)
        calibration, chip = None, prog
        if t_inf is not None:
            from aoncim.model.flows import drifted_chip

            pr.status(f"programming simulated chip {seed} and reading it at t = {t_inf:g} s")
            chip, calibration = drifted_chip(prog, cfg, seed, t_inf)
        console.print(f"[bold]co-simulation[/] of {title} ({len(prog.layers)} layers, {prog.mvms} MVMs) on {sim}, "
                      f"{n} inputs, {bits}-bit activations, read noise {cfg.read_noise_lsb} LSB, seed {seed}")
        console.print("conductances: " + ("the compiled target codes" if t_inf is None else
                      f"simulated PCM chip {seed} read at t = {t_inf:g} s, drift compensation run on the chip"))
        r = run_cosim(cfg, chip, inputs, seeds, sim=sim, waves=waves, calibration=calibration, status=pr.status,
                      progress=pr.progress, compare=compare)
    case = r.case
    if case.error is not None:
        raise CosimError(case.error)
    scored = case.prog  # what the inferences were scored against (compensated with --time)
    acc = None
    if labels is not None:
        golden = golden_outputs(cfg, scored, inputs, seeds)
        acc = float(np.mean([g[-1].reshape(-1).argmax() == y for g, y in zip(golden, labels)]))

    console.print(layer_table(cfg, prog, scored, case.compared, case.layer_fail, compare, calibration is not None))
    for mm in case.mismatches[:10]:
        console.print(f"[red]mismatch[/] {mm}")
    inf = case.inferences
    per = [x["wall_s"] for x in inf]
    build = "cached" if r.build.cached else f"{r.build.seconds:.1f} s"
    console.print(f"cycles/inference {inf[0]['cycles']}  MVMs/inference {inf[0]['mvms']}  {sim} build {build}  "
                  f"program load {case.load_s:.2f} s")
    console.print(f"co-sim {np.mean(per):.3f} s/inference ({inf[0]['cycles'] / np.mean(per) / 1e3:.0f} k cycles/s)  "
                  f"total {time.perf_counter() - t0:.1f} s")
    same = True
    if calibration:
        same = case.calibration["alpha"] == scored.alphas(cfg).tolist() and \
            case.calibration["bias"] == scored.pp_bias.tolist()
        console.print(f"drift compensation on the chip: {case.calibration['wall_s']:.1f} s (alpha and offset reads), "
                      "alphas and biases equal to the golden model's: "
                      f"{'yes' if same else 'NO'}")
    _waves_line(console, r)
    if acc is not None:
        console.print(f"golden-model classification accuracy on these inputs: {acc:.2%}")
    if reference is not None and scored.io is not None:
        a = float_agreement(cfg, scored, inputs, seeds, reference)
        console.print(f"against the float model (on the inputs as the chip holds them): max |error| "
                      f"{a['max_err']:.4g} = {100 * a['max_rel']:.2f} % of the largest |output| {a['span']:.4g}, "
                      f"RMS {100 * a['rms_rel']:.2f} %, top-1 agreement {a['top1']:.0%}")
    console.print(f"bit-exact: {case.n_ok}/{len(inf)} inferences")
    return 0 if case.n_ok == len(inf) == n and same else 1


def float_agreement(cfg: AonCimConfig, prog: Program, inputs: list[np.ndarray], seeds: list[int], reference) -> dict:
    """The chip's real outputs (golden model = RTL when bit-exact, dequantised with `prog.io`)
    against the float model `reference` on the same inputs (the input codes dequantised): max and
    RMS error relative to the largest |float output|, and top-1 agreement (docs/byo-model.md)."""
    from .runner import golden_outputs

    io, d0 = prog.io, prog.layers[0]
    chip = np.stack([io.dequantise(g[-1].reshape(-1)) for g in golden_outputs(cfg, prog, inputs, seeds)])
    x = np.stack([np.moveaxis(io.in_scale * (np.asarray(q, dtype=np.float64) - io.in_zero), -1, 0) for q in inputs])
    ref = np.asarray(reference(x.reshape(len(x), d0.in_c, d0.in_h, d0.in_w)), dtype=np.float64).reshape(len(x), -1)
    span = float(np.abs(ref).max()) or 1.0
    err = chip - ref
    return {"span": span, "max_err": float(np.abs(err).max()), "max_rel": float(np.abs(err).max()) / span,
            "rms_rel": float(np.sqrt(np.mean(err**2))) / span, "top1": float(np.mean(chip.argmax(1) == ref.argmax(1)))}


def layer_table(cfg: AonCimConfig, prog: Program, scored: Program, compared: list[int], layer_fail: list[int],
                compare: str, with_alpha: bool) -> Table:
    """Per layer: shape, array rectangle, tiles, values compared, inferences mismatching (and the
    alpha the inferences ran with, after a compensation on the chip)."""
    what = "every integer of every layer" if compare == "layers" else "the last layer only (--compare final)"
    t = Table(title=f"per-layer comparison ({what}; array rect: rows x cols @ (row0, col0))",
              box=box.SIMPLE_HEAD)
    cols = ["layer", "name", "out HxWxC", "array rect", "tiles", "values compared", "inferences mismatching"] + \
        (["alpha"] if with_alpha else [])
    for col in cols:
        t.add_column(col, justify="right" if col in ("layer", "tiles", "values compared", "inferences mismatching",
                                                     "alpha") else "left")
    alphas = scored.alphas(cfg)
    for i, d in enumerate(prog.layers):
        r0, nr, c0, nc = prog.used_rect(i)
        rect = f"{nr} x {nc} @ ({r0}, {c0})" if d.is_mvm else "-"
        t.add_row(str(i), prog.layer_name(i), f"{d.out_h}x{d.out_w}x{d.out_c}", rect,
                  str(d.tiles(cfg.rows)) if d.is_mvm else "-", str(compared[i]), str(layer_fail[i]),
                  *([f"{alphas[i] / cfg.alpha_one:.4f}"] if with_alpha else []))
    return t


# ------------------------------------------------------------------------------ random networks
def cosim_random(console: Console, cfg: AonCimConfig, *, n: int = 20, seed: int = 0, act_bits: int | None = None,
                 sim: str = "verilator", waves: bool = False, coverage_json: Path = Path("out/coverage_random.json"),
                 config_path: str | None = None, workers: int = 1, dask=None) -> int:
    """Co-simulate `n` random networks (seeds `seed`..`seed + n - 1`, sim/random_nets.py) with the
    sequencer's and the datapath's coverage, written to `coverage_json`. Prints the run and its
    report, and for each failing case its replay command (`config_path`: the --config it was run
    with); returns the exit code.

    `workers` > 1 or `dask` (aoncim/workers.py): the cases run in chunks, one simulator job per
    worker, merged into the same report (cases, counts, coverage) as one run; not with `waves`."""
    from aoncim.outputs import write_atomic
    from aoncim.perf.cycles import inference_cycles
    from aoncim.workers import Workers

    from . import coverage as cov
    from .cosim import CosimCase
    from .random_nets import random_case, replay_command
    from .runner import run_cases

    if waves and (workers != 1 or dask is not None):
        raise ValueError("--waves records one simulator run: drop --workers/--dask")
    t0 = time.perf_counter()
    with Workers(workers, dask) as pool, CosimProgress(console) as pr:  # a bad --dask fails here
        cases = []
        for k in range(n):
            pr.status(f"drawing random networks ({k}/{n})")
            cases.append(random_case(seed + k, cfg, act_bits))
        console.print(f"[bold]randomised co-simulation[/]: {n} random networks (seeds {seed}..{seed + n - 1}) on "
                      f"{sim}, config {cfg.config_hash:#010x} ({cfg.rows} x {cfg.cols} array, {cfg.n_adcs} ADCs), "
                      f"{'%d-bit activations' % act_bits if act_bits else 'precisions 8/6/4 drawn per case'}"
                      f"{'' if workers == 1 and dask is None else ', on ' + pool.where}")
        if n <= 5:
            for c in cases:
                console.print(f"  {c.describe(cfg.rows)}")
        r = run_cases(cfg, [CosimCase(c.name, c.prog, c.inputs, c.noise_seeds) for c in cases], sim=sim,
                      waves=waves, coverage=True, status=pr.status, progress=pr.progress, workers=workers,
                      dask=pool.client if dask is not None else None)

    kinds: dict[str, list[int]] = {}
    for c, res in zip(cases, r.cases):
        for i, d in enumerate(c.prog.layers):
            row = kinds.setdefault(cov.layer_kind(d), [0, 0, 0])
            row[0] += 1
            row[1] += res.compared[i]
            row[2] += res.layer_fail[i]
    t = Table(title="per layer kind (every integer of every layer)", box=box.SIMPLE_HEAD)
    for col in ("kind", "layers", "values compared", "layers mismatching"):
        t.add_column(col, justify="left" if col == "kind" else "right")
    for k in cov.KINDS:
        if k in kinds:
            t.add_row(k, *map(str, kinds[k]))
    console.print(t)
    for c, res in zip(cases, r.cases):
        if not res.ok:
            why = res.error or (res.mismatches[0] if res.mismatches else "failed")
            console.print(f"[red]FAIL[/] seed {c.seed}: {why} -- replay: "
                          f"{replay_command(c.seed, act_bits, config_path)}", soft_wrap=True)
    cycles = [inference_cycles(cfg, res.prog) for res in r.cases]
    per = [x["wall_s"] for x in r.inferences]
    build = "cached" if r.build.cached else f"{r.build.seconds:.1f} s"
    console.print(f"cycles/inference {np.mean(cycles):.0f} mean ({min(cycles)}..{max(cycles)})  {sim} build {build}  "
                  f"program load {np.mean([res.load_s for res in r.cases]) * 1e3:.1f} ms/case  "
                  f"co-sim {np.mean(per) * 1e3:.1f} ms/inference  total {time.perf_counter() - t0:.1f} s")
    out = Path(coverage_json)
    write_atomic(out, json.dumps(r.coverage, indent=1))
    console.print(f"{cov.summary(r.coverage)}; bins: kind x stride x padding x pad code x tiling x precision; wrote {out}")
    missing = cov.missing(r.coverage)
    if missing:
        console.print(f"bins not hit: {', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''}")
    dp = r.coverage["datapath"]
    console.print(f"{cov.datapath_summary(dp)}; bins: ADC rails and rounding ties, row-tile sums, "
                  "post-processing ties and clamps (golden model, bit-exact inferences)")
    if cov.datapath_missing(dp):
        console.print(f"datapath bins not hit: {', '.join(cov.datapath_missing(dp))}")
    _waves_line(console, r)
    if r.failed:
        console.print(f"failing cases: {len(r.failed)}/{n}")
    console.print(f"bit-exact: {r.n_ok}/{r.n_inferences} inferences")
    return 0 if not r.failed else 1

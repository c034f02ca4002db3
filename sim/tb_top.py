"""cocotb test of the generated top level: load each program through the host port, run each
input layer by layer (step mode), score every layer's integers against the golden model.

The job is one pickled `sim.cosim.CosimJob` (cases: program, inputs, seeds, golden layer outputs,
time limit), at the path in $AONCIM_JOB; the results go to a JSON file beside it
(`cosim.results_path`). The testbench is thin: the host driver, the AXI bus adapter and the
scoreboard do the work.

The cases run one after the other on the same RTL (random networks, several drift time points).
Each is loaded over the bus, run under its time limit and scored on its own; a case that fails or
hangs is recorded and the chip is reset for the next one. With `coverage`, every layer that
matched the golden model is a sample of the sequencer's functional coverage (sim/coverage.py).

A case may carry a `calibration` (reference and target programs, seed): the driver then runs the
host's drift-compensation routine on the chip (contract steps 10 and 11) -- reference reads on
the reference program (done once for all cases of the same reference), then, on the case's
program, the alpha and offset reads -- and the scored inferences run with the alphas and biases it
wrote. The values it computed and what the chip's ALPHA registers and BIAS window hold afterwards
are recorded.

A case may also carry `error_cases`: descriptor lists written through the driver without
Program.check, to exercise the chip's own descriptor checks. Each is run with a timeout (a hang is
reported, not waited for), and STATUS, the driver's message and the activation and output
memories before and after are recorded; afterwards the case's program is restored for the scored
inferences, which so also prove that the chip recovers from an error.

Every layer is scored on its output slice; on the inferences `scoreboard.full_check_due` picks (the
first of each case by default), also on the whole state a layer may touch: every word of both
activation banks and the output memory against the golden memory image (`FullStateCheck`: the
memories as read before the input, with the input and each layer's golden output written in), so
a write outside the layer's output is caught.

The RTL runs on its own between host transactions: Python wakes only for the bus and the
interrupt. Each finished inference appends a byte to the progress file beside the job
(`cosim.progress_path`), which the runner polls for its progress bar.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from aoncim.config import AonCimConfig
from aoncim.firmware.driver import AonCimDriver, ChipError
from aoncim.firmware.image import write_image
from aoncim.program import LayerDescriptor, Program
from aoncim.regmap import Reg, Region
from aoncim.sim.cosim import JOB_ENV, Calibration, CosimCase, CosimJob, progress_path, results_path
from aoncim.sim.coverage import SequencerCoverage
from aoncim.sim.host_bus import make_host_bus
from aoncim.sim.scoreboard import FullStateCheck, Scoreboard


async def reset(dut) -> None:
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


class Progress:
    """One byte per finished inference to a file the runner polls."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def step(self) -> None:
        os.write(self.fd, b".")


def _write_results(job_path: Path, results: dict) -> None:
    results_path(job_path).write_text(json.dumps(results, indent=1))


async def memories(drv: AonCimDriver) -> dict[str, list[int]]:
    """Every word of the activation banks and the output memory."""
    c, base = drv.cfg, drv.amap.base
    return {r.name: await drv.bus.read_words(base(r), n)
            for r, n in ((Region.ACT0, c.act_depth), (Region.ACT1, c.act_depth), (Region.OUT, c.out_depth))}


async def run_error_case(drv: AonCimDriver, prog, case: dict) -> dict:
    layers = [LayerDescriptor.unpack(w) for w in case["descriptors"]]
    await drv.load_descriptors(layers, case.get("num_layers"))
    await drv.write_input(prog, case["input"])
    before = await memories(drv)
    names = [case.get("name", "bad")] * len(layers)
    message = None
    try:
        # Bounded: a chip that hangs on a malformed descriptor fails the case instead of the run.
        await with_timeout(drv.run(dataclasses.replace(prog, layers=layers, names=names), seed=1),
                           case["timeout_us"], "us")
    except ChipError as e:
        message = str(e)
    except SimTimeoutError:
        message = "timeout"
    return {"status": await drv.reg_read(Reg.STATUS), "message": message, "before": before,
            "after": await memories(drv)}


async def prepare(drv: AonCimDriver, cfg: AonCimConfig, prog: Program, cal: Calibration | None,
                  refs: dict) -> tuple[Program, float, dict | None]:
    """Load `prog`; with a calibration, run the host's compensation routine on the chip first
    (reference reads on the reference program, cached in `refs` by its image and seed). Returns the
    program the chip now holds (compensated), the load time and the calibration record."""
    ref_state = None
    if cal:
        # By content: drifted chips of one programming are distinct objects with equal references.
        key = (write_image(cal.reference, cfg), cal.seed)
        if key not in refs:
            await drv.load_program(cal.reference)
            refs[key] = await drv.calibrate_reference(cal.reference, cal.seed)
        ref_state = refs[key]
    t0 = time.perf_counter()
    await drv.load_program(prog)
    load_s = time.perf_counter() - t0
    record = None
    if cal:
        t0 = time.perf_counter()
        done = await drv.compensate(prog, ref_state, cal.seed, cal.target)
        bias_words = await drv.bus.read_words(drv.amap.base(Region.BIAS), len(prog.pp_bias))
        record = {
            "alpha": [int(v) for v in done.alphas(cfg)], "bias": [int(v) for v in done.pp_bias],
            "alpha_regs": await drv.read_alpha(len(prog.layers)),
            "bias_window": [int(v) for v in np.array(bias_words, dtype=np.uint32).view(np.int32)],
            "mvm_base": await drv.reg_read(Reg.MVM_BASE), "wall_s": time.perf_counter() - t0,
        }
        prog = done
    return prog, load_s, record


async def infer(drv: AonCimDriver, prog: Program, inputs, seeds, expected, sb: Scoreboard, progress: Progress,
                cov: SequencerCoverage | None = None, timeout_us: float | None = None,
                compare: str = "layers", state: FullStateCheck | None = None) -> list[dict]:
    """Run each input in step mode, scoring every layer (`compare="final"`: without pauses,
    scoring the last layer); layers that match are coverage samples. On the inferences
    `full_check_due` picks, every layer is also scored on the whole state it may touch: every word
    of both activation banks and the output memory against the golden memory image."""
    out = []
    if state is None:
        state = FullStateCheck(prog, expected, sb)
    else:
        state.next_case(prog, expected, sb)
    for i, (x, seed, exp) in enumerate(zip(inputs, seeds, expected)):
        # Simulated time of this inference's finished whole-memory reads, us, and the start of the
        # one in progress (None between reads).
        reading: list = [0.0, None]

        async def on_layer(layer, got, i=i, exp=exp, reading=reading):
            ok = sb.compare(i, layer, exp[layer], got)
            reading[1] = get_sim_time("us")
            ok = await state.after_layer(drv, i, layer) and ok
            reading[0] += get_sim_time("us") - reading[1]
            reading[1] = None
            if ok and cov is not None:
                cov.sample(prog.layers[layer])

        t0, c0 = time.perf_counter(), time.process_time()
        sb.begin()
        checked = sb.memory_layers
        if compare == "layers":
            await state.begin(drv, i)
        await drv.write_input(prog, x)
        state.write_input(x)
        run = drv.run(prog, seed, on_layer=on_layer if compare == "layers" else None)
        counters = await (within(run, timeout_us, reading) if timeout_us else run)
        if compare == "final":
            last = len(prog.layers) - 1
            await on_layer(last, await drv.read_layer_output(prog.layers[last]))
        ok = sb.end()
        # CPU time too: on a shared machine wall time also counts other processes' turns.
        out.append({"ok": ok, "seed": seed, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                    "memory_layers": sb.memory_layers - checked, **counters})
        progress.step()
    return out


async def within(run, timeout_us: float, excluded: list):
    """Await `run` under a limit of `timeout_us` of simulated time, not counting `excluded[0]` us
    nor the time since `excluded[1]` (the start of a read in progress, or None): the whole-memory
    reads at the run's pauses, which the case's limit (from the schedule, or the case's own) does
    not foresee; a read longer than what is left of the limit (a DWW of thousands of words) must
    not end the run. Raises SimTimeoutError and stops the run when the limit is used up."""
    task = cocotb.start_soon(run)
    start = get_sim_time("us")
    while True:
        now = get_sim_time("us")
        busy = now - excluded[1] if excluded[1] is not None else 0.0
        left = timeout_us - (now - start - excluded[0] - busy)
        if left <= 0:
            task.cancel()
            raise SimTimeoutError
        try:
            return await with_timeout(task, left, "us", round_mode="ceil")
        except SimTimeoutError:
            pass  # reads during the wait moved the deadline: look again


async def run_case(drv: AonCimDriver, cfg: AonCimConfig, case: CosimCase, refs: dict, progress: Progress,
                   cov: SequencerCoverage | None, compare: str, state: FullStateCheck) -> dict:
    """Load, calibrate, run the error cases of and score one case. `state` carries the golden
    memory image from the previous case, unless this one writes the memories before its
    inferences (calibration and error-case runs) or stops early."""
    prog = case.prog
    res = {"name": case.name, "inferences": [], "error": None, "load_s": 0.0}
    sb = Scoreboard(len(prog.layers), list(prog.names))
    if case.calibration is not None or case.error_cases:
        state.forget()
    try:
        prog, res["load_s"], cal = await prepare(drv, cfg, prog, case.calibration, refs)
        if cal is not None:
            res["calibration"] = cal
        if case.error_cases:
            res["error_cases"] = [await run_error_case(drv, prog, e) for e in case.error_cases]
            await drv.load_descriptors(prog.layers)
        res["inferences"] = await infer(drv, prog, case.inputs, case.seeds, case.expected, sb, progress, cov,
                                        case.timeout_us, compare, state)
    except ChipError as e:
        res["error"] = str(e)
    except SimTimeoutError:
        res["error"] = f"timeout: no interrupt within {case.timeout_us} us of simulated time"
    if res["error"]:
        state.forget()  # the run stopped part-way (and the chip is reset): the image is stale
    res["compared"] = sb.compared
    res["layer_fail"] = sb.layer_fail
    res["mismatches"] = [mm.to_dict() for mm in sb.mismatches]
    return res


@cocotb.test()
async def run_job(dut):
    job_path = Path(os.environ[JOB_ENV])
    job = CosimJob.read(job_path)
    cfg = job.cfg
    # The clock runs in the simulator (cocotb's GPI clock), not as a Python coroutine: Python only
    # wakes for host transactions and the interrupt (2x faster on the default config).
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl=os.environ.get("AONCIM_CLOCK_IMPL", "gpi")).start())
    await reset(dut)

    drv = AonCimDriver(make_host_bus(dut, job.host_bus), cfg)
    progress = Progress(progress_path(job_path))
    results: dict = {"error": None, "cases": []}
    if job.check_identity:
        try:
            await drv.check_identity()
        except ChipError as e:
            # A user-facing condition (wrong RTL for this program), not a testbench failure.
            results["error"] = str(e)
            _write_results(job_path, results)
            return
    cov = SequencerCoverage(cfg.rows) if job.coverage else None
    refs: dict = {}
    state = FullStateCheck(None, None, None)  # the golden memory image, carried from case to case
    for case in job.cases:
        res = await run_case(drv, cfg, case, refs, progress, cov, job.compare, state)
        results["cases"].append(res)
        if res["error"]:
            # A hung or failed case must not leave the chip busy (or a cancelled burst on the bus).
            if hasattr(drv.bus, "idle"):
                drv.bus.idle()
            await reset(dut)
    if cov is not None:
        results["coverage"] = cov.to_json()
    _write_results(job_path, results)

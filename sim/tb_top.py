"""cocotb test of the generated top level: load a program image through the host port, run each
input layer by layer (step mode), score every layer's integers against the golden model.

The job (program, inputs, seeds, expected layer outputs) comes from the pickle named by
AONCIM_JOB; results go to the JSON file named by AONCIM_RESULTS. The testbench is thin: the host
driver, the AXI bus adapter and the scoreboard do the work.

A job may also carry `error_cases`: descriptor lists written through the driver without
Program.check, to exercise the chip's own descriptor checks. Each is run with a timeout (a hang is
reported, not waited for), and STATUS, the driver's message and the activation and output
memories before and after are recorded; afterwards the job's program is restored for the scored
inferences, which so also prove that the chip recovers from an error.

A job may also carry `calibration` (reference and target images, seed): the driver then runs the
host's drift-compensation routine on the chip (contract steps 10 and 11) -- reference reads on
the reference program, then, on the job's program, the alpha and offset reads -- and the scored
inferences run with the alphas and biases it wrote. The values it computed and what the chip's
ALPHA registers and BIAS window hold afterwards are recorded.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, SimTimeoutError, with_timeout

from aoncim.config import AonCimConfig
from aoncim.firmware.driver import AonCimDriver, ChipError
from aoncim.firmware.image import read_image
from aoncim.program import LayerDescriptor
from aoncim.regmap import Reg, Region
from aoncim.sim.host_bus import AxiLiteHostBus
from aoncim.sim.scoreboard import Scoreboard


async def reset(dut) -> None:
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


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


@cocotb.test()
async def run_job(dut):
    with open(os.environ["AONCIM_JOB"], "rb") as f:
        job = pickle.load(f)
    cfg = AonCimConfig.from_dict(job["cfg"])
    prog, _ = read_image(job["image"], cfg)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)

    drv = AonCimDriver(AxiLiteHostBus(dut), cfg)
    results = {"inferences": [], "error": None}
    if job.get("check_identity", True):
        try:
            await drv.check_identity()
        except ChipError as e:
            # A user-facing condition (wrong RTL for this program), not a testbench failure.
            results["error"] = str(e)
            with open(os.environ["AONCIM_RESULTS"], "w") as f:
                json.dump(results, f)
            return
    cal = job.get("calibration")
    if cal:
        reference, _ = read_image(cal["reference_image"], cfg)
        await drv.load_program(reference)
        ref_state = await drv.calibrate_reference(reference, cal["seed"])
    t0 = time.perf_counter()
    await drv.load_program(prog)
    results["load_s"] = time.perf_counter() - t0
    if cal:
        target = read_image(cal["target_image"], cfg)[0] if cal.get("target_image") else None
        t0 = time.perf_counter()
        done = await drv.compensate(prog, ref_state, cal["seed"], target)
        n_bias = len(prog.pp_bias)
        bias_words = await drv.bus.read_words(drv.amap.base(Region.BIAS), n_bias)
        results["calibration"] = {
            "alpha": [int(v) for v in done.alphas(cfg)], "bias": [int(v) for v in done.pp_bias],
            "alpha_regs": await drv.read_alpha(len(prog.layers)),
            "bias_window": [int(v) for v in np.array(bias_words, dtype=np.uint32).view(np.int32)],
            "mvm_base": await drv.reg_read(Reg.MVM_BASE), "wall_s": time.perf_counter() - t0,
        }
        prog = done

    if job.get("error_cases"):
        results["error_cases"] = [await run_error_case(drv, prog, case) for case in job["error_cases"]]
        await drv.load_descriptors(prog.layers)

    sb = Scoreboard(len(prog.layers))
    for i, (x, seed, expected) in enumerate(zip(job["inputs"], job["seeds"], job["expected"])):
        t0 = time.perf_counter()
        sb.begin()
        await drv.write_input(prog, x)
        counters = await drv.run(prog, seed, on_layer=lambda layer, got, i=i, e=expected: sb.compare(i, layer, e[layer], got))
        ok = sb.end()
        results["inferences"].append({"ok": ok, "seed": seed, "wall_s": time.perf_counter() - t0, **counters})

    results["compared"] = sb.compared
    results["layer_fail"] = sb.layer_fail
    results["mismatches"] = [str(mm) for mm in sb.mismatches]
    with open(os.environ["AONCIM_RESULTS"], "w") as f:
        json.dump(results, f, indent=1)

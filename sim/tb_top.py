"""cocotb test of the generated top level: load a program image through the host port, run each
input layer by layer (step mode), score every layer's integers against the golden model.

The job (program, inputs, seeds, expected layer outputs) comes from the pickle named by
AONCIM_JOB; results go to the JSON file named by AONCIM_RESULTS. The testbench is thin: the host
driver, the AXI bus adapter and the scoreboard do the work.
"""
from __future__ import annotations

import json
import os
import pickle
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from aoncim.config import AonCimConfig
from aoncim.firmware.driver import AonCimDriver, ChipError
from aoncim.firmware.image import read_image
from aoncim.sim.host_bus import AxiLiteHostBus
from aoncim.sim.scoreboard import Scoreboard


async def reset(dut) -> None:
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


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
    t0 = time.perf_counter()
    await drv.load_program(prog)
    results["load_s"] = time.perf_counter() - t0

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

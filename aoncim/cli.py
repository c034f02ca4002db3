"""`aoncim` command line: generate Verilog, compile, co-simulate, demo."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from .config import DEFAULT_CONFIG, AonCimConfig, ConfigError

# Logs and CI are not terminals; 120 columns keeps the per-layer table on one line per layer there.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class UserError(click.ClickException):
    """One clear line, no traceback."""

    def show(self, file=None):
        click.echo(f"aoncim: error: {self.message}", err=True)


def _user_errors():
    from aoncim.firmware.compiler import CompileError
    from aoncim.firmware.driver import ChipError
    from aoncim.firmware.image import ImageError
    from aoncim.program import ProgramError
    from aoncim.sim.runner import BuildError, CosimError
    from aoncim.toolchain import SimulatorNotFound

    return (ConfigError, CompileError, ChipError, ImageError, ProgramError, SimulatorNotFound, BuildError,
            CosimError, FileNotFoundError)


def _load_config(path: str | None) -> AonCimConfig:
    return AonCimConfig.load(path) if path else DEFAULT_CONFIG


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """aoncim: PyTorch model -> AON-CiM program image -> Amaranth RTL -> bit-exact co-simulation."""


def _run(fn):
    try:
        return fn()
    except _user_errors() as e:
        raise UserError(str(e).splitlines()[0]) from None


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="aoncim_top.v", show_default=True)
@click.option("--config", "config_path", type=click.Path(), help="JSON file of AonCimConfig fields.")
def verilog(output: str, config_path: str | None) -> None:
    """Write the top-level Verilog for a config."""
    def go():
        from aoncim.hw.verilog import write_verilog

        cfg = _load_config(config_path)
        with console.status(f"elaborating the RTL for config {cfg.config_hash:#010x} (cached after the first run)"):
            p = write_verilog(cfg, output)
        console.print(f"wrote {p} ({p.stat().st_size // 1024} KiB) for config hash {cfg.config_hash:#010x}")
    _run(go)


def _tiny_job(cfg: AonCimConfig, n: int, seed: int, act_bits: int):
    from aoncim.firmware.compiler import compile_network, quantise_input
    from aoncim.model.patterns import make_patterns
    from aoncim.model.tiny import load_tiny

    net = load_tiny()
    calib, _ = make_patterns(256, seed=1_000_003)
    prog = compile_network(net, cfg, calib, act_bits=act_bits)
    x, labels = make_patterns(n, seed=seed)
    inputs = list(quantise_input(x, act_bits))
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**32, n)]
    return prog, inputs, seeds, labels.numpy()


def _cosim(n: int, seed: int, sim: str, act_bits: int, config_path: str | None, waves: bool) -> int:
    from aoncim.sim.runner import golden_outputs, run_cosim

    from aoncim.toolchain import find_simulator

    cfg = _load_config(config_path)
    if n < 1:
        raise ConfigError(f"--inputs {n}: need at least one inference")
    find_simulator(sim)  # fail before compiling and elaborating, not after
    prog, inputs, seeds, labels = _tiny_job(cfg, n, seed, act_bits)
    console.print(f"[bold]co-simulation[/] of TinyNet ({len(prog.layers)} layers) on {sim}, {n} inputs, "
                  f"{act_bits}-bit activations, read noise {cfg.read_noise_lsb} LSB, seed {seed}")
    t0 = time.perf_counter()
    with console.status("starting...") as st:
        r = run_cosim(cfg, prog, inputs, seeds, sim=sim, waves=waves, status=st.update)
    golden = golden_outputs(cfg, prog, inputs, seeds)
    acc = float(np.mean([g[-1].reshape(-1).argmax() == y for g, y in zip(golden, labels)])) if n else 0.0

    t = Table(title="per-layer comparison (every integer of every layer)")
    for col in ("layer", "name", "shape (HxWxC)", "array rect rows x cols @ (row, col)", "values compared",
                "inferences mismatching"):
        t.add_column(col)
    for i, d in enumerate(prog.layers):
        t.add_row(str(i), prog.layer_name(i), f"{d.out_h}x{d.out_w}x{d.out_c}",
                  f"{d.k_rows} x {d.out_c} @ ({d.row0}, {d.col0})", str(r.compared[i]), str(r.layer_fail[i]))
    console.print(t)
    for mm in r.mismatches[:10]:
        console.print(f"[red]mismatch[/] {mm}")
    inf = r.inferences
    per = [x["wall_s"] for x in inf]
    build = "cached" if r.build.cached else f"{r.build.seconds:.1f} s"
    console.print(f"cycles/inference {inf[0]['cycles']}  MVMs/inference {inf[0]['mvms']}  "
                  f"Verilator build {build}  program load {r.load_s:.2f} s  "
                  f"co-sim {np.mean(per) * 1e3:.1f} ms/inference  total {time.perf_counter() - t0:.1f} s")
    if r.waves:
        console.print(f"waveform: {r.waves}")
    console.print(f"golden-model classification accuracy on these inputs: {acc:.2%}")
    console.print(f"bit-exact: {r.n_ok}/{len(inf)} inferences")
    return 0 if r.n_ok == len(inf) else 1


@main.command()
@click.option("--inputs", "n", type=int, default=20, show_default=True, help="Number of random inferences.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of inputs and read noise.")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--act-bits", type=int, default=8, show_default=True, help="Activation precision of every layer.")
@click.option("--config", "config_path", type=click.Path(), help="JSON file of AonCimConfig fields.")
@click.option("--waves", is_flag=True, help="Dump a VCD waveform (path printed at the end).")
def cosim(n: int, seed: int, sim: str, act_bits: int, config_path: str | None, waves: bool) -> None:
    """Co-simulate the RTL against the bit-true golden model, layer by layer."""
    sys.exit(_run(lambda: _cosim(n, seed, sim, act_bits, config_path, waves)))


@main.command()
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default="out", show_default=True)
@click.option("--inputs", "n", type=int, default=20, show_default=True)
def demo(outdir: str, n: int) -> None:
    """The whole path on the embedded default: model -> image -> Verilog -> co-simulation."""
    def go():
        from aoncim.firmware.image import write_image
        from aoncim.hw.verilog import write_verilog

        cfg = DEFAULT_CONFIG
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        prog, _, _, _ = _tiny_job(cfg, 1, 0, 8)
        img = out / "tiny.aonc"
        img.write_bytes(write_image(prog, cfg))
        with console.status("elaborating the RTL (cached after the first run)"):
            v = write_verilog(cfg, out / "aoncim_top.v")
        console.print(f"compiled TinyNet -> {img} ({img.stat().st_size} bytes); Verilog -> {v}")
        return _cosim(n, 0, "verilator", 8, None, False)
    sys.exit(_run(go))


if __name__ == "__main__":
    main()

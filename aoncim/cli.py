"""`aoncim` command line: generate Verilog, compile, co-simulate, demo."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from .config import DEFAULT_CONFIG, AonCimConfig, ConfigError

# Logs and CI are not terminals; 120 columns keeps the per-layer table on one line per layer there.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class UserError(click.ClickException):
    """One clear line, no traceback."""

    def show(self, file=None):
        click.echo(f"aoncim: error: {self.message}", err=True)


# Exceptions that carry a one-line message for the user, by module. Only modules already imported
# can have raised one, so the error path never imports torch just to name a class: `aoncim
# inspect` of a broken image answers in a fraction of a second.
_USER_ERRORS = {
    "aoncim.firmware.compiler": ("CompileError",),
    "aoncim.firmware.driver": ("ChipError",),
    "aoncim.firmware.image": ("ImageError",),
    "aoncim.program": ("ProgramError",),
    "aoncim.sim.runner": ("BuildError", "CosimError"),
    "aoncim.sim.raw_verilator": ("RawBuildError",),
    "aoncim.toolchain": ("SimulatorNotFound",),
    "aoncim.perf.sweep": ("SweepError",),
    "aoncim.workers": ("WorkersError",),
}


def _user_errors():
    # ValueError: the data loaders, models and output checks reject bad input with one-line
    # ValueErrors. AONCIM_DEBUG=1 shows the traceback instead.
    if os.environ.get("AONCIM_DEBUG"):
        return ()
    found = [getattr(sys.modules[m], n) for m, names in _USER_ERRORS.items() if m in sys.modules
             for n in names if hasattr(sys.modules[m], n)]
    return (ConfigError, FileNotFoundError, ValueError, *found)


def _load_config(path: str | None) -> AonCimConfig:
    return AonCimConfig.load(path) if path else DEFAULT_CONFIG


class _OneLineGroup(click.Group):
    """Click's group, with every usage error (bad option value, missing argument) reported as one
    line naming the option and where the help is, like aoncim's own errors; Ctrl-C is one line too."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as e:
            where = " ".join(["aoncim", *(e.ctx.command_path.split()[1:] if e.ctx else [])])
            msg = " ".join(e.format_message().split())
            click.echo(f"aoncim: error: {msg} (see `{where} --help`)", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("aoncim: error: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """aoncim: PyTorch model -> AON-CiM program image -> Amaranth RTL -> bit-exact co-simulation."""


def _one_line(command):
    """A command body whose user errors are one line (`_user_errors`), never a traceback."""
    @functools.wraps(command)
    def body(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except _user_errors() as e:
            raise UserError(str(e).splitlines()[0]) from None
    return body


@main.command()
@click.option("-o", "--outdir", type=click.Path(), default="out", show_default=True,
              help="Directory for aoncim_top.v, regmap.md, ports.md, config.toml and the register map as "
                   "SystemRDL (aoncim.rdl) and IP-XACT (aoncim.xml).")
@click.option("--config", "config_path", type=click.Path(),
              help="TOML or JSON file of AonCimConfig fields (start from `aoncim config --dump`).")
@_one_line
def verilog(outdir: str, config_path: str | None) -> None:
    """Write the top-level Verilog, its register map and port list for a config."""
    from aoncim.hw.docgen import write_design
    from aoncim.outputs import check_output_dir

    cfg = _load_config(config_path)
    out = check_output_dir(outdir)
    with console.status(f"elaborating the RTL for config {cfg.config_hash:#010x} (cached after the first run)"):
        v, *docs = write_design(cfg, out)
    console.print(f"wrote {v} ({v.stat().st_size // 1024} KiB), "
                  f"{', '.join(p.name for p in docs)} in {out} for config hash {cfg.config_hash:#010x}")


@main.command(name="config")
@click.option("--dump", is_flag=True, help="Print the config as TOML (a starting file for --config).")
@click.option("--config", "config_path", type=click.Path(), help="TOML or JSON file to check (default: the embedded one).")
@_one_line
def config_cmd(dump: bool, config_path: str | None) -> None:
    """Check a config file, or print a config as TOML with --dump."""
    cfg = _load_config(config_path)
    if dump:
        click.echo(cfg.to_toml(), nl=False)
    else:
        console.print(f"{config_path or 'embedded default'}: valid, config hash {cfg.config_hash:#010x}, "
                      f"{cfg.rows} x {cfg.cols} pairs, {cfg.n_adcs} ADCs of {cfg.adc_bits} bits")


def _check_cosim_args(cfg: AonCimConfig, act_bits: int | None, sim: str) -> None:
    if act_bits is not None and act_bits not in cfg.act_bits_supported:
        raise ConfigError(f"--act-bits {act_bits}: act_bits={act_bits} not supported; choose one of "
                          f"{', '.join(map(str, cfg.act_bits_supported))}")
    from aoncim.sim.runner import preflight  # the golden model's torch: only past the option checks

    preflight(sim)  # before compiling and elaborating, not after


def _image_source(image: str, config_path: str | None, model: str | None, act_bits: int | None):
    """(bytes, Program, config) of `aoncim cosim --image`, refusing options the image overrides."""
    from aoncim.firmware.image import read_image_file

    blob, prog, cfg = read_image_file(image)
    if model is not None:
        raise ConfigError(f"--image and --model {model}: give one (the image is the network)")
    if act_bits is not None:
        raise ConfigError(f"--act-bits with --image: the image fixes each layer's precision; recompile with "
                          f"`aoncim compile --act-bits {act_bits}` instead")
    if config_path is not None:
        # The image carries the chip's fields; --config may add the PCM device physics (`--time`).
        other = AonCimConfig.load(config_path)
        if other.config_hash != cfg.config_hash:
            raise ConfigError(f"--config {config_path} (chip hash {other.config_hash:#010x}) is not the chip the "
                              f"image was compiled for ({cfg.config_hash:#010x}); drop --config, the image carries "
                              "its chip config")
        cfg = other
    return blob, prog, cfg


def _cosim(n: int | None, seed: int, sim: str, act_bits: int | None, config_path: str | None, waves: bool,
           model: str | None = None, t_inf: float | None = None, compare: str = "layers",
           image: str | None = None, input_path: str | None = None, reference: str | None = None) -> int:
    from aoncim.sim.report import cosim_network

    source = None
    if image is not None:
        _, prog, cfg = _image_source(image, config_path, model, act_bits)
        source = (Path(image).name, prog)
        if reference is not None:
            from aoncim.firmware.frontends import float_reference

            reference = float_reference(reference)  # read and checked before anything runs
    else:
        if input_path is not None:
            raise ConfigError("--input goes with --image (a compiled image of your network); the shipped "
                              "networks draw their inputs from their own test sets")
        model = model or "tiny"
        if model in MLPERF_MODELS and config_path is None:
            from aoncim.model.mlperf import get

            cfg = get(model).config()
        else:
            cfg = _load_config(config_path)
    _check_cosim_args(cfg, act_bits, sim)
    return cosim_network(console, cfg, model=model, image=source, input_path=input_path, n=n, seed=seed,
                         act_bits=act_bits, sim=sim, waves=waves, t_inf=t_inf, compare=compare, reference=reference)


def _cosim_random(n: int | None, seed: int, sim: str, act_bits: int | None, config_path: str | None, waves: bool,
                  t_inf: float | None, coverage_json: str = "out/coverage_random.json", workers: int = 1,
                  dask_addr: str | None = None) -> int:
    from aoncim.outputs import check_output_file
    from aoncim.sim.random_nets import RANDOM_CFG
    from aoncim.sim.report import cosim_random
    from aoncim.workers import check_workers

    if t_inf is not None:
        raise ConfigError("--time applies to the trained networks (tiny, kws, vww), not to --model random")
    check_workers(workers, dask_addr)
    if waves and (workers > 1 or dask_addr):
        raise ConfigError("--waves records one simulator run: drop --workers/--dask")
    cfg = _load_config(config_path) if config_path else RANDOM_CFG
    _check_cosim_args(cfg, act_bits, sim)
    out = check_output_file(coverage_json, "--coverage-json")
    return cosim_random(console, cfg, n=20 if n is None else n, seed=seed, act_bits=act_bits, sim=sim, waves=waves,
                        coverage_json=out, config_path=config_path, workers=workers, dask=dask_addr)


# The MLPerf Tiny models (model/mlperf.py) by name, without importing torch for --help.
MLPERF_MODELS = ("mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad")

# Option types shared by the commands: a bad value is refused while parsing, naming the option.
SEED = click.IntRange(0, 2**32 - 1)
COUNT = click.IntRange(min=1)


def _parallel_options(workers_help: str, dask_help: str):
    """--workers N and --dask ADDR, as `aoncim sweep` has them (aoncim/workers.py)."""
    def deco(f):
        f = click.option("--dask", "dask_addr", metavar="ADDR", help=dask_help)(f)
        return click.option("--workers", type=COUNT, default=1, show_default=True, help=workers_help)(f)
    return deco


class _Seconds(click.ParamType):
    """Seconds after programming, within the range the PCM device model describes."""

    name = "SECONDS"

    def convert(self, value, param, ctx):
        from aoncim.model.pcm import check_time  # imports torch: only when the option is given

        try:
            return check_time(value)
        except ValueError as e:
            self.fail(str(e).split(": ", 1)[-1], param, ctx)


SECONDS = _Seconds()


@main.command()
@click.option("--model", type=click.Choice(["tiny", "kws", "vww", "random", *MLPERF_MODELS]),
              help="Network: the embedded TinyNet (default), a shipped AnalogNet, random small networks and graphs "
              "(one per input), or an MLPerf Tiny model (random weights, on its own config unless --config).")
@click.option("--image", type=click.Path(dir_okay=False),
              help="Co-simulate your own program image (from `aoncim compile`) instead of a shipped network; the "
              "image carries its config.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="With --image: a .npy of inputs, integer codes (N, H, W, C) or float values in the model's layout "
              "(N, C, H, W), (N, C, L) or (N, F), quantised with the image's input scale; default: random codes "
              "over the image's input range.")
@click.option("--reference", "reference", type=click.Path(dir_okay=False),
              help="With --image: the ONNX file or torch.export program (.pt2) the image was compiled from; its float "
              "outputs (onnxruntime, torch) on the same inputs are compared with the chip's.")
@click.option("--inputs", "n", type=COUNT,
              help="Number of inferences [default: 20, or every input of --input] (with --model random: random "
              "networks, one inference each).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of inputs and read noise (and of the simulated chip with --time; with --model random, "
                   "the networks use seeds SEED..SEED+N-1).")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--act-bits", type=int, help="Activation precision of every layer (default 8; with --model random "
              "drawn per case).")
@click.option("--time", "t_inf", type=SECONDS, help="Co-simulate a programmed PCM chip read this many seconds "
              "after programming (0 to 10 years), with the host's drift compensation run on the chip (default: the "
              "target codes).")
@click.option("--config", "config_path", type=click.Path(), help="TOML or JSON file of AonCimConfig fields.")
@click.option("--waves", is_flag=True, help="Dump a waveform of the run (path and how to open it printed at the "
              "end).")
@click.option("--coverage-json", type=click.Path(dir_okay=False), default="out/coverage_random.json", show_default=True,
              help="With --model random: where to write the sequencer coverage report.")
@click.option("--compare", type=click.Choice(["layers", "final"]), default="layers", show_default=True,
              help="Score every layer (step mode, each layer read back) or only the last layer of an "
              "uninterrupted inference, as a host would run it (not with --model random).")
@_parallel_options("With --model random: local worker processes, each co-simulating a chunk of the cases as its "
                   "own simulator job; the report (cases, counts, coverage) is the one of --workers 1.",
                   "With --model random: run the chunks on the Dask scheduler at this address (tcp://host:8786); "
                   "the workers need aoncim and the simulator.")
@_one_line
def cosim(model: str | None, image: str | None, input_path: str | None, reference: str | None, n: int | None,
          seed: int, sim: str, act_bits: int | None, t_inf: float | None, config_path: str | None, waves: bool,
          coverage_json: str, compare: str, workers: int, dask_addr: str | None) -> None:
    """Co-simulate the RTL against the bit-true golden model, layer by layer."""
    if reference is not None and image is None:
        raise ConfigError("--reference goes with --image: the float model the image was compiled from")
    if model != "random":
        if workers != 1 or dask_addr is not None:
            raise ConfigError("--workers/--dask apply to --model random (one network runs in one simulator)")
        sys.exit(_cosim(n, seed, sim, act_bits, config_path, waves, model, t_inf, compare, image, input_path,
                        reference))
    if image or input_path:
        raise ConfigError("--model random draws its own networks: drop --image/--input")
    sys.exit(_cosim_random(n, seed, sim, act_bits, config_path, waves, t_inf, coverage_json, workers, dask_addr))


@main.command()
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default="out", show_default=True)
@click.option("--inputs", "n", type=COUNT, default=20, show_default=True)
@_one_line
def demo(outdir: str, n: int) -> None:
    """The whole path on the embedded default: model -> image -> Verilog -> co-simulation."""
    from aoncim.firmware.image import write_image
    from aoncim.hw.verilog import write_verilog
    from aoncim.sim.jobs import tiny_job

    from aoncim.outputs import check_output_dir, write_atomic

    cfg = DEFAULT_CONFIG
    out = check_output_dir(outdir)
    _check_cosim_args(cfg, 8, "verilator")
    out.mkdir(parents=True, exist_ok=True)
    prog, _, _, _ = tiny_job(cfg, 1, 0, 8)
    img = out / "tiny.aonc"
    write_atomic(img, write_image(prog, cfg))
    with console.status("elaborating the RTL (cached after the first run)"):
        v = write_verilog(cfg, out / "aoncim_top.v")
    console.print(f"compiled TinyNet -> {img} ({img.stat().st_size} bytes); Verilog -> {v}")
    sys.exit(_cosim(n, 0, "verilator", 8, None, False))


@main.command()
@click.argument("task", type=click.Choice(["kws", "vww"]))
@click.option("--data", type=click.Path(), help="Folder of the real dataset (Speech Commands v2 / VWW); "
              "default: the offline synthetic set.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Checkpoint to write [default: "
              "out/analognet_<task>.pt]; the shipped checkpoints in the package are read-only.")
@click.option("--fp-epochs", type=click.IntRange(min=0), help="Float pre-training epochs (default: the task's recipe).")
@click.option("--hwa-epochs", type=click.IntRange(min=0), help="Hardware-aware retraining epochs (default: the task's recipe).")
@click.option("--act-bits", type=int, default=8, show_default=True, help="Activation precision during HWA training.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@_one_line
def train(task, data, out, fp_epochs, hwa_epochs, act_bits, seed) -> None:
    """Train an AnalogNet: FP pre-training, then hardware-aware retraining; writes a checkpoint."""
    import dataclasses

    from aoncim.model.flows import train_analognet
    from aoncim.model.tasks import default_checkpoint_out, get_task
    from aoncim.outputs import check_output_file

    task, cfg = get_task(task), DEFAULT_CONFIG
    recipe = dataclasses.replace(task.recipe, act_bits=act_bits, seed=seed,
                                 **({"fp_epochs": fp_epochs} if fp_epochs is not None else {}),
                                 **({"hwa_epochs": hwa_epochs} if hwa_epochs is not None else {}))
    if act_bits not in cfg.act_bits_supported:
        raise ConfigError(f"--act-bits {act_bits}: the chip supports {', '.join(map(str, cfg.act_bits_supported))}")
    # The shipped checkpoints are read-only to every command: without -o the checkpoint goes to
    # out/, and -o into the package is refused here, before minutes of data loading and training.
    path = check_output_file(out if out else default_checkpoint_out(task), "-o" if out else "default output")
    train_analognet(task, recipe, path, data, cfg, progress=console)
    console.print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


@main.command(name="eval")
@click.argument("task", type=click.Choice(["kws", "vww"]))
@click.option("--data", type=click.Path(), help="Folder of the real dataset; default: the offline synthetic set.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint (default: the shipped one).")
@click.option("--seeds", type=COUNT, default=5, show_default=True, help="Chips (programming + read-noise seeds).")
@click.option("--bits", default="8,6,4", show_default=True, help="Activation precisions to evaluate.")
@click.option("--bit-true/--no-bit-true", default=True, show_default=True, help="Also run the integer chip model.")
@click.option("--bit-true-samples", type=COUNT, help="Limit the bit-true test set (it is the slow part).")
@click.option("--samples", type=COUNT, help="Limit the test set (default: all of it).")
@click.option("--times", default="1s,1h,1d,10d,1y", show_default=True,
              help="Inference times after programming to evaluate.")
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default="out", show_default=True)
@_parallel_options("Local worker processes for the Monte-Carlo over chips x times x precisions; the rows are "
                   "those of --workers 1, bit for bit.",
                   "Run that Monte-Carlo on the Dask scheduler at this address (tcp://host:8786); the workers "
                   "need aoncim installed.")
@_one_line
def eval_(task, data, checkpoint, seeds, bits, bit_true, bit_true_samples, samples, outdir, times, workers,
          dask_addr) -> None:
    """Accuracy of FP, HWA float and bit-true modes after 1 s .. 1 year of PCM drift (table + plot)."""
    from aoncim.model.evaluate import EVAL_TIMES_S, evaluate_checkpoint
    from aoncim.model.tasks import get_task
    from aoncim.outputs import check_output_dir
    from aoncim.workers import check_workers

    task, cfg = get_task(task), DEFAULT_CONFIG
    check_workers(workers, dask_addr)
    try:
        bits_list = tuple(int(b) for b in bits.split(","))
    except ValueError:
        raise ConfigError(f"--bits {bits!r}: give a comma-separated list such as 8,6,4") from None
    bad = [b for b in bits_list if b not in cfg.act_bits_supported]
    if bad:
        raise ConfigError(f"--bits {bad}: the chip supports {cfg.act_bits_supported}")
    keys = [t.strip() for t in times.split(",") if t.strip()]
    bad = [t for t in keys if t not in EVAL_TIMES_S]
    if bad or not keys:
        raise ConfigError(f"--times {times!r}: choose from {','.join(EVAL_TIMES_S)}")
    # Everything that can fail fast does, before the data is decoded: the output folder here, then
    # the whole checkpoint (evaluate_checkpoint validates it first).
    out = check_output_dir(outdir, "-o")
    ev = evaluate_checkpoint(task, checkpoint, cfg, out, data, samples, bits_list, {k: EVAL_TIMES_S[k] for k in keys},
                             seeds, bit_true, bit_true_samples, progress=console, workers=workers, dask=dask_addr)
    console.print(ev.table())
    for line in ev.summary():
        console.print(line)


# ------------------------------------------------------------------------------------ images
@main.command(name="compile")
@click.argument("model", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(), help="TOML or JSON file of AonCimConfig fields "
              "(default: the embedded config).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True, help="Image file to write.")
@click.option("--act-bits", type=int, default=8, show_default=True, help="Activation precision of every layer.")
@click.option("--time", "t_inf", type=SECONDS, help="Write the codes of a programmed PCM chip read this many "
              "seconds after programming, compensated by the host (default: the target codes).")
@click.option("--seed", type=SEED, help="Simulated chip (programming noise, drift) for --time; default 0.")
@click.option("--calib", "calib", type=click.Path(dir_okay=False),
              help="For an ONNX/.pt2 MODEL: a .npy batch of calibration inputs in the model's input layout; without "
              "it the compiler calibrates on standard-normal inputs and says so.")
@_one_line
def compile_(model, config_path, out, act_bits, t_inf, seed, calib) -> None:
    """Compile MODEL into a program image for a config: an aoncim checkpoint (AnalogNet), an ONNX file
    (.onnx) or a saved torch.export program (.pt2)."""
    from aoncim.model.flows import compile_checkpoint, compile_model_file
    from aoncim.outputs import check_output_file

    cfg = _load_config(config_path)
    if act_bits not in cfg.act_bits_supported:
        raise ConfigError(f"--act-bits {act_bits}: the chip supports {', '.join(map(str, cfg.act_bits_supported))}")
    if seed is not None and t_inf is None:
        raise ConfigError("--seed picks the simulated chip of a drifted snapshot: give --time SECONDS as well")
    graph_file = Path(model).suffix.lower() in (".onnx", ".pt2")
    if graph_file and t_inf is not None:
        raise ConfigError("--time writes a drifted chip snapshot of an aoncim checkpoint; compile the ONNX/.pt2 model "
                          "without it and use `aoncim cosim --image IMAGE --time SECONDS`")
    if not graph_file and calib is not None:
        raise ConfigError("--calib goes with an ONNX/.pt2 model; a checkpoint calibrates on its task's training inputs")
    image = check_output_file(out, "-o")  # --time was checked while parsing (SECONDS)
    if graph_file:
        done = compile_model_file(model, cfg, act_bits, calib, image, progress=console)
    else:
        done = compile_checkpoint(model, cfg, act_bits, t_inf, seed, image, progress=console)
    for line in done.summary(out):
        console.print(line)


@main.command(name="inspect")
@click.argument("image", type=click.Path())  # checked by read_image_file: one line, exit 1
@click.option("--png", type=click.Path(dir_okay=False), help="Also draw the placement of every layer as a PNG.")
@_one_line
def inspect_(image, png) -> None:
    """Show what a program image holds: header, layers, placement, utilisation, constants."""
    from aoncim.firmware.image import read_image_file
    from aoncim.firmware.summary import inspect_report, placement_png
    from aoncim.outputs import check_output_file

    if png:
        check_output_file(png, "--png")
    blob, prog, cfg = read_image_file(image)
    for part in inspect_report(image, blob, prog, cfg):
        console.print(part)
    if png:
        console.print(f"wrote {placement_png(prog, cfg, png, Path(image).name)}")


@main.command(name="export-c")
@click.argument("image", type=click.Path())  # checked by read_image_file: one line, exit 1
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Header to write (default: IMAGE with .h).")
@_one_line
def export_c(image, out) -> None:
    """Write a C99 header: register map, error codes, config hash and the image bytes."""
    from aoncim.firmware.cheader import c_header
    from aoncim.firmware.image import read_image_file
    from aoncim.outputs import check_output_file, write_atomic

    path = check_output_file(out if out else Path(image).with_suffix(".h"), "-o" if out else "the header")
    blob, _, cfg = read_image_file(image)
    write_atomic(path, c_header(blob, path, source=Path(image).name))
    console.print(f"wrote {path}: {len(blob)} image bytes, config hash {cfg.config_hash:#010x}")


# ------------------------------------------------------------------------------------ performance
@main.command(name="report")
@click.argument("task", type=click.Choice(["kws", "vww", *MLPERF_MODELS]))
@click.option("--config", "config_path", type=click.Path(), help="TOML or JSON file of AonCimConfig fields.")
@click.option("--act-bits", type=int, default=8, show_default=True, help="Activation precision of every layer.")
@click.option("-o", "--outdir", type=click.Path(), default="out/report", show_default=True,
              help="Directory for report.md (or report.html) and its PNGs.")
@click.option("--html", "as_html", is_flag=True, help="One HTML file with the PNGs embedded instead of Markdown.")
@click.option("--samples", type=COUNT, default=256, show_default=True, help="Test inputs of the accuracy-under-drift run.")
@click.option("--chips", type=COUNT, default=1, show_default=True, help="Simulated PCM chips of that run.")
@click.option("--times", default="1s,1h,1d,10d", show_default=True, help="Times after programming for the accuracy.")
@click.option("--tech", "tech_path", type=click.Path(), help="TOML file of technology parameters (perf/tech.py).")
@click.option("--synth", is_flag=True, help="Area from a Yosys synthesis of the config (cached) instead of the estimate.")
@_one_line
def report_cmd(task, config_path, act_bits, outdir, as_html, samples, chips, times, tech_path, synth) -> None:
    """One-page performance report: cycles, energy, TOPS/W beside the paper, placement, drift, area."""
    from aoncim.perf.report import build_report
    from aoncim.perf.tech import load_technology

    from aoncim.outputs import check_output_dir

    check_output_dir(outdir)
    # An MLPerf model's own config (the default chip with what it needs to fit) unless --config.
    cfg = None if task in MLPERF_MODELS and config_path is None else _load_config(config_path)
    tech = load_technology(tech_path)
    with console.status("report") as st:
        r = build_report(task, cfg, act_bits, outdir, as_html, samples, chips,
                         tuple(t.strip() for t in times.split(",") if t.strip()), tech, synth,
                         status=lambda msg: st.update(msg))
    e = r.energy
    console.print(f"{e.cycles:,} cycles, {e.energy_j * 1e6:.3f} µJ and {e.tops_w:.2f} TOPS/W per inference "
                  f"(dominant: {e.dominant}); wrote {r.path} and {len(r.pngs)} PNGs in {r.seconds:.0f} s")


@main.command(name="sweep")
@click.option("--grid", "grid_path", type=click.Path(), help="TOML grid (docs/performance.md); default: the full grid.")
@click.option("--quick", is_flag=True, help="A small grid (KWS, three array sizes, a few minutes on two cores).")
@click.option("--workers", type=COUNT, help="Local worker processes (default: all cores; 1 runs in this process).")
@click.option("--dask", "dask_addr", help="Run on the Dask scheduler at this address (tcp://host:8786).")
@click.option("--ray", "ray_addr", help="Run on Ray at this address ('auto' for a running cluster).")
@click.option("--tech", "tech_path", type=click.Path(), help="TOML file of technology parameters (perf/tech.py).")
@click.option("-o", "--outdir", type=click.Path(), default="out/sweep", show_default=True,
              help="Directory for sweep.csv and pareto.png.")
@_one_line
def sweep_cmd(grid_path, quick, workers, dask_addr, ray_addr, tech_path, outdir) -> None:
    """Design-space sweep: array size, ADCs, ADC bits, activation bits -> accuracy, cycles, energy, area."""
    from aoncim.perf.sweep import QUICK_GRID, Grid, SweepError, load_grid, sweep
    from aoncim.perf.tech import load_technology

    from aoncim.outputs import check_output_dir

    check_output_dir(outdir)
    if grid_path and quick:
        raise SweepError("give --grid FILE or --quick, not both")
    grid = load_grid(grid_path) if grid_path else QUICK_GRID if quick else Grid()
    tech = load_technology(tech_path)
    where = f"Dask {dask_addr}" if dask_addr else f"Ray {ray_addr}" if ray_addr else \
        f"{workers or os.cpu_count()} local worker(s)"
    console.print(f"sweep: {grid.points} points in {len(grid.units(tech))} units on {where}")
    r = sweep(grid, outdir, tech, workers, dask_addr, ray_addr)
    feas = [x for x in r.rows if x["feasible"]]
    console.print(f"{len(feas)} feasible, {len(r.rows) - len(feas)} infeasible points in {r.seconds:.0f} s; "
                  f"wrote {r.csv} and {r.png}")


if __name__ == "__main__":
    main()

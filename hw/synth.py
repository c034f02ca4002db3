"""Synthesis report: generic Yosys synthesis of every synthesisable block of the chip for a config.

    python -m aoncim.hw.synth [--config CFG.toml] [-o out/synth]      (or `make synth`)

How the design is cut. The top level `AonCim` is elaborated with the behavioural crossbar
(`PcmArray`, with its ADC lanes and noise sources: simulation models, docs/architecture.md) replaced
by `ArrayBlackBox`: the same ports, wired to an instance of an empty `aoncim_pcm_array` macro that
Yosys is told is a black box. Everything else — AXI4-Lite subordinate, host interface, sequencer
(and whatever it contains), post-processor, the core's memories and muxes — is synthesised in one
hierarchical run (`synth` without `-flatten`), so `stat` counts each block once, as its own module,
and the total is the sum over the hierarchy. There is no optimisation across block boundaries, so
the counts are an upper bound on what a flattened synthesis would give.

Memories. Yosys' generic flow would map every SRAM to flip-flops and multiplexers (`memory_map`);
that says nothing about an SRAM macro and takes minutes for the 8192-entry activation banks. The
script runs `synth` up to its `fine` label (which ends with `memory -nomap`), then the rest of the
generic script without `memory_map`: memories stay `$mem_v2` cells and are reported as
memories and bits (`stat` after `memory_unpack`), not as cells.

Latches. A latch is never intended in this design. Amaranth cannot describe one (every
combinational signal has a default and combinational loops are rejected), so one can only enter
through an instance of external HDL; the check still looks at every module after synthesis and
fails naming the module and cell type.
"""
from __future__ import annotations

import contextlib
import csv
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth import ClockSignal, Instance, Module, ResetSignal, Shape, Value
from amaranth.back import rtlil
from amaranth.hdl import Fragment
from amaranth.lib import wiring

from aoncim.config import AonCimConfig, ConfigError

from .pcm_array import PcmArray
from .verilog import TOP_NAME
from .yosys import YosysError, run_yosys

ARRAY_MACRO = "aoncim_pcm_array"

# Fine-grained (`$_DLATCH_P_`, `$_SR_NN_`, ...) and coarse (`$dlatch`, `$adlatch`, `$sr`) latch cells.
_LATCH = re.compile(r"^\$(_DLATCH|_SR_|dlatch|adlatch|sr$)")
_FLIP_FLOP = re.compile(r"^\$(_\w*DFF|\w*dff)")
_MEMORY = re.compile(r"^\$mem(_v2)?$")

# After `synth -run :fine` (which ends with `memory -nomap`): the generic `fine` and `check`
# steps minus `memory_map`, so memories stay memories.
_SCRIPT = """\
{reads}
synth -top {top} -run :fine
opt -fast -full
opt -full
techmap
opt -fast
abc
opt -fast
hierarchy -check
tee -q -o check.txt check
tee -q -o stat.json stat -json -top {top}
memory_unpack
tee -q -o stat_mem.json stat -json -top {top}
"""


class SynthError(RuntimeError):
    """Synthesis failed or found something the design must not contain; one line."""


class LatchError(SynthError):
    pass


@dataclass
class BlockStats:
    path: str  # hierarchy path below the top ("" is the top level itself)
    component: str  # the Python class that elaborated this module
    cells: int  # gates and flip-flops, without memories, submodules and black boxes
    flip_flops: int
    memories: int
    memory_bits: int
    instances: int = 1
    cell_types: dict[str, int] = field(default_factory=dict)
    black_boxes: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path or "(top)"


@dataclass
class SynthReport:
    top: str
    blocks: list[BlockStats]
    yosys_version: str
    elaborate_s: float
    yosys_s: float
    config: dict | None = None
    config_hash: int | None = None
    memory_list: list[dict] = field(default_factory=list)  # as elaborated; `blocks` has what Yosys kept

    @property
    def total(self) -> dict[str, int]:
        keys = ("cells", "flip_flops", "memories", "memory_bits")
        return {k: sum(getattr(b, k) * b.instances for b in self.blocks) for k in keys}

    @property
    def black_boxes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.blocks:
            for t, n in b.black_boxes.items():
                out[t] = out.get(t, 0) + n * b.instances
        return out

    def latches(self) -> list[tuple[str, str, int]]:
        return [(b.name, t, n) for b in self.blocks for t, n in sorted(b.cell_types.items()) if _LATCH.match(t)]

    def to_dict(self) -> dict:
        return {
            "top": self.top, "config_hash": self.config_hash, "config": self.config,
            "yosys": self.yosys_version, "elaborate_s": round(self.elaborate_s, 2),
            "yosys_s": round(self.yosys_s, 2), "total": self.total, "black_boxes": self.black_boxes,
            "blocks": [asdict(b) for b in self.blocks], "memory_list": self.memory_list,
        }

    def write(self, outdir: Path) -> tuple[Path, Path]:
        """`synth_report.json` (everything, with cell types) and `synth_report.csv` (one row a block)."""
        outdir.mkdir(parents=True, exist_ok=True)
        jp, cp = outdir / "synth_report.json", outdir / "synth_report.csv"
        jp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        with cp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["block", "component", "instances", "cells", "flip_flops", "memories", "memory_bits"])
            for b in self.blocks:
                w.writerow([b.name, b.component, b.instances, b.cells, b.flip_flops, b.memories, b.memory_bits])
            t = self.total
            w.writerow(["total", "", "", t["cells"], t["flip_flops"], t["memories"], t["memory_bits"]])
        return jp, cp

    def table(self):
        from rich.table import Table

        t = Table(title=f"generic synthesis of {self.top} ({self.yosys_version})")
        for c in ("block", "component", "cells", "flip-flops", "memories", "memory bits"):
            t.add_column(c, justify="left" if c in ("block", "component") else "right")
        for b in self.blocks:
            bb = ", ".join(f"{n} x {k} (black box)" for k, n in b.black_boxes.items())
            t.add_row(b.name, b.component + (f"; {bb}" if bb else ""), str(b.cells), str(b.flip_flops),
                      str(b.memories), str(b.memory_bits))
        tot = self.total
        t.add_section()
        t.add_row("total", "", str(tot["cells"]), str(tot["flip_flops"]), str(tot["memories"]),
                  str(tot["memory_bits"]), style="bold")
        return t


# ---------------------------------------------------------------------------------------- the cut
class ArrayBlackBox(PcmArray):
    """The crossbar model's ports, wired to an instance of an empty macro (a Yosys black box).

    Subclassing keeps the signature identical to `PcmArray` by construction; only `elaborate`
    differs, so the behavioural array is never elaborated (~40 s at the default size, and not hardware)."""

    def elaborate(self, platform):
        m = Module()
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        self.macro_ports = [("clk", "input", 1), ("rst", "input", 1)]
        for path, member, value in self.signature.flatten(self):
            name, v = "__".join(map(str, path)), Value.cast(value)
            d = "input" if member.flow == wiring.In else "output"
            ports[f"{d[0]}_{name}"] = v
            self.macro_ports.append((name, d, len(v)))
        m.submodules.macro = Instance(ARRAY_MACRO, **ports)
        return m


def blackbox_rtlil(name: str, ports: list[tuple[str, str, int]]) -> str:
    """RTLIL declaration of an empty module with these ports, marked as a black box."""
    lines = ["attribute \\blackbox 1", f"module \\{name}"]
    lines += [f"  wire width {w} {d} {i} \\{p}" for i, (p, d, w) in enumerate(ports, 1)]
    return "\n".join(lines + ["end", ""])


@contextlib.contextmanager
def _array_black_boxed():
    """While active, hw/top.py's `PcmArray(cfg)` makes an `ArrayBlackBox`; yields those made.

    hw/top.py instantiates the array by its module-level name, so swapping that name is enough
    (a constructor argument in AonCimCore would make this explicit)."""
    from . import top

    made: list[ArrayBlackBox] = []

    def make(cfg):
        made.append(ArrayBlackBox(cfg))
        return made[-1]

    saved = top.PcmArray
    top.PcmArray = make
    try:
        yield made
    finally:
        top.PcmArray = saved


def _walk(frag: Fragment, top: str) -> tuple[dict[str, str], list[dict]]:
    """RTLIL module name -> class name of the elaboratable that produced it; and the memories
    (amaranth.lib.memory) with their geometry and ports, which an SRAM compiler would need."""
    from amaranth.lib.memory import Memory

    components, memories = {}, []

    def walk(f, path):
        origins = getattr(f, "origins", None) or ()
        obj = origins[0] if origins else None
        components[".".join(path)] = type(obj).__name__ if obj is not None else ""
        if isinstance(obj, Memory):
            width = Shape.cast(obj.shape).width
            memories.append({"path": ".".join(path[1:]), "depth": obj.depth, "width": width,
                             "bits": obj.depth * width, "read_ports": len(obj.read_ports),
                             "write_ports": len(obj.write_ports)})
        for sub, name, *_ in f.subfragments:
            walk(sub, path + (str(name),))

    walk(frag, (top,))
    return components, memories


# ------------------------------------------------------------------------------------ synthesis
def elaborate(elaboratable, name: str) -> tuple[str, dict[str, str], list[dict]]:
    """RTLIL of a component as module `name`, the class behind each RTLIL module, the memories."""
    frag = Fragment.get(elaboratable, None)
    ports = [Value.cast(v) for _, _, v in elaboratable.signature.flatten(elaboratable)]
    return (rtlil.convert(frag, ports=ports, name=name, emit_src=False),) + _walk(frag, name)


def synthesise(elaboratable, name: str, workdir: Path, *, sources: dict[str, str] | None = None) -> SynthReport:
    """Elaborate `elaboratable` as module `name`, synthesise it generically, check for latches.

    `sources` are extra files for Yosys (`.il` RTLIL, `.v` Verilog), e.g. black-box declarations
    or HDL behind instances. Raises LatchError if any latch cell is left after synthesis."""
    t0 = time.perf_counter()
    text, components, memories = elaborate(elaboratable, name)
    report = synthesise_rtlil(text, name, workdir, sources=sources, components=components)
    report.memory_list = memories
    report.elaborate_s = time.perf_counter() - t0 - report.yosys_s
    return report


def synthesise_rtlil(text: str, name: str, workdir: Path, *, sources: dict[str, str] | None = None,
                     components: dict[str, str] | None = None) -> SynthReport:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.il").write_text(text)
    reads = []
    for fname, src in (sources or {}).items():
        (workdir / fname).write_text(src)
        reads.append(("read_rtlil " if fname.endswith(".il") else "read_verilog -sv ") + fname)
    reads.append("read_rtlil design.il")
    t0 = time.perf_counter()
    try:
        log = run_yosys(_SCRIPT.format(reads="\n".join(reads), top=name), workdir)
    except YosysError as e:
        raise SynthError(str(e)) from None
    version = re.search(r"^(Yosys \d\S*)", log, re.M)
    report = SynthReport(
        top=name, yosys_version=version.group(1) if version else "Yosys",
        blocks=_blocks(json.loads((workdir / "stat.json").read_text()),
                       json.loads((workdir / "stat_mem.json").read_text()), name, components or {}),
        elaborate_s=0.0, yosys_s=time.perf_counter() - t0)
    _check(report, (workdir / "check.txt").read_text())
    return report


def _blocks(stat: dict, stat_mem: dict, top: str, components: dict[str, str]) -> list[BlockStats]:
    """One BlockStats per module of the hierarchy below `top`, from `stat -json` before and after
    `memory_unpack` (only the latter counts memories and their bits)."""
    mods = {k.lstrip("\\"): v for k, v in stat["modules"].items()}
    mem = {k.lstrip("\\"): v for k, v in stat_mem["modules"].items()}
    blocks, subs = {}, {}
    for mod, s in mods.items():
        types = {t.lstrip("\\"): n for t, n in s.get("num_cells_by_type", {}).items()}
        own = {t: n for t, n in types.items() if t not in mods and t.startswith("$") and not _MEMORY.match(t)}
        subs[mod] = {t: n for t, n in types.items() if t in mods}
        blocks[mod] = BlockStats(
            path=mod[len(top) + 1:] if mod.startswith(top + ".") else ("" if mod == top else mod),
            component=components.get(mod, ""),
            cells=sum(own.values()), flip_flops=sum(n for t, n in own.items() if _FLIP_FLOP.match(t)),
            memories=mem.get(mod, {}).get("num_memories", 0), memory_bits=mem.get(mod, {}).get("num_memory_bits", 0),
            cell_types=dict(sorted(own.items())),
            black_boxes={t: n for t, n in types.items() if t not in mods and not t.startswith("$")},
            instances=0,
        )

    # Instance multiplicity, from the top down (each block of this chip is instantiated once).
    def visit(mod, n):
        blocks[mod].instances += n
        for sub, k in subs[mod].items():
            visit(sub, n * k)

    visit(top, 1)
    return [blocks[mod] for mod in sorted(blocks, key=lambda m: (m != top, m))]


def _check(report: SynthReport, check_log: str) -> None:
    latches = report.latches()
    if latches:
        where = "; ".join(f"{blk}: {n} x {t}" for blk, t, n in latches)
        raise LatchError(f"latch inferred in {report.top} ({where}): every storage element must be a "
                         "clocked flip-flop or a memory")
    m = re.search(r"Found and reported (\d+) problems", check_log)
    if m and int(m.group(1)):
        first = next((line.strip() for line in check_log.splitlines() if line.startswith("Warning")), "")
        raise SynthError(f"yosys `check` found {m.group(1)} problem(s) in {report.top}: {first}")


def synthesise_chip(cfg: AonCimConfig, workdir: Path) -> SynthReport:
    """The chip's top level for `cfg`, with the behavioural array as a black box."""
    from .top import AonCim

    t0 = time.perf_counter()
    with _array_black_boxed() as boxes:
        text, components, memories = elaborate(AonCim(cfg), TOP_NAME)
    if len(boxes) != 1 or "PcmArray" in components.values():
        raise SynthError(f"expected the core to instantiate one PcmArray through aoncim.hw.top.PcmArray, "
                         f"got {len(boxes)} black boxes: update the cut in hw/synth.py")
    macro = blackbox_rtlil(ARRAY_MACRO, boxes[0].macro_ports)
    report = synthesise_rtlil(text, TOP_NAME, workdir, sources={"blackboxes.il": macro}, components=components)
    report.elaborate_s = time.perf_counter() - t0 - report.yosys_s
    report.config, report.config_hash = cfg.chip_dict(), cfg.config_hash  # cached by design_key: chip fields
    report.memory_list = memories
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    from rich.console import Console

    ap = argparse.ArgumentParser(prog="python -m aoncim.hw.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="TOML or JSON file of AonCimConfig fields (default: the embedded default)")
    ap.add_argument("-o", "--outdir", default="out/synth",
                    help="report (synth_report.json/.csv) and Yosys work files (design.il, synth.ys, yosys.log)")
    a = ap.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        cfg = AonCimConfig.from_file(a.config) if a.config else AonCimConfig()
        with console.status(f"synthesising {TOP_NAME} for config {cfg.config_hash:#010x} "
                            "(YoWASP compiles Yosys on its first run on a machine, ~30 s)"):
            report = synthesise_chip(cfg, Path(a.outdir))
    except (ConfigError, SynthError) as e:
        print(f"aoncim synth: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    jp, cp = report.write(Path(a.outdir))
    console.print(report.table())
    boxes = ", ".join(f"{n} x {k}" for k, n in report.black_boxes.items()) or "none"
    console.print(f"black boxes (simulation models, not synthesised): {boxes}")
    console.print("memories stay memories (no memory_map), not in the cell counts: " + ", ".join(
        f"{m['path']} {m['depth']} x {m['width']} ({m['read_ports']}R/{m['write_ports']}W)" for m in report.memory_list))
    console.print(f"latch check: no latches.  yosys check: no problems.  elaboration {report.elaborate_s:.1f} s, "
                  f"yosys {report.yosys_s:.1f} s")
    console.print(f"wrote {jp} and {cp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

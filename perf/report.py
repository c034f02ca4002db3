"""One-page performance report of a shipped AnalogNet on a config (`aoncim report {kws,vww}`):
cycles per layer against the array-busy bound, energy breakdown, TOPS/W beside the paper,
placement, accuracy under drift and area. Markdown with PNGs beside it, or one HTML file with
the PNGs embedded.

The page is built once as a list of blocks (heading, paragraph, table, image) and rendered to
either format, so the two cannot say different things.
"""
from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from aoncim.config import DEFAULT_CONFIG, AonCimConfig, ConfigError

from aoncim.model.evaluate import EVAL_TIMES_S as TIMES_S

from .energy import COMPONENT_TITLES, COMPONENTS, PAPER_TOPS_W, EnergyReport, energy_report, tops_w_row
from .tech import DEFAULT_TECH, Technology

REPORT_TIMES = ("1s", "1h", "1d", "10d")
SECTIONS = ("Summary", "Cycles per layer", "Energy", "TOPS/W beside the paper", "Placement", "Accuracy under drift",
            "Area")


# ---------------------------------------------------------------------------------------- page model
_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+( \(.*\))?$")


@dataclass
class Page:
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list], right: set[int] | None = None) -> None:
        """`right`: columns to right-align; default: those whose cells are all numbers (or empty)."""
        cells = [[str(c) for c in r] for r in rows]
        if right is None:
            right = {k for k in range(len(header))
                     if any(r[k] for r in cells) and all(_NUMBER.match(r[k]) or not r[k] for r in cells)}
        self.blocks.append(("table", header, cells, right))

    def img(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", Path(path), alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                _, header, rows, right = b
                out.append("\n".join(["| " + " | ".join(header) + " |",
                                      "|" + "|".join("---:" if k in right else "---" for k in range(len(header))) + "|"]
                                     + ["| " + " | ".join(r) + " |" for r in rows]))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1].name})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "table":
                _, header, rows, right = b
                th = "".join(f"<th>{html.escape(c)}</th>" for c in header)
                trs = "".join("<tr>" + "".join(f"<td{' class=r' if k in right else ''}>{_inline(c)}</td>"
                                               for k, c in enumerate(r)) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode(b[1].read_bytes()).decode()
                body.append(f'<p><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}"></p>')
        style = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}"
                 "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
                 "td.r{text-align:right}th{background:#eee}img{max-width:100%}code{background:#f4f4f4}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** in a paragraph or cell, as HTML."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


# ---------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_energy(rep: EnergyReport, path: Path, title: str) -> Path:
    """Stacked bar of energy per layer and component, and the total per component."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1.3]})
    cmap = plt.get_cmap("tab10")
    labels = [f"{L.index}" for L in rep.layers]
    bottom = [0.0] * len(rep.layers)
    for k, c in enumerate(COMPONENTS):
        v = [L.energy_j[c] * 1e9 for L in rep.layers]
        a.bar(labels, v, bottom=bottom, color=cmap(k), label=COMPONENT_TITLES[c])
        bottom = [x + y for x, y in zip(bottom, v)]
    a.set_xlabel("layer")
    a.set_ylabel("energy per inference (nJ)")
    a.legend(fontsize=7)
    a.grid(axis="y", alpha=0.3)
    by = rep.by_component
    b.barh([COMPONENT_TITLES[c] for c in COMPONENTS][::-1], [by[c] * 1e9 for c in COMPONENTS][::-1],
           color=[cmap(k) for k in range(len(COMPONENTS))][::-1])
    b.set_xlabel("nJ per inference")
    b.tick_params(axis="y", labelsize=7)
    b.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy(times: list[str], accs: list[float], path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    t = [TIMES_S[k] for k in times]
    ax.plot(t, [100 * a for a in accs], "-s", ms=5)
    ax.set_ylim(max(0.0, 100 * min(accs) - 10), min(100.0, 100 * max(accs) + 2) + 0.5)
    ax.set_xscale("log")
    ax.set_xticks(t, times)
    ax.set_xlabel("time since programming")
    ax.set_ylabel("bit-true accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------- the report
@dataclass
class ReportResult:
    path: Path
    pngs: list[Path]
    energy: EnergyReport
    seconds: float


def _nj(j: float) -> str:
    return f"{j * 1e9:.2f}"


def build_report(task: str, cfg: AonCimConfig | None = None, act_bits: int = 8, outdir: str | Path = "out/report",
                 as_html: bool = False, samples: int = 256, chips: int = 1, times: tuple[str, ...] = REPORT_TIMES,
                 tech: Technology = DEFAULT_TECH, synth: bool = False, calib_samples: int | None = None,
                 status=None) -> ReportResult:
    """Write `report.md` (or `report.html`) and its PNGs into `outdir`. `status(msg)` is told what runs."""
    from aoncim.firmware.placement_plot import plot_placement
    from aoncim.firmware.summary import utilisation
    from aoncim.model.tasks import get_task

    from .area import area as area_of
    from .cycles import array_bound_cycles, inference_cycles
    from .workload import compile_task, drift_accuracy

    t0 = time.perf_counter()
    say = status or (lambda msg: None)
    mlperf_model = None
    if task.startswith("mlperf-"):  # random weights: performance and placement, no accuracy
        from aoncim.model import mlperf

        mlperf_model = mlperf.get(task)
        cfg = cfg or mlperf_model.config()
        title = f"MLPerf Tiny {mlperf_model.title}"
    else:
        cfg = cfg or DEFAULT_CONFIG
        title = get_task(task).title
    paper = PAPER_TOPS_W.get(task, {})
    if act_bits not in cfg.act_bits_supported:
        raise ConfigError(f"--act-bits {act_bits}: the chip supports {', '.join(map(str, cfg.act_bits_supported))}")
    bad = [k for k in times if k not in TIMES_S]
    if bad or not times:
        raise ConfigError(f"--times {','.join(times)}: choose from {','.join(TIMES_S)}")
    if samples < 1 or chips < 1:
        raise ConfigError("--samples and --chips need at least one")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)

    say(f"compiling {title} for config {cfg.config_hash:#010x} at {act_bits} bits")
    progs = {act_bits: compile_task(task, cfg, act_bits, calib_samples)}
    prog = progs[act_bits]
    say("area" + (" (Yosys synthesis, cached per config)" if synth else ""))
    area = area_of(cfg, tech, synth=synth)
    rep = energy_report(cfg, prog, tech, area)
    cycles, bound = inference_cycles(cfg, prog), array_bound_cycles(cfg, prog)
    u = utilisation(prog, cfg)
    page = Page()
    page.h(1, f"{title} on aoncim: performance report")
    page.p(f"Config `{cfg.config_hash:#010x}`: {cfg.rows} x {cfg.cols} PCM pairs, {cfg.n_adcs} ADCs of {cfg.adc_bits} bits, "
           f"{act_bits}-bit activations, clock {tech.clock_hz / 1e6:g} MHz. {len(prog.layers)} layers "
           f"({len(prog.mvm_layers)} on the array), {prog.mvms} MVMs and {rep.macs:,} MACs per inference.")

    page.h(2, "Summary")
    page.table(["quantity", "value"], [
        ["cycles per inference (cycle model)", f"{cycles:,}"],
        ["array-busy lower bound", f"{bound:,} ({100 * (cycles / bound - 1):.1f} % above it)"],
        ["latency", f"{rep.latency_s * 1e6:.1f} µs ({rep.inferences_per_s:,.0f} inferences/s)"],
        ["energy per inference", f"{rep.energy_j * 1e6:.3f} µJ (dominant: {rep.dominant}, "
                                 f"{100 * rep.by_component[rep.dominant] / rep.energy_j:.0f} %)"],
        ["energy efficiency", f"{rep.tops_w:.2f} TOPS/W" + (f" (paper: {paper[act_bits]:.2f})" if act_bits in paper
                                                            else "")],
        ["throughput", f"{rep.tops:.3f} TOPS, average power {rep.power_w * 1e3:.3f} mW"],
        ["array utilisation", f"{u.cells:,} of {u.array:,} pairs ({100 * u.fraction:.1f} %)"],
        ["area (estimate)", f"{area.total_mm2:.4f} mm² (digital cell counts: "
                            f"{'Yosys' if area.source == 'yosys' else 'the default synthesis'})"],
    ], right=set())

    page.h(2, "Cycles per layer")
    rows = []
    for L in rep.layers:
        d = prog.layers[L.index]
        rows.append([L.index, L.name, L.op, f"{d.out_h}x{d.out_w}x{d.out_c}", d.positions, L.mvms, f"{L.cycles:,}",
                     f"{L.array_cycles:,}", f"{100 * L.array_cycles / L.cycles:.1f}"])
    rows.append(["", "**total**", "", "", "", prog.mvms, f"{cycles:,}", f"{bound:,}", f"{100 * bound / cycles:.1f}"])
    page.table(["#", "layer", "op", "out HxWxC", "positions", "MVMs", "cycles", "array-busy cycles", "array busy %"], rows)
    page.p(f"Array-busy cycles: the PWM window (2**bits cycles) and one conversion per ADC slot of every MVM; "
           f"their sum is the lower bound of any schedule on one crossbar. The schedule takes "
           f"{100 * (cycles / bound - 1):.1f} % more ({cycles - bound:,} cycles); pooling layers never use the array.")

    page.h(2, "Energy")
    say("energy breakdown")
    rows = [[L.index, L.name] + [_nj(L.energy_j[c]) for c in COMPONENTS] + [_nj(L.total_j)] for L in rep.layers]
    by = rep.by_component
    rows.append(["", "**total**"] + [_nj(by[c]) for c in COMPONENTS] + [_nj(rep.energy_j)])
    rows.append(["", "share %"] + [f"{100 * by[c] / rep.energy_j:.1f}" for c in COMPONENTS] + ["100"])
    page.table(["#", "layer"] + list(COMPONENTS) + ["total"], rows)
    page.p("nJ per inference. " + "; ".join(f"`{c}`: {COMPONENT_TITLES[c]}" for c in COMPONENTS)
           + ". Parameters and sources: docs/performance.md and perf/tech.py; `control` and `static` follow the cycle "
           "count.")
    pngs = [plot_energy(rep, out / "energy.png", f"{title}, {act_bits}-bit activations: "
                                                  f"{rep.energy_j * 1e6:.3f} µJ per inference")]
    page.img(pngs[-1], "energy per layer and component")

    page.h(2, "TOPS/W beside the paper" if paper else "TOPS/W per precision")
    table = []
    for b in sorted(paper or cfg.act_bits_supported, reverse=True):
        if b not in cfg.act_bits_supported:
            continue
        if b not in progs:
            say(f"compiling {title} at {b} bits for the TOPS/W table")
            progs[b] = compile_task(task, cfg, b, calib_samples)
        e = energy_report(cfg, progs[b], tech, area)
        if paper:
            r = tops_w_row(task, e)
            table.append([b, f"{r.tops_w:.2f}", f"{r.paper:.2f}", f"{r.ratio:.2f}", f"{r.energy_uj:.3f}",
                          f"{r.cycles:,}", f"{r.dominant} ({100 * r.dominant_share:.0f} %)"])
        else:
            table.append([b, f"{e.tops_w:.2f}", f"{e.energy_j * 1e6:.3f}", f"{e.cycles:,}",
                          f"{e.dominant} ({100 * e.by_component[e.dominant] / e.energy_j:.0f} %)"])
    if paper:
        page.table(["act. bits", "TOPS/W (ours)", "TOPS/W (paper)", "ours / paper", "µJ/inference", "cycles",
                    "dominant component"], table)
        page.p("Paper: AnalogNets / AON-CiM, IEEE Micro 42(6) 2022. ops = 2 · MACs of the MVM layers.")
    else:
        page.table(["act. bits", "TOPS/W", "µJ/inference", "cycles", "dominant component"], table)
        page.p("ops = 2 · MACs (perf/energy.py `layer_macs`).")

    page.h(2, "Placement")
    say("placement picture")
    pngs.append(plot_placement(prog, cfg, out / "placement.png",
                               title=f"{title}: placement on the {cfg.rows} x {cfg.cols} array "
                                     f"({100 * u.fraction:.1f} % of the pairs)"))
    page.img(pngs[-1], "placement of the layers on the array")

    page.h(2, "Accuracy under drift")
    if mlperf_model is not None:
        page.p(f"Not measured: {task} has random weights (batch-norm statistics calibrated on synthetic inputs, "
               "model/mlperf.py); its point is bit-exactness on the chip (`aoncim cosim --model "
               f"{task}`) and the performance above.")
        return _finish(page, out, as_html, title, area, t0, task, pngs, rep)
    say(f"bit-true accuracy at {', '.join(times)} ({samples} samples, {chips} chip(s))")
    accs = drift_accuracy(task, prog, cfg, [TIMES_S[k] for k in times], samples, chips)
    page.table(["time after programming"] + list(times), [["bit-true accuracy %"] + [f"{100 * a:.2f}" for a in accs]])
    page.p(f"Golden bit-true model (model/evaluate.py's bit-true mode) on the first {samples} test inputs of the "
           f"offline set, {chips} simulated PCM chip(s), with the host's drift compensation (α and offset-corrected "
           "biases). A small sample: for the full table use `aoncim eval`.")
    pngs.append(plot_accuracy(list(times), accs, out / "accuracy.png",
                              f"{title}, {act_bits}-bit: {samples} samples, {chips} chip(s), compensated"))
    page.img(pngs[-1], "accuracy under drift")
    return _finish(page, out, as_html, title, area, t0, task, pngs, rep)


def _finish(page: Page, out: Path, as_html: bool, title: str, area, t0: float, task: str, pngs: list[Path],
            rep: EnergyReport) -> ReportResult:
    """The area section, the footer, and the file written."""
    page.h(2, "Area")
    page.table(["part", "µm²", "share %"],
               [[k, f"{v:,.0f}", f"{100 * v / area.total_um2:.1f}"] for k, v in area.um2.items()]
               + [["**total**", f"{area.total_um2:,.0f} ({area.total_mm2:.4f} mm²)", "100"]])
    page.p(f"Digital logic: {area.cells:,} generic cells ({area.flip_flops:,} flip-flops) and {area.sram_bits:,} SRAM "
           f"bits, {'from a Yosys synthesis of this config' if area.source == 'yosys' else 'the default config' + chr(39) + 's synthesis counts (estimate; --synth runs Yosys)'}. "
           "All µm² are estimates from perf/tech.py (generic cells, literature PCM cell and ADC sizes), not a layout.")
    page.p(f"Generated in {time.perf_counter() - t0:.0f} s by `aoncim report {task}`.")

    path = out / ("report.html" if as_html else "report.md")
    path.write_text(page.html(f"{title}: performance report") if as_html else page.markdown())
    return ReportResult(path, pngs, rep, time.perf_counter() - t0)

"""What an image holds, in numbers a user checks: per-layer geometry and placement, array
utilisation and the post-processing constants (`aoncim inspect`). Pure functions of the Program
and its config, and the tables `aoncim inspect` prints (`inspect_report`), built here so the
command line only prints them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from aoncim.config import AonCimConfig
from aoncim.program import Op, Program

from .image import VERSION, section_table


@dataclass(frozen=True)
class LayerSummary:
    index: int
    name: str
    op: str
    shape: str              # "HxWxC->HxWxC", input -> output
    kernel: str             # "KhxKw s<stride> p<pad>", "p<pad_h>x<pad_w>" when they differ, "/z<code>" a pad code
    bits: str               # "in->out"
    rect: tuple[int, int, int, int] | None  # (row0, rows, col0, cols) bounding box; None: no array use
    tiles: int
    mvms: int
    cells: int              # programmed pairs: k_rows x out_c (a tiled layer's spare rows excluded)
    params: tuple[int, int] | None  # first, last post-processing entry
    alpha: int
    shift: int
    scale: tuple[int, int] | None   # min, max of the layer's scale entries
    bias: tuple[int, int] | None

    def utilisation(self, cfg: AonCimConfig) -> float:
        return self.cells / (cfg.rows * cfg.cols)


def _pad(d) -> str:
    """Padding as the kernel column shows it: "1" (pad_h = pad_w), "1x2" (pad_h x pad_w), with
    "/z<code>" when padded positions load a non-zero code (the input's zero point)."""
    pad = f"{d.pad_h}" if d.pad_h == d.pad_w else f"{d.pad_h}x{d.pad_w}"
    return pad + (f"/z{d.pad_code}" if d.pad_code and (d.pad_h or d.pad_w) else "")


def layer_summaries(prog: Program, cfg: AonCimConfig) -> list[LayerSummary]:
    alphas = prog.alphas(cfg)
    out = []
    for i, d in enumerate(prog.layers):
        op = Op.known().get(d.opcode)
        uses_params = op is None or d.op.uses_params  # max pooling passes codes through, no post-processing
        lo, hi = d.param_base, d.param_base + d.out_c
        sc, bi = prog.pp_scale[lo:hi], prog.pp_bias[lo:hi]
        out.append(LayerSummary(
            index=i, name=prog.layer_name(i), op=op or f"?{d.opcode}",
            shape=f"{d.in_h}x{d.in_w}x{d.in_c}->{d.out_h}x{d.out_w}x{d.out_c}",
            kernel=f"{d.k_h}x{d.k_w} s{d.stride} p{_pad(d)}",
            bits=f"{d.in_bits}->{d.out_bits}" + (" out" if d.to_out else ""),
            rect=prog.used_rect(i) if d.is_mvm else None,
            tiles=d.tiles(cfg.rows), mvms=d.mvms(cfg.rows),
            cells=d.k_rows * d.out_c if d.is_mvm else 0,
            params=(lo, hi - 1) if uses_params else None,
            alpha=int(alphas[i]), shift=d.shift,
            scale=(int(sc.min()), int(sc.max())) if uses_params and len(sc) else None,
            bias=(int(bi.min()), int(bi.max())) if uses_params and len(bi) else None))
    return out


@dataclass(frozen=True)
class Utilisation:
    cells: int        # programmed pairs, all layers
    footprint: int    # pairs inside the layers' bounding rectangles (tiles' spare rows included)
    array: int        # rows x cols
    cols_used: int    # columns 0 .. last column any layer occupies

    @property
    def fraction(self) -> float:
        return self.cells / self.array


def utilisation(prog: Program, cfg: AonCimConfig) -> Utilisation:
    rects = [prog.used_rect(i) for i in prog.mvm_layers]
    return Utilisation(
        cells=sum(d.k_rows * d.out_c for d in prog.layers if d.is_mvm),
        footprint=sum(nr * nc for _, nr, _, nc in rects),
        array=cfg.rows * cfg.cols,
        cols_used=max((c0 + nc for _, _, c0, nc in rects), default=0))


def real_scale(prog: Program, i: int) -> tuple[float, float] | None:
    """Min and max of layer i's effective multiplier scale_c / 2**shift (alpha = 1.0)."""
    d = prog.layers[i]
    if not d.op.uses_params:
        return None
    s = np.asarray(prog.pp_scale[d.param_base : d.param_base + d.out_c], dtype=np.float64) / 2.0**d.shift
    return float(s.min()), float(s.max())


# Per-layer tables fit 120 columns (logs, CI) with separators of one space.
_COMPACT = dict(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def _range(v) -> str:
    return "-" if v is None else f"{v[0]}..{v[1]}"


def inspect_report(title: str, blob: bytes, prog: Program, cfg: AonCimConfig) -> list[Table | str]:
    """What `aoncim inspect` prints for a validated image (`blob`, as `read_image` parsed it into
    `prog` and `cfg`), in order: the header table (titled `title`), the per-layer geometry and
    placement, the post-processing constants and the utilisation line."""
    sections = section_table(blob)
    u = utilisation(prog, cfg)
    head = Table(title=title, show_header=False)
    head.add_column("field")
    head.add_column("value")
    for k, v in (("size", f"{len(blob)} bytes"), ("format version", str(VERSION)),
                 ("config hash", f"{cfg.config_hash:#010x}"),
                 ("array", f"{cfg.rows} rows x {cfg.cols} columns, {cfg.n_adcs} ADCs of {cfg.adc_bits} bits, "
                           f"{cfg.gcode_bits}-bit conductance codes"),
                 ("layers", f"{len(prog.layers)} ({len(prog.mvm_layers)} on the array), {prog.mvms} MVMs per inference"),
                 ("sections", ", ".join(f"{sec.name} {n} B @ {o}" for sec, o, n in sections))):
        head.add_row(k, v)

    layers = layer_summaries(prog, cfg)
    t = Table(title="layers (rect: rows x cols @ (row0, col0), a row-tiled layer's bounding box)", **_COMPACT)
    for c in ("#", "name", "op", "in -> out (HxWxC)", "kernel", "bits", "rect", "tiles", "MVMs", "cells", "util %"):
        t.add_column(c, justify="right" if c in ("#", "tiles", "MVMs", "cells", "util %") else "left")
    for L in layers:
        rect = "-" if L.rect is None else f"{L.rect[1]}x{L.rect[3]}@({L.rect[0]},{L.rect[2]})"
        t.add_row(str(L.index), L.name, L.op, L.shape, L.kernel, L.bits, rect, str(L.tiles or "-"), str(L.mvms),
                  str(L.cells), f"{100 * L.utilisation(cfg):.2f}")
    t.add_row("", "total", "", "", "", "", "", "", str(prog.mvms), str(u.cells), f"{100 * u.fraction:.2f}",
              style="bold")

    pp = Table(title=f"post-processing per layer (alpha: 1.0 = {cfg.alpha_one}; effective scale = scale / 2**shift)",
               **_COMPACT)
    for c in ("#", "name", "params", "alpha", "shift", "scale min..max", "effective scale", "bias min..max"):
        pp.add_column(c, justify="right" if c in ("#", "alpha", "shift") else "left")
    for L in layers:
        eff = real_scale(prog, L.index)
        pp.add_row(str(L.index), L.name, _range(L.params), f"{L.alpha / cfg.alpha_one:.4f}", str(L.shift),
                   _range(L.scale), "-" if eff is None else f"{eff[0]:.4g} .. {eff[1]:.4g}", _range(L.bias))
    return [head, t, pp,
            f"array utilisation: {u.cells} of {u.array} cells ({100 * u.fraction:.2f} %); "
            f"footprint {u.footprint} cells ({100 * u.footprint / u.array:.2f} %); "
            f"columns used {u.cols_used} of {cfg.cols}"]


def placement_png(prog: Program, cfg: AonCimConfig, path: str | Path, name: str) -> Path:
    """The placement of every layer of image `name` drawn as a PNG at `path` (matplotlib, imported
    here); returns the path written."""
    from .placement_plot import plot_placement

    u = utilisation(prog, cfg)
    return plot_placement(prog, cfg, Path(path), title=f"{name}: placement on the {cfg.rows} x {cfg.cols} array "
                          f"({100 * u.fraction:.1f} % of the cells)")

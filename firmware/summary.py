"""What an image holds, in numbers a user checks: per-layer geometry and placement, array
utilisation and the post-processing constants (`aoncim inspect`). Pure functions of the Program
and its config; the command line formats them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import Op, Program


@dataclass(frozen=True)
class LayerSummary:
    index: int
    name: str
    op: str
    shape: str              # "HxWxC->HxWxC", input -> output
    kernel: str             # "KhxKw s<stride> p<pad>"
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
            kernel=f"{d.k_h}x{d.k_w} s{d.stride} p{d.pad}",
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

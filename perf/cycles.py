"""Analytical cycle model of the layer-serial schedule (docs/architecture.md, "Schedule"): cycles
of a layer and of an inference exactly as the RTL's CYCLES counter reads them, the array-busy lower
bound, and the cycle at which one output value reaches post-processing (where to look in a
waveform when the scoreboard reports a mismatch).

An MVM layer is a pipeline of three stages advancing in beats (hw/sequencer.py): beat b loads MVM
b (stage L: one cycle per run of up to `load_lanes` codes of one kernel row within one row tile),
integrates and converts MVM b-1 (stage A: 2**in_bits PWM cycles + one per ADC slot), and
post-processes MVM b-2 (stage P: one cycle per `pp_lanes` channels); a beat lasts as long as its
longest stage. A pooling layer has two stages over (position, group of `load_lanes` channels): R
reads the window (k_h*k_w cycles; a layer that folds, `cfg.pool_folds`, is one group whose kernel
rows are read in runs of `load_lanes` codes), S hands the previous group's results to
post-processing (1 + channels / pp_lanes). A residual add (Op.ADD) is one: its window is the 2x1 pair of operands, so
it costs what average pooling with that window costs; so is a depthwise convolution (Op.DWCONV):
its group's weights of a window element are read in the cycle of the element's codes. Padding
(pad_h, pad_w) costs nothing of its own: a padded lane loads in the cycle of its run, a padded
window element in the cycle of its read.
Every layer adds LAYER_START cycles before and LAYER_END after.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Program
from aoncim.schedule import LAYER_END, LAYER_START


def _slots(cfg: AonCimConfig, c0: int, n: int) -> list[tuple[int, int]]:
    """(ADC slot, channels in it) of the columns c0 .. c0+n-1, in conversion order."""
    out: list[tuple[int, int]] = []
    for col in range(c0, c0 + n):
        s = col // cfg.n_adcs
        if out and out[-1][0] == s:
            out[-1] = (s, out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out


def load_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> list[int]:
    """Stage L's cycles per row tile of one output position: runs of at most load_lanes codes, a
    run never crossing a kernel row (k_w * in_c contiguous codes) or a tile's last array row."""
    return list(_load_cycles(cfg.load_lanes, cfg.rows, d.k_w * d.in_c, d.k_rows))


@lru_cache(maxsize=4096)
def _load_cycles(lanes: int, rows: int, seg: int, k_rows: int) -> tuple[int, ...]:
    out, off, r = [], 0, 0
    while r < k_rows:
        rl = cyc = 0
        while r < k_rows and rl < rows:
            n = min(lanes, seg - off, rows - rl)
            cyc, r, rl = cyc + 1, r + n, rl + n
            off = 0 if off + n == seg else off + n
        out.append(cyc)
    return tuple(out)


def array_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> list[int]:
    """Stage A's cycles per row tile: the PWM window and one conversion per ADC slot."""
    return [2**d.in_bits + len(_slots(cfg, c0, d.out_c)) for _, _, _, c0 in d.tile_rects(cfg.rows)]


@dataclass(frozen=True)
class LayerSchedule:
    """One layer's beats: `beats[b]` cycles each, starting LAYER_START cycles into the layer."""
    beats: np.ndarray
    stage_cycles: dict[str, int]  # total cycles each stage works (L/A/P or R/S)

    @property
    def cycles(self) -> int:
        return LAYER_START + int(self.beats.sum()) + LAYER_END


def layer_schedule(cfg: AonCimConfig, d: LayerDescriptor) -> LayerSchedule:
    if d.is_mvm:
        t = d.tiles(cfg.rows)
        n = d.positions * t
        ld = np.tile(np.array(load_cycles(cfg, d)), d.positions)
        ar = np.tile(np.array(array_cycles(cfg, d)), d.positions)
        pp = np.full(n, -(-d.out_c // cfg.pp_lanes))
        beats = np.zeros(n + 2, dtype=np.int64)
        beats[:n] = ld
        beats[1:n + 1] = np.maximum(beats[1:n + 1], ar)
        beats[2:] = np.maximum(beats[2:], pp)
        return LayerSchedule(beats, {"load": int(ld.sum()), "array": int(ar.sum()), "postproc": int(pp.sum())})
    groups = pool_groups(cfg, d)
    u = d.positions * len(groups)
    s = np.tile(-(-np.array(groups) // cfg.pp_lanes) + 1, d.positions)
    reads = pool_reads(cfg, d)
    beats = np.zeros(u + 1, dtype=np.int64)
    beats[:u] = reads
    beats[1:] = np.maximum(beats[1:], s)
    return LayerSchedule(beats, {"read": u * reads, "results": int(s.sum())})


def pool_groups(cfg: AonCimConfig, d: LayerDescriptor) -> list[int]:
    """Channel counts of a pooling-type layer's groups at one position: one group of all channels
    when the layer folds (`cfg.pool_folds`), else groups of `load_lanes` channels."""
    if cfg.pool_folds(d.in_c):
        return [d.in_c]
    w = cfg.load_lanes
    return [min(w, d.in_c - g) for g in range(0, d.in_c, w)]


def pool_reads(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    """Stage R's reads per group: one per window element, or, when the layer folds, per kernel
    row its k_w*C codes in runs of at most load_lanes."""
    if cfg.pool_folds(d.in_c):
        return d.k_h * -(-d.k_w * d.in_c // cfg.load_lanes)
    return d.k_h * d.k_w


def layer_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    return layer_schedule(cfg, d).cycles


def inference_cycles(cfg: AonCimConfig, prog: Program) -> int:
    """The CYCLES register after an inference (pauses of step mode are not counted)."""
    return sum(layer_cycles(cfg, d) for d in prog.layers)


def layer_array_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    """Cycles the crossbar is busy in a layer: per MVM (output position and row tile) the PWM
    window of 2**in_bits cycles and one ADC conversion per slot the tile's columns touch. Pooling
    layers do not use the array."""
    return d.positions * sum(array_cycles(cfg, d)) if d.is_mvm else 0


def array_bound_cycles(cfg: AonCimConfig, prog: Program) -> int:
    """The array-busy lower bound of an inference: no schedule on one crossbar can be shorter."""
    return sum(layer_array_cycles(cfg, d) for d in prog.layers)


def postproc_cycle(cfg: AonCimConfig, prog: Program, layer: int, y: int, x: int, c: int) -> int:
    """Cycle, counted from START with pauses excluded (the CYCLES register's count), in which
    output (y, x, c) of `layer` is at the post-processor's input; it is in its memory one cycle
    later."""
    start = sum(layer_cycles(cfg, d) for d in prog.layers[:layer]) + LAYER_START
    d = prog.layers[layer]
    sched = layer_schedule(cfg, d)
    p = y * d.out_w + x
    q = cfg.pp_lanes
    if d.is_mvm:
        beat = p * d.tiles(cfg.rows) + d.tiles(cfg.rows) - 1 + 2  # P works on MVM b-2
        return start + int(sched.beats[:beat].sum()) + c // q + 2  # issue, code sum, PP input
    w = cfg.load_lanes
    groups = len(pool_groups(cfg, d))
    beat = p * groups + c // w + 1                                   # S works on group b-1
    return start + int(sched.beats[:beat].sum()) + 1 + (c % w) // q + 1  # landing, issue, PP input

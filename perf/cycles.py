"""The sequencer's schedule (docs/architecture.md, "Schedule") as numbers: cycles of a layer and of
an inference, and the cycle at which one output value goes through post-processing -- where to
look in a waveform when the scoreboard reports a mismatch."""
from __future__ import annotations

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Program

LAYER_START = 3  # FETCH, DECODE, CHECK


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


def position_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    """Cycles of one output position of an MVM layer (all its row tiles)."""
    n = d.k_rows  # LOAD: every im2col row once, whatever tile it is in
    for _, _, _, c0 in d.tile_rects(cfg.rows):
        n += 2**d.in_bits + len(_slots(cfg, c0, d.out_c)) + d.out_c + 1  # PWM, CONVERT, POSTPROC, NEXT
    return n


def layer_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    if d.is_mvm:
        return LAYER_START + d.positions * position_cycles(cfg, d) + 2
    return LAYER_START + d.positions * d.out_c * d.k_h * d.k_w + 3


def inference_cycles(cfg: AonCimConfig, prog: Program) -> int:
    """The CYCLES register after an inference (pauses of step mode are not counted)."""
    return sum(layer_cycles(cfg, d) for d in prog.layers)


def postproc_cycle(cfg: AonCimConfig, prog: Program, layer: int, y: int, x: int, c: int) -> int:
    """Cycle, counted from START with pauses excluded (the CYCLES register's count), in which
    output (y, x, c) of `layer` enters post-processing; it is written two cycles later."""
    start = sum(layer_cycles(cfg, d) for d in prog.layers[:layer])
    d = prog.layers[layer]
    p = y * d.out_w + x
    if not d.is_mvm:
        window = d.k_h * d.k_w
        return start + LAYER_START + (p * d.out_c + c) * window + window
    t = start + LAYER_START + p * position_cycles(cfg, d) + d.k_rows
    tiles = d.tile_rects(cfg.rows)
    for _, _, _, c0 in tiles[:-1]:
        t += 2**d.in_bits + len(_slots(cfg, c0, d.out_c)) + d.out_c + 1
    c0 = tiles[-1][3]
    t += 2**d.in_bits
    slot = (c0 + c) // cfg.n_adcs
    first = c0
    for s, n in _slots(cfg, c0, d.out_c):
        if s == slot:
            return t + 1 + (c0 + c - first)
        t += 1 + n
        first += n
    raise AssertionError("channel outside the layer's columns")


def layer_array_cycles(cfg: AonCimConfig, d: LayerDescriptor) -> int:
    """Cycles the crossbar is busy in a layer: per MVM (output position and row tile) the PWM
    window of 2**in_bits cycles and one ADC conversion per slot the tile's columns touch. Pooling
    layers do not use the array."""
    if not d.is_mvm:
        return 0
    return d.positions * sum(2**d.in_bits + len(_slots(cfg, c0, d.out_c)) for _, _, _, c0 in d.tile_rects(cfg.rows))


def array_bound_cycles(cfg: AonCimConfig, prog: Program) -> int:
    """The array-busy lower bound of an inference: no schedule on one crossbar can be shorter."""
    return sum(layer_array_cycles(cfg, d) for d in prog.layers)

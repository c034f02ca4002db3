"""Random small network *graphs* for randomised co-simulation: what a sequential random network
(sim/random_nets.py) cannot be. Deterministic in one seed.

A graph has a stem convolution (2-D, or a 1 x k "Conv1d" on a 1 x L map with padding beside it
only), then blocks drawn from: a residual block (conv, batch norm, activation, conv, batch norm, add
of the block input or of a 1x1 projection of it, activation), a depthwise-separable block (a
depthwise conv, groups = channels, and a pointwise conv), a grouped conv, pooling; then global
average pooling or a flatten, and a linear layer. Inputs are signed (zero point inside the code
range, padding loads it) or unsigned; activations are ReLU, ReLU6 (an exact clamp), hard-tanh, or
none (signed maps with a zero point). The graph is compiled by the real compiler for the small
random config (sim/random_nets.RANDOM_CFG), and then what the compiler keeps regular is moved:
placement, parameter blocks, alpha (by the caller's `moves`: sim/random_nets.py draws the cases
and owns the moves). The golden model and the RTL must agree on every integer.
"""
from __future__ import annotations

import numpy as np
import torch

from aoncim.config import AonCimConfig
from aoncim.firmware.graph import Graph, Node
from aoncim.program import ProgramError

_ATTEMPTS = 200

ACTS = ("relu", "relu6", "hardtanh", "none")


class _Builder:
    """Appends nodes and tracks the (C, H, W) map and the chip-layer budget."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int]):
        self.rng, self.nodes, self.shape, self.layers = rng, [], shape, 0
        self.cur = "x"

    def _name(self, what: str) -> str:
        return f"{what}{len(self.nodes)}"

    def add(self, op: str, inputs: list[str], attrs: dict | None = None, what: str | None = None) -> str:
        name = self._name(what or op)
        self.nodes.append(Node(name, op, inputs, name, attrs or {}))
        return name

    def conv(self, src: str, c_in: int, c_out: int, k: tuple[int, int], stride: int, pad: tuple[int, int],
             groups: int = 1) -> str:
        r = self.rng
        w = r.normal(0, 1.5 / np.sqrt(c_in // groups * k[0] * k[1]), (c_out, c_in // groups, *k))
        self.layers += 1
        return self.add("conv", [src], dict(weight=w, bias=r.normal(0, 0.2, c_out) if r.random() < 0.7 else None,
                                            stride=(stride, stride), pad=pad, groups=groups))

    def bn(self, src: str, c: int) -> str:
        r = self.rng
        return self.add("batchnorm", [src], dict(gamma=r.uniform(0.4, 1.6, c) * r.choice([-1, 1], c, p=[0.15, 0.85]),
                                                 beta=r.normal(0, 0.3, c), mean=r.normal(0, 0.3, c),
                                                 var=r.uniform(0.3, 2.0, c), eps=1e-5))

    def act(self, src: str, kind: str) -> str:
        lo, hi = {"relu": (0.0, np.inf), "relu6": (0.0, 6.0), "hardtanh": (-1.0, 1.0)}.get(kind, (None, None))
        return src if lo is None else self.add("clamp", [src], dict(lo=lo, hi=hi), what=kind)


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def random_graph(rng: np.random.Generator, cfg: AonCimConfig) -> tuple[Graph, bool]:
    """A graph for `cfg` and whether its input is signed."""
    one_d = rng.random() < 0.3
    c = int(rng.integers(1, 5))
    h, w = (1, int(rng.integers(8, 25))) if one_d else (int(rng.integers(3, 9)),) * 2
    b = _Builder(rng, (c, h, w))
    signed = bool(rng.random() < 0.5)
    # stem
    k = (1, int(rng.integers(2, 5))) if one_d else (int(rng.integers(1, 4)),) * 2
    s = int(rng.integers(1, 3))
    pad = (0, int(rng.integers(0, k[1]))) if one_d else (int(rng.integers(0, k[0])),) * 2
    ch = int(rng.integers(2, 7))
    cur = b.conv("x", c, ch, k, s, pad)
    h, w = _out(h, k[0], s, pad[0]), _out(w, k[1], s, pad[1])
    if rng.random() < 0.6:
        cur = b.bn(cur, ch)
    cur = b.act(cur, str(rng.choice(ACTS, p=[0.5, 0.2, 0.1, 0.2])))
    budget = cfg.max_layers - 2  # the head: pooling and a linear layer
    blocks = list(rng.permutation(["residual", "depthwise", "grouped", "pool"]))
    for kind in blocks:
        kh, ph = (1, 0) if h == 1 else (3, 1)
        if kind == "residual" and b.layers + 3 <= budget:
            project = rng.random() < 0.4
            if project and b.layers + 4 > budget:
                project = False
            skip = b.conv(cur, ch, ch, (1, 1), 1, (0, 0)) if project else cur
            m = b.conv(cur, ch, ch, (kh, 3), 1, (ph, 1))
            m = b.act(b.bn(m, ch), str(rng.choice(["relu", "relu6", "none"])))
            m = b.bn(b.conv(m, ch, ch, (kh, 3), 1, (ph, 1)), ch)
            a = b.add("add", [m, skip] if rng.random() < 0.5 else [skip, m])
            b.layers += 1
            cur = b.act(a, str(rng.choice(["relu", "relu6", "none"], p=[0.6, 0.2, 0.2])))
        elif kind == "depthwise" and b.layers + 2 <= budget:
            m = b.act(b.bn(b.conv(cur, ch, ch, (kh, 3), 1, (ph, 1), groups=ch), ch), "relu")
            ch2 = int(rng.integers(2, 9))
            cur = b.act(b.bn(b.conv(m, ch, ch2, (1, 1), 1, (0, 0)), ch2), str(rng.choice(["relu", "relu6"])))
            ch = ch2
        elif kind == "grouped" and b.layers + 1 <= budget and ch % 2 == 0:
            g = 2
            ch2 = 2 * int(rng.integers(1, 4))
            cur = b.act(b.conv(cur, ch, ch2, (kh, 3), 1, (ph, 1), groups=g), "relu")
            ch = ch2
        elif kind == "pool" and b.layers + 1 <= budget and w >= 2:
            kp = (1, 2) if h == 1 else (2, 2)
            op = str(rng.choice(["maxpool", "avgpool"]))
            cur = b.add(op, [cur], dict(kernel=kp, stride=(2, 2)))
            h, w = _out(h, kp[0], 2, 0), _out(w, kp[1], 2, 0)
            b.layers += 1
    if rng.random() < 0.6 and h * w > 1:
        cur = b.add("gap", [cur])
    cur = b.add("flatten", [cur])
    n_in = ch * (1 if b.nodes[-2].op == "gap" else h * w)
    classes = int(rng.integers(2, 7))
    out = b.add("linear", [cur], dict(weight=rng.normal(0, 1.0 / np.sqrt(n_in), (classes, n_in)),
                                       bias=rng.normal(0, 0.1, classes)))
    return Graph("x", b.shape, b.nodes, out, source="random graph"), signed


def random_graph_program(seed: int, cfg: AonCimConfig, act_bits: int | None = None, n_inputs: int = 1,
                         moves=None) -> tuple:
    """(program, input codes, read-noise seeds, notes) of graph seed `seed`: a legal program for
    `cfg` compiled from a random graph (`act_bits` forces the precision); `moves(prog, cfg, rng)` ->
    (prog, notes) moves what the compiler keeps regular (None: nothing moved)."""
    from aoncim.firmware.compiler import CompileError, compile_graph

    rng = np.random.default_rng([0x96A9, seed])
    for _ in range(_ATTEMPTS):
        r = np.random.default_rng(int(rng.integers(0, 2**63)))
        bits = act_bits if act_bits is not None else int(r.choice((8, 6, 4)))
        graph, signed = random_graph(r, cfg)
        c, h, w = graph.input_shape
        calib = torch.from_numpy(r.normal(0, 1, (16, c, h, w)) if signed else r.random((16, c, h, w)))
        try:
            prog = compile_graph(graph, cfg, calib, act_bits=bits)
        except (CompileError, ProgramError):
            continue
        notes = ["graph"]
        if moves is not None:
            prog, moved = moves(prog, cfg, r)
            notes += moved
        prog.check(cfg)
        d0 = prog.layers[0]
        inputs = [r.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(n_inputs)]
        seeds = [int(v) for v in r.integers(0, 2**32, n_inputs)]
        return prog, inputs, seeds, notes
    raise RuntimeError(f"seed {seed}: no graph of {_ATTEMPTS} drawn fits {cfg}")

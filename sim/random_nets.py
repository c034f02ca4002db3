"""Random small networks for randomised co-simulation, deterministic in one seed.

`random_case(seed)` draws a network (conv, linear, max pool, average pool and global average
pooling layers with random kernels, strides 1-2, padding, channel counts and batch norm), compiles
it for a small-rows config (`RANDOM_CFG`: 32 rows, so about a quarter of the MVM layers have more
im2col rows than the array and are row-tiled), and then randomises what the compiler would keep regular: the array
placement of every layer's rectangle, the post-processing parameter blocks (with junk between
them), the activation banks and base addresses, per-layer drift-compensation alpha and, unless a
precision is forced, per-layer precision (8/6/4 bits, changing between layers). From a stream of
its own (so that the other draws stay as they were): one MVM layer padded differently above and
beside (pad_h != pad_w, the later layers' geometry re-derived, `_asymmetric_pad`) and the pad code
of padded MVM layers (any code of the layer's input bits: padded positions load it, as the golden
model pads with it; `_pad_codes`). From another stream of its own: a depthwise convolution
(Op.DWCONV, which the compiler does not emit) inserted before a random layer, with a random kernel,
stride, padding (pad_h = pad_w or not) and pad code, random DWW weights at a random w_base and
post-processing fitted on the golden model (`_depthwise`). The input codes and read-noise seeds come
from the same seed.
Everything is legal (`Program.check`); the golden model and the RTL must agree on every integer.

Half the cases are "rails" cases (`_rails`, drawn from a stream of their own so the others stay
as they were): the same network with columns driven past both ADC rails, row tiles all on one rail,
depthwise channels whose weights are all at the most negative or the largest weight, exact ADC and
post-processing rounding ties and post-processing clamps on both sides, with the
rail codes on output steps of their own, so that a clamp one code short changes a layer's output
(the datapath bins of sim/coverage.py).

A case is replayed by its seed alone: `replay_command(seed)` is the one-line command
(`aoncim cosim --model random --seed SEED --inputs 1`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Op, Program, ProgramError

from .random_graphs import random_graph_program

# Small rows so that row tiling (fan-in > rows) is the rule; one Verilator build serves every case:
# programs, inputs and descriptors are loaded over the bus.
# A small DWW (the depthwise layers' weights are at most 3x3 x 12 channels) keeps the whole-memory check short.
# 16 load lanes (at most rows) and 4 post-processing lanes: more than one load run per kernel row and
# row tile, pooling groups and folds (C = 8) on the small maps.
RANDOM_CFG = AonCimConfig(rows=32, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, max_layers=8,
                          dw_depth=512, load_lanes=16, pp_lanes=4)
BITS = (8, 6, 4)
_ATTEMPTS = 200
ASYMMETRIC_PAD_P = 0.5  # probability that a case has a layer with pad_h != pad_w (where one can)
PAD_CODE_P = 0.6        # probability that a case's padded MVM layers may load non-zero pad codes
DWCONV_P = 0.5          # probability that a case has a depthwise layer inserted (where one fits)


@dataclass
class RandomCase:
    seed: int
    prog: Program
    inputs: list[np.ndarray]
    noise_seeds: list[int]
    act_bits: int | None          # the forced precision, or None (drawn from the seed)
    randomised: list[str] = field(default_factory=list)  # what was moved off the compiler's choice

    @property
    def name(self) -> str:
        return f"random-{self.seed}"

    def describe(self, rows: int) -> str:
        """One line: input shape and every layer (kind, kernel/stride/padding, channels, tiles, bits)."""
        from .coverage import layer_kind

        p, parts = self.prog, []
        for d in p.layers:
            kind = layer_kind(d)
            geo = "" if kind in ("linear", "global-avgpool") else f"{d.k_h}x{d.k_w}/s{d.stride}" + _pad_text(d)
            ch = f" {d.in_c}->{d.out_c}" if d.is_mvm else f" {d.in_c}"
            tiles = f" T{d.tiles(rows)}" if d.is_mvm and d.tiles(rows) > 1 else ""
            bits = f" {d.in_bits}b" if d.in_bits == d.out_bits else f" {d.in_bits}->{d.out_bits}b"
            parts.append(f"{kind}{' ' + geo if geo else ''}{ch}{tiles}{bits}")
        d0 = p.layers[0]
        extra = f"; random {', '.join(self.randomised)}" if self.randomised else ""
        return f"seed {self.seed}: input {d0.in_h}x{d0.in_w}x{d0.in_c}: " + " | ".join(parts) + extra


def _pad_text(d: LayerDescriptor) -> str:
    """"/p1" (pad_h = pad_w), "/p1x2" (pad_h x pad_w), "/z<code>" for a non-zero pad code; "" unpadded."""
    if not (d.pad_h or d.pad_w):
        return ""
    pad = f"/p{d.pad_h}" if d.pad_h == d.pad_w else f"/p{d.pad_h}x{d.pad_w}"
    return pad + (f"/z{d.pad_code}" if d.pad_code else "")


def replay_command(seed: int, act_bits: int | None = None, config_path: str | None = None) -> str:
    cmd = f"aoncim cosim --model random --seed {seed} --inputs 1"
    if act_bits is not None:
        cmd += f" --act-bits {act_bits}"
    if config_path:
        cmd += f" --config {config_path}"
    return cmd


# ------------------------------------------------------------------------------------ networks
def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _random_net(rng: np.random.Generator, cfg: AonCimConfig) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """A sequential net and its input shape (C, H, W): chip layers in 1..max_layers, the last one
    a conv or linear layer."""
    c, h, w = int(rng.integers(1, 7)), int(rng.integers(2, 11)), int(rng.integers(2, 11))
    while c * h * w > cfg.act_depth:
        c = max(1, c // 2)
        h = max(2, h - 1)
    shape = (c, h, w)
    n_layers = int(rng.integers(1, min(cfg.max_layers, 6) + 1))
    mods: list[nn.Module] = []
    flat = False
    for i in range(n_layers):
        last = i == n_layers - 1
        if flat:  # after a linear layer the map is 1 x 1: only linear layers follow, and not many
            if rng.random() < 0.6:
                break
            kind = "linear"
        elif last:
            kind = str(rng.choice(["conv", "linear"], p=[0.6, 0.4]))
        else:
            kind = str(rng.choice(["conv", "linear", "maxpool", "avgpool", "gap"], p=[0.5, 0.1, 0.15, 0.15, 0.1]))
        if kind in ("maxpool", "avgpool") and (h < 2 and w < 2):
            kind = "conv"
        if kind == "gap" and h * w == 1:
            kind = "conv"
        if kind == "conv":
            kh = int(rng.integers(1, 4))
            kw = kh if rng.random() < 0.8 else int(rng.integers(1, 4))
            s = int(rng.integers(1, 3))
            p = int(rng.integers(0, max(kh, kw)))  # pad < kernel: every output sees the input
            p = min(p, 2)
            if _out(h, kh, s, p) < 1 or _out(w, kw, s, p) < 1:
                kh = kw = 1
            oc = int(rng.integers(1, 13))
            mods.append(nn.Conv2d(c, oc, (kh, kw), stride=s, padding=p, bias=bool(rng.random() < 0.8)))
            h, w, c = _out(h, kh, s, p), _out(w, kw, s, p), oc
            if rng.random() < 0.3:
                mods.append(nn.BatchNorm2d(oc))
        elif kind == "linear":
            if not flat:
                mods.append(nn.Flatten())
            oc = int(rng.integers(1, 11))
            mods.append(nn.Linear(c * h * w, oc, bias=bool(rng.random() < 0.8)))
            h, w, c, flat = 1, 1, oc, True
            if rng.random() < 0.3:
                mods.append(nn.BatchNorm1d(oc))
        elif kind in ("maxpool", "avgpool"):
            kh, kw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
            if kh * kw == 1:
                kh, kw = min(h, 2), min(w, 2)
            s = int(rng.integers(1, 3))
            pool = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
            mods.append(pool((kh, kw), stride=s))
            h, w = _out(h, kh, s, 0), _out(w, kw, s, 0)
        else:
            mods.append(nn.AdaptiveAvgPool2d(1))
            h = w = 1
        if kind in ("conv", "linear") and rng.random() < (0.2 if last else 0.8):
            mods.append(nn.ReLU())
    net = nn.Sequential(*mods)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.3, n)))
            m.running_var.copy_(torch.from_numpy(rng.uniform(0.2, 2.0, n)))
            m.weight.data.copy_(torch.from_numpy(rng.uniform(0.3, 2.0, n) * rng.choice([-1, 1], n)))
            m.bias.data.copy_(torch.from_numpy(rng.normal(0, 0.3, n)))
    return net, shape


# ------------------------------------------------------------------------------ randomisation
def _relocate_rects(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program | None:
    """Every MVM layer's rectangle at a random free place (a row-tiled layer from row 0)."""
    taken = np.zeros((cfg.rows, cfg.cols), dtype=bool)
    gp, gm = np.zeros_like(prog.g_plus), np.zeros_like(prog.g_minus)
    layers = list(prog.layers)
    for i in rng.permutation(prog.mvm_layers):
        i = int(i)
        r0, nr, c0, nc = prog.used_rect(i)
        for _ in range(_ATTEMPTS):
            row0 = 0 if layers[i].tiles(cfg.rows) > 1 else int(rng.integers(0, cfg.rows - nr + 1))
            col0 = int(rng.integers(0, cfg.cols - nc + 1))
            if not taken[row0 : row0 + nr, col0 : col0 + nc].any():
                break
        else:
            return None
        taken[row0 : row0 + nr, col0 : col0 + nc] = True
        gp[row0 : row0 + nr, col0 : col0 + nc] = prog.g_plus[r0 : r0 + nr, c0 : c0 + nc]
        gm[row0 : row0 + nr, col0 : col0 + nc] = prog.g_minus[r0 : r0 + nr, c0 : c0 + nc]
        layers[i] = dataclasses.replace(layers[i], row0=row0, col0=col0)
    return dataclasses.replace(prog, layers=layers, g_plus=gp, g_minus=gm)


def _relocate_params(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program | None:
    """The post-processing blocks in a random order with random gaps of junk between them."""
    users = [i for i, d in enumerate(prog.layers) if d.op.uses_params]
    need = sum(prog.layers[i].out_c for i in users)
    spare = cfg.param_depth - need
    if spare < 0:
        return None
    gaps = rng.multinomial(int(rng.integers(0, spare + 1)), np.ones(len(users) + 1) / (len(users) + 1))
    lim_s, lim_b = 2 ** (cfg.pp_scale_bits - 1) - 1, 2 ** (cfg.pp_bias_bits - 1) - 1
    n = need + int(gaps[:-1].sum())
    scale = rng.integers(-lim_s, lim_s + 1, n)
    bias = rng.integers(-lim_b, lim_b + 1, n)
    layers, pos = list(prog.layers), 0
    for gap, i in zip(gaps, rng.permutation(users)):
        d = layers[int(i)]
        pos += int(gap)
        scale[pos : pos + d.out_c] = prog.pp_scale[d.param_base : d.param_base + d.out_c]
        bias[pos : pos + d.out_c] = prog.pp_bias[d.param_base : d.param_base + d.out_c]
        layers[int(i)] = dataclasses.replace(d, param_base=pos)
        pos += d.out_c
    return dataclasses.replace(prog, layers=layers, pp_scale=scale, pp_bias=bias)


def _relocate_acts(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program | None:
    """Random activation banks and base addresses, each layer reading what the previous one wrote."""
    layers = list(prog.layers)
    d0 = layers[0]
    size = d0.in_h * d0.in_w * d0.in_c
    bank, base = int(rng.integers(0, 2)), int(rng.integers(0, cfg.act_depth - size + 1))
    for i, d in enumerate(layers):
        in_size = d.in_h * d.in_w * d.in_c
        out_size = d.positions * d.out_c
        if d.to_out:
            ob, obase = 0, int(rng.integers(0, cfg.out_depth - out_size + 1))
        else:
            for _ in range(_ATTEMPTS):
                ob, obase = int(rng.integers(0, 2)), int(rng.integers(0, cfg.act_depth - out_size + 1))
                if ob != bank or obase + out_size <= base or base + in_size <= obase:
                    break
            else:
                return None
        layers[i] = dataclasses.replace(d, in_bank=bank, in_base=base, out_bank=ob, out_base=obase)
        bank, base = ob, obase
    return dataclasses.replace(prog, layers=layers)


def _mixed_precision(prog: Program, cfg: AonCimConfig, rng: np.random.Generator, compiled_bits: int) -> Program:
    """Per-layer precision: every layer but max pooling may change bits at its output; its shift
    moves with it so that the codes keep their range (the next layer's ADC gain steps with its
    input bits, contract step 5), and so does the next layer's pad code."""
    layers = list(prog.layers)
    bits = int(rng.choice(BITS))
    for i, d in enumerate(layers):
        out = bits if d.op.keeps_bits or d.to_out else int(rng.choice(BITS))
        shift = d.shift
        if not d.op.keeps_bits and not d.to_out:
            shift = int(np.clip(shift + compiled_bits - out, 0, cfg.pp_shift_max))
        # A padded layer's pad code (the compiler's zero point of its input) moves with the input's bits.
        pad_code = min(d.pad_code >> max(0, d.in_bits - bits) << max(0, bits - d.in_bits), (1 << bits) - 1)
        layers[i] = dataclasses.replace(d, in_bits=bits, out_bits=out if not d.to_out else d.out_bits, shift=shift,
                                        pad_code=pad_code)
        bits = out
    return dataclasses.replace(prog, layers=layers, calib_codes=None)


def _asymmetric_pad(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program | None:
    """One MVM layer padded differently above and below than beside (a row-tiled or strided one
    if there is one, most of the time): the padding of one axis redrawn (0 .. min(kernel side, 2),
    a value that differs from the other axis's). Its output map changes size, so every later layer
    keeps its kernel, stride and padding and takes the new map as its input (a layer whose kernel
    was the whole input may slide now), and the activations are laid out anew (`_relocate_acts`:
    each layer reads what the previous one wrote; random nets are sequential). None if no layer can
    take it or the result does not fit the chip."""
    layers = list(prog.layers)
    # Row-tiled and strided layers first, most of the time: their crosses with padding are the rarest.
    order = sorted(rng.permutation(prog.mvm_layers), key=lambda i: -(layers[i].tiles(cfg.rows) > 1) -
                   (layers[i].stride > 1)) if rng.random() < 0.7 else rng.permutation(prog.mvm_layers)
    for i in order:
        i, d = int(i), layers[int(i)]
        for axis in rng.permutation(["h", "w"]):
            k, other = (d.k_h, d.pad_w) if axis == "h" else (d.k_w, d.pad_h)
            cur = d.pad_h if axis == "h" else d.pad_w
            choices = [p for p in range(min(k, 2) + 1) if p not in (cur, other)]
            if choices:
                break
        else:
            continue
        p = int(rng.choice(choices))
        layers[i] = dataclasses.replace(d, **({"pad_h": p} if axis == "h" else {"pad_w": p}))
        for j in range(i, len(layers)):
            e = layers[j]
            if j > i:
                e = dataclasses.replace(e, in_h=layers[j - 1].out_h, in_w=layers[j - 1].out_w)
            out_h, out_w = _out(e.in_h, e.k_h, e.stride, e.pad_h), _out(e.in_w, e.k_w, e.stride, e.pad_w)
            depth = cfg.out_depth if e.to_out else cfg.act_depth
            if min(out_h, out_w) < 1 or e.in_h * e.in_w * e.in_c > cfg.act_depth or out_h * out_w * e.out_c > depth:
                return None
            layers[j] = dataclasses.replace(e, out_h=out_h, out_w=out_w)
        moved = _relocate_acts(dataclasses.replace(prog, layers=layers), cfg, rng)
        try:
            if moved is not None:
                moved.check(cfg)
        except ProgramError:
            return None
        return moved
    return None


def _pad_codes(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program:
    """Padded MVM layers load a random non-zero pad code (the input's zero point of a signed map
    stored offset-binary), any code of the layer's input bits, three in four of them."""
    layers = [dataclasses.replace(d, pad_code=int(rng.integers(1, 1 << d.in_bits)))
              if d.is_mvm and (d.pad_h or d.pad_w) and rng.random() < 0.75 else d for d in prog.layers]
    return dataclasses.replace(prog, layers=layers)


def _rederive(layers: list[LayerDescriptor], i: int, cfg: AonCimConfig) -> list[LayerDescriptor] | None:
    """Layers i.. with their output sizes re-derived from their (possibly changed) input maps, each
    later layer keeping its kernel, stride and padding and taking the map before it as its input;
    None if a map no longer fits the chip or a kernel no longer fits its map."""
    layers = list(layers)
    for j in range(i, len(layers)):
        e = layers[j]
        if j > i:
            e = dataclasses.replace(e, in_h=layers[j - 1].out_h, in_w=layers[j - 1].out_w)
        out_h, out_w = _out(e.in_h, e.k_h, e.stride, e.pad_h), _out(e.in_w, e.k_w, e.stride, e.pad_w)
        depth = cfg.out_depth if e.to_out else cfg.act_depth
        if min(out_h, out_w) < 1 or e.in_h * e.in_w * e.in_c > cfg.act_depth or out_h * out_w * e.out_c > depth:
            return None
        layers[j] = dataclasses.replace(e, out_h=out_h, out_w=out_w)
    return layers


def _depthwise(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program | None:
    """A depthwise convolution (Op.DWCONV) inserted before a random layer i > 0 (layer 0 keeps the
    network input, where the rails cases plant their exact ADC corners), on the map layer i read
    (bits kept): kernel 1-3 on each axis, stride 1-2, no padding, pad_h = pad_w or pad_h !=
    pad_w (0-2), a random pad code on half of the padded ones; k_h*k_w*C random weights of the full
    signed range at a random w_base of a DWW of random junk; its post-processing entries after the
    program's, fitted on the golden model (random inputs of this stream) so that each channel's
    window sums spread over the output codes. Layer i and the later ones take the new map as their
    input (`_rederive`), the activations are laid out anew (`_relocate_acts`). None if it does not
    fit the chip."""
    from aoncim.model.bittrue import BitTrueExecutor

    layers = list(prog.layers)
    if len(layers) < 2:
        return None
    i = int(rng.integers(1, len(layers)))
    e = layers[i]
    k_h, k_w, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    pad = int(rng.integers(3))   # none, pad_h = pad_w, pad_h != pad_w: the coverage bins alike
    pad_h, pad_w = (0, 0) if pad == 0 else (int(rng.integers(1, 3)),) * 2 if pad == 1 else \
        tuple(int(p) for p in rng.choice(3, 2, replace=False))
    c, bits = e.in_c, e.in_bits
    pad_code = int(rng.integers(1, 1 << bits)) if pad and rng.random() < 0.5 else 0
    n_w, base = k_h * k_w * c, len(prog.pp_scale)
    if n_w > cfg.dw_depth or base + c > cfg.param_depth:
        return None
    dw = rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1, cfg.dw_depth) if prog.dw_weights is None \
        else np.array(prog.dw_weights, dtype=np.int64)
    w_base = int(rng.integers(0, cfg.dw_depth - n_w + 1))
    dw[w_base : w_base + n_w] = rng.integers(-cfg.dw_max - 1, cfg.dw_max + 1, n_w)
    shift = 12
    d = LayerDescriptor(opcode=Op.DWCONV.value, in_bits=bits, out_bits=bits, stride=stride, pad_h=pad_h, pad_w=pad_w,
                        pad_code=pad_code, relu=0, to_out=0, in_bank=e.in_bank, out_bank=e.in_bank, shift=shift,
                        in_h=e.in_h, in_w=e.in_w, in_c=c, k_h=k_h, k_w=k_w, out_h=_out(e.in_h, k_h, stride, pad_h),
                        out_w=_out(e.in_w, k_w, stride, pad_w), out_c=c, k_rows=0, row0=0, col0=0, param_base=base,
                        in_base=e.in_base, out_base=0, w_base=w_base)
    if min(d.out_h, d.out_w) < 1:
        return None
    layers = _rederive(layers[:i] + [d] + layers[i:], i, cfg)
    if layers is None:
        return None
    alpha = None if prog.alpha is None else np.insert(np.asarray(prog.alpha, dtype=np.int64), i,
                                                       cfg.alpha_one if rng.random() < 0.5 else
                                                       int(rng.integers(cfg.alpha_one // 2, 2 * cfg.alpha_one)))
    names = list(prog.names)
    names.insert(i, f"{i}:DWConv")
    calib = None if prog.calib_codes is None else prog.calib_codes[:i] + [np.zeros(0, np.int64)] + prog.calib_codes[i:]
    out = dataclasses.replace(prog, layers=layers, names=names, alpha=alpha, calib_codes=calib, dw_weights=dw,
                              pp_scale=np.concatenate([prog.pp_scale, np.ones(c, np.int64)]).astype(np.int64),
                              pp_bias=np.concatenate([prog.pp_bias, np.zeros(c, np.int64)]).astype(np.int64))
    out = _relocate_acts(out, cfg, rng)
    if out is None:
        return None
    try:
        out.check(cfg)
    except ProgramError:
        return None
    # Scale and bias per channel: the window sums of random inputs onto 1 .. 2**bits - 2.
    d0 = out.layers[0]
    x = rng.integers(0, 1 << d0.in_bits, (8, d0.in_h, d0.in_w, d0.in_c))
    sums = BitTrueExecutor(cfg, out).run_batch(x, [int(s) for s in rng.integers(0, 2**32, 8)])[i].sums
    lim = (1 << (cfg.pp_scale_bits - 1)) - 1
    for ch in range(c):
        lo, hi = int(sums[..., ch].min()), int(sums[..., ch].max())
        scale = max(1, min(lim, round(((1 << bits) - 3) * (1 << shift) / max(hi - lo, 1))))
        out.pp_scale[base + ch], out.pp_bias[base + ch] = scale, (1 << shift) - lo * scale
    try:
        out.check(cfg)
    except ProgramError:
        return None
    return out


def _random_alpha(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program:
    one = cfg.alpha_one
    hi = min(2 * one, (1 << cfg.alpha_bits) - 1)
    alpha = np.where(rng.random(len(prog.layers)) < 0.7, rng.integers(one // 2, hi + 1, len(prog.layers)), one)
    return dataclasses.replace(prog, alpha=alpha.astype(np.int64))


# --------------------------------------------------------------------------------------- rails
# Random weights and inputs keep the ADC well inside its range: over the default suite's networks
# the largest |code| was 52-123 against a clamp of 127, so a wrong clamp, rounding or rail survived
# the co-simulation. A "rails" case keeps its network and moves values onto the datapath's corners
# (sim/coverage.py, datapath bins): columns driven past both ADC rails, row-tiled layers with every
# tile on one rail, an exact ADC rounding tie, and per channel post-processing parameters that put
# a rail's code on an output step of its own, an exact rounding tie, and clamps on both sides.
RAILS_P = 0.5  # probability that a case is a rails case
GRAPH_P = 0.3  # probability that a case is a random graph (sim/random_graphs.py)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _v2(n: int) -> int:
    """2-adic valuation; a large number for 0 (divisible by any power of two)."""
    return (n & -n).bit_length() - 1 if n else 64


def _column_for(x: np.ndarray, target: int, gmax: int, unit: int | None) -> np.ndarray | None:
    """Conductance differences d (|d| <= gmax) with x . d == target: greedy from the largest input
    down, the rest on row `unit` (whose input is 1), or None if it does not fit there. Without
    `unit`, x . d is within half the smallest input of `target` where the range allows."""
    d, rem = np.zeros(len(x), dtype=np.int64), int(target)
    for r in sorted((r for r in range(len(x)) if x[r] > 0 and r != unit), key=lambda r: -x[r]):
        d[r] = int(np.clip(round(rem / int(x[r])), -gmax, gmax))
        rem -= int(x[r]) * int(d[r])
    if unit is None:
        return d
    if abs(rem) > gmax:
        return None
    d[unit] = rem
    return d


def _set_column(prog: Program, rect: tuple[int, int, int, int], j: int, dg: np.ndarray) -> None:
    """Tile `rect` (first im2col row, rows, array row, array column) of a layer: column j's
    conductance differences `dg` as a G+/G- pair, the other of the pair 0."""
    _, h, r0, c0 = rect
    prog.g_plus[r0 : r0 + h, c0 + j] = np.maximum(dg, 0)
    prog.g_minus[r0 : r0 + h, c0 + j] = np.maximum(-dg, 0)


def _adc_exact(prog: Program, cfg: AonCimConfig, j: int, x0: np.ndarray, noise_seed: int, want: str,
               rng: np.random.Generator) -> tuple[np.ndarray, tuple] | None:
    """Channel j of layer 0 (an MVM layer reading the network input `x0`, H x W x C) with one
    conversion exactly on an ADC corner, `want`: "tie" (the value before the shift, I*gain +
    n*noise_mult, an odd multiple of half an LSB, rounding to a code in range), "+max" or "-max"
    (the code +-adc_max reached without clamping).

    The noise sample n of every conversion is known (it is a function of the seed, the MVM counter
    and the column), so a tie fixes I modulo 2**shift / 2**v2(gain), which the column's
    conductances realise exactly when one of its inputs is 1 (set here: the input changes only for
    a tie, which is planted first); a rail code only needs I within 2**shift / gain (thousands).
    Returns the input and the (tile rect, column differences) to write, or None when no conversion
    of this noise seed reaches the corner."""
    from aoncim.model.bittrue import ReadNoise, im2col

    d, t_adc = prog.layers[0], cfg.adc_transfer
    tiles = d.tile_rects(cfg.rows)
    gain, sh, nm, adc_max, gmax = t_adc.gain(d.in_bits), t_adc.gain_shift, t_adc.noise_mult, t_adc.adc_max, cfg.gcode_max
    k = _v2(gain)
    mod = 1 << (sh - k)
    inv = pow(gain >> k, -1, mod)
    # Every input pixel a window row reads, per position: where the 1 goes.
    index = np.arange(x0.size).reshape(x0.shape) + 1  # 0 marks padding after im2col (pad code 0 here)
    where = im2col(torch.from_numpy(index)[None], dataclasses.replace(d, pad_code=0))[0].numpy() - 1
    cands = [(p, t) for p in range(d.positions) for t in range(len(tiles))]
    for n_try in rng.permutation(len(cands))[:64]:
        p, t = cands[int(n_try)]
        lo, h, _, c0 = tiles[t]
        rows = [r for r in range(lo, lo + h) if where[p, r] >= 0]
        if not rows:
            continue
        unit = int(rng.choice(rows)) if want == "tie" else None
        x = x0.copy()
        if unit is not None:
            x.reshape(-1)[where[p, unit]] = 1
        xr = im2col(torch.from_numpy(x)[None], d)[0, p, lo : lo + h].numpy()
        n = int(ReadNoise(cfg, noise_seed).raw(np.array([p * len(tiles) + t]), np.array([c0 + j]))[0])
        if want == "tie":
            t0 = ((1 << (sh - 1)) - n * nm) % (1 << sh)
            if t0 % (1 << k):
                continue  # the gain's power of two cannot reach this residue
            i_sum = (t0 >> k) * inv % mod
            i_sum -= mod if i_sum > mod // 2 else 0
        else:
            i_sum = round(((adc_max if want == "+max" else -adc_max) * (1 << sh) - n * nm) / gain)
        q = (i_sum * gain + n * nm + (1 << (sh - 1))) >> sh
        if not -adc_max < q <= adc_max if want == "tie" else q != (adc_max if want == "+max" else -adc_max):
            continue
        dg = _column_for(xr, i_sum, gmax, None if unit is None else unit - lo)
        if dg is not None and (int(xr @ dg) * gain + n * nm + (1 << (sh - 1))) >> sh == q:
            return x, (tiles[t], dg)
    return None


def _pp_bias(value_at: int, code: int, a_scale: int, d: LayerDescriptor, cfg: AonCimConfig, up: bool) -> int:
    """The bias that puts the accumulator of `code` at `value_at` (in units of 2**-(shift+f) of an
    output step, rounding term included): the smallest such bias if `up`, else the largest one
    below it."""
    f = cfg.alpha_frac_bits
    sf = d.shift + f
    rnd = 1 << (sf - 1) if sf else 0
    num = value_at - rnd - code * a_scale
    return _ceil_div(num, 1 << f) if up else (num - 1) // (1 << f)


def _plant_pp(prog: Program, cfg: AonCimConfig, i: int, roles: dict[int, str], codes: np.ndarray,
              rng: np.random.Generator) -> None:
    """Post-processing parameters of layer i per channel role; `codes` (positions, out_c) are what
    enters post-processing for input 0. Roles: "+rail"/"-rail" (the channel's most
    positive/negative code on an output step of its own, in range: a code one LSB off changes the
    output), "tie" (an exact rounding tie at one position, in range), "hi"/"lo" (the median
    position clamped at the upper/lower limit), "pump" (three quarters of the positions at the
    upper limit, for the next layer's rails). A role whose constants would not fit is skipped."""
    d = prog.layers[i]
    f, sf = cfg.alpha_frac_bits, prog.layers[i].shift + cfg.alpha_frac_bits
    a = max(1, int(prog.alphas(cfg)[i]))  # alpha 0 zeroes every code: no role can be planted
    lo, hi = ((0 if d.relu else -(1 << (cfg.out_bits - 1))), (1 << (cfg.out_bits - 1)) - 1) if d.to_out \
        else (0, (1 << d.out_bits) - 1)
    lim_s, lim_b = (1 << (cfg.pp_scale_bits - 1)) - 1, (1 << (cfg.pp_bias_bits - 1)) - 1
    for ch, role in roles.items():
        col = codes[:, ch].astype(np.int64)
        pi = d.param_base + ch
        scale = int(prog.pp_scale[pi])
        target = int(rng.integers(lo + 1, hi + 1))
        if role in ("+rail", "-rail"):
            # One code step at least one output step (a*scale >= 2**f): the bias then puts the step
            # between the extreme code and its neighbour (the code a clamp one LSB short gives).
            scale = max(abs(scale), _ceil_div(1 << f, a))
            c = int(col.max()) if role == "+rail" else int(col.min()) + 1
            bias = _pp_bias(target << sf, c, a * scale, d, cfg, up=True)
        elif role == "tie":
            if d.shift == 0:
                continue
            # The tie needs code*alpha*scale = 0 mod 2**f: take the position whose code has the
            # most factors of two and round the scale to the remaining power of two.
            p = max(range(len(col)), key=lambda p: _v2(int(col[p]) * a))
            c = int(col[p])
            step = 1 << max(0, f - _v2(c * a))
            scale = int(round(scale / step)) * step or step
            if abs(scale) > lim_s:
                continue
            # acc + 2**(sf-1) = target * 2**sf exactly: acc is target - 1/2 output steps, and
            # rounds up to target (target - 1 is in range too).
            bias = _pp_bias(target << sf, c, a * scale, d, cfg, up=True)
        elif role == "pump":
            c = int(np.quantile(col, 0.1 if a * scale > 0 else 0.9, method="nearest"))
            bias = _pp_bias(hi << sf, c, a * scale, d, cfg, up=True)
        else:
            c = int(np.median(col))
            bias = _pp_bias((hi + 1) << sf, c, a * scale, d, cfg, up=True) if role == "hi" else \
                _pp_bias(lo << sf, c, a * scale, d, cfg, up=False)
        if abs(scale) <= lim_s and abs(bias) <= lim_b:
            prog.pp_scale[pi], prog.pp_bias[pi] = scale, bias


def _rails(prog: Program, cfg: AonCimConfig, inputs: list[np.ndarray], seeds: list[int],
           rng: np.random.Generator) -> tuple[Program, list[np.ndarray], list[int]]:
    """The rails variant of a case (see RAILS_P): layer by layer, each on the golden model's values
    of the layers before it (as planted), input 0 and its read-noise seed.

    - input 0: most pixels at full scale, so that a column of full conductances saturates;
    - every MVM layer: one column with every G+ at gcode_max and G- at 0 (every tile of a tiled
      layer), one the reverse: past the positive and the negative rail wherever the inputs are
      large enough, every tile of a tiled layer on the same rail;
    - every depthwise layer: one channel with every weight at the largest weight, one with every
      weight at the most negative: window sums at the accumulator's extremes where the inputs are
      at full scale;
    - layer 0, if it uses the array: one column with an exact ADC rounding tie (the read-noise
      seed of input 0 is redrawn until one is reachable) and one each with a conversion at exactly
      +adc_max and -adc_max, unclamped (`_adc_exact`);
    - every layer with post-processing: the rail columns' codes on output steps of their own, a
      rounding tie, the upper and the lower clamp, and before an MVM layer large activations in
      the other channels (`_plant_pp`), on channels drawn at random.
    """
    from aoncim.model.bittrue import BitTrueExecutor

    prog = dataclasses.replace(prog, g_plus=prog.g_plus.copy(), g_minus=prog.g_minus.copy(),
                               pp_scale=np.array(prog.pp_scale, dtype=np.int64),
                               pp_bias=np.array(prog.pp_bias, dtype=np.int64),
                               dw_weights=None if prog.dw_weights is None else np.array(prog.dw_weights, np.int64))
    inputs, seeds = [x.copy() for x in inputs], list(seeds)
    x0 = inputs[0]
    full = rng.random(x0.shape[:2]) < 0.8
    x0[full] = (1 << prog.layers[0].in_bits) - 1
    gmax = cfg.gcode_max
    for i, d in enumerate(prog.layers):
        if not d.op.uses_params:
            continue
        roles: dict[int, str] = {}
        chans = [int(c) for c in rng.permutation(d.out_c)]
        if d.is_mvm:
            tiles = d.tile_rects(cfg.rows)
            for role in rng.permutation(["+rail", "-rail"]):
                if chans:
                    ch = chans.pop()
                    roles[ch] = str(role)
                    for rect in tiles:
                        _set_column(prog, rect, ch, np.full(rect[1], gmax if role == "+rail" else -gmax))
            for want in ("tie", "+max", "-max") if i == 0 else ():
                if not chans:
                    break
                ch = chans.pop()
                for _ in range(16):
                    hit = _adc_exact(prog, cfg, ch, x0, seeds[0], want, rng)
                    if hit is not None:
                        x0[...] = hit[0]
                        _set_column(prog, hit[1][0], ch, hit[1][1])
                        break
                    if want != "tie":
                        break  # a rail code is reachable for any noise sample, or not at all
                    seeds[0] = int(rng.integers(0, 2**32))
        if d.op.uses_dww:
            for role in rng.permutation(["+rail", "-rail"]):
                if chans:
                    ch = chans.pop()
                    roles[ch] = str(role)
                    w = cfg.dw_max if role == "+rail" else -cfg.dw_max - 1
                    prog.dw_weights[d.w_base + ch : d.w_base + d.dw_words : d.in_c] = w
        for role in ("tie", "hi", "lo"):
            if chans:
                roles[chans.pop()] = role
        # Large activations into a next layer that uses the array, so that its rail columns reach
        # the rails: its inputs are this layer's outputs.
        nxt = prog.layers[i + 1] if i + 1 < len(prog.layers) else None
        if nxt is not None and nxt.is_mvm:
            roles.update((ch, "pump") for ch in chans)
        trace = BitTrueExecutor(cfg, prog).run_batch(x0[None], seeds[:1])
        # MVM: the ADC codes enter post-processing; pooling, the residual add and depthwise: the window sums
        codes = (trace[i].adc_codes if d.is_mvm else trace[i].sums)[0].numpy()
        _plant_pp(prog, cfg, i, roles, codes, rng)
    prog.check(cfg)
    return prog, inputs, seeds


def _graph_moves(prog: Program, cfg: AonCimConfig, r: np.random.Generator) -> tuple[Program, list[str]]:
    """What a graph case moves off the compiler's choices: placement, parameter blocks, alpha
    (activation addresses stay: the compiler's allocation is the graph's dataflow)."""
    notes = []
    for what, fn, p in (("placement", _relocate_rects, 0.6), ("parameter bases", _relocate_params, 0.5)):
        if r.random() < p:
            moved = fn(prog, cfg, r)
            if moved is not None:
                prog, notes = moved, notes + [what]
    if r.random() < 0.5:
        prog, notes = _random_alpha(prog, cfg, r), notes + ["alpha"]
    return prog, notes


def is_graph_seed(seed: int) -> bool:
    """Whether `random_case(seed)` draws a graph (sim/random_graphs.py) rather than a sequence."""
    return bool(np.random.default_rng([0xA0C1, seed, 0x64A9]).random() < GRAPH_P)


def random_case(seed: int, cfg: AonCimConfig = RANDOM_CFG, act_bits: int | None = None, n_inputs: int = 1,
                randomise: bool = True) -> RandomCase:
    """The case of `seed`: a legal program for `cfg`, `n_inputs` input codes and read-noise seeds.

    `act_bits` forces one precision for every layer (default: drawn, per layer in a third of the
    cases); `randomise=False` keeps the compiler's placement, parameters, addresses and alpha."""
    from aoncim.firmware.compiler import CompileError, compile_network

    if act_bits is not None and act_bits not in cfg.act_bits_supported:
        raise ValueError(f"act_bits={act_bits}: the chip supports {cfg.act_bits_supported}")
    # A share of the cases are graphs (residual adds, depthwise and grouped convs, 1-D convs,
    # signed inputs and activations: sim/random_graphs.py), drawn from a stream of their own so
    # the sequential cases stay as they were.
    if is_graph_seed(seed):
        prog, inputs, seeds, notes = random_graph_program(seed, cfg, act_bits, n_inputs,
                                                          _graph_moves if randomise else None)
        return RandomCase(seed, prog, inputs, seeds, act_bits, notes)
    rng = np.random.default_rng([0xA0C1, seed])
    for _ in range(_ATTEMPTS):
        sub = int(rng.integers(0, 2**63))
        r = np.random.default_rng(sub)
        bits = act_bits if act_bits is not None else int(r.choice(BITS))
        with torch.random.fork_rng():
            torch.manual_seed(sub)
            net, (c, h, w) = _random_net(r, cfg)
            calib = torch.rand(16, c, h, w)
            try:
                prog = compile_network(net, cfg, calib, act_bits=bits)
            except (CompileError, ProgramError):
                continue
        notes = []
        if randomise:
            for what, fn, p in (("placement", _relocate_rects, 0.6), ("parameter bases", _relocate_params, 0.5),
                                ("activation addresses", _relocate_acts, 0.6)):
                if r.random() < p:
                    moved = fn(prog, cfg, r)
                    if moved is not None:
                        prog, notes = moved, notes + [what]
            if r.random() < 0.5:
                prog, notes = _random_alpha(prog, cfg, r), notes + ["alpha"]
            if act_bits is None and r.random() < 0.35:
                prog, notes = _mixed_precision(prog, cfg, r, bits), notes + ["per-layer precision"]
            # Its own stream, so that the draws above (and the inputs below) stay as they were.
            pads = np.random.default_rng([0xA0C1, seed, 0x9AD])
            if pads.random() < ASYMMETRIC_PAD_P:
                moved = _asymmetric_pad(prog, cfg, pads)
                if moved is not None:
                    prog, notes = moved, notes + ["asymmetric padding"]
            if pads.random() < PAD_CODE_P and any(d.is_mvm and (d.pad_h or d.pad_w) for d in prog.layers):
                prog, notes = _pad_codes(prog, cfg, pads), notes + ["pad codes"]
            dws = np.random.default_rng([0xA0C1, seed, 0xD3C0])
            if dws.random() < DWCONV_P:
                for _ in range(8):
                    moved = _depthwise(prog, cfg, dws)
                    if moved is not None:
                        prog, notes = moved, notes + ["depthwise"]
                        break
        prog.check(cfg)
        d0 = prog.layers[0]
        inputs = [r.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(n_inputs)]
        seeds = [int(s) for s in r.integers(0, 2**32, n_inputs)]
        # Its own stream, so that the other cases stay as they were drawn.
        rails = np.random.default_rng([0xA0C1, seed, 0x7A11])
        if randomise and rails.random() < RAILS_P:
            prog, inputs, seeds = _rails(prog, cfg, inputs, seeds, rails)
            notes.append("rails")
        return RandomCase(seed, prog, inputs, seeds, act_bits, notes)
    raise RuntimeError(f"seed {seed}: no network of {_ATTEMPTS} drawn fits {cfg}")

"""Random small networks for randomised co-simulation, deterministic in one seed.

`random_case(seed)` draws a network (conv, linear, max pool, average pool and global average
pooling layers with random kernels, strides 1-2, padding, channel counts and batch norm), compiles
it for a small-rows config (`RANDOM_CFG`: 32 rows, so about a quarter of the MVM layers have more
im2col rows than the array and are row-tiled), and then randomises what the compiler would keep regular: the array
placement of every layer's rectangle, the post-processing parameter blocks (with junk between
them), the activation banks and base addresses, per-layer drift-compensation alpha and, unless a
precision is forced, per-layer precision (8/6/4 bits, changing between layers). The input codes
and read-noise seeds come from the same seed. Everything is legal (`Program.check`); the golden
model and the RTL must agree on every integer.

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
from aoncim.program import Program, ProgramError

# Small rows so that row tiling (fan-in > rows) is the rule; one Verilator build serves every case:
# programs, inputs and descriptors are loaded over the bus.
RANDOM_CFG = AonCimConfig(rows=32, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, max_layers=8)
BITS = (8, 6, 4)
_ATTEMPTS = 200


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
            geo = "" if kind in ("linear", "global-avgpool") else f"{d.k_h}x{d.k_w}/s{d.stride}" + (f"/p{d.pad}" if d.pad else "")
            ch = f" {d.in_c}->{d.out_c}" if d.is_mvm else f" {d.in_c}"
            tiles = f" T{d.tiles(rows)}" if d.is_mvm and d.tiles(rows) > 1 else ""
            bits = f" {d.in_bits}b" if d.in_bits == d.out_bits else f" {d.in_bits}->{d.out_bits}b"
            parts.append(f"{kind}{' ' + geo if geo else ''}{ch}{tiles}{bits}")
        d0 = p.layers[0]
        extra = f"; random {', '.join(self.randomised)}" if self.randomised else ""
        return f"seed {self.seed}: input {d0.in_h}x{d0.in_w}x{d0.in_c}: " + " | ".join(parts) + extra


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
    input bits, contract step 5)."""
    layers = list(prog.layers)
    bits = int(rng.choice(BITS))
    for i, d in enumerate(layers):
        out = bits if d.op.keeps_bits or d.to_out else int(rng.choice(BITS))
        shift = d.shift
        if not d.op.keeps_bits and not d.to_out:
            shift = int(np.clip(shift + compiled_bits - out, 0, cfg.pp_shift_max))
        layers[i] = dataclasses.replace(d, in_bits=bits, out_bits=out if not d.to_out else d.out_bits, shift=shift)
        bits = out
    return dataclasses.replace(prog, layers=layers, calib_codes=None)


def _random_alpha(prog: Program, cfg: AonCimConfig, rng: np.random.Generator) -> Program:
    one = cfg.alpha_one
    hi = min(2 * one, (1 << cfg.alpha_bits) - 1)
    alpha = np.where(rng.random(len(prog.layers)) < 0.7, rng.integers(one // 2, hi + 1, len(prog.layers)), one)
    return dataclasses.replace(prog, alpha=alpha.astype(np.int64))


def random_case(seed: int, cfg: AonCimConfig = RANDOM_CFG, act_bits: int | None = None, n_inputs: int = 1,
                randomise: bool = True) -> RandomCase:
    """The case of `seed`: a legal program for `cfg`, `n_inputs` input codes and read-noise seeds.

    `act_bits` forces one precision for every layer (default: drawn, per layer in a third of the
    cases); `randomise=False` keeps the compiler's placement, parameters, addresses and alpha."""
    from aoncim.firmware.compiler import CompileError, compile_network

    if act_bits is not None and act_bits not in cfg.act_bits_supported:
        raise ValueError(f"act_bits={act_bits}: the chip supports {cfg.act_bits_supported}")
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
        prog.check(cfg)
        d0 = prog.layers[0]
        inputs = [r.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(n_inputs)]
        seeds = [int(s) for s in r.integers(0, 2**32, n_inputs)]
        return RandomCase(seed, prog, inputs, seeds, act_bits, notes)
    raise RuntimeError(f"seed {seed}: no network of {_ATTEMPTS} drawn fits {cfg}")

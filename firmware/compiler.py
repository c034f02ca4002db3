"""Compile a trained sequential PyTorch network into an AON-CiM Program.

Arithmetic (docs/architecture.md): a layer's inputs are codes x with real value x*s_in; weights map
to conductance pairs G+/G- = round(clip(+-W/w_max, 0, 1) * gcode_max); the ADC returns
code ~= gain(bits) * sum(x * (G+ - G-)). Hence the real pre-activation is
    z = s_in * w_max / gcode_max / gain(bits) * code + b
and post-processing folds that factor, the bias and the output activation scale into one
fixed-point scale and bias per output channel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.program import OP_MVM, LayerDescriptor, Program, ProgramError


class CompileError(ValueError):
    """The network cannot be mapped on the configured chip; the message names layer and resource."""


@dataclass
class _MvmLayer:
    name: str
    weight: np.ndarray  # (k_rows, out_c) rows in (ky, kx, c) order
    bias: np.ndarray
    in_shape: tuple[int, int, int]  # H, W, C
    k: tuple[int, int]
    stride: int
    pad: int
    relu: bool


def _lower(net: nn.Module, input_shape: tuple[int, int, int]) -> list[_MvmLayer]:
    """Sequential conv/linear/relu/flatten -> MVM layers over HWC activations."""
    mods = [m for m in net.modules() if not list(m.children())]
    c, h, w = input_shape
    out: list[_MvmLayer] = []
    for i, m in enumerate(mods):
        name = f"{i}:{type(m).__name__}"
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.dilation != (1, 1) or m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1]:
                raise CompileError(f"layer {name}: only square stride/padding, groups=1, dilation=1 are supported")
            wt = m.weight.detach().numpy()  # (O, C, kh, kw)
            kh, kw = wt.shape[2:]
            out.append(_MvmLayer(name, wt.transpose(2, 3, 1, 0).reshape(kh * kw * c, -1),
                                 _bias(m), (h, w, c), (kh, kw), m.stride[0], m.padding[0], False))
            h = (h + 2 * m.padding[0] - kh) // m.stride[0] + 1
            w = (w + 2 * m.padding[0] - kw) // m.stride[0] + 1
            c = wt.shape[0]
        elif isinstance(m, nn.Linear):
            wt = m.weight.detach().numpy()  # (O, C*H*W) in torch's CHW flatten order
            if wt.shape[1] != c * h * w:
                raise CompileError(f"layer {name}: expects {wt.shape[1]} inputs, gets {c}x{h}x{w}")
            # A fully connected layer is a convolution whose kernel covers the whole HWC input.
            wt = wt.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
            out.append(_MvmLayer(name, wt, _bias(m), (h, w, c), (h, w), 1, 0, False))
            h, w, c = 1, 1, wt.shape[1]
        elif isinstance(m, nn.ReLU):
            if not out:
                raise CompileError(f"layer {name}: ReLU before any conv/linear layer")
            out[-1].relu = True
        elif isinstance(m, nn.Flatten):
            pass
        else:
            raise CompileError(f"layer {name}: unsupported module; use Conv2d, Linear, ReLU, Flatten")
    if not out:
        raise CompileError("network has no Conv2d/Linear layer")
    return out


def _bias(m: nn.Module) -> np.ndarray:
    n = m.weight.shape[0]
    return m.bias.detach().numpy() if m.bias is not None else np.zeros(n)


def _place(layers: list[_MvmLayer], cfg: AonCimConfig) -> list[tuple[int, int]]:
    """Shelf packing: layers side by side along the columns, each from row 0.

    The walking skeleton's packer; firmware issue 5 replaces it with a rectangle packer.
    """
    places, col = [], 0
    for L in layers:
        rows, cols = L.weight.shape
        if rows > cfg.rows:
            raise CompileError(f"layer {L.name}: needs {rows} rows > array rows {cfg.rows}; "
                               "reduce kernel size or input channels (row tiling is not implemented yet)")
        if col + cols > cfg.cols:
            raise CompileError(f"layer {L.name}: needs columns {col}..{col + cols - 1} but the array has "
                               f"{cfg.cols}; reduce output channels or use a larger array")
        places.append((0, col))
        col += cols
    return places


def _fixed_point(scale: np.ndarray, bias: np.ndarray, cfg: AonCimConfig, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Largest shift for which round(scale*2**s) and round(bias*2**s) fit their widths."""
    lim_s, lim_b = 2 ** (cfg.pp_scale_bits - 1) - 1, 2 ** (cfg.pp_bias_bits - 1) - 1
    for s in range(cfg.pp_shift_max, -1, -1):
        qs, qb = np.round(scale * 2**s), np.round(bias * 2**s)
        if np.abs(qs).max() <= lim_s and np.abs(qb).max() <= lim_b:
            return qs.astype(np.int64), qb.astype(np.int64), s
    raise CompileError(f"layer {name}: post-processing scale {np.abs(scale).max():.3g} does not fit "
                       f"{cfg.pp_scale_bits}-bit fixed point; raise pp_scale_bits")


def compile_network(net: nn.Module, cfg: AonCimConfig, calib: torch.Tensor, act_bits: int = 8,
                    out_fraction: float = 0.25) -> Program:
    """Quantise and place `net` for `cfg`.

    calib: float inputs (N, C, H, W) in [0, 1] that set activation scales (99.9th percentile).
    act_bits: activation precision of every layer. out_fraction: the final layer's largest
    calibrated |logit| maps to this fraction of the signed output range.
    """
    if act_bits not in cfg.act_bits_supported:
        raise CompileError(f"act_bits={act_bits} not supported; choose one of {cfg.act_bits_supported}")
    c, h, w = tuple(calib.shape[1:])
    layers = _lower(net, (c, h, w))
    places = _place(layers, cfg)
    amax = (1 << act_bits) - 1

    # Float reference activations of every layer on the calibration set, for the scales.
    x = calib.permute(0, 2, 3, 1).double()  # N, H, W, C
    s_in = 1.0 / amax
    g_plus = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
    g_minus = np.zeros_like(g_plus)
    descs, scales, biases, names = [], [], [], []
    bank, act_base, param_base = 0, 0, 0
    for i, (L, (row0, col0)) in enumerate(zip(layers, places)):
        last = i == len(layers) - 1
        d = _geometry(L)
        z = torch.from_numpy(_im2col_f(x, L) @ L.weight + L.bias)  # N, P, O (float pre-activation)
        w_max = float(np.abs(L.weight).max()) or 1.0
        gq = np.rint(np.clip(L.weight / w_max, -1, 1) * cfg.gcode_max).astype(np.int64)
        g_plus[row0 : row0 + gq.shape[0], col0 : col0 + gq.shape[1]] = np.maximum(gq, 0)
        g_minus[row0 : row0 + gq.shape[0], col0 : col0 + gq.shape[1]] = np.maximum(-gq, 0)
        gain = cfg.adc_gain_mult * 2 ** (cfg.dac_bits - act_bits) / 2**cfg.adc_gain_shift
        if last:
            s_out = float(z.abs().max()) / (out_fraction * (2 ** (cfg.out_bits - 1) - 1)) or 1.0
        else:
            a = torch.relu(z) if L.relu else z.clamp(min=0)
            s_out = float(torch.quantile(a.flatten()[:1_000_000].float(), 0.999)) / amax or 1.0
        qs, qb, shift = _fixed_point(np.full(L.weight.shape[1], s_in * w_max / cfg.gcode_max / gain / s_out),
                                     L.bias / s_out, cfg, L.name)
        n_out = d["out_h"] * d["out_w"] * L.weight.shape[1]
        descs.append(LayerDescriptor(
            opcode=OP_MVM, in_bits=act_bits, out_bits=act_bits, stride=L.stride, pad=L.pad,
            relu=int(L.relu), to_out=int(last), in_bank=bank, out_bank=1 - bank, shift=shift,
            k_rows=L.weight.shape[0], row0=row0, col0=col0, param_base=param_base,
            in_base=act_base, out_base=0, out_c=L.weight.shape[1], **d))
        scales.append(qs)
        biases.append(qb)
        names.append(L.name)
        # Next layer sees the quantised activations in the float reference too.
        y = torch.clamp(torch.round(z / s_out), 0, amax) * s_out
        x = y.reshape(-1, d["out_h"], d["out_w"], L.weight.shape[1])
        s_in, bank, act_base, param_base = s_out, 1 - bank, 0, param_base + L.weight.shape[1]
        if not last and n_out > cfg.act_depth:
            raise CompileError(f"layer {L.name}: output needs {n_out} activation words > act_depth "
                               f"{cfg.act_depth}; raise act_depth")
    prog = Program(descs, g_plus, g_minus, np.concatenate(scales), np.concatenate(biases), names)
    try:
        prog.check(cfg)
    except ProgramError as e:
        raise CompileError(str(e)) from None
    return prog


def _geometry(L: _MvmLayer) -> dict:
    h, w, c = L.in_shape
    kh, kw = L.k
    return dict(in_h=h, in_w=w, in_c=c, k_h=kh, k_w=kw,
                out_h=(h + 2 * L.pad - kh) // L.stride + 1, out_w=(w + 2 * L.pad - kw) // L.stride + 1)


def _im2col_f(x: torch.Tensor, L: _MvmLayer) -> np.ndarray:
    """Float im2col, (N, H, W, C) -> (N, P, k_rows), rows in (ky, kx, c) order."""
    kh, kw = L.k
    xp = torch.nn.functional.pad(x, (0, 0, L.pad, L.pad, L.pad, L.pad))
    p = xp.unfold(1, kh, L.stride).unfold(2, kw, L.stride)  # N, oh, ow, C, kh, kw
    p = p.permute(0, 1, 2, 4, 5, 3)
    return p.reshape(x.shape[0], -1, kh * kw * x.shape[3]).numpy()


def quantise_input(x: torch.Tensor, bits: int) -> np.ndarray:
    """Float image(s) (C, H, W) or (N, C, H, W) in [0, 1] -> HWC integer codes of `bits`."""
    q = torch.clamp(torch.round(x * ((1 << bits) - 1)), 0, (1 << bits) - 1).to(torch.int64)
    return (q.permute(1, 2, 0) if q.dim() == 3 else q.permute(0, 2, 3, 1)).numpy()

"""Compile a trained sequential PyTorch network into an AON-CiM Program.

Arithmetic (docs/architecture.md): a layer's inputs are codes x with real value x*s_in; weights map
to conductance pairs G+/G- = round(clip(+-W/w_max, 0, 1) * gcode_max); the ADC returns
code ~= gain(bits) * sum(x * (G+ - G-)). Hence the real pre-activation is
    z = s_in * w_max / gcode_max / gain(bits) * code + b
and post-processing folds that factor, the bias and the output activation scale into one
fixed-point scale and bias per output channel. w_max is per column (the channel-wise remap of
2302.08469: every column uses the whole conductance range, and the per-channel scale absorbs it)
unless an analog layer was trained with one w_max per layer. A layer's output activation grid is
the DAC range its consumer was trained with (`input_range` of an analog layer), else the 99.9th
percentile of its calibrated outputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.placement import PlacementError, place_rectangles
from aoncim.program import LayerDescriptor, Op, Program, ProgramError


class CompileError(ValueError):
    """The network cannot be mapped on the configured chip; the message names layer and resource."""


# Largest magnitude of a weight, bias, batch-norm parameter or statistic the compiler accepts.
# The chip applies a channel's weights and bias in one fixed-point post-processing step: the MVM
# code times a scale of pp_scale_bits (16 by default), plus a bias of pp_bias_bits (32), at one
# shared shift. So a bias can be at most 2**(32 - 16) = 2**16 times the MVM term of one code before
# the scale has no bits left, and a weight's w_max enters the scale directly (about 20 * w_max * s_in
# / s_out for the default ADC gain and 8-bit conductance codes): with inputs in [0, 1] and hidden
# activations on O(1) ranges (the shipped AnalogNets' parameters and statistics all stay below 11),
# a parameter beyond 2**16 saturates post-processing or is a damaged network. The exact fit of what
# passes is `_fixed_point`'s, layer by layer, against the calibrated activation steps.
PARAM_LIMIT = 2.0**16


@dataclass
class _Layer:
    """One chip layer over HWC activations: an MVM on the array or a digital pooling step."""

    op: Op
    name: str
    in_shape: tuple[int, int, int]  # H, W, C
    k: tuple[int, int]
    stride: int
    pad: int
    relu: bool = False
    weight: np.ndarray | None = None    # mvm: (k_rows, out_c), rows in (ky, kx, c) order
    bias: np.ndarray | None = None      # mvm: real bias after batch-norm folding
    chan_scale: np.ndarray | None = None  # mvm: batch-norm gain, applied digitally per channel
    per_column: bool = True             # mvm: w_max per column (channel-wise remap) or per layer
    in_range: float = 0.0               # mvm: trained DAC full scale x_max of an analog layer (0: none)
    bias_src: str = "no bias"           # mvm: the tensors the bias comes from, for messages
    qual: str = ""                      # the module's state_dict prefix (`12`), for messages
    label: str = ""                     # what it lowers, for reports: "conv", "linear", else op.label
    fused: tuple[str, ...] = ()         # module types folded into it (BatchNorm2d, ReLU), for reports
    params: int = 0                     # trainable parameters, folded modules' included

    @property
    def out_c(self) -> int:
        return self.weight.shape[1] if self.op.uses_array else self.in_shape[2]

    @property
    def out_hw(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        return ((h + 2 * self.pad - self.k[0]) // self.stride + 1, (w + 2 * self.pad - self.k[1]) // self.stride + 1)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def lower_network(net: nn.Module, input_shape: tuple[int, int, int]) -> list[_Layer]:
    """Sequential Conv2d/Linear/BatchNorm/ReLU/pooling/Flatten -> chip layers over HWC activations.

    The one lowering: compile_network quantises and places these layers, model/footprint.py sizes
    them. Raises CompileError, one line naming the layer, for a module or arrangement it cannot map."""
    mods = [(q, m) for q, m in net.named_modules() if not list(m.children())]
    c, h, w = input_shape
    out: list[_Layer] = []
    for i, (q, m) in enumerate(mods):
        name = f"{i}:{type(m).__name__}"
        _check_params(m, name, q)
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or _pair(m.dilation) != (1, 1) or m.stride[0] != m.stride[1] or \
                    isinstance(m.padding, str) or m.padding[0] != m.padding[1] or m.padding_mode != "zeros":
                raise CompileError(f"layer {name}: only groups=1, dilation=1, zero padding and equal stride/padding "
                                   "in both dimensions are supported")
            if m.in_channels != c:
                raise CompileError(f"layer {name}: expects {m.in_channels} input channels, gets {c}")
            wt = m.weight.detach().double().numpy()  # (O, C, kh, kw)
            kh, kw = wt.shape[2:]
            L = _Layer(Op.MVM, name, (h, w, c), (kh, kw), m.stride[0], m.padding[0], label="conv",
                       weight=wt.transpose(2, 3, 1, 0).reshape(kh * kw * c, -1), bias=_bias(m),
                       chan_scale=np.ones(wt.shape[0]), bias_src=_bias_src(m, q), qual=q, **_analog_attrs(m))
        elif isinstance(m, nn.Linear):
            wt = m.weight.detach().double().numpy()  # (O, C*H*W) in torch's CHW flatten order
            if wt.shape[1] != c * h * w:
                raise CompileError(f"layer {name}: expects {wt.shape[1]} inputs, gets {c}x{h}x{w}")
            # A fully connected layer is a convolution whose kernel covers the whole HWC input.
            wt = wt.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
            L = _Layer(Op.MVM, name, (h, w, c), (h, w), 1, 0, label="linear", weight=wt, bias=_bias(m),
                       chan_scale=np.ones(wt.shape[1]), bias_src=_bias_src(m, q), qual=q, **_analog_attrs(m))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            prev = out[-1] if out else None
            if prev is None or not prev.op.uses_array or prev.relu:
                raise CompileError(f"layer {name}: batch norm must directly follow a Conv2d/Linear to be folded")
            if m.num_features != prev.out_c:
                raise CompileError(f"layer {name}: batch norm of {m.num_features} channels after {prev.out_c}")
            a = m.weight.detach().double().numpy() / np.sqrt(m.running_var.double().numpy() + m.eps)
            prev.bias = a * (prev.bias - m.running_mean.double().numpy()) + m.bias.detach().double().numpy()
            prev.chan_scale = prev.chan_scale * a
            prev.bias_src = (f"{prev.bias_src} and " if prev.bias_src != "no bias" else "") + \
                f"batch norm {_ref(q, 'bias')}, {_ref(q, 'running_mean')}"
            prev.fused, prev.params = prev.fused + (type(m).__name__,), prev.params + _n_params(m)
            continue
        elif isinstance(m, nn.ReLU):
            if not out:
                raise CompileError(f"layer {name}: ReLU before any conv/linear layer")
            out[-1].relu = True
            out[-1].fused += (type(m).__name__,)
            continue
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k, st = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            if _pair(m.padding) != (0, 0) or st[0] != st[1] or m.ceil_mode or \
                    (isinstance(m, nn.MaxPool2d) and _pair(m.dilation) != (1, 1)):
                raise CompileError(f"layer {name}: pooling needs padding 0, equal strides, ceil_mode False")
            L = _Layer(Op.MAXPOOL if isinstance(m, nn.MaxPool2d) else Op.AVGPOOL, name, (h, w, c), k, st[0], 0)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):
                raise CompileError(f"layer {name}: only global average pooling (output size 1) is supported")
            L = _Layer(Op.AVGPOOL, name, (h, w, c), (h, w), 1, 0)
        elif isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout)):
            continue
        else:
            raise CompileError(f"layer {name}: unsupported module; use Conv2d, Linear, BatchNorm, ReLU, "
                               "MaxPool2d/AvgPool2d/AdaptiveAvgPool2d(1), Flatten")
        if min(L.out_hw) < 1:
            raise CompileError(f"layer {name}: {L.k[0]}x{L.k[1]} window larger than its {h}x{w} input"
                               + (f" padded by {L.pad}" if L.pad else ""))
        L.label, L.params = L.label or L.op.label, _n_params(m)
        out.append(L)
        (h, w), c = L.out_hw, L.out_c
    if not any(L.op.uses_array for L in out):
        raise CompileError("network has no Conv2d/Linear layer")
    if not out[-1].op.uses_array:
        raise CompileError(f"layer {out[-1].name}: the last layer must be a Conv2d/Linear (its signed outputs are "
                           "the network's result)")
    return out


def _ref(qual: str, tensor: str) -> str:
    """A module's tensor as its state_dict names it: `12.bias`."""
    return f"{qual}.{tensor}" if qual else tensor


def _bias_src(m: nn.Module, qual: str) -> str:
    return _ref(qual, "bias") if m.bias is not None else "no bias"


def _check_params(m: nn.Module, name: str, qual: str) -> None:
    """Every parameter and statistic the compiler reads from a module is finite and within
    PARAM_LIMIT (a variance or DAC range also >= 0), or one CompileError naming the module's own
    tensor: a NaN must not travel through batch-norm folding and the activation scales into a
    later layer's message, nor a 1e30 into an image that computes nothing."""
    for t in ("weight", "bias", "running_mean", "running_var", "input_range"):
        v = getattr(m, t, None)
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
            continue
        a = v.detach().double().cpu().numpy()
        ref = _ref(qual, t)
        # A DAC range below 1 / PARAM_LIMIT makes the producing layer's scale exceed it (0: not
        # calibrated, the compiler then uses the calibrated activations).
        tiny = (a != 0) & (np.abs(a) < 1 / PARAM_LIMIT) if t == "input_range" else None
        for bad, what in ((~np.isfinite(a), "not finite"), (np.abs(a) > PARAM_LIMIT, "beyond +-2**16"),
                          (a < 0 if t in ("running_var", "input_range") else None, "negative"),
                          (tiny, "below 2**-16")):
            if bad is None or not bad.any():
                continue
            idx = np.unravel_index(int(np.argmax(bad)), a.shape) if a.ndim else ()
            at = f"{ref}[{', '.join(map(str, idx))}]" if idx else ref
            why = {"not finite": "the network's parameters are corrupt",
                   "negative": f"a {'variance' if t == 'running_var' else 'DAC range'} must be >= 0",
                   "below 2**-16": "the layer feeding it would need a post-processing scale beyond any config"}.get(
                what, "more than the chip's post-processing (16-bit scale, 32-bit bias per channel) can apply")
            raise CompileError(f"layer {name}: {at} = {a[idx]:.3g} is {what}: {why}; retrain the network or "
                               "restore its checkpoint")


def _analog_attrs(m: nn.Module) -> dict:
    """What an analog layer (model/analog.py) was trained with: its weight mapping and, once
    calibrated, its DAC full scale. Plain float layers get the per-column mapping."""
    rng = getattr(m, "input_range", None)
    return {"per_column": bool(getattr(m, "per_channel", True)),
            "in_range": float(rng.detach()) if isinstance(rng, torch.Tensor) else 0.0}


def _consumer(layers: list[_Layer], i: int) -> _Layer | None:
    """The next MVM layer, if layer i's codes reach it unchanged (through max pools only)."""
    for L in layers[i + 1 :]:
        if L.op.uses_array:
            return L
        if not L.op.keeps_bits:
            return None
    return None


def _consumer_range(layers: list[_Layer], i: int) -> float:
    """x_max the next MVM layer was trained with, if layer i's codes reach it unchanged (through
    max pools only); 0 if there is none. Using it keeps the chip's activation grid the trained one."""
    nxt = _consumer(layers, i)
    return nxt.in_range if nxt is not None else 0.0


def _step_src(layers: list[_Layer], i: int) -> str:
    """Where layer i's output step comes from, for messages."""
    nxt = _consumer(layers, i)
    if nxt is not None and nxt.in_range > 0:
        return f" = {_ref(nxt.qual, 'input_range')} / levels"
    return " from its calibrated outputs"


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters(recurse=False))


def _bias(m: nn.Module) -> np.ndarray:
    n = m.weight.shape[0]
    return m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)


def _place(layers: list[_Layer], cfg: AonCimConfig) -> list[tuple[int, int]]:
    """(row0, col0) of every layer: MVM layers as rectangles packed on the array (firmware/placement.py);
    a layer with more im2col rows than the array takes ceil(rows / cfg.rows) row tiles of out_c
    columns side by side (contract step 12), footprint min(rows, cfg.rows) x tiles*out_c (a tiled
    layer is array-high, so it always lands at row 0). Pooling layers get (0, 0)."""
    mvm = [L for L in layers if L.op.uses_array]
    sizes = [(min(L.weight.shape[0], cfg.rows), -(-L.weight.shape[0] // cfg.rows) * L.weight.shape[1]) for L in mvm]
    for L, (_, cols) in zip(mvm, sizes):
        rows, out_c = L.weight.shape
        if cols > cfg.cols:
            tiled = f" ({cols // out_c} row tiles of {out_c} columns for its {rows} rows)" if rows > cfg.rows else ""
            raise CompileError(f"layer {L.name}: needs {cols} columns{tiled} but the array has {cfg.cols}; "
                               "reduce output channels or fan-in, or use a larger array")
    try:
        spots = iter(place_rectangles(sizes, cfg.rows, cfg.cols, [L.name for L in mvm]))
    except PlacementError as e:
        raise CompileError(str(e)) from None
    return [next(spots) if L.op.uses_array else (0, 0) for L in layers]


# Widest post-processing scale a config may have (AonCimConfig's pp_scale_bits range).
PP_SCALE_BITS_MAX = 24


def _fixed_point(scale: np.ndarray, bias: np.ndarray, cfg: AonCimConfig, name: str,
                 terms=lambda: "", bias_src: str = "bias") -> tuple[np.ndarray, np.ndarray, int]:
    """Largest shift for which round(scale*2**s) and round(bias*2**s) fit their widths.

    scale: per-channel real value of one MVM (or pooling-sum) code in output steps; bias: in output
    steps. terms() says where the scale comes from and bias_src where the bias does, for the
    messages. Refused, one line each: a scale or bias that fits at no shift, and a bias so large
    that it leaves a channel's scale no bits (the channel would output a constant whatever its
    input: a 1e30 final bias gives the same logits for every input)."""
    lim_s, lim_b = 2 ** (cfg.pp_scale_bits - 1) - 1, 2 ** (cfg.pp_bias_bits - 1) - 1
    if not (np.isfinite(scale).all() and np.isfinite(bias).all()):
        raise CompileError(f"layer {name}: post-processing scale or bias is not finite ({terms()}); the network's "
                           "parameters or calibration inputs are out of range")
    fits = lambda q, lim: np.abs(np.round(q)).max() <= lim  # noqa: E731
    for s in range(cfg.pp_shift_max, -1, -1):
        if fits(scale * 2**s, lim_s) and fits(bias * 2**s, lim_b):
            break
    else:
        if not fits(scale, lim_s):
            c = int(np.argmax(np.abs(scale)))
            need = int(np.ceil(np.log2(abs(scale[c]) + 0.5))) + 1
            fix = (f"raise pp_scale_bits to {need}" if need <= PP_SCALE_BITS_MAX else
                   "no config reaches that: the weights or batch-norm gain are far too large for the output "
                   "activation step (or that step far too small); retrain (weights clipped) or check the network")
            raise CompileError(f"layer {name}: post-processing scale {scale[c]:.3g} of channel {c} ({terms()}) needs "
                               f"{need}-bit fixed point, pp_scale_bits is {cfg.pp_scale_bits}; {fix}")
        b = int(np.argmax(np.abs(bias)))
        raise CompileError(f"layer {name}: bias of channel {b} ({bias_src}) is {bias[b]:.3g} output steps ({terms()}), "
                           f"beyond the {cfg.pp_bias_bits}-bit post-processing bias; it is out of range for the layer: "
                           "retrain or check the network")
    qs, qb = np.round(scale * 2**s), np.round(bias * 2**s)
    lost = (qs == 0) & (scale != 0)
    if lost.any() and s < cfg.pp_shift_max and not fits(bias * 2 ** (s + 1), lim_b):
        c, b = int(np.argmax(lost)), int(np.argmax(np.abs(bias)))
        raise CompileError(f"layer {name}: bias of channel {b} ({bias_src}) is {bias[b]:.3g} output steps, so large "
                           f"beside the MVM term ({terms()}) that the post-processing scale of channel {c} rounds "
                           "to 0: that channel would output a constant whatever its input; retrain or check the network")
    return qs.astype(np.int64), qb.astype(np.int64), s


def _act_scale(a: torch.Tensor, amax: int) -> float:
    """Activation step from the 99.9th percentile of the calibrated (non-negative) activations."""
    return float(torch.quantile(a.flatten()[:1_000_000].float(), 0.999)) / amax or 1.0


def compile_network(net: nn.Module, cfg: AonCimConfig, calib: torch.Tensor, act_bits: int = 8,
                    out_fraction: float = 0.25) -> Program:
    """Quantise and place `net` for `cfg`.

    calib: float inputs (N, C, H, W) in [0, 1] that set activation scales (99.9th percentile).
    act_bits: activation precision of every layer. out_fraction: the final layer's largest
    calibrated |logit| maps to this fraction of the signed output range.
    """
    if act_bits not in cfg.act_bits_supported:
        raise CompileError(f"act_bits={act_bits} not supported; choose one of {cfg.act_bits_supported}")
    net = net.eval()
    if not torch.isfinite(calib).all():
        raise CompileError("calibration inputs hold NaN or infinite values: give inputs in [0, 1] (check the input "
                           "scaler)")
    c, h, w = tuple(calib.shape[1:])
    layers = lower_network(net, (c, h, w))
    if len(layers) > cfg.max_layers:
        raise CompileError(f"network has {len(layers)} chip layers > max_layers {cfg.max_layers}; merge layers "
                           "(fold pooling into strides) or raise max_layers")
    pp = sum(L.out_c for L in layers if L.op.uses_params)
    if pp > cfg.param_depth:
        raise CompileError(f"network needs {pp} post-processing entries (one per output channel of every conv, "
                           f"linear and average-pool layer) > param_depth {cfg.param_depth}; use fewer channels or "
                           "raise param_depth")
    if c * h * w > cfg.act_depth:
        raise CompileError(f"input of {c}x{h}x{w} = {c * h * w} words > act_depth {cfg.act_depth}; use a smaller "
                           "input or raise act_depth")
    places = _place(layers, cfg)
    amax = (1 << act_bits) - 1
    gain = cfg.adc_transfer.code_gain(act_bits)  # ADC codes per column-sum unit

    # Float reference activations of every layer on the calibration set, for the scales; each layer
    # sees the previous layer's quantised activations, as on the chip.
    x = torch.clamp(torch.round(calib.permute(0, 2, 3, 1).double() * amax), 0, amax) / amax  # N, H, W, C
    s_in = 1.0 / amax
    g_plus = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
    g_minus = np.zeros_like(g_plus)
    descs, scales, biases, names, calib = [], [], [], [], []
    bank, param_base = 0, 0
    for i, (L, (row0, col0)) in enumerate(zip(layers, places)):
        last = i == len(layers) - 1
        (oh, ow), oc = L.out_hw, L.out_c
        shift, qs, qb = 0, None, None
        if L.op.uses_array:
            cols = _im2col_f(x, L)  # N, P, k_rows
            z = torch.from_numpy(cols @ L.weight * L.chan_scale + L.bias)  # N, P, O
            calib.append(np.clip(np.rint(cols.mean((0, 1)) / s_in), 0, amax).astype(np.int64))
            a = np.abs(L.weight)
            w_max = a.max(0) if L.per_column else np.full(oc, a.max())
            w_max = np.where(w_max > 0, w_max, 1.0)
            gq = np.rint(np.clip(L.weight / w_max, -1, 1) * cfg.gcode_max).astype(np.int64)
            if last:
                s_out = float(z.abs().max()) / (out_fraction * (2 ** (cfg.out_bits - 1) - 1)) or 1.0
            else:
                s_out = _consumer_range(layers, i) / amax or _act_scale(z.clamp(min=0), amax)
            if not np.isfinite(s_out):
                raise CompileError(f"layer {L.name}: its calibrated outputs overflow (largest |weight| "
                                   f"{np.abs(L.weight).max():.3g}, |bias| {np.abs(L.bias).max():.3g}): the parameters "
                                   "are out of any representable range; retrain or check the network")
            terms = (lambda L=L, w_max=w_max, s_in=s_in, s_out=s_out, src=_step_src(layers, i) if not last else "":
                     f"|weights| up to {w_max.max():.3g}, batch-norm gain up to {np.abs(L.chan_scale).max():.3g}, "
                     f"input step {s_in:.3g}, output step {s_out:.3g}{src}")
            qs, qb, shift = _fixed_point(L.chan_scale * s_in * w_max / cfg.gcode_max / gain / s_out,
                                         L.bias / s_out, cfg, L.name, terms, L.bias_src)
        else:
            calib.append(np.zeros(0, dtype=np.int64))
        if L.op is Op.AVGPOOL:
            z = _windows_f(x, L).mean(-1)  # N, oh, ow, C
            s_out = _consumer_range(layers, i) / amax or _act_scale(z, amax)
            steps = (lambda s_in=s_in, s_out=s_out: f"input step {s_in:.3g}, output step {s_out:.3g}")
            qs, qb, shift = _fixed_point(np.full(oc, s_in / (L.k[0] * L.k[1] * s_out)), np.zeros(oc), cfg, L.name,
                                         steps)
        elif L.op is Op.MAXPOOL:  # codes pass through unchanged
            z, s_out = _windows_f(x, L).amax(-1), s_in
        n_out = oh * ow * oc
        if not last and n_out > cfg.act_depth:
            raise CompileError(f"layer {L.name}: output needs {n_out} activation words > act_depth "
                               f"{cfg.act_depth}; raise act_depth")
        d = LayerDescriptor(
            opcode=L.op.value, in_bits=act_bits, out_bits=act_bits, stride=L.stride, pad=L.pad,
            relu=int(L.relu), to_out=int(last), in_bank=bank, out_bank=1 - bank, shift=shift,
            in_h=L.in_shape[0], in_w=L.in_shape[1], in_c=L.in_shape[2], k_h=L.k[0], k_w=L.k[1],
            out_h=oh, out_w=ow, out_c=oc, k_rows=L.weight.shape[0] if L.op.uses_array else 0,
            row0=row0, col0=col0, param_base=param_base if qs is not None else 0,
            in_base=0, out_base=0)
        descs.append(d)
        if L.op.uses_array:
            # Row tile t holds im2col rows t*rows.. at its own columns (contract step 12); all tiles
            # share the channel's w_max, so the summed codes share one post-processing scale.
            for lo, n, r0, c0 in d.tile_rects(cfg.rows):
                g_plus[r0 : r0 + n, c0 : c0 + oc] = np.maximum(gq[lo : lo + n], 0)
                g_minus[r0 : r0 + n, c0 : c0 + oc] = np.maximum(-gq[lo : lo + n], 0)
        if qs is not None:
            scales.append(qs)
            biases.append(qb)
            param_base += oc
        names.append(L.name)
        y = z if L.op.keeps_bits else torch.clamp(torch.round(z / s_out), 0, amax) * s_out
        x = y.reshape(-1, oh, ow, oc)
        s_in, bank = s_out, 1 - bank
    prog = Program(descs, g_plus, g_minus, np.concatenate(scales), np.concatenate(biases), names,
                   alpha=np.full(len(descs), cfg.alpha_one, dtype=np.int64), calib_codes=calib)
    try:
        prog.check(cfg)
    except ProgramError as e:
        raise CompileError(str(e)) from None
    return prog


def _im2col_f(x: torch.Tensor, L: _Layer) -> np.ndarray:
    """Float im2col, (N, H, W, C) -> (N, P, k_rows), rows in (ky, kx, c) order."""
    kh, kw = L.k
    xp = torch.nn.functional.pad(x, (0, 0, L.pad, L.pad, L.pad, L.pad))
    p = xp.unfold(1, kh, L.stride).unfold(2, kw, L.stride)  # N, oh, ow, C, kh, kw
    oh, ow = L.out_hw
    p = p[:, :oh, :ow].permute(0, 1, 2, 4, 5, 3)
    return p.reshape(x.shape[0], -1, kh * kw * x.shape[3]).numpy()


def _windows_f(x: torch.Tensor, L: _Layer) -> torch.Tensor:
    """(N, H, W, C) -> (N, oh, ow, C, kh*kw) pooling windows."""
    oh, ow = L.out_hw
    p = x.unfold(1, L.k[0], L.stride).unfold(2, L.k[1], L.stride)[:, :oh, :ow]
    return p.reshape(x.shape[0], oh, ow, x.shape[3], -1)


def quantise_input(x: torch.Tensor, bits: int) -> np.ndarray:
    """Float image(s) (C, H, W) or (N, C, H, W) in [0, 1] -> HWC integer codes of `bits`."""
    q = torch.clamp(torch.round(x * ((1 << bits) - 1)), 0, (1 << bits) - 1).to(torch.int64)
    return (q.permute(1, 2, 0) if q.dim() == 3 else q.permute(0, 2, 3, 1)).numpy()

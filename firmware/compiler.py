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

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.graph import Graph, GraphError, Node, supported
from aoncim.firmware.placement import PlacementError, place_rectangles
from aoncim.program import IoQuant, LayerDescriptor, Op, Program, ProgramError


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
    """One chip layer over HWC activations: an MVM on the array, a digital pooling step or a
    residual add. Its inputs and output are chip tensors (`_Tensor`, by index)."""

    op: Op
    name: str
    in_shape: tuple[int, int, int]  # H, W, C of (each) input
    k: tuple[int, int]
    stride: int
    pad: tuple[int, int] = (0, 0)       # (pad_h, pad_w)
    inputs: tuple[int, ...] = ()        # chip tensors read (two for a residual add)
    out: int = -1                       # the chip tensor written
    clamp: tuple[float, float] | None = None  # output clamp (lo, hi) folded in: ReLU (0, inf), ReLU6 (0, 6), ...
    weight: np.ndarray | None = None    # mvm: (k_rows, out_c), rows in (ky, kx, c) order
    bias: np.ndarray | None = None      # params layers: real bias after batch-norm folding
    chan_scale: np.ndarray | None = None  # params layers: batch-norm gain, applied digitally per channel
    per_column: bool = True             # mvm: w_max per column (channel-wise remap) or per layer
    in_range: float = 0.0               # mvm: trained DAC full scale x_max of an analog layer (0: none)
    bias_src: str = "no bias"           # mvm: the tensors the bias comes from, for messages
    qual: str = ""                      # the module's state_dict prefix (`12`), for messages
    label: str = ""                     # what it lowers, for reports: "conv", "linear", else op.label
    fused: tuple[str, ...] = ()         # operations folded into it (BatchNorm2d, ReLU), for reports
    params: int = 0                     # trainable parameters, folded modules' included
    groups: int = 1                     # mvm: a grouped/depthwise conv, block-diagonal on the array
    dw: np.ndarray | None = None        # dwconv: the depthwise weights (C, kh, kw)

    @property
    def out_c(self) -> int:
        return self.weight.shape[1] if self.op.uses_array else self.in_shape[2]

    @property
    def padded(self) -> bool:
        return any(self.pad)

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.op is Op.ADD:
            return self.in_shape[:2]
        h, w, _ = self.in_shape
        return ((h + 2 * self.pad[0] - self.k[0]) // self.stride + 1, (w + 2 * self.pad[1] - self.k[1]) // self.stride + 1)

    @property
    def relu(self) -> bool:
        return self.clamp is not None and self.clamp[0] >= 0


@dataclass
class _Tensor:
    """An activation tensor in the chip's memory: the network input or a layer's output."""

    shape: tuple[int, int, int]         # H, W, C (HWC in memory)
    producer: int                       # chip layer index; -1 for the network input
    name: str = ""                      # the graph tensor holding its final value (after folds)
    consumers: list[int] = field(default_factory=list)

    @property
    def words(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def graph_from_sequential(net: nn.Module, input_shape: tuple[int, int, int]) -> Graph:
    """A network whose leaf modules run one after the other (an `nn.Sequential`, the AnalogNets,
    aoncim checkpoints) -> the graph IR, without tracing: Conv2d/Conv1d/Linear/BatchNorm/ReLU/
    ReLU6/Hardtanh/pooling/Flatten/Dropout/Identity. Node names are `<index>:<Module>`; analog
    layers (model/analog.py) carry their trained input range and weight mapping. CompileError,
    one line naming the module, for anything else."""
    mods = [(q, m) for q, m in net.named_modules() if not list(m.children())]
    c, h, w = (int(v) for v in input_shape)
    nodes: list[Node] = []
    cur = "input"
    for i, (q, m) in enumerate(mods):
        name = f"{i}:{type(m).__name__}"
        _check_params(m, name, q)
        src = f"layer {name}"
        node = Node(name, "identity", [cur], name, source=src, **_analog_attrs(m))
        node.attrs.update(qual=q, module=type(m).__name__, params=_n_params(m))
        if isinstance(m, (nn.Conv2d, nn.Conv1d)):
            one_d = isinstance(m, nn.Conv1d)
            st, pd, dl = (_pair(v) if not one_d else (1, v[0]) for v in (m.stride, m.padding, m.dilation)) \
                if not isinstance(m.padding, str) else ((0, 0),) * 3
            if isinstance(m.padding, str) or dl != (1, 1) or m.padding_mode != "zeros" or \
                    (st[0] != st[1] and h > 1):
                raise CompileError(f"layer {name}: only dilation=1, zero padding given as numbers and equal strides "
                                   "in both dimensions are supported")
            wt = m.weight.detach().double().numpy()
            node.op = "conv"
            node.attrs.update(weight=wt if not one_d else wt[:, :, None, :], bias=_bias_or_none(m), stride=st,
                              pad=pd, groups=m.groups)
        elif isinstance(m, nn.Linear):
            node.op = "linear"
            node.attrs.update(weight=m.weight.detach().double().numpy(), bias=_bias_or_none(m))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            node.op = "batchnorm"
            node.attrs.update(gamma=m.weight.detach().double().numpy(), beta=m.bias.detach().double().numpy(),
                              mean=m.running_mean.double().numpy(), var=m.running_var.double().numpy(), eps=m.eps)
        elif isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardtanh)):
            node.op = "clamp"
            lo, hi = (0.0, np.inf) if isinstance(m, nn.ReLU) else (float(m.min_val), float(m.max_val))
            node.attrs.update(lo=lo, hi=hi)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d)):
            one_d = isinstance(m, (nn.MaxPool1d, nn.AvgPool1d))
            k = _pair(m.kernel_size) if not one_d else (1, _pair(m.kernel_size)[0])
            st = m.stride if m.stride is not None else m.kernel_size
            st = _pair(st) if not one_d else (1, _pair(st)[0])
            dil = getattr(m, "dilation", 1)
            if _pair(m.padding) != (0, 0) or (st[0] != st[1] and h > 1) or m.ceil_mode or _pair(dil) != (1, 1):
                raise CompileError(f"layer {name}: pooling needs padding 0, equal strides, ceil_mode False")
            node.op = "maxpool" if isinstance(m, (nn.MaxPool2d, nn.MaxPool1d)) else "avgpool"
            node.attrs.update(kernel=k, stride=st)
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d)):
            if _pair(m.output_size) not in ((1, 1),) and m.output_size != 1:
                raise CompileError(f"layer {name}: only global average pooling (output size 1) is supported")
            node.op = "gap"
        elif isinstance(m, nn.Flatten):
            node.op = "flatten"
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            pass
        else:
            raise CompileError(f"layer {name}: unsupported module; use Conv2d, Linear, BatchNorm, ReLU, "
                               "MaxPool2d/AvgPool2d/AdaptiveAvgPool2d(1), Flatten")
        nodes.append(node)
        cur = name
    return Graph("input", (c, h, w), nodes, cur, source=type(net).__name__)


def _bias_or_none(m: nn.Module) -> np.ndarray | None:
    return m.bias.detach().double().numpy() if m.bias is not None else None


DEPTHWISE = ("digital", "array")  # where a depthwise conv runs (docs/architecture.md, "Grouped and depthwise")


def lower_graph(graph: Graph, depthwise: str = "digital") -> tuple[list[_Layer], list[_Tensor]]:
    """Graph -> chip layers in execution order and the tensors between them.

    Folds what the chip does for free: batch norm into the post-processing scale and bias of the
    layer before it (a conv/linear, an average pool or a residual add), clamps (ReLU, ReLU6,
    hard-tanh) into that layer's output clamp, flatten/identity into nothing (a flatten only
    renames a map: activations are HWC in memory, and a Linear reads them in that order). A
    grouped or depthwise conv is one MVM layer whose weights are block-diagonal (docs/architecture.md,
    "Grouped and depthwise convolutions"). Nodes that do not reach the output are dropped.
    The one lowering: compile_graph quantises and places these layers, model/footprint.py sizes
    them. CompileError, one line naming the node, for an arrangement it cannot map."""
    try:
        shapes = graph.shapes()
    except GraphError as e:
        raise CompileError(str(e)) from None
    live, want = [], {graph.output}
    for n in reversed(graph.nodes):  # drop nodes that do not reach the output
        if n.output in want:
            live.append(n)
            want.update(n.inputs)
    live.reverse()
    uses: dict[str, int] = {}
    for n in live:
        for t in n.inputs:
            uses[t] = uses.get(t, 0) + 1
    c, h, w = shapes[graph.input]
    tensors = [_Tensor((h, w, c), -1, graph.input)]
    layers: list[_Layer] = []
    env: dict[str, tuple[int, bool]] = {graph.input: (0, False)}  # graph tensor -> (chip tensor, flattened)

    def new_layer(L: _Layer, n: Node) -> None:
        L.label, L.qual = L.label or L.op.label, n.attrs.get("qual", "")
        L.out = len(tensors)
        (oh, ow), oc = L.out_hw, L.out_c
        if min(oh, ow) < 1:
            raise CompileError(f"{n.where()}: {L.k[0]}x{L.k[1]} window larger than its {L.in_shape[0]}x"
                               f"{L.in_shape[1]} input" + (f" padded by {L.pad[0]}" if any(L.pad) else ""))
        tensors.append(_Tensor((oh, ow, oc), len(layers), n.output))
        for t in L.inputs:
            tensors[t].consumers.append(len(layers))
        layers.append(L)
        env[n.output] = (L.out, False)

    def folds_into(n: Node, what: str) -> _Layer:
        """The layer whose output `n` (a batch norm or clamp) folds into, or CompileError."""
        t, _ = env[n.inputs[0]]
        L = layers[tensors[t].producer] if tensors[t].producer >= 0 else None
        if what == "clamp" and L is not None and L.op is Op.MAXPOOL and uses[n.inputs[0]] == 1:
            # max commutes with a monotone clamp: clamp the pooled layer's producer instead
            src = tensors[L.inputs[0]]
            if src.producer >= 0 and len(src.consumers) == 1 and layers[src.producer].op.uses_params:
                return layers[src.producer]
        ok = L is not None and L.op.uses_params and uses[n.inputs[0]] == 1 and \
            (what == "clamp" or L.clamp is None)
        if not ok:
            if what == "batchnorm":
                raise CompileError(f"{n.where()}: batch norm must directly follow a Conv2d/Linear to be folded (or an "
                                   "average pool or residual add, before any activation), with nothing else reading "
                                   "that layer's output")
            raise CompileError(f"{n.where()}: an activation (ReLU, ReLU6, clip) must follow a conv/linear, average "
                               "pool or residual add (optionally through batch norm or a max pool) whose output "
                               "nothing else reads" if L is not None else
                               f"{n.where()}: an activation before any conv/linear layer")
        return L

    for n in live:
        a = n.attrs
        if n.op in ("flatten", "identity"):
            t, flat = env[n.inputs[0]]
            env[n.output] = (t, flat or n.op == "flatten")
            continue
        t, flat = env[n.inputs[0]]
        ih, iw, ic = tensors[t].shape
        if flat and n.op != "linear" and ih * iw > 1:
            raise CompileError(f"{n.where()}: reads a flattened {ih}x{iw}x{ic} map; after a flatten only a Linear "
                               "may follow (the chip keeps activations in HWC order)")
        if n.op == "conv":
            wt = np.asarray(a["weight"], dtype=np.float64)  # (O, C/g, kh, kw)
            o, ig, kh, kw = wt.shape
            g = int(a.get("groups", 1))
            (sh, sw), (ph, pw) = _pair(a["stride"]), _pair(a["pad"])
            if sh != sw and not (ih == 1 and ph == 0 and kh == 1):
                raise CompileError(f"{n.where()}: strides ({sh}, {sw}) differ; the chip has one stride for both "
                                   "dimensions (a 1-D conv on a 1 x L map may have any)")
            if g == ic == o and ig == 1 and depthwise == "digital":
                # A depthwise conv on the digital depthwise engine (Op.DWCONV): k_h*k_w weights per channel.
                L = _Layer(Op.DWCONV, n.name, (ih, iw, ic), (kh, kw), sw if ih == 1 and kh == 1 else sh, (ph, pw),
                           inputs=(t,), label="depthwise", dw=wt[:, 0], groups=g, **_mvm_attrs(n, o))
                L.params = n.attrs.get("params", 0)
                new_layer(L, n)
                continue
            if g > 1:  # block-diagonal: group j's outputs see only group j's inputs
                dense = np.zeros((o, ic, kh, kw))
                for j in range(g):
                    dense[j * (o // g) : (j + 1) * (o // g), j * ig : (j + 1) * ig] = wt[j * (o // g) : (j + 1) * (o // g)]
                wt = dense
            L = _Layer(Op.MVM, n.name, (ih, iw, ic), (kh, kw), sw if ih == 1 and kh == 1 else sh, (ph, pw),
                       inputs=(t,), label="conv" if g == 1 else ("depthwise" if ig == 1 else "grouped conv"),
                       weight=wt.transpose(2, 3, 1, 0).reshape(kh * kw * ic, o), groups=g, **_mvm_attrs(n, o))
        elif n.op == "linear":
            wt = np.asarray(a["weight"], dtype=np.float64)  # (O, C*H*W) in CHW flatten order
            # A fully connected layer is a convolution whose kernel covers the whole HWC input.
            wt = wt.reshape(-1, ic, ih, iw).transpose(2, 3, 1, 0).reshape(ih * iw * ic, -1)
            L = _Layer(Op.MVM, n.name, (ih, iw, ic), (ih, iw), 1, inputs=(t,), label="linear", weight=wt,
                       **_mvm_attrs(n, wt.shape[1]))
        elif n.op == "batchnorm":
            L = folds_into(n, "batchnorm")
            g = np.asarray(a["gamma"], np.float64) / np.sqrt(np.asarray(a["var"], np.float64) + a["eps"])
            L.bias = g * (L.bias - np.asarray(a["mean"], np.float64)) + np.asarray(a["beta"], np.float64)
            L.chan_scale = L.chan_scale * g
            q = a.get("qual", n.name)
            L.bias_src = (f"{L.bias_src} and " if L.bias_src != "no bias" else "") + \
                f"batch norm {_ref(q, 'bias')}, {_ref(q, 'running_mean')}"
            L.fused, L.params = L.fused + (a.get("module", "BatchNorm2d"),), L.params + a.get("params", 2 * len(g))
            env[n.output] = env[n.inputs[0]]
            continue
        elif n.op == "clamp":
            L = folds_into(n, "clamp")
            lo, hi = (-np.inf, np.inf) if L.clamp is None else L.clamp
            L.clamp = (max(lo, float(a["lo"])), min(hi, float(a["hi"])))
            L.fused += (a.get("module", "ReLU" if (a["lo"], a["hi"]) == (0.0, np.inf) else "clamp"),)
            env[n.output] = env[n.inputs[0]]
            continue
        elif n.op == "add":
            t2, flat2 = env[n.inputs[1]]
            if t2 == t:
                raise CompileError(f"{n.where()}: adds a tensor to itself; use a conv/linear scale instead")
            L = _Layer(Op.ADD, n.name, (ih, iw, ic), (2, 1), 1, inputs=(t, t2), label="add",
                       bias=np.zeros(ic), chan_scale=np.ones(ic))
        elif n.op in ("maxpool", "avgpool", "gap"):
            k, st = ((ih, iw), (1, 1)) if n.op == "gap" else (_pair(a["kernel"]), _pair(a["stride"]))
            if st[0] != st[1] and not (ih == 1 and k[0] == 1):
                raise CompileError(f"{n.where()}: pooling needs padding 0, equal strides, ceil_mode False")
            op = Op.MAXPOOL if n.op == "maxpool" else Op.AVGPOOL
            L = _Layer(op, n.name, (ih, iw, ic), k, st[1] if ih == 1 and k[0] == 1 else st[0], inputs=(t,),
                       bias=np.zeros(ic) if op.uses_params else None, chan_scale=np.ones(ic) if op.uses_params else None)
        else:
            raise CompileError(f"{n.where()}: unsupported operation {n.op!r}; supported: {supported()}")
        L.params = L.params or n.attrs.get("params", 0)
        new_layer(L, n)
    out_t, _ = env[graph.output]
    if not any(L.op.uses_array for L in layers):
        raise CompileError("network has no Conv2d/Linear layer")
    # The output memory is written by MVM layers only (a pooling or add layer to_out is legal on
    # the chip but no network needs it: a classifier ends in a Linear).
    if out_t == 0 or not layers[tensors[out_t].producer].op.uses_array or tensors[out_t].producer != len(layers) - 1:
        last = layers[tensors[out_t].producer].name if out_t else "the input"
        raise CompileError(f"layer {last}: the last layer must be a Conv2d/Linear (its signed outputs are "
                           "the network's result)")
    for g, (i, flat) in env.items():  # the graph tensor holding each chip tensor's final (folded) value
        if not flat:
            tensors[i].name = g
    return layers, tensors


def _mvm_attrs(n: Node, out_c: int) -> dict:
    a = n.attrs
    b = a.get("bias")
    return dict(bias=np.zeros(out_c) if b is None else np.asarray(b, dtype=np.float64), chan_scale=np.ones(out_c),
                bias_src=_ref(a.get("qual", n.name), "bias") if b is not None else "no bias",
                per_column=n.per_column, in_range=n.in_range)


def lower_network(net: nn.Module, input_shape: tuple[int, int, int], depthwise: str = "digital") -> list[_Layer]:
    """The chip layers of a sequential network (`graph_from_sequential` + `lower_graph`), for
    model/footprint.py."""
    return lower_graph(graph_from_sequential(net, input_shape), depthwise)[0]


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


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters(recurse=False))


def _bias(m: nn.Module) -> np.ndarray:
    n = m.weight.shape[0]
    return m.bias.detach().double().numpy() if m.bias is not None else np.zeros(n)


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


def _place(layers: list[_Layer], cfg: AonCimConfig) -> list[tuple[int, int]]:
    """(row0, col0) of every layer: MVM layers as rectangles packed on the array (firmware/placement.py);
    a layer with more im2col rows than the array takes ceil(rows / cfg.rows) row tiles of out_c
    columns side by side (contract step 12), footprint min(rows, cfg.rows) x tiles*out_c (a tiled
    layer is array-high, so it always lands at row 0). Other layers get (0, 0)."""
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


def _allocate(layers: list[_Layer], tensors: list[_Tensor], cfg: AonCimConfig) -> list[tuple[int, int]]:
    """(bank, base) of every tensor in the two activation banks (the last layer's output goes to
    the output memory at 0).

    A tensor lives from the layer that writes it to the last layer that reads it; two tensors
    share words only if their lives do not meet, and a layer never writes over its own input (the
    chip writes while it reads). A tensor goes to the bank its producer does not read from when it
    can, at the lowest free address: a chain of layers ping-pongs between the banks at address 0.
    A residual add reads its two operands as one 2 x positions x channels map, so they are placed
    one after the other: the space for both is taken when the first is written."""
    last = len(layers) - 1
    end = [max(t.consumers, default=last) for t in tensors]
    partner: dict[int, int] = {}
    for L in layers:
        if L.op is Op.ADD:
            for t in L.inputs:
                if t in partner:
                    raise CompileError(f"layer {L.name}: its operand {tensors[t].name!r} is also an operand of another "
                                       "residual add; the chip reads the operands of an add as one block, so a tensor "
                                       "can feed one add only")
            a, b = sorted(L.inputs, key=lambda t: tensors[t].producer)
            partner[a], partner[b] = b, -1  # the first one reserves the block; -1: placed with its partner
    regions: dict[int, list[tuple[int, int, int, int]]] = {0: [], 1: []}  # (lo, hi, born, dies) per bank
    where: list[tuple[int, int]] = [(0, 0)] * len(tensors)
    for t, ten in enumerate(tensors):
        p = ten.producer
        if p == last or partner.get(t) == -1:
            continue
        mate = partner.get(t)
        size = ten.words * (2 if mate is not None else 1)
        dies = max(end[t], end[mate]) if mate is not None else end[t]
        reads = layers[p].inputs if p >= 0 else ()
        prefer = 1 - where[reads[0]][0] if reads else 0
        for bank in (prefer, 1 - prefer):
            base = _free_base(regions[bank], size, p, dies, cfg.act_depth)
            if base is not None:
                break
        else:
            who = f"layer {layers[p].name}" if p >= 0 else "the input"
            live = sum(hi - lo for b in (0, 1) for lo, hi, born, d in regions[b] if born <= dies and p <= d)
            raise CompileError(f"{who}: its output needs {size} activation words"
                               + (" (with its residual-add partner)" if mate is not None else "")
                               + f" while {live} words of other tensors are live; neither bank of act_depth "
                               f"{cfg.act_depth} has room: raise act_depth")
        regions[bank].append((base, base + size, p, dies))
        where[t] = (bank, base)
        if mate is not None:
            where[mate] = (bank, base + ten.words)
    return where


def _free_base(regions: list[tuple[int, int, int, int]], size: int, born: int, dies: int, depth: int) -> int | None:
    """Lowest address where `size` words are free from `born` to `dies` (lives that meet conflict)."""
    busy = sorted((lo, hi) for lo, hi, b, d in regions if b <= dies and born <= d)
    base = 0
    for lo, hi in busy:
        if base + size <= lo:
            break
        base = max(base, hi)
    return base if base + size <= depth else None


def _act_scale(a: torch.Tensor, amax: int) -> float:
    """Activation step from the 99.9th percentile of the calibrated (non-negative) activations."""
    return float(torch.quantile(a.flatten()[:1_000_000].float(), 0.999)) / amax or 1.0


def _quantile(a: torch.Tensor, q: float) -> float:
    return float(torch.quantile(a.flatten()[:1_000_000].float(), q))


def _grid(u: torch.Tensor, clamp: tuple[float, float] | None, amax: int, consumer_range: float,
          name: str) -> tuple[float, int]:
    """(step, zero point) of a layer's output codes: real value = step * (code - zero).

    A clamp with both ends (ReLU6, hard-tanh) is the grid exactly, so the chip's code clamp is the
    clamp; a ReLU (or calibrated values that are never negative) gives zero point 0 and the
    step of the consumer's trained DAC range or the 99.9th percentile; otherwise the grid spans the
    0.1st to 99.9th percentile, zero point where 0 falls."""
    lo, hi = clamp if clamp is not None else (-np.inf, np.inf)
    if lo > 0 or hi < 0:
        raise CompileError(f"layer {name}: its output clamp ({lo:g}, {hi:g}) excludes 0; the chip's clamps are "
                           "at the ends of a code grid that holds 0")
    if np.isfinite(lo) and np.isfinite(hi):
        s = (hi - lo) / amax or 1.0
        return s, int(round(-lo / s))
    if lo == 0 or (clamp is None and float(u.min()) >= 0):
        return (consumer_range / amax or _act_scale(u.clamp(min=0), amax)), 0
    lo_r = lo if np.isfinite(lo) else min(_quantile(u, 0.001), 0.0)
    hi_r = hi if np.isfinite(hi) else max(_quantile(u, 0.999), 0.0)
    s = (hi_r - lo_r) / amax or 1.0
    return s, int(np.clip(round(-lo_r / s), 0, amax))


def _consumer_range(layers: list[_Layer], tensors: list[_Tensor], t: int) -> float:
    """x_max the MVM layers reading tensor t (directly or through max pools) were trained with, if
    they all agree; 0 otherwise. Using it keeps the chip's activation grid the trained one."""
    found: set[float] = set()
    todo = [t]
    while todo:
        for c in tensors[todo.pop()].consumers:
            L = layers[c]
            if L.op.uses_array:
                found.add(L.in_range)
            elif L.op.keeps_bits:
                todo.append(L.out)
            else:
                return 0.0
    return found.pop() if len(found) == 1 else 0.0


def _step_src(layers: list[_Layer], tensors: list[_Tensor], t: int) -> str:
    """Where a tensor's step comes from, for messages."""
    return " from the consumer's trained input_range" if _consumer_range(layers, tensors, t) > 0 else \
        " from its calibrated outputs"


class _Classes:
    """Tensors that must share one step: the two operands of a residual add (the chip sums their
    codes) and a max pool's input and output (it passes codes through)."""

    def __init__(self, n: int):
        self.up = list(range(n))

    def find(self, t: int) -> int:
        while self.up[t] != t:
            self.up[t] = self.up[self.up[t]]
            t = self.up[t]
        return t

    def join(self, a: int, b: int) -> None:
        self.up[self.find(a)] = self.find(b)


def _shared_grids(graph: Graph, calib: torch.Tensor, layers: list[_Layer], tensors: list[_Tensor], amax: int,
                  input_grid: tuple[float, int]) -> dict[int, tuple[float, int]]:
    """(step, zero) of every tensor tied to a residual add, fixed before any layer is quantised
    (the first operand is written long before the second is known): one step per class, the
    largest any member needs on the float network's calibrated values; each member keeps its
    own zero point (a max pool's output its input's)."""
    cls = _Classes(len(tensors))
    adds = False
    for L in layers:
        if L.op is Op.ADD:
            cls.join(*L.inputs)
            adds = True
        elif L.op is Op.MAXPOOL:
            cls.join(L.inputs[0], L.out)
    if not adds:
        return {}
    groups: dict[int, list[int]] = {}
    for L in layers:
        if L.op is Op.ADD:
            root = cls.find(L.inputs[0])
            groups[root] = [t for t in range(len(tensors)) if cls.find(t) == root]
    values = graph.run(calib.double(), keep=True)
    out: dict[int, tuple[float, int]] = {}
    for members in groups.values():
        own = {}
        for t in members:
            if t == 0:
                own[t] = input_grid
                continue
            L = layers[tensors[t].producer]
            if L.op.keeps_bits:
                continue
            u = values[tensors[t].name]
            own[t] = _grid(u, L.clamp, amax, 0.0, L.name)
        step = max(s for s, _ in own.values())
        if 0 in own and own[0][0] != step:
            step = own[0][0]  # the input's step is the host's choice: the others follow it
        for t in members:
            chain, src = [], t
            while src != 0 and layers[tensors[src].producer].op.keeps_bits:
                chain.append(src)
                src = layers[tensors[src].producer].inputs[0]
            s0, z0 = own[src]
            z = z0 if s0 == step else int(round(z0 * s0 / step))
            L = layers[tensors[src].producer] if src else None
            if L is not None and L.clamp is not None and np.isfinite(L.clamp[1]) and s0 != step:
                raise CompileError(f"layer {L.name}: its clamp ({L.clamp[0]:g}, {L.clamp[1]:g}) and the residual add "
                                   f"it feeds need different activation steps ({s0:.3g} vs {step:.3g}); the chip adds "
                                   "codes of one step only")
            for m in [src] + chain:
                out[m] = (step, z)
    return out


def _input_grid(calib: torch.Tensor, amax: int, input_range: tuple[float, float] | None) -> tuple[float, float]:
    """(lo, hi) of the input code grid: `input_range`, else [0, 1] for inputs within it (images),
    else the calibration inputs' own range (widened to hold 0)."""
    if input_range is not None:
        lo, hi = map(float, input_range)
    else:
        lo, hi = float(calib.min()), float(calib.max())
        lo, hi = (0.0, 1.0) if lo >= 0 and hi <= 1 else (min(lo, 0.0), max(hi, 0.0))
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= 0 <= hi and hi > lo):
        raise CompileError(f"input range ({lo:g}, {hi:g}) must be finite, hold 0 and have hi > lo")
    return lo, hi


def compile_graph(graph: Graph, cfg: AonCimConfig, calib: torch.Tensor, act_bits: int = 8,
                  out_fraction: float = 0.25, input_range: tuple[float, float] | None = None,
                  depthwise: str = "digital") -> Program:
    """Quantise, allocate and place `graph` for `cfg`.

    calib: float inputs (N, C, H, W) in the model's layout; they set the input code grid (see
    `_input_grid`; `input_range` overrides it) and every activation step. act_bits: activation
    precision of every layer. out_fraction: the final layer's largest calibrated |output| maps to
    this fraction of the signed output range. depthwise: where depthwise convs run, "digital"
    (the depthwise engine, Op.DWCONV) or "array" (block-diagonal MVM layers)."""
    if depthwise not in DEPTHWISE:
        raise CompileError(f"depthwise={depthwise!r}: choose one of {', '.join(DEPTHWISE)}")
    if act_bits not in cfg.act_bits_supported:
        raise CompileError(f"act_bits={act_bits} not supported; choose one of {cfg.act_bits_supported}")
    calib = torch.as_tensor(calib)
    if not torch.isfinite(calib).all():
        raise CompileError("calibration inputs hold NaN or infinite values: give inputs in [0, 1] (check the input "
                           "scaler)")
    c, h, w = graph.input_shape
    layouts = {(c, h, w)} | ({(c, w)} if h == 1 else set()) | ({(c,)} if h == w == 1 else set())
    if calib.dim() < 2 or tuple(calib.shape[1:]) not in layouts:
        raise CompileError(f"calibration inputs have shape {tuple(calib.shape)}; the model takes (N, {c}, {h}, {w})"
                           + (f" or (N, {c}, {w})" if h == 1 else ""))
    calib = calib.reshape(-1, c, h, w)
    layers, tensors = lower_graph(graph, depthwise)
    if len(layers) > cfg.max_layers:
        raise CompileError(f"network has {len(layers)} chip layers > max_layers {cfg.max_layers}; merge layers "
                           "(fold pooling into strides) or raise max_layers")
    pp = sum(L.out_c for L in layers if L.op.uses_params)
    if pp > cfg.param_depth:
        raise CompileError(f"network needs {pp} post-processing entries (one per output channel of every conv, "
                           f"linear, average-pool and add layer) > param_depth {cfg.param_depth}; use fewer channels "
                           "or raise param_depth")
    if c * h * w > cfg.act_depth:
        raise CompileError(f"input of {c}x{h}x{w} = {c * h * w} words > act_depth {cfg.act_depth}; use a smaller "
                           "input or raise act_depth")
    dw_words = sum(L.dw.size for L in layers if L.op is Op.DWCONV)
    if dw_words > cfg.dw_depth:
        raise CompileError(f"network needs {dw_words} depthwise weights (k_h*k_w per channel of every depthwise "
                           f"layer) > dw_depth {cfg.dw_depth}; raise dw_depth or compile with depthwise='array'")
    places = _place(layers, cfg)
    where = _allocate(layers, tensors, cfg)
    amax = (1 << act_bits) - 1
    gain = cfg.adc_transfer.code_gain(act_bits)  # ADC codes per column-sum unit

    lo, hi = _input_grid(calib, amax, input_range)
    s_in0, z_in0 = (hi - lo) / amax, int(round(-lo * amax / (hi - lo)))
    shared = _shared_grids(graph, calib, layers, tensors, amax, (s_in0, z_in0))
    if 0 in shared:
        s_in0, z_in0 = shared[0]
    # Float reference activations of every tensor on the calibration set, dequantised from the
    # codes the chip holds: each layer sees its inputs as the chip does.
    q0 = torch.clamp(torch.round((calib.permute(0, 2, 3, 1).double() - lo) * amax / (hi - lo)), 0, amax)
    xs = {0: (q0 - z_in0) * (hi - lo) / amax}
    grid: dict[int, tuple[float, int]] = {0: (s_in0, z_in0)}
    g_plus = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
    g_minus = np.zeros_like(g_plus)
    descs, scales, biases, names, calib_codes = [], [], [], [], []
    param_base, s_out, w_base = 0, 1.0, 0
    dw_weights = np.zeros(cfg.dw_depth, dtype=np.int64) if dw_words else None
    for i, (L, (row0, col0)) in enumerate(zip(layers, places)):
        last = i == len(layers) - 1
        (oh, ow), oc = L.out_hw, L.out_c
        x = xs[L.inputs[0]]
        s_in, z_in = grid[L.inputs[0]]
        shift, qs, qb = 0, None, None
        if L.op.uses_array:
            cols = _im2col_f(x, L)  # N, P, k_rows
            u = torch.from_numpy(cols @ L.weight * L.chan_scale + L.bias)  # N, P, O
            calib_codes.append(np.clip(np.rint(cols.mean((0, 1)) / s_in + z_in), 0, amax).astype(np.int64))
            a = np.abs(L.weight)
            w_max = a.max(0) if L.per_column else np.full(oc, a.max())
            w_max = np.where(w_max > 0, w_max, 1.0)
            gq = np.rint(np.clip(L.weight / w_max, -1, 1) * cfg.gcode_max).astype(np.int64)
            # The chip sums codes x = v/s_in + z_in; the zero point's share, z_in * sum of the
            # column's (quantised) weights, comes off the bias. Padding loads z_in (pad_code), real 0.
            zero_term = L.chan_scale * s_in * z_in * (gq * (w_max / cfg.gcode_max)).sum(0)
            per_code = lambda s_out, L=L, s_in=s_in, w_max=w_max: L.chan_scale * s_in * w_max / cfg.gcode_max / gain / s_out  # noqa: E731
        else:
            calib_codes.append(np.zeros(0, dtype=np.int64))
            if L.op is Op.AVGPOOL:
                u = _windows_f(x, L).mean(-1) * torch.from_numpy(L.chan_scale) + torch.from_numpy(L.bias)
                zero_term = L.chan_scale * s_in * z_in
                per_code = lambda s_out, L=L, s_in=s_in: L.chan_scale * (s_in / (L.k[0] * L.k[1] * s_out))  # noqa: E731
            elif L.op is Op.DWCONV:
                # Weights as signed dw_weight_bits codes per channel, w_max per channel (the remap of
                # the array, done digitally); the window sum S = sum x*wq, x = v/s_in + z_in.
                w_max = np.abs(L.dw).reshape(oc, -1).max(1)
                w_max = np.where(w_max > 0, w_max, 1.0)
                wq = np.rint(L.dw / w_max[:, None, None] * cfg.dw_max).astype(np.int64)  # (C, kh, kw)
                xc = x.permute(0, 3, 1, 2)
                u = torch.nn.functional.conv2d(xc, torch.from_numpy(L.dw[:, None]), None, L.stride, L.pad, 1, oc)
                u = u.permute(0, 2, 3, 1) * torch.from_numpy(L.chan_scale) + torch.from_numpy(L.bias)
                zero_term = L.chan_scale * s_in * (w_max / cfg.dw_max) * z_in * wq.reshape(oc, -1).sum(1)
                per_code = lambda s_out, L=L, s_in=s_in, w_max=w_max: L.chan_scale * s_in * w_max / cfg.dw_max / s_out  # noqa: E731
            elif L.op is Op.ADD:
                s_b, z_b = grid[L.inputs[1]]
                assert s_b == s_in, "residual-add operands share one step (_shared_grids)"
                u = (x + xs[L.inputs[1]]) * torch.from_numpy(L.chan_scale) + torch.from_numpy(L.bias)
                zero_term = L.chan_scale * s_in * (z_in + z_b)
                per_code = lambda s_out, L=L, s_in=s_in: L.chan_scale * (s_in / s_out)  # noqa: E731
            else:  # max pooling: codes pass through unchanged
                u = _windows_f(x, L).amax(-1)
        if L.op.keeps_bits:
            s_out, z_out = s_in, z_in
        elif last:
            lo_c, hi_c = L.clamp if L.clamp is not None else (-np.inf, np.inf)
            omax = 2 ** (cfg.out_bits - 1) - 1
            if np.isfinite(hi_c) and lo_c == 0:
                s_out = hi_c / omax
            elif L.clamp is not None and (lo_c != 0 or np.isfinite(hi_c)):
                raise CompileError(f"layer {L.name}: the last layer's output clamp ({lo_c:g}, {hi_c:g}) is not "
                                   "supported; the output memory clamps at 0 (ReLU) or at (0, hi)")
            else:
                s_out = float(u.abs().max()) / (out_fraction * omax) or 1.0
            z_out = 0
            if not np.isfinite(s_out):
                raise CompileError(f"layer {L.name}: its calibrated outputs overflow (largest |weight| "
                                   f"{np.abs(L.weight).max():.3g}, |bias| {np.abs(L.bias).max():.3g}): the parameters "
                                   "are out of any representable range; retrain or check the network")
        else:
            s_out, z_out = shared.get(L.out) or _grid(u.clamp(*(L.clamp or (None, None))) if L.clamp else u, L.clamp,
                                                      amax, _consumer_range(layers, tensors, L.out), L.name)
            if not np.isfinite(s_out):
                raise CompileError(f"layer {L.name}: its calibrated outputs overflow (largest |weight| "
                                   f"{np.abs(L.weight).max():.3g}, |bias| {np.abs(L.bias).max():.3g}): the parameters "
                                   "are out of any representable range; retrain or check the network")
        if L.op.uses_params:
            src = "" if last else _step_src(layers, tensors, L.out)
            if L.op.uses_array or L.op is Op.DWCONV:
                terms = (lambda L=L, w_max=w_max, s_in=s_in, s_out=s_out, src=src:
                         f"|weights| up to {w_max.max():.3g}, batch-norm gain up to {np.abs(L.chan_scale).max():.3g}, "
                         f"input step {s_in:.3g}, output step {s_out:.3g}{src}")
            else:
                terms = (lambda s_in=s_in, s_out=s_out: f"input step {s_in:.3g}, output step {s_out:.3g}")
            qs, qb, shift = _fixed_point(per_code(s_out), (L.bias - zero_term) / s_out + z_out, cfg, L.name, terms,
                                         L.bias_src)
        if not last and oh * ow * oc > cfg.act_depth:
            raise CompileError(f"layer {L.name}: output needs {oh * ow * oc} activation words > act_depth "
                               f"{cfg.act_depth}; raise act_depth")
        in_bank, in_base = where[L.inputs[0]]
        ih, iw, ic = L.in_shape
        geo = dict(in_h=ih, in_w=iw, in_c=ic, k_h=L.k[0], k_w=L.k[1], out_h=oh, out_w=ow)
        if L.op is Op.ADD:  # the two operands, one after the other: a 2 x positions x C map, 2x1 window
            in_bank, in_base = where[min(L.inputs, key=lambda t: where[t][1])]
            geo = dict(in_h=2, in_w=ih * iw, in_c=ic, k_h=2, k_w=1, out_h=1, out_w=ih * iw)
        out_bank, out_base = where[L.out] if not last else (1 - in_bank, 0)
        d = LayerDescriptor(
            opcode=L.op.value, in_bits=act_bits, out_bits=act_bits, stride=L.stride, pad_h=L.pad[0], pad_w=L.pad[1],
            pad_code=z_in if L.op.pads and L.padded else 0, w_base=w_base if L.op is Op.DWCONV else 0,
            relu=int(L.relu), to_out=int(last), in_bank=in_bank, out_bank=out_bank, shift=shift, out_c=oc,
            k_rows=L.weight.shape[0] if L.op.uses_array else 0, row0=row0, col0=col0,
            param_base=param_base if qs is not None else 0, in_base=in_base, out_base=out_base, **geo)
        descs.append(d)
        if L.op.uses_array:
            # Row tile t holds im2col rows t*rows.. at its own columns (contract step 12); all tiles
            # share the channel's w_max, so the summed codes share one post-processing scale.
            for lo_r, n, r0, c0 in d.tile_rects(cfg.rows):
                g_plus[r0 : r0 + n, c0 : c0 + oc] = np.maximum(gq[lo_r : lo_r + n], 0)
                g_minus[r0 : r0 + n, c0 : c0 + oc] = np.maximum(-gq[lo_r : lo_r + n], 0)
        if L.op is Op.DWCONV:  # word w_base + (ky*k_w + kx)*C + c: a group's channels side by side
            dw_weights[w_base : w_base + wq.size] = wq.transpose(1, 2, 0).reshape(-1)
            w_base += wq.size
        if qs is not None:
            scales.append(qs)
            biases.append(qb)
            param_base += oc
        names.append(L.name)
        if L.op.keeps_bits:
            y = u
        else:
            if L.clamp is not None and not last:
                u = u.clamp(*L.clamp)
            y = (torch.clamp(torch.round(u / s_out) + z_out, 0, amax) - z_out) * s_out
        xs[L.out] = y.reshape(-1, oh, ow, oc)
        grid[L.out] = (s_out, z_out)
    prog = Program(descs, g_plus, g_minus, np.concatenate(scales), np.concatenate(biases), names,
                   alpha=np.full(len(descs), cfg.alpha_one, dtype=np.int64), calib_codes=calib_codes,
                   io=IoQuant((hi - lo) / amax, z_in0, s_out), dw_weights=dw_weights)
    try:
        prog.check(cfg)
    except ProgramError as e:
        raise CompileError(str(e)) from None
    return prog


def compile_network(net: nn.Module, cfg: AonCimConfig, calib: torch.Tensor, act_bits: int = 8,
                    out_fraction: float = 0.25, input_range: tuple[float, float] | None = None,
                    depthwise: str = "digital") -> Program:
    """Quantise and place a PyTorch network for `cfg` (`compile_graph` on its graph).

    A sequential network (an `nn.Sequential`: the AnalogNets, aoncim checkpoints) is read module by
    module; any other `nn.Module` goes through `torch.export` (firmware/torch_import.py).
    calib: float inputs (N, C, H, W) (or (N, C, L), (N, F) for 1-D and vector models)."""
    net = net.eval()
    calib = torch.as_tensor(calib)
    if isinstance(net, nn.Sequential):
        shape = tuple(calib.shape[1:])
        graph = graph_from_sequential(net, shape if len(shape) == 3 else (shape + (1, 1))[:3] if len(shape) == 1
                                      else (shape[0], 1, shape[1]))
    else:
        from aoncim.firmware.torch_import import graph_from_module

        try:
            graph = graph_from_module(net, calib[:1])
        except GraphError as e:
            raise CompileError(str(e)) from None
    c, h, w = graph.input_shape
    return compile_graph(graph, cfg, calib.reshape(-1, c, h, w), act_bits, out_fraction, input_range, depthwise)


def _im2col_f(x: torch.Tensor, L: _Layer) -> np.ndarray:
    """Float im2col, (N, H, W, C) -> (N, P, k_rows), rows in (ky, kx, c) order, zero (real 0) padded."""
    kh, kw = L.k
    xp = torch.nn.functional.pad(x, (0, 0, L.pad[1], L.pad[1], L.pad[0], L.pad[0]))
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

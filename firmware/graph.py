"""The network graph every front end produces and the compiler lowers.

One small vocabulary of float operations over (C, H, W) tensors (no batch axis), whatever the
model came from: an aoncim checkpoint or any `nn.Module` (firmware/torch_import.py, through
`torch.export`), a saved `torch.export` program (`.pt2`), or an ONNX file (firmware/onnx_import.py).
A front end maps its nodes onto `GRAPH_OPS` and refuses anything else with one line naming the
node, its op and what is supported; the compiler (firmware/compiler.py) never sees a framework.

Conventions:
- tensors are (C, H, W); a 1-D signal (C, L) is (C, 1, L) and a vector (F,) is (F, 1, 1), so a
  Conv1d is a 1 x k convolution and a Linear reads the CHW flatten of its input;
- `conv` weights are PyTorch's (O, I / groups, kh, kw); grouped and depthwise convolutions keep
  `groups`; padding is symmetric per axis (ph above and below, pw beside);
- nodes are in an order where every input is produced before it is read (the chip runs layers in
  this order);
- `run` is the float reference interpreter of the graph (torch, float64): the compiler calibrates
  on it, tests compare it with the source framework.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# op -> (inputs, attributes): the whole vocabulary.
GRAPH_OPS: dict[str, tuple[int, str]] = {
    "conv": (1, "weight (O, I/groups, kh, kw), bias (O,) or None, stride (sh, sw), pad (ph, pw), groups"),
    "linear": (1, "weight (O, C*H*W) over the CHW flatten of its input, bias (O,) or None"),
    "batchnorm": (1, "gamma, beta, mean, var (C,), eps: inference-mode batch norm"),
    "clamp": (1, "lo, hi (floats, -inf / inf for none): ReLU (0, inf), ReLU6 (0, 6), hard-tanh, clip"),
    "add": (2, "none: the elementwise sum of two tensors of one shape"),
    "maxpool": (1, "kernel (kh, kw), stride (sh, sw): no padding"),
    "avgpool": (1, "kernel (kh, kw), stride (sh, sw): no padding"),
    "gap": (1, "none: global average pooling to (C, 1, 1)"),
    "flatten": (1, "none: (C, H, W) -> (C*H*W, 1, 1) in CHW order"),
    "identity": (1, "none: Dropout, Identity, a reshape that keeps the layout"),
}


class GraphError(ValueError):
    """A model the flow cannot take; the message is one line naming the node, its op and the fix."""


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : the first not in `taken`, which it joins (node names
    of an imported graph are unique)."""
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def supported() -> str:
    """The vocabulary in one phrase, for messages."""
    return ("Conv1d/Conv2d (any groups, dilation 1, symmetric zero padding), Linear/Gemm/MatMul, BatchNorm, "
            "ReLU/ReLU6/Clip/Hardtanh, Add, MaxPool/AvgPool (no padding), global average pooling, "
            "Flatten/Reshape/Dropout/Identity")


@dataclass
class Node:
    name: str                      # unique in the graph; the chip layer's name
    op: str                        # a GRAPH_OPS key
    inputs: list[str]              # tensor names
    output: str                    # tensor name
    attrs: dict = field(default_factory=dict)
    source: str = ""               # where it came from, for messages: "ONNX node '/c1/Conv' (Conv)"
    # What an analog layer was trained with (model/analog.py): its DAC full scale x_max of the
    # input (0: not trained with one) and whether its weights map per column (channel-wise remap).
    in_range: float = 0.0
    per_column: bool = True

    def where(self) -> str:
        return self.source or f"node {self.name} ({self.op})"


@dataclass
class Graph:
    input: str                     # the input tensor's name
    input_shape: tuple[int, int, int]
    nodes: list[Node]
    output: str                    # the output tensor's name (a single output)
    source: str = ""               # the model, for messages

    def producer(self) -> dict[str, Node]:
        return {n.output: n for n in self.nodes}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for t in n.inputs:
                out.setdefault(t, []).append(n)
        return out

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        """The (C, H, W) shape of every tensor; GraphError (one line, naming the node) on any
        inconsistency: an unknown op, a tensor read before it is written or written twice,
        mismatched channels or operand shapes, a window larger than its input."""
        shp = {self.input: tuple(int(v) for v in self.input_shape)}
        for n in self.nodes:
            if n.op not in GRAPH_OPS:
                raise GraphError(f"{n.where()}: unsupported operation {n.op!r}; supported: {supported()}")
            if len(n.inputs) != GRAPH_OPS[n.op][0]:
                raise GraphError(f"{n.where()}: {n.op} takes {GRAPH_OPS[n.op][0]} input(s), has {len(n.inputs)}")
            for t in n.inputs:
                if t not in shp:
                    raise GraphError(f"{n.where()}: reads tensor {t!r} before any node writes it")
            if n.output in shp:
                raise GraphError(f"{n.where()}: writes tensor {n.output!r} a second time")
            shp[n.output] = _out_shape(n, [shp[t] for t in n.inputs])
        if self.output not in shp:
            raise GraphError(f"the graph's output {self.output!r} is not written by any node")
        return shp

    def run(self, x: torch.Tensor, keep: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        """Float reference: (N, C, H, W) inputs -> the output (N, C, H, W), or with `keep` every
        tensor by name. float64 throughout."""
        env = {self.input: torch.as_tensor(x, dtype=torch.float64)}
        for n in self.nodes:
            env[n.output] = _eval(n, [env[t] for t in n.inputs])
        return env if keep else env[self.output]


def _out_shape(n: Node, ins: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    c, h, w = ins[0]
    a = n.attrs
    if n.op == "conv":
        o, ig, kh, kw = a["weight"].shape
        g, (sh, sw), (ph, pw) = a.get("groups", 1), a["stride"], a["pad"]
        if ig * g != c or o % g:
            raise GraphError(f"{n.where()}: weight {tuple(a['weight'].shape)} with groups={g} does not take "
                             f"{c} input channels")
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise GraphError(f"{n.where()}: {kh}x{kw} kernel larger than its {h}x{w} input padded by ({ph}, {pw})")
        return (o, oh, ow)
    if n.op == "linear":
        o, i = a["weight"].shape
        if i != c * h * w:
            raise GraphError(f"{n.where()}: expects {i} inputs, gets {c}x{h}x{w} = {c * h * w}")
        return (o, 1, 1)
    if n.op == "batchnorm":
        if len(a["mean"]) != c:
            raise GraphError(f"{n.where()}: batch norm of {len(a['mean'])} channels on {c}")
        return (c, h, w)
    if n.op == "add":
        if ins[0] != ins[1]:
            raise GraphError(f"{n.where()}: adds tensors of shapes {ins[0]} and {ins[1]}; the chip adds equal shapes "
                             "only (no broadcasting)")
        return ins[0]
    if n.op in ("maxpool", "avgpool"):
        (kh, kw), (sh, sw) = a["kernel"], a["stride"]
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        if oh < 1 or ow < 1:
            raise GraphError(f"{n.where()}: {kh}x{kw} window larger than its {h}x{w} input")
        return (c, oh, ow)
    if n.op == "gap":
        return (c, 1, 1)
    if n.op == "flatten":
        return (c * h * w, 1, 1)
    return (c, h, w)  # clamp, identity


def _eval(n: Node, ins: list[torch.Tensor]) -> torch.Tensor:
    x, a = ins[0], n.attrs
    t = lambda v: None if v is None else torch.as_tensor(np.asarray(v), dtype=torch.float64)  # noqa: E731
    if n.op == "conv":
        return F.conv2d(x, t(a["weight"]), t(a.get("bias")), tuple(a["stride"]), tuple(a["pad"]), 1, a.get("groups", 1))
    if n.op == "linear":
        return F.linear(x.flatten(1), t(a["weight"]), t(a.get("bias")))[:, :, None, None]
    if n.op == "batchnorm":
        return F.batch_norm(x, t(a["mean"]), t(a["var"]), t(a["gamma"]), t(a["beta"]), False, 0.0, a["eps"])
    if n.op == "clamp":
        lo, hi = (None if a["lo"] == -np.inf else a["lo"]), (None if a["hi"] == np.inf else a["hi"])
        return x if lo is None and hi is None else x.clamp(min=lo, max=hi)  # torch refuses a clamp without bounds
    if n.op == "add":
        return x + ins[1]
    if n.op == "maxpool":
        return F.max_pool2d(x, tuple(a["kernel"]), tuple(a["stride"]))
    if n.op == "avgpool":
        return F.avg_pool2d(x, tuple(a["kernel"]), tuple(a["stride"]))
    if n.op == "gap":
        return x.mean((2, 3), keepdim=True)
    if n.op == "flatten":
        return x.flatten(1)[:, :, None, None]
    return x

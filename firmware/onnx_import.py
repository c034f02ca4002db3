"""ONNX front end: an ONNX file (or ModelProto) -> the graph IR (firmware/graph.py), with the
`onnx` package alone.

Each ONNX node maps onto one `GRAPH_OPS` node. What only computes constants -- initializers,
Constant nodes, weight transposes, the Shape/Gather/Concat chains exporters write for a
`view(x.size(0), -1)` -- is evaluated here with onnx's reference evaluator, so the graph holds
layers only; an Add of a constant to a Conv/Gemm/MatMul output becomes its bias.

Tensor layouts follow the IR: (N, C, H, W) is (C, H, W); (N, C, L) is (C, 1, L), so a 1-D Conv or
pool becomes 1 x k; (N, F) is (F, 1, 1). The model has one input whose first axis is the batch
(symbolic or fixed) and one output. Anything else is a GraphError of one line naming the ONNX
node, its op type and what is supported.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from .graph import Graph, GraphError, Node, supported, unique_name

# A symbolic batch size, while constant-folding shape arithmetic (Shape -> Gather -> Concat ->
# Reshape): a prime no real dimension has, so a reshape target that holds it exactly at axis 0
# keeps the batch, and one where it was multiplied into another axis does not.
_BATCH = 1_000_003
# Ops that may compute with the symbolic batch size: shape arithmetic, never allocation.
_SHAPE_OPS = {"Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Mul", "Div",
              "Add", "Sub", "Neg", "Abs", "Max", "Min", "Equal", "Where", "ReduceProd"}
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


class _Act:
    """An activation: the graph tensor holding it and the ONNX tensor's rank (2, 3 or 4)."""

    __slots__ = ("name", "rank", "shape")

    def __init__(self, name: str, rank: int, shape: tuple[int, int, int]):
        self.name, self.rank, self.shape = name, rank, shape


class _Unusable:
    """An output the graph cannot hold (a pool's indices, a dropout mask): harmless unless read."""

    def __init__(self, what: str):
        self.what = what


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def graph_from_onnx(model: str | Path | onnx.ModelProto) -> Graph:
    """An ONNX model (a file path or a loaded ModelProto) -> Graph. GraphError (one line) for a file
    that is missing or not ONNX, and for any node the chip cannot run."""
    if isinstance(model, onnx.ModelProto):
        where = f"ONNX model {model.graph.name or '(unnamed)'}"
    else:
        p = Path(model)
        if not p.is_file():
            raise GraphError(f"ONNX file {p} not found")
        try:
            model = onnx.load(p)
        except Exception as e:  # noqa: BLE001 -- a corrupt or foreign file, reported in one line
            raise GraphError(f"cannot read ONNX file {p}: {_first_line(e)}") from None
        where = f"ONNX model {p.name}"
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001
        raise GraphError(f"{where}: ONNX shape inference failed: {_first_line(e)}") from None
    return _Importer(inferred, where).run()


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ir_shape(dims: tuple) -> tuple[int, int, int] | None:
    """The IR (C, H, W) of a batched tensor shape, or None when it has no IR equivalent."""
    rest = dims[1:]
    if not all(isinstance(d, (int, np.integer)) and d > 0 for d in rest):
        return None
    rest = tuple(int(d) for d in rest)
    if len(dims) == 4:
        return rest
    return (rest[0], 1, rest[1]) if len(dims) == 3 else (rest[0], 1, 1) if len(dims) == 2 else None


class _Importer:
    """One pass over the (topologically sorted) ONNX graph: every ONNX tensor gets a value (an
    `_Act`, a numpy constant or an `_Unusable`) and every activation op adds one graph node."""

    def __init__(self, model: onnx.ModelProto, where: str):
        self.model, self.g, self.where = model, model.graph, where
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.val: dict[str, object] = {}
        self.nodes: list[Node] = []
        self.names: set[str] = set()
        self.producer: dict[str, Node] = {}
        self.users: dict[str, int] = {}  # graph tensor -> ONNX readers of the value holding it
        self.readers: dict[str, int] = {}
        for n in self.g.node:
            for t in n.input:
                if t:
                    self.readers[t] = self.readers.get(t, 0) + 1
        for o in self.g.output:
            self.readers[o.name] = self.readers.get(o.name, 0) + 1
        self.batch: int = 1
        # ONNX's own shape inference, to check every node against: tensor -> its (C, H, W).
        self.inferred: dict[str, tuple[int, int, int]] = {}
        for vi in (*self.g.value_info, *self.g.output):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
            if dims and _ir_shape(dims) is not None:
                self.inferred[vi.name] = _ir_shape(dims)
        self.expect: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {}

    # ------------------------------------------------------------------ driver
    def run(self) -> Graph:
        for init in self.g.initializer:
            self.val[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in self.g.input if i.name not in self.val]
        for what, vis in (("input", inputs), ("output", list(self.g.output))):
            if len(vis) != 1:
                raise GraphError(f"{self.where}: {len(vis)} {what}s ({', '.join(repr(v.name) for v in vis)}) are not "
                                 f"supported; supported: one input and one output, {supported()}")
        gin = self._input(inputs[0])
        self.val[inputs[0].name] = gin
        for i, node in enumerate(self.g.node):
            self._node(i, node)
        out = self.val.get(self.g.output[0].name)
        if not isinstance(out, _Act):
            raise GraphError(f"{self.where}: the output {self.g.output[0].name!r} does not depend on the input; "
                             f"supported: {supported()}")
        if out.name == gin.name:  # a model that passes its input through: one explicit node
            out = self._emit(None, "identity", [gin], {}, gin.rank, gin.shape, name=self._unique("output"))
        g = Graph(gin.name, gin.shape, self.nodes, out.name, source=self.where)
        shapes = g.shapes()
        for t, (onnx_shape, ours) in self.expect.items():  # the IR must agree with ONNX, node by node
            if not shapes[t] == ours == onnx_shape:
                n = self.producer[t]
                raise GraphError(f"{n.where()}: imported as {n.op} with output {shapes[t]}, ONNX infers {onnx_shape}; "
                                 f"supported: {supported()}")
        return g

    def _input(self, vi: onnx.ValueInfoProto) -> _Act:
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        shape = _ir_shape(dims) if dims else None
        if tt.elem_type not in _FLOATS or shape is None:
            ty = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "non-tensor"
            raise GraphError(f"{self.where}: input {vi.name!r} of {ty} {list(dims)} is not supported; supported: one "
                             f"float tensor (N, C, H, W), (N, C, L) or (N, F) input to {supported()}")
        self.batch = dims[0] if dims[0] else _BATCH
        name = self._unique(vi.name.replace("/", ".").strip(".") or "input")
        self.users[name] = self.readers.get(vi.name, 0)
        return _Act(name, len(dims), shape)

    def _node(self, i: int, node: onnx.NodeProto) -> None:
        src = f"ONNX node '{node.name}' ({node.op_type})" if node.name else f"ONNX node #{i} ({node.op_type})"
        self.cur, self.src = node, src
        if node.domain not in ("", "ai.onnx"):
            raise self.unsupported(f"operator {node.domain}.{node.op_type}")
        ins = []
        for t in node.input:
            if t and t not in self.val:
                raise GraphError(f"{src}: reads tensor {t!r} that no node or initializer provides")
            ins.append(self.val[t] if t else None)
        bad = next((v for v in ins if isinstance(v, _Unusable)), None)
        if bad is not None:
            raise self.unsupported(f"reading {bad.what}")
        a = _attrs(node)
        if node.op_type == "Constant":
            outs = [_constant(a)]
        elif node.op_type == "Shape" and isinstance(ins[0], _Act):
            outs = [self._shape(ins[0], a)]
        elif not any(isinstance(v, _Act) for v in ins):
            outs = self._fold(node, ins)
        else:
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                raise self.unsupported(node.op_type)
            acts = [v for v in ins if isinstance(v, _Act)]
            if node.op_type not in ("Add",) and (len(acts) > 1 or ins[0] is not acts[0]):
                raise self.unsupported(f"{node.op_type} with an activation as a parameter operand")
            out = handler(ins, a)
            outs = list(out) if isinstance(out, tuple) else [out]
        for name, v in zip(node.output, outs):
            if name:
                self.val[name] = v

    # ------------------------------------------------------------------ helpers
    def unsupported(self, what: str) -> GraphError:
        return GraphError(f"{self.src}: {what} is not supported; supported: {supported()}")

    def _unique(self, base: str) -> str:
        return unique_name(base, self.names)

    def _name(self, i_node: onnx.NodeProto) -> str:
        """A readable unique name: the module path the torch exporter records ("block1.conv1"),
        else the node name with its scopes dotted ("block1.conv1.Conv")."""
        meta = {p.key: p.value for p in i_node.metadata_props}
        ns = meta.get("namespace", "")
        parts = [e.split(": ", 1) for e in ns.split("/")] if ns else []
        if len(parts) >= 2 and all(len(e) == 2 for e in parts) and "pkg.onnxscript.rewriter.rule_name" not in meta:
            (path, typ), (op, _) = parts[-2], parts[-1]
            leaf = typ.startswith("torch.nn.modules.") and not typ.endswith(("Sequential", "ModuleList", "ModuleDict"))
            base = path if path and leaf else (f"{path}.{op}" if path else op)
        else:
            base = i_node.name.replace("/", ".").strip(".") or i_node.op_type.lower()
        return self._unique(base)

    def _emit(self, node, op: str, inputs: list[_Act], attrs: dict, rank: int, shape: tuple[int, int, int],
              name: str | None = None) -> _Act:
        name = name or self._name(node)
        n = Node(name, op, [a.name for a in inputs], name, attrs, source=self.src if node is not None else "")
        self.nodes.append(n)
        self.producer[name] = n
        self.users[name] = self.readers.get(node.output[0], 0) if node is not None else 0
        if node is not None and node.output[0] in self.inferred:
            self.expect[name] = (self.inferred[node.output[0]], shape)
        return _Act(name, rank, shape)

    def emit(self, op: str, x: _Act, attrs: dict | None = None, rank: int | None = None,
             shape: tuple[int, int, int] | None = None, inputs: list[_Act] | None = None) -> _Act:
        """A node for the current ONNX node reading x (or `inputs`), output rank/shape default x's."""
        return self._emit(self.cur, op, inputs or [x], attrs or {}, rank or x.rank, shape or x.shape)

    def full_shape(self, x: _Act) -> tuple[int, ...]:
        """The ONNX shape of an activation (the batch as `self.batch`)."""
        c, h, w = x.shape
        return {2: (self.batch, c), 3: (self.batch, c, w), 4: (self.batch, c, h, w)}[x.rank]

    def _shape(self, x: _Act, a: dict) -> np.ndarray:
        full = np.array(self.full_shape(x), dtype=np.int64)
        return full[a.get("start", 0): a.get("end", len(full))]

    def _fold(self, node: onnx.NodeProto, ins: list) -> list:
        """Evaluate a node whose inputs are all constants."""
        if node.op_type not in _SHAPE_OPS and self.batch == _BATCH and any(
                isinstance(v, np.ndarray) and v.dtype.kind in "iu" and (v == _BATCH).any() for v in ins):
            raise self.unsupported(f"{node.op_type} of the symbolic batch size")
        def info(names):
            return [onnx.helper.make_tensor_value_info(t, onnx.TensorProto.UNDEFINED, None) for t in names if t]
        try:  # a one-node model, so the node runs at the model's opset
            one = onnx.helper.make_model(onnx.helper.make_graph([node], "fold", info(node.input), info(node.output)),
                                         opset_imports=self.model.opset_import)
            res = ReferenceEvaluator(one).run(None, {t: v for t, v in zip(node.input, ins) if t})
        except Exception as e:  # noqa: BLE001
            raise self.unsupported(f"{node.op_type} on constants ({_first_line(e)})") from None
        outs, it = [], iter(res)
        for t in node.output:
            outs.append(np.asarray(next(it)) if t else None)
        return outs

    def const(self, v, what: str) -> np.ndarray | None:
        if v is None:
            return None
        if not isinstance(v, np.ndarray):
            raise self.unsupported(f"a {what} that is not a constant")
        return v

    def check_strides(self, x: _Act, kh: int, ph: int, stride: tuple[int, int]) -> None:
        # The chip has one stride; on a 1 x L map (kernel height 1, no vertical padding) the
        # vertical one is never used.
        if stride[0] != stride[1] and not (x.shape[1] == 1 and kh == 1 and ph == 0):
            raise self.unsupported(f"unequal strides {stride} on a {x.shape[1]}x{x.shape[2]} map")

    def window(self, x: _Act, a: dict, kernel: tuple[int, ...], pool: bool):
        """(kernel, stride, pad, out_hw) of a Conv/pool as the IR's 2-D (kh, kw), (sh, sw), (ph, pw)
        from its ONNX attributes; 1-D as 1 x k. Asymmetric pads are taken when the end padding is
        never reached (same output size and windows as symmetric begin padding); pools take none."""
        nd = len(kernel)
        if x.rank != nd + 2:
            raise self.unsupported(f"a {nd}-D window on a rank-{x.rank} tensor")
        size = x.shape[3 - nd:]
        strides = tuple(a.get("strides", [1] * nd))
        dil = tuple(a.get("dilations", [1] * nd))
        if any(d != 1 for d in dil):
            raise self.unsupported(f"dilation {dil}")
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for n, k, s in zip(size, kernel, strides):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
            ends = [max((math.ceil(n / s) - 1) * s + k - n, 0) - b for n, k, s, b in zip(size, kernel, strides, pads)]
        elif auto == "VALID":
            pads, ends = [0] * nd, [0] * nd
        else:
            p = list(a.get("pads", [0] * 2 * nd))
            pads, ends = p[:nd], p[nd:]
        ceil = bool(a.get("ceil_mode", 0))
        pad_text = f"auto_pad={auto}" if auto in ("SAME_UPPER", "SAME_LOWER") else f"pads {list(pads) + list(ends)}"
        for n, k, s, b, e in zip(size, kernel, strides, pads, ends):
            if pool and b:
                raise self.unsupported(f"a pool with {pad_text}")
            want = (n + b + e - k) / s
            want = (math.ceil(want) if ceil else math.floor(want)) + 1
            if ceil and (want - 1) * s >= n + b:  # the last window must start inside the input
                want -= 1
            if want != (n + 2 * b - k) // s + 1:  # the windows of symmetric (begin) padding
                raise self.unsupported("ceil_mode=1 where it adds a window" if b == e else
                                       f"{pad_text} (asymmetric padding whose end adds a window)")
        if nd == 1:
            kernel, strides, pads = (1, kernel[0]), (1, strides[0]), (0, pads[0])
        self.check_strides(x, kernel[0], pads[0], strides)
        return tuple(int(k) for k in kernel), tuple(int(s) for s in strides), tuple(int(p) for p in pads)

    def out_window(self, x: _Act, k, s, p, channels: int) -> tuple[int, int, int]:
        _, h, w = x.shape
        return (channels, (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)

    # ------------------------------------------------------------------ ops
    def op_Conv(self, ins, a):
        x, w, b = ins[0], self.const(ins[1], "Conv weight"), self.const(ins[2] if len(ins) > 2 else None, "Conv bias")
        nd = w.ndim - 2
        if nd not in (1, 2):
            raise self.unsupported(f"a {nd}-D Conv")
        kernel = tuple(a.get("kernel_shape", w.shape[2:]))
        k, s, p = self.window(x, a, kernel, pool=False)
        wt = w.astype(np.float64)
        if nd == 1:
            wt = wt[:, :, None, :]
        attrs = dict(weight=wt, bias=None if b is None else b.astype(np.float64).reshape(-1), stride=s, pad=p,
                     groups=int(a.get("group", 1)))
        return self.emit("conv", x, attrs, shape=self.out_window(x, k, s, p, w.shape[0]))

    def linear(self, x: _Act, wt: np.ndarray, bias: np.ndarray | None) -> _Act:
        if x.rank != 2:
            raise self.unsupported(f"a matrix product over the last axis of a rank-{x.rank} tensor "
                                   "(flatten to (N, F) first)")
        if wt.ndim != 2 or wt.shape[1] != x.shape[0]:
            raise self.unsupported(f"a weight of shape {wt.shape} for {x.shape[0]} inputs")
        return self.emit("linear", x, dict(weight=wt.astype(np.float64), bias=bias), shape=(wt.shape[0], 1, 1))

    def op_Gemm(self, ins, a):
        x, bm = ins[0], self.const(ins[1], "Gemm B operand")
        c = self.const(ins[2] if len(ins) > 2 else None, "Gemm C operand")
        if a.get("transA", 0):
            raise self.unsupported("Gemm with transA=1 on an activation")
        wt = float(a.get("alpha", 1.0)) * (bm if a.get("transB", 0) else bm.T).astype(np.float64)
        bias = None
        if c is not None:
            if c.size not in (1, wt.shape[0]):
                raise self.unsupported(f"Gemm with a C operand of shape {c.shape}")
            bias = float(a.get("beta", 1.0)) * np.broadcast_to(c.astype(np.float64).reshape(-1), wt.shape[:1]).copy()
        return self.linear(x, wt, bias)

    def op_MatMul(self, ins, a):
        return self.linear(ins[0], self.const(ins[1], "MatMul operand").T.astype(np.float64), None)

    def op_BatchNormalization(self, ins, a):
        if a.get("training_mode", 0):
            raise self.unsupported("BatchNormalization in training mode")
        x, gamma, beta, mean, var = [ins[0]] + [self.const(v, "batch norm parameter") for v in ins[1:5]]
        out = self.emit("batchnorm", x, dict(gamma=gamma.astype(np.float64), beta=beta.astype(np.float64),
                                             mean=mean.astype(np.float64), var=var.astype(np.float64),
                                             eps=float(a.get("epsilon", 1e-5))))
        return (out, _Unusable("a batch norm's running mean"), _Unusable("a batch norm's running variance"))

    def clamp(self, x: _Act, lo, hi) -> _Act:
        def bound(v, default: float) -> float:
            if v is None:
                return default
            v = np.asarray(v if isinstance(v, float) else self.const(v, "Clip bound"), dtype=np.float64)
            if v.size != 1:
                raise self.unsupported(f"Clip to per-element bounds {v.shape}")
            v = float(v.reshape(-1)[0])
            return default if abs(v) >= 3.4e38 else v  # opset-6 Clip defaults to +-FLT_MAX: no bound
        return self.emit("clamp", x, dict(lo=bound(lo, -np.inf), hi=bound(hi, np.inf)))

    def op_Relu(self, ins, a):
        return self.clamp(ins[0], 0.0, None)

    def op_Clip(self, ins, a):
        if self.opset < 11:
            return self.clamp(ins[0], a.get("min"), a.get("max"))
        return self.clamp(ins[0], ins[1] if len(ins) > 1 else None, ins[2] if len(ins) > 2 else None)

    def op_Add(self, ins, a):
        x, y = ins[0], ins[1]
        if isinstance(x, _Act) and isinstance(y, _Act):
            if (x.rank, x.shape) != (y.rank, y.shape):
                raise self.unsupported(f"a broadcasting Add of shapes {self.full_shape(x)} and {self.full_shape(y)}")
            return self.emit("add", x, inputs=[x, y])
        x, c = (x, y) if isinstance(x, _Act) else (y, x)
        return self.fold_bias(x, c)

    def fold_bias(self, x: _Act, c: np.ndarray) -> _Act:
        """x + constant: the bias of the Conv/Gemm/MatMul that produced x, when nothing else reads x."""
        p = self.producer.get(x.name)
        if p is None or p.op not in ("conv", "linear") or self.users.get(x.name) != 1:
            raise self.unsupported("adding a constant other than the bias of a Conv/Gemm/MatMul whose output nothing "
                                   "else reads")
        full = self.full_shape(x)
        try:
            if np.broadcast_shapes(c.shape, full) != full:
                raise ValueError
            per = np.broadcast_to(c.astype(np.float64), (1, *full[1:]))[0].reshape(full[1], -1)
        except ValueError:
            raise self.unsupported(f"adding a constant of shape {c.shape} to {full}") from None
        if not (per == per[:, :1]).all():
            raise self.unsupported(f"adding a constant of shape {c.shape} that varies over the map")
        vec = per[:, 0].copy()
        p.attrs["bias"] = vec if p.attrs.get("bias") is None else p.attrs["bias"] + vec
        self.users[x.name] = self.readers.get(self.cur.output[0], 0)  # x now stands for the sum
        return x

    def pool(self, op: str, ins, a):
        x = ins[0]
        kernel = tuple(a["kernel_shape"])
        k, s, _ = self.window(x, a, kernel, pool=True)
        out = self.emit(op, x, dict(kernel=k, stride=s), shape=self.out_window(x, k, s, (0, 0), x.shape[0]))
        return (out, _Unusable("a max pool's indices"))

    def op_MaxPool(self, ins, a):
        return self.pool("maxpool", ins, a)

    def op_AveragePool(self, ins, a):
        return self.pool("avgpool", ins, a)

    def op_GlobalAveragePool(self, ins, a):
        x = ins[0]
        if x.rank < 3:
            raise self.unsupported(f"GlobalAveragePool of a rank-{x.rank} tensor")
        return self.emit("gap", x, shape=(x.shape[0], 1, 1))

    def op_ReduceMean(self, ins, a):
        x = ins[0]
        axes = a.get("axes") if self.opset < 18 else (self.const(ins[1], "ReduceMean axes") if len(ins) > 1 else None)
        keep = a.get("keepdims", 1)
        full = self.full_shape(x)
        dims = {int(d) % x.rank for d in (axes if axes is not None and len(axes) else range(x.rank))}
        spatial = set(range(2, x.rank))
        if not dims <= spatial or any(full[d] != 1 for d in spatial - dims) or (
                axes is not None and not len(axes) and a.get("noop_with_empty_axes", 0)):
            raise self.unsupported(f"ReduceMean over axes {sorted(dims)} of a rank-{x.rank} tensor (only over all "
                                   "spatial axes)")
        return self.emit("gap", x, rank=x.rank if keep else x.rank - len(dims), shape=(x.shape[0], 1, 1))

    def op_Flatten(self, ins, a):
        x = ins[0]
        if a.get("axis", 1) % x.rank != 1:
            raise self.unsupported(f"Flatten at axis {a.get('axis', 1)} (only axis 1 keeps the batch)")
        return self.emit("flatten", x, rank=2, shape=(x.shape[0] * x.shape[1] * x.shape[2], 1, 1))

    def reshaped(self, x: _Act, out: list[int], what: str) -> _Act:
        """x as the ONNX shape `out` (batch first): (N, F) is a flatten, the same IR shape an identity."""
        shape = _ir_shape(tuple(out)) if out and out[0] == self.batch else None
        if shape is not None and len(out) == 2 and out[1] == math.prod(x.shape):
            return self.emit("flatten", x, rank=2, shape=shape)
        if shape == x.shape:
            return self.emit("identity", x, rank=len(out))
        raise self.unsupported(f"{what} of {list(self.full_shape(x))} to {out} (only to (N, -1) or keeping the "
                               "(C, H, W) layout)")

    def op_Reshape(self, ins, a):
        x, target = ins[0], [int(v) for v in self.const(ins[1], "Reshape shape").reshape(-1)]
        full, count = self.full_shape(x), math.prod(x.shape)
        out = [full[i] if d == 0 and not a.get("allowzero", 0) and i < len(full) else d for i, d in enumerate(target)]
        if out and out[0] == -1 and -1 not in out[1:] and math.prod(out[1:]) == count:
            out[0] = self.batch  # (-1, F): the batch inferred
        if out and out[0] == self.batch and out[1:].count(-1) == 1:
            known = math.prod(d for d in out[1:] if d != -1)
            out[out.index(-1, 1)] = count // known if known and count % known == 0 else -1
        return self.reshaped(x, out, "Reshape")

    def _axes(self, ins, a) -> list[int] | None:
        if self.opset < 13:
            return a.get("axes")
        return None if len(ins) < 2 or ins[1] is None else [int(v) for v in self.const(ins[1], "axes").reshape(-1)]

    def op_Squeeze(self, ins, a):
        x, axes = ins[0], self._axes(ins, a)
        full = list(self.full_shape(x))
        axes = [i for i, d in enumerate(full) if d == 1] if axes is None else [v % len(full) for v in axes]
        if 0 in axes:
            raise self.unsupported("Squeeze of the batch axis")
        return self.reshaped(x, [d for i, d in enumerate(full) if i not in axes], "Squeeze")

    def op_Unsqueeze(self, ins, a):
        x, axes = ins[0], self._axes(ins, a)
        out = list(self.full_shape(x))
        rank = len(out) + len(axes or [])
        for v in sorted(v % rank for v in (axes or [])):
            if v == 0:
                raise self.unsupported("Unsqueeze before the batch axis")
            out.insert(v, 1)
        return self.reshaped(x, out, "Unsqueeze")

    def op_Dropout(self, ins, a):
        if len(ins) > 2 and ins[2] is not None and bool(np.asarray(ins[2]).reshape(-1)[0]):
            raise self.unsupported("Dropout in training mode")
        return (self.emit("identity", ins[0]), _Unusable("a dropout mask"))

    def op_Identity(self, ins, a):
        return self.emit("identity", ins[0])

    def op_Cast(self, ins, a):
        if a.get("to") not in _FLOATS:
            raise self.unsupported(f"Cast to {onnx.TensorProto.DataType.Name(a.get('to', 0))}")
        return self.emit("identity", ins[0])


def _constant(a: dict) -> np.ndarray:
    """A Constant node's value, whichever attribute holds it."""
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dtype=dtype)
    raise GraphError(f"Constant node with attributes {sorted(a)} is not supported; supported: {supported()}")

"""PyTorch front end: any `nn.Module` (through `torch.export`) or a saved `torch.export` program
(`.pt2`) -> the graph IR (firmware/graph.py).

`torch.export` gives the module's whole forward as one aten graph, whatever Python built it
(residual blocks, functional calls, nested modules), so the front end sees the same few aten ops
for every model instead of guessing from module order. Each aten op maps onto one `GRAPH_OPS`
node; weight transposes and other arithmetic on parameters alone are evaluated here (they are
constants, not layers), and an add of a constant to a conv/linear output becomes its bias.

Tensor layouts follow the IR: torch (N, C, H, W) is (C, H, W); (N, C, L) is (C, 1, L), so Conv1d
and 1-D pooling become 1 x k ops; (N, F) is (F, 1, 1). Anything else -- an op outside the
vocabulary, dilation, asymmetric padding, several inputs or outputs -- is a GraphError of one line
naming the torch node, its op and what is supported.

Analog layers (model/analog.py) simulate quantisation and noise in their forward, which must not
end up in the graph: they are exported as the plain Conv2d/Linear they wrap, and their trained
input range and weight mapping go onto the node (`Node.in_range`, `Node.per_column`).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import operator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aoncim.model.analog import _AnalogMVM

from .graph import Graph, GraphError, Node, supported, unique_name

# torch.nn modules that only hold others: an op never belongs to them as it does to a layer
# (naming, `_Importer._name`).
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


class _Act:
    """An activation: the graph tensor holding it and the torch tensor's rank (2, 3 or 4)."""

    __slots__ = ("name", "rank", "shape")

    def __init__(self, name: str, rank: int, shape: tuple[int, int, int]):
        self.name, self.rank, self.shape = name, rank, shape


class _Unusable:
    """A value the graph cannot hold (the indices output of a pool, a batch norm's saved statistics):
    harmless until a node reads it."""

    def __init__(self, what: str):
        self.what = what


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def graph_from_module(module: nn.Module, example: torch.Tensor) -> Graph:
    """`module` (in eval mode, on a copy) exported with `torch.export` on `example` (N, ...) -> Graph.

    The user's module is never modified: analog layers are swapped for plain ones on a deep copy.
    GraphError (one line) for a module or op the chip cannot run."""
    where = f"torch model {type(module).__name__}"
    if not isinstance(example, torch.Tensor) or not example.is_floating_point():
        what = f"a {example.dtype} input" if isinstance(example, torch.Tensor) else f"a {type(example).__name__} input"
        raise GraphError(f"{where}: {what} is not supported; supported: one float tensor (N, C, H, W), (N, C, L) "
                         f"or (N, F) input to {supported()}")
    model, analog = _plain_copy(module)
    for q, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd) and m.padding_mode != "zeros":
            what = f"module {q} ({type(m).__name__})" if q else where
            raise GraphError(f"{what}: padding_mode={m.padding_mode!r} is not supported; supported: {supported()}")
    # torch reports a failed trace at length (logged fake-tensor tracebacks, the partial graph on
    # stderr); the GraphError line is the whole report.
    quiet = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            ep = torch.export.export(model.eval(), (example,))
    except Exception as e:  # noqa: BLE001 -- any tracing failure is the model's, reported in one line
        raise GraphError(f"{where}: torch.export failed: {_first_line(e)}") from None
    finally:
        logging.disable(quiet)
    return _Importer(ep, where, analog).run()


def graph_from_pt2(path: str | Path) -> Graph:
    """A program saved with `torch.export.save` -> Graph. GraphError naming the file when it is
    missing or not a torch.export program."""
    p = Path(path)
    if not p.is_file():
        raise GraphError(f"torch.export program {p} not found")
    try:
        ep = torch.export.load(p)
    except Exception as e:  # noqa: BLE001 -- a corrupt or foreign file, reported in one line
        raise GraphError(f"cannot read torch.export program {p}: {_first_line(e)}") from None
    return _Importer(ep, f"torch.export program {p.name}", {}).run()


def _plain_copy(module: nn.Module) -> tuple[nn.Module, dict[str, tuple[float, bool]]]:
    """A deep copy of `module` with every analog layer replaced by the plain Conv2d/Linear it
    wraps (same weight, bias and geometry), and {module path: (input range, per-column)} of them.

    The replacements go into deepcopy's memo, so the analog layers' simulation state (PCM
    crossbars, generators) is never copied."""
    memo: dict[int, nn.Module] = {}
    analog: dict[str, tuple[float, bool]] = {}
    for q, m in module.named_modules(remove_duplicate=False):
        if not isinstance(m, _AnalogMVM):
            continue
        analog[q] = (float(m.input_range.detach()), bool(m.per_channel))
        if id(m) in memo:  # one layer reachable under several paths
            continue
        if isinstance(m, (nn.Conv2d, nn.Conv1d)):
            plain = (nn.Conv1d if isinstance(m, nn.Conv1d) else nn.Conv2d)(
                m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                m.bias is not None, m.padding_mode, device="meta")
        elif isinstance(m, nn.Linear):
            plain = nn.Linear(m.in_features, m.out_features, m.bias is not None, device="meta")
        else:
            raise GraphError(f"module {q or type(m).__name__} ({type(m).__name__}): this analog layer type is not "
                             f"supported; supported: {supported()}")
        plain.weight = nn.Parameter(m.weight.detach().clone(), requires_grad=False)
        plain.bias = None if m.bias is None else nn.Parameter(m.bias.detach().clone(), requires_grad=False)
        memo[id(m)] = plain
    return copy.deepcopy(module, memo), analog


def _ir_shape(shape: tuple) -> tuple[int, int, int] | None:
    """The IR (C, H, W) of a batched torch shape, or None when it has no IR equivalent."""
    rest = shape[1:]
    if not all(isinstance(d, int) for d in rest):
        return None
    if len(shape) == 4:
        return tuple(rest)
    if len(shape) == 3:
        return (rest[0], 1, rest[1])
    if len(shape) == 2:
        return (rest[0], 1, 1)
    return None


def _dims(val) -> tuple:
    """A fake tensor's shape; a symbolic size (a dynamic batch) is None."""
    return tuple(d if isinstance(d, int) else None for d in val.shape)


def _readers(fx) -> int:
    """How many nodes read an fx node's value (its size, read by a view(x.size(0), -1), aside)."""
    return sum(1 for u in fx.users if getattr(getattr(u.target, "overloadpacket", None), "__name__", "") != "sym_size")


def _tup(v, n: int) -> tuple[int, ...]:
    """An int or list of ints as an n-tuple (torch repeats a single value)."""
    v = [int(a) for a in (v if isinstance(v, (list, tuple)) else [v])]
    return tuple(v * n) if len(v) == 1 else tuple(v)


class _Importer:
    """One pass over an ExportedProgram's graph: every fx node gets a value (an `_Act`, a constant
    tensor or a Python value) and every activation op adds one graph node."""

    def __init__(self, ep, where: str, analog: dict[str, tuple[float, bool]]):
        self.ep, self.where, self.analog = ep, where, analog
        self.nodes: list[Node] = []
        self.names: set[str] = set()
        self.producer: dict[str, Node] = {}
        self.users: dict[str, int] = {}         # graph tensor -> fx users of the value holding it
        self.expect: dict[str, tuple[int, int, int]] = {}  # graph tensor -> torch's shape for it
        self.val: dict[torch.fx.Node, object] = {}

    # ------------------------------------------------------------------ driver
    def run(self) -> Graph:
        sig = self.ep.graph_signature
        consts = {}
        for spec in sig.input_specs:
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
                t = spec.target
                consts[spec.arg.name] = self.ep.state_dict[t] if t in self.ep.state_dict else self.ep.constants[t]
        for what, specs in (("input", sig.input_specs), ("output", sig.output_specs)):
            user = [getattr(s.arg, "name", str(s.arg)) for s in specs if s.kind.name == f"USER_{what.upper()}"]
            if len(user) != 1:
                raise GraphError(f"{self.where}: {len(user)} {what}s ({', '.join(user)}) are not supported; "
                                 f"supported: one input and one output, {supported()}")
        other = [s for s in sig.output_specs if s.kind.name != "USER_OUTPUT"]
        if other:  # e.g. a batch norm in training mode updating its running statistics
            raise GraphError(f"{self.where}: a forward that mutates {other[0].target or 'state'} "
                             f"({other[0].kind.name.lower()}) is not supported; supported: a model exported in eval "
                             f"mode, {supported()}")
        gin = None
        for fx in self.ep.graph.nodes:
            if fx.op == "placeholder":
                if fx.name in consts:
                    self.val[fx] = consts[fx.name].detach()
                else:
                    gin = self.val[fx] = self._input(fx)
            elif fx.op == "get_attr":
                self.val[fx] = operator.attrgetter(fx.target)(self.ep.graph_module)
            elif fx.op == "call_function":
                self.val[fx] = self._call(fx)
            elif fx.op == "output":
                outs = fx.args[0]
                out = self.val.get(outs[0] if isinstance(outs, (list, tuple)) else outs)
                if not isinstance(out, _Act):
                    raise GraphError(f"{self.where}: the output does not depend on the input; supported: {supported()}")
        if out.name == gin.name:  # a model that passes its input through: one explicit node
            out = self._emit(None, "identity", [gin], {}, gin.rank, gin.shape, name=self._unique("output"))
        g = Graph(gin.name, gin.shape, self.nodes, out.name, source=self.where)
        shapes = g.shapes()
        for t, want in self.expect.items():  # the IR must agree with torch, node by node
            if shapes[t] != want:
                n = self.producer[t]
                raise GraphError(f"{n.where()}: imported as {n.op} with output {shapes[t]}, torch has {want}; "
                                 f"supported: {supported()}")
        return g

    def _input(self, fx) -> _Act:
        val = fx.meta.get("val")
        shape = _ir_shape(_dims(val)) if isinstance(val, torch.Tensor) else None
        if shape is None or not val.is_floating_point():
            what = f"input {fx.name} of {val.dtype} {tuple(val.shape)}" if isinstance(val, torch.Tensor) \
                else f"input {fx.name} ({type(val).__name__})"
            raise GraphError(f"{self.where}: {what} is not supported; supported: one float tensor (N, C, H, W), "
                             f"(N, C, L) or (N, F) input to {supported()}")
        self.names.add(fx.name)
        self.users[fx.name] = _readers(fx)
        return _Act(fx.name, val.dim(), shape)

    # ------------------------------------------------------------------ helpers
    def _module(self, fx) -> tuple[str, str]:
        """(module path, class path) of the innermost module the node ran in; ("", "") at top level."""
        stack = fx.meta.get("nn_module_stack") or {}
        if not stack:
            return "", ""
        fqn, typ = list(stack.values())[-1]
        typ = typ if isinstance(typ, str) else f"{typ.__module__}.{typ.__qualname__}"
        fqn = str(fqn)
        if fqn.startswith("L['self']"):  # strict-mode export spells the root this way
            fqn = fqn[len("L['self']"):].lstrip(".")
        return fqn, typ

    def source(self, fx) -> str:
        fqn, _ = self._module(fx)
        return f"torch node {fx.name} ({fx.target})" + (f" in module {fqn}" if fqn else "")

    def unsupported(self, fx, what: str) -> GraphError:
        return GraphError(f"{self.source(fx)}: {what} is not supported; supported: {supported()}")

    def _unique(self, base: str) -> str:
        return unique_name(base, self.names)

    def _name(self, fx) -> str:
        """The module path for the op of a torch.nn layer ("block1.conv1"), else the path and the
        op's node name ("block1.relu"); unique."""
        fqn, typ = self._module(fx)
        leaf = typ.startswith("torch.nn.modules.") and typ.rsplit(".", 1)[-1] not in _CONTAINERS
        return self._unique(fqn if fqn and leaf else (f"{fqn}.{fx.name}" if fqn else fx.name))

    def _emit(self, fx, op: str, inputs: list[_Act], attrs: dict, rank: int | None = None,
              shape: tuple[int, int, int] | None = None, name: str | None = None) -> _Act:
        """Add a graph node for fx node `fx` and return its output activation."""
        fqn = ""
        if fx is not None:
            val = fx.meta.get("val")
            if isinstance(val, (list, tuple)):  # a multi-result op: the first is the activation
                val = val[0]
            dims = _dims(val)
            rank, shape = len(dims), _ir_shape(dims)
            if shape is None:
                raise self.unsupported(fx, f"a result of shape {tuple(val.shape)}")
            name = self._name(fx)
            fqn, typ = self._module(fx)
            if fqn:
                attrs.setdefault("qual", fqn)
            if typ.startswith("torch.nn.modules."):
                attrs.setdefault("module", typ.rsplit(".", 1)[-1])
            self.expect[name] = shape
        node = Node(name, op, [a.name for a in inputs], name, attrs, source=self.source(fx) if fx is not None else "")
        if op in ("conv", "linear") and fqn in self.analog:
            node.in_range, node.per_column = self.analog[fqn]
        self.nodes.append(node)
        self.producer[name] = node
        self.users[name] = _readers(fx) if fx is not None else 0
        return _Act(name, rank, shape)

    # ------------------------------------------------------------------ ops
    def _call(self, fx):
        args = [self._lookup(a) for a in fx.args]
        kwargs = {k: self._lookup(v) for k, v in fx.kwargs.items()}
        if fx.target is operator.getitem:  # one result of a multi-output op (batch norm, pool with indices)
            return args[0][args[1]]
        flat = [v for a in (*args, *kwargs.values()) for v in (a if isinstance(a, (list, tuple)) else [a])]
        bad = next((v for v in flat if isinstance(v, _Unusable)), None)
        if bad is not None:
            raise self.unsupported(fx, f"reading {bad.what}")
        acts = [v for v in flat if isinstance(v, _Act)]
        if not acts:
            # Arithmetic on parameters alone (a weight transpose, a scale): a constant, not a layer.
            try:
                return fx.target(*args, **kwargs)
            except Exception as e:  # noqa: BLE001
                raise self.unsupported(fx, f"{fx.target} on constants ({_first_line(e)})") from None
        packet = getattr(getattr(fx.target, "overloadpacket", None), "__name__", str(fx.target))
        if packet == "sym_size":  # x.size(d) of an activation: a size, for a view(x.size(0), -1)
            return fx.meta["val"]
        inplace = packet.endswith("_") and not packet.startswith("_") and packet[:-1] in _HANDLERS  # relu_, add_
        handler = _HANDLERS.get(packet[:-1] if inplace else packet)
        if handler is None:
            raise self.unsupported(fx, str(fx.target))
        data = args[1] if packet == "addmm" else args[0]  # the operand that must be the activation
        if packet not in ("add", "add_") and (len(acts) > 1 or data is not acts[0]):
            raise self.unsupported(fx, f"{fx.target} with an activation as a parameter operand")
        out = handler(self, fx, *args, **kwargs)
        if inplace:  # nodes after it that read the operand read the updated tensor
            self.val[fx.args[0]] = out
        return out

    def _lookup(self, a):
        if isinstance(a, torch.fx.Node):
            return self.val[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self._lookup(v) for v in a)
        return a

    def conv(self, fx, x: _Act, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        nd = weight.dim() - 2
        if nd not in (1, 2) or x.rank != nd + 2:
            raise self.unsupported(fx, f"a {nd}-D convolution on a rank-{x.rank} tensor")
        stride, dilation = _tup(stride, nd), _tup(dilation, nd)
        if any(d != 1 for d in dilation):
            raise self.unsupported(fx, f"dilation {dilation}")
        k = tuple(weight.shape[2:])
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0,) * nd
            elif any(kk % 2 == 0 for kk in k):  # "same" pads k - 1 in all: even only for odd kernels
                raise self.unsupported(fx, f"padding='same' with the even kernel {k} (asymmetric padding)")
            else:
                padding = tuple((kk - 1) // 2 for kk in k)
        padding = _tup(padding, nd)
        wt = _np(weight)
        if nd == 1:  # (C, L) is (C, 1, L): a 1 x k convolution
            wt, stride, padding = wt[:, :, None, :], (1, stride[0]), (0, padding[0])
        self._check_strides(fx, x, wt.shape[2], padding[0], stride)
        attrs = dict(weight=wt, bias=None if bias is None else _np(bias), stride=stride, pad=padding,
                     groups=int(groups))
        return self._emit(fx, "conv", [x], attrs)

    def convolution(self, fx, x: _Act, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
                    *_):
        if transposed:
            raise self.unsupported(fx, "a transposed convolution")
        return self.conv(fx, x, weight, bias, stride, padding, dilation, groups)

    def _check_strides(self, fx, x: _Act, kh: int, ph: int, stride: tuple[int, int]) -> None:
        # The chip has one stride; on a 1 x L map (kernel height 1, no vertical padding) the
        # vertical one is never used.
        if stride[0] != stride[1] and not (x.shape[1] == 1 and kh == 1 and ph == 0):
            raise self.unsupported(fx, f"unequal strides {stride} on a {x.shape[1]}x{x.shape[2]} map")

    def linear(self, fx, x: _Act, weight, bias=None):
        if x.rank != 2:
            raise self.unsupported(fx, f"a Linear over the last axis of a rank-{x.rank} tensor "
                                   "(flatten to (N, F) first)")
        return self._emit(fx, "linear", [x], dict(weight=_np(weight), bias=None if bias is None else _np(bias)))

    def mm(self, fx, x: _Act, other):
        if other.dim() != 2:
            raise self.unsupported(fx, f"{fx.target} with a rank-{other.dim()} operand")
        return self.linear(fx, x, other.t())

    def addmm(self, fx, bias, x: _Act, mat2, beta=1, alpha=1):
        if mat2.dim() != 2 or bias.numel() not in (1, mat2.shape[1]):
            raise self.unsupported(fx, f"{fx.target} with operands of shapes {tuple(bias.shape)}, {tuple(mat2.shape)}")
        return self.linear(fx, x, alpha * mat2.t(), beta * bias.reshape(-1).expand(mat2.shape[1]))

    def batchnorm(self, fx, x: _Act, weight, bias, running_mean, running_var, *rest):
        # aten.batch_norm: (training, momentum, eps, cudnn_enabled);
        # _native_batch_norm_legit_no_training: (momentum, eps) and three results.
        plain = fx.target.overloadpacket.__name__ == "batch_norm"
        eps = rest[2] if plain else rest[1]
        if plain and rest[0]:
            raise self.unsupported(fx, "batch norm in training mode")
        if running_mean is None or running_var is None:
            raise self.unsupported(fx, "batch norm without running statistics")
        c = running_mean.shape[0]
        attrs = dict(gamma=_np(weight) if weight is not None else np.ones(c),
                     beta=_np(bias) if bias is not None else np.zeros(c),
                     mean=_np(running_mean), var=_np(running_var), eps=float(eps))
        out = self._emit(fx, "batchnorm", [x], attrs)
        return out if plain else (out, _Unusable("a batch norm's saved mean"), _Unusable("a batch norm's saved std"))

    def clamp(self, fx, x: _Act, min=None, max=None):  # noqa: A002 -- aten's argument names
        def bound(v, default: float) -> float:
            if v is None:
                return default
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    raise self.unsupported(fx, f"a clamp to per-element bounds {tuple(v.shape)}")
                v = v.item()
            return float(v)
        return self._emit(fx, "clamp", [x], dict(lo=bound(min, -np.inf), hi=bound(max, np.inf)))

    def relu(self, fx, x):
        return self.clamp(fx, x, 0.0, None)

    def relu6(self, fx, x):
        return self.clamp(fx, x, 0.0, 6.0)

    def hardtanh(self, fx, x, min_val=-1.0, max_val=1.0):
        return self.clamp(fx, x, min_val, max_val)

    def clamp_min(self, fx, x, min):  # noqa: A002
        return self.clamp(fx, x, min, None)

    def clamp_max(self, fx, x, max):  # noqa: A002
        return self.clamp(fx, x, None, max)

    def add(self, fx, a, b, alpha=1):
        if alpha != 1:
            raise self.unsupported(fx, f"an add with alpha={alpha}")
        if isinstance(a, _Act) and isinstance(b, _Act):
            sa, sb = (_dims(n.meta["val"]) for n in fx.args[:2])
            if sa != sb:
                raise self.unsupported(fx, f"a broadcasting add of shapes {sa} and {sb}")
            return self._emit(fx, "add", [a, b], {})
        x, xfx, c = (a, fx.args[0], b) if isinstance(a, _Act) else (b, fx.args[1], a)
        return self._fold_bias(fx, x, _dims(xfx.meta["val"]), c)

    def _fold_bias(self, fx, x: _Act, dims: tuple, c):
        """x + constant: the bias of the conv/linear that produced x, when nothing else reads x."""
        p = self.producer.get(x.name)
        if p is None or p.op not in ("conv", "linear") or self.users[x.name] != 1:
            raise self.unsupported(fx, "adding a constant other than the bias of a conv/linear whose output nothing "
                                   "else reads")
        c = torch.as_tensor(c, dtype=torch.float64)
        if _dims(fx.meta["val"]) != dims:
            raise self.unsupported(fx, f"adding a constant of shape {tuple(c.shape)} that broadcasts {dims}")
        per = torch.broadcast_to(c, (1, *dims[1:]))[0].reshape(dims[1], -1)  # (channels, positions)
        if not bool((per == per[:, :1]).all()):
            raise self.unsupported(fx, f"adding a constant of shape {tuple(c.shape)} that varies over the map")
        vec = per[:, 0].numpy()
        p.attrs["bias"] = vec if p.attrs.get("bias") is None else p.attrs["bias"] + vec
        self.users[x.name] = _readers(fx)  # x now stands for the sum
        return x

    def _pool(self, fx, op: str, x: _Act, nd: int, kernel, stride, padding, dilation, ceil_mode) -> _Act:
        kernel = _tup(kernel, nd)
        stride = _tup(stride, nd) if stride not in (None, [], ()) else kernel
        if any(p != 0 for p in _tup(padding, nd)):
            raise self.unsupported(fx, f"pooling with padding {_tup(padding, nd)}")
        if any(d != 1 for d in _tup(dilation, nd)):
            raise self.unsupported(fx, f"pooling with dilation {_tup(dilation, nd)}")
        if x.rank != nd + 2:
            raise self.unsupported(fx, f"{nd}-D pooling on a rank-{x.rank} tensor")
        if nd == 1:
            kernel, stride = (1, kernel[0]), (1, stride[0])
        self._check_strides(fx, x, kernel[0], 0, stride)
        c, h, w = x.shape
        floor = (c, (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1)
        if ceil_mode and _ir_shape(_dims(fx.meta["val"])) != floor:
            raise self.unsupported(fx, "ceil_mode=True where it adds a window")
        return self._emit(fx, op, [x], dict(kernel=kernel, stride=stride))

    def max_pool(self, fx, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        packet = fx.target.overloadpacket.__name__
        nd = 1 if "1d" in packet else 2
        out = self._pool(fx, "maxpool", x, nd, kernel_size, stride, padding, dilation, ceil_mode)
        return (out, _Unusable("a max pool's indices")) if packet.endswith("with_indices") else out

    def avg_pool(self, fx, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        if divisor_override is not None:
            raise self.unsupported(fx, f"average pooling with divisor_override={divisor_override}")
        nd = 1 if "1d" in fx.target.overloadpacket.__name__ else 2
        return self._pool(fx, "avgpool", x, nd, kernel_size, stride, padding, 1, ceil_mode)

    def adaptive_avg_pool(self, fx, x: _Act, output_size):
        nd = 1 if "1d" in fx.target.overloadpacket.__name__ else 2
        size = _tup(output_size, nd)
        if all(s == 1 for s in size):
            return self._emit(fx, "gap", [x], {})
        hw = x.shape[3 - nd:]
        if any(i % o for i, o in zip(hw, size)):
            raise self.unsupported(fx, f"adaptive average pooling of {hw} to {size} (uneven windows)")
        k = tuple(i // o for i, o in zip(hw, size))
        return self._pool(fx, "avgpool", x, nd, k, k, 0, 1, False)

    def mean(self, fx, x: _Act, dim=None, keepdim=False, dtype=None):
        spatial = set(range(2, x.rank))
        dims = {d % x.rank for d in (dim if dim is not None else range(x.rank))}
        full = _dims(fx.args[0].meta["val"])
        if not dims <= spatial or any(full[d] != 1 for d in spatial - dims):
            raise self.unsupported(fx, f"a mean over dims {sorted(dims)} of a rank-{x.rank} tensor (only over all "
                                   "spatial dims)")
        return self._emit(fx, "gap", [x], {})

    def flatten(self, fx, x: _Act, start_dim=0, end_dim=-1):
        if start_dim % x.rank != 1 or end_dim % x.rank != x.rank - 1:
            raise self.unsupported(fx, f"flatten of dims {start_dim}..{end_dim} (only from dim 1 to the last)")
        return self._emit(fx, "flatten", [x], {})

    def reshape(self, fx, x: _Act, *args):
        """view/reshape/squeeze/unsqueeze: to (N, -1) is a flatten, one that keeps the IR shape (the
        unsqueeze around a 1-D op, squeezing a 1 x 1 map) an identity; the batch axis stays."""
        packet = fx.target.overloadpacket.__name__
        ins, outs = _dims(fx.args[0].meta["val"]), _dims(fx.meta["val"])
        if packet.startswith("squeeze"):
            dims = args[0] if args else [d for d, n in enumerate(ins) if n == 1]
            batch = 0 in {d % len(ins) for d in _tup(dims, 1)} if dims != [] else False
        elif packet.startswith("unsqueeze"):
            batch = args[0] % (len(ins) + 1) == 0
        else:
            batch = not outs or outs[0] != ins[0]
        shape = None if batch or not outs else _ir_shape(outs)
        if shape is not None and len(outs) == 2:
            return self._emit(fx, "flatten", [x], {})
        if shape is not None and shape == x.shape:
            return self._emit(fx, "identity", [x], {})
        raise self.unsupported(fx, f"reshaping {ins} to {outs} (only to (N, -1) or keeping the (C, H, W) layout)")

    def identity(self, fx, x: _Act, *args, **kwargs):
        if "dropout" in fx.target.overloadpacket.__name__ and len(args) > 1 and args[1]:
            raise self.unsupported(fx, "dropout in training mode")
        return self._emit(fx, "identity", [x], {})

    def to_copy(self, fx, x: _Act, *args, dtype=None, **kwargs):
        if dtype is not None and not dtype.is_floating_point:
            raise self.unsupported(fx, f"a cast to {dtype}")
        return self._emit(fx, "identity", [x], {})


def _np(t) -> np.ndarray:
    return np.asarray(torch.as_tensor(t).detach().to(torch.float64).numpy())


# aten overload packet -> handler (the torch names; every overload of a packet takes the same arguments).
_HANDLERS = {
    "conv2d": _Importer.conv, "conv1d": _Importer.conv,
    "convolution": _Importer.convolution, "_convolution": _Importer.convolution,
    "linear": _Importer.linear, "mm": _Importer.mm, "matmul": _Importer.mm, "addmm": _Importer.addmm,
    "batch_norm": _Importer.batchnorm, "_native_batch_norm_legit_no_training": _Importer.batchnorm,
    "relu": _Importer.relu, "relu6": _Importer.relu6, "hardtanh": _Importer.hardtanh, "clamp": _Importer.clamp,
    "clamp_min": _Importer.clamp_min, "clamp_max": _Importer.clamp_max,
    "add": _Importer.add,
    "max_pool2d": _Importer.max_pool, "max_pool1d": _Importer.max_pool,
    "max_pool2d_with_indices": _Importer.max_pool, "max_pool1d_with_indices": _Importer.max_pool,
    "avg_pool2d": _Importer.avg_pool, "avg_pool1d": _Importer.avg_pool,
    "adaptive_avg_pool2d": _Importer.adaptive_avg_pool, "adaptive_avg_pool1d": _Importer.adaptive_avg_pool,
    "_adaptive_avg_pool2d": _Importer.adaptive_avg_pool,
    "mean": _Importer.mean,
    "flatten": _Importer.flatten,
    "view": _Importer.reshape, "reshape": _Importer.reshape, "_unsafe_view": _Importer.reshape,
    "squeeze": _Importer.reshape, "unsqueeze": _Importer.reshape, "view_copy": _Importer.reshape,
    "squeeze_copy": _Importer.reshape, "unsqueeze_copy": _Importer.reshape,
    "dropout": _Importer.identity, "feature_dropout": _Importer.identity, "clone": _Importer.identity,
    "contiguous": _Importer.identity, "alias": _Importer.identity, "alias_copy": _Importer.identity,
    "detach": _Importer.identity, "_to_copy": _Importer.to_copy, "to": _Importer.to_copy,
}

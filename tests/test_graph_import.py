"""Front ends to the graph IR (firmware/torch_import.py, firmware/onnx_import.py, firmware/frontends.py):
a residual/depthwise 2-D network and a Conv1d network through torch.export, a saved .pt2 and both
ONNX exporters must give graphs whose float interpreter (`Graph.run`) equals PyTorch and
onnxruntime; analog layers keep their trained input range; everything else is one GraphError line
naming the node and its op. No simulation."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from aoncim.firmware.frontends import load_model
from aoncim.firmware.graph import GRAPH_OPS, GraphError
from aoncim.firmware.onnx_import import graph_from_onnx
from aoncim.firmware.torch_import import graph_from_module, graph_from_pt2
from aoncim.model.analog import AnalogConv2d

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore::UserWarning")


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y += x  # in place, as ResNets write it
        return torch.relu_(y)


class Net2d(nn.Module):
    """Stem, a residual block, a depthwise-separable block, max/avg/global pooling, a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.block1 = Residual(8)
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 5))

    def forward(self, x):
        return self.head(self.pool(self.pw(self.dw(self.block1(self.stem(x))))))


class Net1d(nn.Module):
    """A Conv1d stem (padding, stride 2) on a signed (N, 4, 32) signal, a depthwise Conv1d, global pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(4, 8, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = torch.relu(self.dw(torch.relu(self.bn(self.stem(x)))))
        return self.fc(torch.flatten(self.gap(y), 1))


def _trained(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return model.eval()


def _ir(x: torch.Tensor) -> torch.Tensor:
    """A torch input as the IR's (N, C, H, W): (N, C, L) -> (N, C, 1, L), (N, F) -> (N, F, 1, 1)."""
    return x[:, :, None, :] if x.dim() == 3 else x[:, :, None, None] if x.dim() == 2 else x


def _check(graph, model: nn.Module, x: torch.Tensor, ort_path=None) -> None:
    """The graph's shapes are consistent and its float run equals the module (and onnxruntime)."""
    shapes = graph.shapes()
    assert shapes[graph.input] == tuple(_ir(x).shape[1:])
    assert all(n.op in GRAPH_OPS for n in graph.nodes)
    assert len({n.name for n in graph.nodes}) == len(graph.nodes)
    with torch.no_grad():
        ref = model(x).double()
    out = graph.run(_ir(x))
    assert tuple(out.shape[1:]) == shapes[graph.output]
    np.testing.assert_allclose(out.reshape(ref.shape).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    if ort_path is not None:
        sess = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(out.reshape(got.shape).numpy(), got, rtol=1e-4, atol=1e-5)


CASES = {"2d": (Net2d, (2, 3, 16, 16)), "1d": (Net1d, (2, 4, 32))}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    cls, shape = CASES[request.param]
    torch.manual_seed(1)
    return request.param, _trained(cls(), seed=2), torch.randn(shape)


def test_torch_export_graph(case):
    kind, model, x = case
    g = graph_from_module(model, x)
    _check(g, model, x)
    ops = [n.op for n in g.nodes]
    if kind == "2d":
        assert ops.count("add") == 1 and {"maxpool", "avgpool", "gap", "flatten", "identity"} <= set(ops)
        names = {n.name: n for n in g.nodes}
        assert names["block1.conv1"].op == "conv" and names["dw.0"].attrs["groups"] == 8
        assert names["dw.2"].attrs["hi"] == 6.0
        assert "in module block1.conv1" in names["block1.conv1"].source
    else:
        stem = g.nodes[0]
        assert g.input_shape == (4, 1, 32) and stem.op == "conv"
        assert stem.attrs["weight"].shape == (8, 4, 1, 5) and stem.attrs["stride"] == (1, 2)
        assert stem.attrs["pad"] == (0, 2)
    assert not model.training  # the caller's module as it was


def test_onnx_both_exporters(case, tmp_path):
    kind, model, x = case
    dyn = tmp_path / f"{kind}_dynamo.onnx"
    torch.onnx.export(model, (x,), str(dyn), dynamo=True, verbose=False)
    _check(graph_from_onnx(dyn), model, x, dyn)
    # The TorchScript exporter with a symbolic batch axis; a loaded ModelProto works as well as a path.
    ts = tmp_path / f"{kind}_ts.onnx"
    torch.onnx.export(model, (x,), str(ts), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    _check(graph_from_onnx(onnx.load(ts)), model, x, ts)
    assert load_model(ts) is not None


def test_pt2_round_trip(tmp_path):
    torch.manual_seed(3)
    model, x = _trained(Net2d(), seed=4), torch.randn(2, 3, 16, 16)
    ep = torch.export.export(model, (x,))
    torch.export.save(ep, tmp_path / "net.pt2")
    g = graph_from_pt2(tmp_path / "net.pt2")
    _check(g, model, x)
    assert "block1.conv1" in {n.name for n in g.nodes}
    # Core-aten IR (convolution, _native_batch_norm_legit_no_training, addmm of a permuted weight).
    torch.export.save(ep.run_decompositions(), tmp_path / "core.pt2")
    _check(load_model(tmp_path / "core.pt2"), model, x)


def test_analog_layer_keeps_input_range():
    torch.manual_seed(5)
    conv = AnalogConv2d(3, 4, 3, padding=1, per_channel=True)
    conv.input_range.data.fill_(0.75)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    model.train()
    x = torch.randn(2, 3, 8, 8)
    g = graph_from_module(model, x)
    first, last = g.nodes[0], g.nodes[-1]
    assert (first.name, first.op, first.in_range, first.per_column) == ("0", "conv", 0.75, True)
    assert (last.op, last.in_range) == ("linear", 0.0)
    assert model.training and model[0] is conv and conv.mode == "ideal"  # untouched
    _check(g, model.eval(), x)  # "ideal" mode: the float layer


class Vector(nn.Module):
    """An (N, F) input; a matmul whose bias is a separate add, as hand-written layers have."""

    def __init__(self):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.randn(6, 4)), nn.Parameter(torch.randn(4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.clamp(x @ self.w + self.b, 0.0, 2.0))


def test_vector_models(tmp_path):
    torch.manual_seed(6)
    model, x = Vector().eval(), torch.randn(2, 6)
    g = graph_from_module(model, x)
    assert g.input_shape == (6, 1, 1) and [n.op for n in g.nodes] == ["linear", "clamp", "linear"]
    np.testing.assert_allclose(g.nodes[0].attrs["bias"], model.b.detach().numpy(), rtol=1e-6)
    _check(g, model, x)
    # ONNX: MatMul + Add of an initializer (bias), Gemm with alpha/beta/transB=0, Clip with an empty min.
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w", (6, 4)), ("b", (4,)), ("w2", (4, 3)), ("c2", (3,)))]
    inits.append(numpy_helper.from_array(np.array(1.5, np.float32), "hi"))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Add", ["b", "mm"], ["mm_b"], name="bias"),
             helper.make_node("Clip", ["mm_b", "", "hi"], ["clip"], name="clip"),
             helper.make_node("Gemm", ["clip", "w2", "c2"], ["y"], name="gemm", alpha=0.5, beta=2.0)]
    graph = helper.make_graph(nodes, "vec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    path = tmp_path / "vec.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    g = graph_from_onnx(path)
    assert [(n.name, n.op) for n in g.nodes] == [("mm", "linear"), ("clip", "clamp"), ("gemm", "linear")]
    assert (g.nodes[1].attrs["lo"], g.nodes[1].attrs["hi"]) == (-np.inf, 1.5)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x1 = x[:1]
    np.testing.assert_allclose(g.run(_ir(x1)).reshape(1, 3).numpy(), sess.run(None, {"x": x1.numpy()})[0],
                               rtol=1e-4, atol=1e-5)


def _raises(fn, *parts):
    with pytest.raises(GraphError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and "supported" in msg, msg
    for p in parts:
        assert p in msg, msg
    return msg


class _Fn(nn.Module):
    def __init__(self, fn, conv=None):
        super().__init__()
        self.conv, self.fn = conv or nn.Conv2d(3, 3, 3, padding=1), fn

    def forward(self, x):
        return self.fn(self, x)


@pytest.mark.parametrize("fn, parts", [
    (lambda m, x: m.conv(x) * torch.sigmoid(x), ["torch node sigmoid", "aten.sigmoid.default"]),
    (lambda m, x: m.conv(x) * 2.0, ["torch node mul", "aten.mul.Tensor"]),
    (lambda m, x: torch.cat([m.conv(x), x], 1), ["torch node cat", "aten.cat.default"]),
    (lambda m, x: (m.conv(x), torch.relu(x)), ["torch model _Fn: 2 outputs (conv2d, relu)"]),
], ids=["sigmoid", "mul", "cat", "two-outputs"])
def test_torch_unsupported(fn, parts):
    _raises(lambda: graph_from_module(_Fn(fn), torch.randn(1, 3, 8, 8)), *parts)


def test_torch_unsupported_geometry():
    x = torch.randn(1, 3, 8, 8)
    _raises(lambda: graph_from_module(nn.Conv2d(3, 4, 3, dilation=2), x),
            "torch node conv2d (aten.conv2d.default)", "dilation (2, 2)")
    _raises(lambda: graph_from_module(nn.Conv2d(3, 4, 3, stride=(1, 2)), x), "aten.conv2d.default", "strides (1, 2)")
    _raises(lambda: graph_from_module(nn.Conv2d(3, 4, 2, padding="same"), x), "aten.conv2d", "padding='same'")
    _raises(lambda: graph_from_module(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), x), "padding_mode")
    _raises(lambda: graph_from_module(nn.Conv2d(3, 4, 3), x.long()), "torch.int64 input")


def _conv_model(pads=None, auto_pad=None, extra=None) -> onnx.ModelProto:
    """x (N, 2, 8, 8) -> Conv 'c' (3x3, stride 2) [-> extra node] -> y, built by hand."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    kw = {"pads": pads} if pads else {"auto_pad": auto_pad}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c_out"], name="c", kernel_shape=[3, 3], strides=[2, 2], **kw)]
    out = "c_out"
    if extra:
        nodes.append(helper.make_node(extra, ["c_out"], ["e_out"], name="/layer1/" + extra))
        out = "e_out"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_pads(tmp_path):
    x = torch.randn(2, 2, 8, 8)
    for i, kw in enumerate([dict(pads=[1, 1, 0, 0]), dict(auto_pad="SAME_LOWER")]):
        # The end padding is never reached: the windows of symmetric padding 1.
        path = tmp_path / f"ok{i}.onnx"
        onnx.save(_conv_model(**kw), path)
        g = graph_from_onnx(path)
        assert g.nodes[0].attrs["pad"] == (1, 1)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(g.run(x).numpy(), sess.run(None, {"x": x.numpy()})[0], rtol=1e-4, atol=1e-5)
    _raises(lambda: graph_from_onnx(_conv_model(pads=[0, 0, 1, 1])), "ONNX node 'c' (Conv)", "pads [0, 0, 1, 1]")
    _raises(lambda: graph_from_onnx(_conv_model(auto_pad="SAME_UPPER")), "ONNX node 'c' (Conv)", "SAME_UPPER")


def test_onnx_unsupported():
    _raises(lambda: graph_from_onnx(_conv_model(pads=[1, 1, 1, 1], extra="Sigmoid")),
            "ONNX node '/layer1/Sigmoid' (Sigmoid): Sigmoid is not supported; supported: ")
    m = _conv_model(pads=[1, 1, 1, 1])
    m.graph.output.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, None))
    m.graph.node.append(helper.make_node("Relu", ["x"], ["x2"], name="r"))
    _raises(lambda: graph_from_onnx(m), "ONNX model g: 2 outputs ('c_out', 'x2')")


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(GraphError, match="none.onnx not found"):
        load_model(tmp_path / "none.onnx")
    with pytest.raises(GraphError, match="none.pt2 not found"):
        graph_from_pt2(tmp_path / "none.pt2")
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a program")
    with pytest.raises(GraphError, match=r"^cannot read torch.export program .*bad.pt2: [^\n]*$"):
        load_model(bad)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(GraphError, match=r"^cannot read ONNX file .*bad.onnx: [^\n]*$"):
        graph_from_onnx(bad)
    ckpt = tmp_path / "net.pt"
    ckpt.write_bytes(b"")
    assert load_model(ckpt) is None  # an aoncim checkpoint: the caller's

"""The compiler beyond sequential networks: residual adds, grouped and depthwise convolutions,
1-D convolutions, signed inputs and activations (zero points), activation clamps, activation
memory allocated by liveness; the golden model runs the result and agrees with the float graph
within the quantisation error (docs/byo-model.md)."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import CompileError, compile_graph, compile_network, lower_graph
from aoncim.firmware.graph import Graph, Node
from aoncim.firmware.torch_import import graph_from_module
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.program import Op

from byo_models import signal_inputs, signal_net

QUIET = AonCimConfig(read_noise_lsb=0.0)


@pytest.fixture(scope="module")
def block():
    net, x = signal_net(), signal_inputs(96, 1)
    return net, graph_from_module(net, x[:1]), x


def _chip_vs_float(prog, graph, x, cfg=QUIET):
    c, h, w = graph.input_shape
    xs = x.reshape(-1, c, h, w).double()
    q = prog.io.quantise(xs.numpy(), prog.layers[0].in_bits)
    out = BitTrueExecutor(cfg, prog).run_batch(q, np.zeros(len(q), dtype=np.int64))[-1].output
    chip = prog.io.dequantise(out.reshape(len(q), -1).numpy())
    ref = graph.run(xs).reshape(len(q), -1).numpy()
    return chip, ref


def test_graph_compiles_every_new_op(block):
    net, graph, x = block
    prog = compile_graph(graph, QUIET, x, act_bits=8)
    ops = [d.op for d in prog.layers]
    assert ops.count(Op.ADD) == 1 and Op.AVGPOOL in ops
    stem = prog.layers[0]
    # A signed input: its zero point is inside the code range, and padding loads it (real 0).
    assert 0 < prog.io.in_zero < 255 and stem.pad_code == prog.io.in_zero
    assert (stem.in_h, stem.k_h, stem.pad_h, stem.pad_w, stem.stride) == (1, 1, 0, 2, 2)
    # The depthwise layer runs on the depthwise engine: k_h*k_w weight codes per channel in DWW,
    # channel fastest, each channel's largest at full scale.
    i = ops.index(Op.DWCONV)
    dw = prog.layers[i]
    w = prog.dw_weights[dw.w_base : dw.w_base + dw.dw_words].reshape(dw.k_h * dw.k_w, dw.in_c)
    assert (dw.in_c, dw.k_h, dw.k_w, dw.pad_w) == (12, 1, 3, 1) and np.all(np.abs(w).max(0) >= QUIET.dw_max)
    # With depthwise="array" it is one MVM whose columns see only their own channel's rows.
    arr = compile_graph(graph, QUIET, x, act_bits=8, depthwise="array")
    assert Op.DWCONV not in [d.op for d in arr.layers] and arr.dw_weights is None
    dg = arr.layer_dg(i)
    rows_c = np.arange(dg.shape[0]) % 12  # (ky, kx, c) order: channel fastest
    assert np.all(dg[rows_c[:, None] != np.arange(12)[None, :]] == 0) and np.count_nonzero(dg) > 0
    # The add reads its two operands, one after the other, as a 2 x positions x C map.
    add = prog.layers[ops.index(Op.ADD)]
    assert (add.in_h, add.k_h, add.k_w, add.out_h, add.in_w) == (2, 2, 1, 1, 24)


@pytest.mark.parametrize("depthwise", ["digital", "array"])
def test_chip_agrees_with_the_float_graph(block, depthwise):
    """8-bit activations, no read noise: the documented quantisation error (docs/byo-model.md)."""
    net, graph, x = block
    prog = compile_graph(graph, QUIET, x, act_bits=8, depthwise=depthwise)
    chip, ref = _chip_vs_float(prog, graph, x[:48])
    span = np.abs(ref).max()
    assert np.abs(chip - ref).max() < 0.1 * span and np.sqrt(np.mean((chip - ref) ** 2)) < 0.03 * span
    assert (chip.argmax(1) == ref.argmax(1)).mean() >= 0.9
    with torch.no_grad():  # and the graph is the module
        assert np.allclose(ref, net(x[:48].float()).double().numpy(), atol=1e-4)


def test_padding_is_real_zero_for_a_signed_map():
    """A signed map through a padded conv computes exactly what the same conv computes on the map
    with its border written out as real zeros: padding loads the zero point (pad_code)."""
    w = np.array([[[[1.0, -2.0, 0.5]]], [[[-0.5, 1.0, 1.5]]]])  # (O=2, C=1, 1, 3)

    def graph(width, pad):
        conv = Node("c", "conv", ["x"], "c", dict(weight=w, bias=np.array([0.1, -0.2]), stride=(1, 1), pad=(0, pad),
                                                   groups=1))
        return Graph("x", (1, 1, width), [conv, Node("f", "flatten", ["c"], "f"),
                                         Node("l", "linear", ["f"], "l", dict(weight=np.eye(12)[:3],
                                                                              bias=None))], "l")

    x = torch.rand(32, 1, 1, 6) * 2 - 1
    framed = torch.nn.functional.pad(x, (1, 1))
    a = compile_graph(graph(6, 1), QUIET, x, act_bits=8, input_range=(-1.0, 1.0))
    b = compile_graph(graph(8, 0), QUIET, framed, act_bits=8, input_range=(-1.0, 1.0))
    assert a.layers[0].pad_code == a.io.in_zero == 128 and b.layers[0].pad_w == 0
    run = lambda prog, v: BitTrueExecutor(QUIET, prog).run_batch(prog.io.quantise(v.numpy(), 8),  # noqa: E731
                                                                 np.zeros(len(v), dtype=np.int64))[0]
    ta, tb = run(a, x), run(b, framed)
    assert torch.equal(ta.col_sums, tb.col_sums) and torch.equal(ta.adc_codes, tb.adc_codes)


def test_relu6_and_hardtanh_are_exact_grids():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU6(), nn.Conv2d(6, 6, 3), nn.Hardtanh(),
                        nn.Flatten(), nn.Linear(6 * 4 * 4, 3))
    x = torch.randn(64, 2, 6, 6) * 3
    layers, tensors = lower_graph(graph_from_module(net, x[:1]))
    assert [L.clamp for L in layers[:2]] == [(0.0, 6.0), (-1.0, 1.0)]
    prog = compile_network(net, QUIET, x, act_bits=8)
    chip, ref = _chip_vs_float(prog, graph_from_module(net, x[:1]), x[:32])
    assert np.abs(chip - ref).max() < 0.1 * np.abs(ref).max()


def test_sequential_chain_ping_pongs_at_address_zero():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    prog = compile_network(net, QUIET, torch.rand(8, 2, 6, 6))
    assert [(d.in_bank, d.in_base, d.out_bank, d.out_base) for d in prog.layers] == \
        [(0, 0, 1, 0), (1, 0, 0, 0), (0, 0, 1, 0)]


def test_operands_of_an_add_are_adjacent_and_live_tensors_never_overlap():
    torch.manual_seed(4)

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.p = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(3, 8, 1)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            y = torch.relu(self.b(torch.relu(self.a(x))) + self.p(x))
            return self.fc(y.mean((2, 3)))

    x = torch.rand(16, 3, 8, 8)
    prog = compile_network(Res(), QUIET, x)
    prog.check(QUIET)  # every layer reads words an earlier layer (or the input) left for it
    add = next(d for d in prog.layers if d.op is Op.ADD)
    n = add.in_w * add.in_c
    writers = [d for d in prog.layers if not d.to_out and d.out_bank == add.in_bank and
               d.out_base in (add.in_base, add.in_base + n)]
    assert sorted(d.out_base - add.in_base for d in writers) == [0, n]


@pytest.mark.parametrize("net, shape, match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Hardtanh(0.5, 2.0), nn.Flatten(), nn.Linear(8, 2)), (1, 4, 4),
     r"clamp \(0.5, 2\) excludes 0"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2)), (1, 4, 4),
     "batch norm must directly follow"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Conv2d(8, 2, 1)), (1, 4, 4), "after a flatten only a Linear"),
])
def test_unmappable_graphs_are_one_line(net, shape, match):
    with pytest.raises(CompileError, match=match) as e:
        compile_network(net, QUIET, torch.rand(4, *shape))
    assert "\n" not in str(e.value)


def test_activation_memory_shortfall_names_the_layer():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
            self.fc = nn.Linear(16, 2)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return self.fc(torch.relu(self.b(y) + y).mean((2, 3)))

    with pytest.raises(CompileError, match=r"layer a: its output needs 2048 activation words \(with its "
                                           r"residual-add partner\).*raise act_depth"):
        compile_network(Res(), dataclasses.replace(QUIET, act_depth=1024), torch.rand(4, 4, 8, 8))

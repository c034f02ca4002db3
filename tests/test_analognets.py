"""AnalogNet-KWS / -VWW: size targets, allowed modules, array fit and packing, MVM budgets, shapes.

Budgets come from the brief and spec: KWS ~179 K parameters, VWW 220-230 K; KWS <= 700 and VWW
<= 6000 MVMs per inference (co-simulation time); every layer resident on one cfg.rows x cfg.cols array.
"""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.config import AonCimConfig
from aoncim.model.analognets import (
    KWS_CLASS_NAMES,
    FootprintError,
    analog_footprint,
    analognet_kws,
    analognet_vww,
)

NETS = {"kws": (analognet_kws, 179_000, 700, 12), "vww": (analognet_vww, 225_000, 6000, 2)}
ALLOWED = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)


@pytest.fixture(params=sorted(NETS))
def case(request):
    make, params, mvms, classes = NETS[request.param]
    net = make()
    return request.param, net, params, mvms, classes


def test_parameter_count_within_10_percent(case):
    _, net, target, _, _ = case
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - target) <= 0.10 * target, n
    assert analog_footprint(net, net.input_shape, CFG).params == n


def test_only_modules_the_compiler_lowers(case):
    _, net, _, _, _ = case
    assert type(net) is nn.Sequential and all(not list(m.children()) for m in net)
    for m in net:
        assert isinstance(m, ALLOWED), type(m)
        if isinstance(m, nn.Conv2d):
            assert m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros"
            assert m.stride[0] == m.stride[1] and m.padding[0] == m.padding[1]
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            assert m.kernel_size == m.stride and m.padding == 0
        if isinstance(m, nn.AdaptiveAvgPool2d):
            assert m.output_size in (1, (1, 1))


def test_output_shape_and_metadata(case):
    _, net, _, _, classes = case
    assert len(net.class_names) == classes
    out = net.eval()(torch.rand(3, *net.input_shape))
    assert out.shape == (3, classes)
    assert analognet_kws().class_names == KWS_CLASS_NAMES


def test_footprint_shapes_match_a_real_forward_pass(case):
    _, net, _, _, _ = case
    fp = analog_footprint(net, net.input_shape, CFG)
    leaves = [m for m in net.modules() if not list(m.children())]
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o.shape)) for k, m in enumerate(leaves)]
    net.eval()(torch.zeros(1, *net.input_shape))
    for h in hooks:
        h.remove()
    for L in fp.layers:
        shape = seen[int(L.name.split(":")[0])]
        hwc = (shape[2], shape[3], shape[1]) if len(shape) == 4 else (1, 1, shape[1])
        assert hwc == L.out_shape, L.name
        if L.is_mvm:
            assert L.mvms == hwc[0] * hwc[1]


def test_every_layer_fits_and_the_net_packs_resident(case):
    _, net, _, _, _ = case
    fp = analog_footprint(net, net.input_shape, CFG)
    occupied = np.zeros((CFG.rows, CFG.cols), dtype=int)
    for L in fp.mvm_layers:
        assert L.rows <= CFG.rows and L.cols <= CFG.cols
        r0, c0 = L.place
        assert 0 <= r0 and r0 + L.rows <= CFG.rows and 0 <= c0 and c0 + L.cols <= CFG.cols
        occupied[r0 : r0 + L.rows, c0 : c0 + L.cols] += 1
    assert occupied.max() == 1, "rectangles overlap"
    assert occupied.sum() == fp.cells == sum(L.rows * L.cols for L in fp.mvm_layers)
    assert len(fp.layers) <= CFG.max_layers and fp.pp_channels <= CFG.param_depth


def test_mvm_budget(case):
    _, net, _, budget, _ = case
    fp = analog_footprint(net, net.input_shape, CFG)
    assert fp.mvms <= budget
    assert fp.mvms == sum(L.out_shape[0] * L.out_shape[1] for L in fp.mvm_layers)


def test_largest_activation_and_sram_check():
    kws, vww = analognet_kws(), analognet_vww()
    assert analog_footprint(kws, kws.input_shape, CFG).max_activation == (21 * 5 * 72, "3:Conv2d")
    fp = analog_footprint(vww, vww.input_shape, CFG)
    assert fp.max_activation == (32 * 32 * 8, "0:Conv2d")
    small = dataclasses.replace(CFG, act_depth=4096)
    with pytest.raises(FootprintError, match=r"^layer 0:Conv2d: activation of 8192 words > act_depth 4096"):
        analog_footprint(vww, vww.input_shape, small, check_sram=True)
    analog_footprint(vww, vww.input_shape, small)  # reported, not checked, unless asked
    big = dataclasses.replace(CFG, act_depth=8192)
    for net in (kws, vww):
        analog_footprint(net, net.input_shape, big, check_sram=True)


def test_too_small_array_fails_naming_the_layer():
    kws, vww = analognet_kws(), analognet_vww()
    # 512 rows: the 576-648-row convs take two row tiles each, and the tiled net no longer fits.
    with pytest.raises(FootprintError, match=r"^the network needs 290,048 conductance pairs, the 512 x 512 array"):
        analog_footprint(kws, kws.input_shape, AonCimConfig(rows=512))
    # Every VWW layer fits 1024 x 256 alone, but together they do not.
    with pytest.raises(FootprintError, match=r"^layer \d+:Conv2d: its \d+ x \d+ rectangle does not pack beside"):
        analog_footprint(vww, vww.input_shape, AonCimConfig(cols=256))
    with pytest.raises(FootprintError, match=r"^network has 12 chip layers > max_layers 8"):
        analog_footprint(vww, vww.input_shape, AonCimConfig(max_layers=8))
    with pytest.raises(FootprintError, match=r"^network needs 538 post-processing entries > param_depth 512"):
        analog_footprint(vww, vww.input_shape, AonCimConfig(param_depth=512))
    with pytest.raises(FootprintError, match=r"^layer 18:Conv2d: needs 96 columns \(C_out\) > array columns 64"):
        analog_footprint(vww, vww.input_shape, AonCimConfig(rows=1024, cols=64, n_adcs=32))


def test_rejects_what_the_chip_cannot_run():
    dilated = nn.Sequential(nn.Conv2d(8, 8, 3, dilation=2), nn.Flatten(), nn.Linear(8, 2))
    # The compiler's lowering and messages (tests/test_footprint.py compares them module by module).
    with pytest.raises(FootprintError, match=r"^layer 0:Conv2d: only dilation=1"):
        analog_footprint(dilated, (8, 5, 5), CFG)
    with pytest.raises(FootprintError, match=r"^layer 1:Sigmoid: unsupported module"):
        analog_footprint(nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sigmoid(), nn.Flatten(), nn.Linear(2, 2)), (1, 1, 1), CFG)
    with pytest.raises(FootprintError, match=r"^layer 0:Conv2d: only dilation=1, zero padding given as numbers and equal"):
        analog_footprint(nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2)), nn.Flatten(), nn.Linear(2, 2)), (1, 3, 5), CFG)
    # Overlapping pooling windows (kernel 3, stride 2) run on the chip.
    fp = analog_footprint(nn.Sequential(nn.Conv2d(1, 2, 1), nn.MaxPool2d(3, 2), nn.Flatten(), nn.Linear(2, 2)),
                          (1, 4, 4), CFG)
    assert fp.layers[1].out_shape == (1, 1, 2)


def test_packer_stacks_short_layers_and_reports_overflow():
    from aoncim.firmware.placement import PlacementError, place_rectangles

    sizes = [(600, 300), (400, 300), (500, 212), (300, 212)]
    places = place_rectangles(sizes, 1024, 512)
    occ = np.zeros((1024, 512), dtype=int)
    for (r, c), (r0, c0) in zip(sizes, places):
        occ[r0 : r0 + r, c0 : c0 + c] += 1
    assert occ.max() == 1 and places[1][0] >= 500  # stacked above a tall layer in its strip
    with pytest.raises(PlacementError, match=r"^layer (a|big): its 600 x 300 rectangle does not pack"):
        place_rectangles([(600, 300), (600, 300)], 1024, 512, names=["a", "big"])


def test_the_compiler_lowers_both_nets():
    """The nets compile end to end (firmware.compiler), given SRAM for their largest activation."""
    from aoncim.firmware.compiler import compile_network

    cfg = dataclasses.replace(CFG, act_depth=8192)
    for make in (analognet_kws, analognet_vww):
        torch.manual_seed(0)
        net = make().eval()
        prog = compile_network(net, cfg, torch.rand(4, *net.input_shape))
        fp = analog_footprint(net, net.input_shape, cfg)
        assert len(prog.layers) == len(fp.layers)
        assert [d.k_rows for d in prog.layers if d.is_mvm] == [L.rows for L in fp.mvm_layers]


@pytest.mark.parametrize("make", [analognet_kws, analognet_vww])
def test_float_model_trains(make):
    """Forward/backward reach every parameter and Adam can fit a small random batch."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: worker threads only contend on a shared machine
    try:
        _fit_random_batch(make)
    finally:
        torch.set_num_threads(threads)


def _fit_random_batch(make):
    torch.manual_seed(0)
    net = make()
    x = torch.randn(8, *net.input_shape)
    y = torch.randint(0, len(net.class_names), (8,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_footprint_tiles_layers_taller_than_the_array():
    from torch import nn

    net = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4))
    cfg = AonCimConfig(rows=128, cols=64, n_adcs=16, act_depth=1024)
    fp = analog_footprint(net, (32, 4, 4), cfg)
    conv = fp.mvm_layers[0]
    assert (conv.rows, conv.tiles, conv.mvms) == (288, 3, 16 * 3)
    assert conv.place[0] == 0  # array-high

"""MLPerf Tiny reference models (model/mlperf.py): structure, counts, determinism, sane activations, export.

Expected counts (worked out from the mlcommons/tiny Keras reference code layer by layer; PyTorch
parameters() = Keras "Trainable params", + batch-norm running mean/var = Keras "Total params"):
    mlperf-kws  DS-CNN                 23 756 / 24 908    2 656 768 MACs
    mlperf-vww  MobileNetV1 0.25 @96   216 322 / 221 794  7 489 664 MACs
    mlperf-ic   ResNet-8               78 186 / 78 666    12 501 632 MACs
    mlperf-ad   FC autoencoder         267 928 / 269 992  264 192 MACs
Ballparks usually quoted: DS-CNN small 24-40 K (depending on variant and counting), MobileNetV1
0.25 208-222 K, ResNet-8 ~78 K, FC-AE ~270 K.
"""
import time

import pytest
import torch
from torch import nn

from aoncim.model import mlperf
from aoncim.model.mlperf import MODELS, get, summary

NAMES = sorted(MODELS)
# name -> (trainable, total with BN statistics, MACs, ballpark (lo, hi) of the trainable count)
EXPECTED = {
    "mlperf-kws": (23_756, 24_908, 2_656_768, (23_000, 40_000)),
    "mlperf-vww": (216_322, 221_794, 7_489_664, (208_000, 222_000)),
    "mlperf-ic": (78_186, 78_666, 12_501_632, (76_000, 80_000)),
    "mlperf-ad": (267_928, 269_992, 264_192, (262_000, 275_000)),
}
ALLOWED = (nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.Linear, nn.AdaptiveAvgPool2d, nn.Flatten,
           nn.Dropout)
_BUILT: dict[str, nn.Module] = {}


def built(name: str) -> nn.Module:
    if name not in _BUILT:
        _BUILT[name] = get(name).build(seed=0)
    return _BUILT[name]


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_registry_and_unknown_name():
    assert set(NAMES) == {"mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"}
    for k, spec in MODELS.items():
        assert spec.name == k and get(k) is spec
    with pytest.raises(ValueError) as e:
        get("mlperf-xyz")
    msg = str(e.value)
    assert "\n" not in msg and all(k in msg for k in NAMES)


def test_parameter_counts_and_macs(name):
    trainable, total, macs, (lo, hi) = EXPECTED[name]
    spec, s = get(name), summary(name, built(name))
    assert s["params"] == trainable == spec.reference_trainable
    assert s["params_with_bn_stats"] == total == spec.reference_params
    assert lo <= trainable <= hi
    assert s["macs"] == macs
    assert s["input_shape"] == spec.input_shape


def test_layer_structure(name):
    net = built(name)
    leaves = [m for m in net.modules() if not list(m.children())]
    assert all(isinstance(m, ALLOWED) for m in leaves), {type(m).__name__ for m in leaves}
    convs = [m for m in leaves if isinstance(m, nn.Conv2d)]
    if name == "mlperf-kws":
        assert convs[0].kernel_size == (10, 4) and convs[0].stride == (2, 2) and convs[0].padding == (5, 1)
        assert [m.groups for m in convs[1:]] == [64, 1] * 4
    if name == "mlperf-vww":
        assert len(convs) == 27 and [m.groups > 1 for m in convs[1:]] == [True, False] * 13
        assert [m.stride[0] for m in convs[1::2]] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
        assert convs[-1].out_channels == 256
    if name == "mlperf-ic":
        short = [m for m in convs if m.kernel_size == (1, 1)]
        assert [(m.in_channels, m.out_channels, m.stride) for m in short] == [(16, 32, (2, 2)), (32, 64, (2, 2))]
        assert sum(isinstance(m, nn.BatchNorm2d) for m in leaves) == 7   # none on the shortcuts
    if name == "mlperf-ad":
        lins = [m for m in leaves if isinstance(m, nn.Linear)]
        assert [m.out_features for m in lins] == [128] * 4 + [8] + [128] * 4 + [640]
        assert not isinstance(list(net.children())[-1], nn.ReLU)
    x = get(name).inputs(2, 0)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, get(name).outputs)


def test_build_is_deterministic_fast_and_leaves_global_rng(name):
    state = torch.random.get_rng_state()
    t = time.perf_counter()
    a = get(name).build(seed=0)
    dt = time.perf_counter() - t
    assert torch.equal(torch.random.get_rng_state(), state)
    assert dt < 5.0, f"build took {dt:.2f} s"  # ~0.02-0.2 s warm; generous for the shared CPU
    ref, sa = built(name).state_dict(), a.state_dict()
    assert ref.keys() == sa.keys() and all(torch.equal(ref[k], sa[k]) for k in ref)
    other = get(name).build(seed=1).state_dict()
    assert any(not torch.equal(ref[k], other[k]) for k in ref if ref[k].is_floating_point())
    assert not any(m.training for m in a.modules())


def test_batchnorm_calibrated(name):
    bns = [m for m in built(name).modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert bns and all(m.num_batches_tracked.item() == 1 for m in bns)
    for m in bns:
        assert not torch.allclose(m.running_var, torch.ones_like(m.running_var))
        assert (m.running_var > 0).all() and torch.isfinite(m.running_mean).all()
        assert ((m.weight >= 0.5) & (m.weight <= 1.5)).all() and m.bias.abs().max() < 0.6


def test_inputs_deterministic_and_in_range(name):
    spec = get(name)
    x = spec.inputs(4, 0)
    assert x.shape == (4, *spec.input_shape) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, spec.inputs(4, 0)) and not torch.equal(x, spec.inputs(4, 1))
    if name in ("mlperf-vww", "mlperf-ic"):
        assert x.min() >= 0 and x.max() <= 1
        assert ((x == 0) | (x == 1)).float().mean() < 0.02           # little clipping
        # smooth: neighbouring pixels far more alike than the image spread
        assert (x[..., 1:] - x[..., :-1]).abs().mean() < 0.5 * x.std()
    else:
        assert (x < 0).any() and (x > 0).any()                       # signed
    if name == "mlperf-kws":   # larger spread for the low coefficients
        sd = spec.inputs(64, 0)[:, 0].std(dim=(0, 1))
        assert sd[0] > sd[1] > sd[9] and sd[0] > 3 * sd[9]


def test_outputs_finite_and_input_dependent(name):
    net, x = built(name), get(name).inputs(4, 0)
    relus = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.ReLU)]
    acts = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: acts.__setitem__(n, o.detach())) for n, m in relus]
    try:
        with torch.no_grad():
            y = net(x)
    finally:
        for h in hooks:
            h.remove()
    assert torch.isfinite(y).all() and y.std() > 0
    for i in range(4):
        for j in range(i + 1, 4):
            assert (y[i] - y[j]).abs().max() > 1e-3, (i, j)
    assert len(acts) == len(relus) > 0
    for n, a in acts.items():
        assert a.amax() > 0, f"ReLU {n} is all zero over the batch"
        per_channel = a.amax(dim=(0, *range(2, a.dim())))           # channel axis 1
        assert (per_channel > 0).float().mean() >= 0.75, f"ReLU {n}: too many dead channels"


def test_torch_export(name):
    net, x = built(name), get(name).inputs(2, 0)
    ep = torch.export.export(net, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), net(x), atol=1e-5, rtol=1e-5)


def test_summary_layers():
    s = summary("mlperf-kws", built("mlperf-kws"))
    assert s["weight_layers"] == 10 and s["layers"][0]["out"] == (64, 25, 5)
    assert [L["kind"] for L in s["layers"]] == ["conv"] + ["dwconv", "conv"] * 4 + ["linear"]
    assert sum(L["params"] for L in s["layers"]) + 2 * 64 * 9 == s["params"]
    assert mlperf.CALIBRATION_SEED not in (0, 1)

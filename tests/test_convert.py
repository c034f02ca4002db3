"""Bring your own model (model/convert.py): any nn.Module converted to analog layers, trained
hardware-aware on a DataLoader, compiled and run on the golden model (docs/byo-model.md)."""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.firmware.compiler import CompileError
from aoncim.model.analog import ANALOG_LAYERS, AnalogConv1d, AnalogConv2d, AnalogLinear, analog_layers, set_analog_mode
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.model.convert import compile_module, convert_to_analog, recipe_of, train_fp_model, train_hwa_model
from aoncim.model.hwa import HwaRecipe

RECIPE = HwaRecipe(hwa_lr=2e-2, fp_lr=5e-3)


class Residual(nn.Module):
    """y = ReLU(x + BN(pointwise(ReLU(BN(depthwise(x))))))"""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c), nn.ReLU())
        self.pw = nn.Sequential(nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.pw(self.dw(x)))


class Net(nn.Module):
    """(N, 1, 8, 16) "spectrogram" -> conv stem, residual depthwise block, a conv collapsing the 8
    rows, a Conv1d over the 16 columns, mean, linear head: not a Sequential anywhere at the top."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = Residual(8)
        self.collapse = nn.Conv2d(8, 8, (8, 1))
        self.temporal = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.block(self.stem(x))
        x = torch.relu(self.collapse(x)).squeeze(2)
        x = torch.relu(self.temporal(x))
        return self.head(x.mean(-1))


def two_bands(n=256, seed=0):
    """Class 0: energy in the upper four rows, class 1: in the lower four; values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    rows = torch.arange(8).view(1, 8, 1)
    band = torch.where(y.view(-1, 1, 1) == 0, rows < 4, rows >= 4).float()
    x = 0.3 * torch.rand(n, 8, 16, generator=g) + 0.4 * band * (0.5 + torch.rand(n, 1, 16, generator=g))
    return x.clamp(0, 1).unsqueeze(1), y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small batches: worker threads only contend on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return two_bands()


@pytest.fixture(scope="module")
def trained(data):
    """(float model, its state before conversion, analog model, training logs)."""
    x, y = data
    torch.manual_seed(0)
    net = Net().eval()
    before = copy.deepcopy(net.state_dict())
    analog = convert_to_analog(net, CFG, RECIPE, calib=x[:64])
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    logs = train_hwa_model(analog, loader, DataLoader(TensorDataset(x[:64], y[:64]), batch_size=64), CFG,
                           epochs=2, progress=False)
    return net, before, analog, logs


def test_every_layer_becomes_analog_and_the_module_is_untouched(data):
    x, _ = data
    torch.manual_seed(0)
    net = Net().eval()
    before = copy.deepcopy(net.state_dict())
    analog = convert_to_analog(net, CFG, RECIPE, calib=x[:64])
    kinds = {n: type(m) for n, m in analog.named_modules()}
    assert kinds["stem.0"] is AnalogConv2d and kinds["block.dw.0"] is AnalogConv2d and kinds["block.pw.0"] is AnalogConv2d
    assert kinds["temporal"] is AnalogConv1d and kinds["head"] is AnalogLinear and kinds["collapse"] is AnalogConv2d
    assert analog.block.dw[0].groups == 8
    assert not any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not isinstance(m, ANALOG_LAYERS)
                   for m in analog.modules())
    # The user's module: still float, its own parameters, unchanged.
    assert not any(isinstance(m, ANALOG_LAYERS) for m in net.modules())
    ptrs = {p.data_ptr() for p in net.parameters()}
    assert not ptrs & {p.data_ptr() for p in analog.parameters()}
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    # "ideal" mode is the float network; the state dict keys are the float ones plus input_range.
    with torch.no_grad():
        assert torch.allclose(analog(x), net(x), atol=1e-6)
    assert set(analog.state_dict()) == set(before) | {f"{n}.input_range" for n, _ in analog_layers(analog)}
    # Calibrated DAC ranges: the stem reads the [0, 1] input (the compiler's input grid), the
    # others the 99.9th percentile of what they see.
    ranges = {n: float(m.input_range.detach()) for n, m in analog_layers(analog)}
    assert ranges["stem.0"] == 1.0 and all(r > 0 for r in ranges.values())
    # The recipe's analog settings on every layer, and remembered.
    assert all(m.per_channel and m.in_bits == 8 and m.weight_noise == RECIPE.weight_noise
               and m.pcm_train_times == RECIPE.pcm_train_times for _, m in analog_layers(analog))
    assert recipe_of(analog) == RECIPE


def test_overrides_and_bad_arguments():
    analog = convert_to_analog(Net(), CFG, RECIPE, in_bits=6, weight_noise=0.0, read_noise_scale=0.0)
    assert {m.in_bits for _, m in analog_layers(analog)} == {6}
    assert recipe_of(analog).act_bits == 6 and recipe_of(analog).weight_noise == 0.0
    assert all(m.read_noise_scale == 0.0 for _, m in analog_layers(analog))
    with pytest.raises(TypeError, match="unknown analog setting"):
        convert_to_analog(Net(), CFG, RECIPE, noise=1.0)
    with pytest.raises(ValueError, match="act_bits=5 not supported"):
        convert_to_analog(Net(), CFG, HwaRecipe(act_bits=5))
    with pytest.raises(ValueError, match="no Conv1d, Conv2d or Linear"):
        convert_to_analog(nn.Sequential(nn.ReLU()), CFG)
    bare = convert_to_analog(nn.Linear(3, 2), CFG)  # a bare layer is converted too
    assert isinstance(bare, AnalogLinear) and recipe_of(bare) == HwaRecipe()
    x, y = two_bands(32)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    with pytest.raises(ValueError, match=r"weight_noise: 0.05 vs 0.0.*convert the float model again"):
        train_hwa_model(analog, loader, recipe=RECIPE, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"must yield \(inputs, targets\) batches, got a 3-element list"):
        train_hwa_model(analog, DataLoader(TensorDataset(x, y, y), batch_size=16), epochs=1, progress=False)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(x, y))

    with pytest.raises(ValueError, match="has no len"):
        train_hwa_model(analog, DataLoader(Stream(), batch_size=16), epochs=1, progress=False)
    with pytest.raises(ValueError, match="no analog layers"):
        train_hwa_model(Net(), loader, epochs=1, progress=False)


def test_signed_layer_inputs_are_reported():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))  # no ReLU: the second layer sees signed values
    x = torch.rand(64, 4)
    with pytest.warns(UserWarning, match=r"analog layer\(s\) 1 \(.*< 0\) see negative inputs"):
        convert_to_analog(net, CFG, calib=x)


def test_hwa_training_on_a_dataloader(trained, data):
    net, before, analog, logs = trained
    x, y = data
    assert [(e.phase, e.epoch) for e in logs] == [("HWA", 0), ("HWA", 1)]
    assert logs[1].loss < logs[0].loss
    assert 0 <= logs[-1].val_acc <= 1 and logs[-1].val_loss > 0
    assert all(m.mode == "hwa" for _, m in analog_layers(analog)) and not analog.training
    with torch.no_grad():
        acc = float((analog(x).argmax(1) == y).float().mean())  # with analog noise
    assert acc > 0.75
    # Weights clipped at 2.5 sigma after every step; the float model never moved.
    for _, m in analog_layers(analog):
        w = m.weight.detach()
        assert float(w.abs().max()) <= 2.5 * float(w.std()) * 1.05
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_regression_targets_with_any_loss():
    """An autoencoder on (x, x) batches with MSE; float pre-training through the same loop."""
    g = torch.Generator().manual_seed(1)
    basis = torch.rand(3, 12, generator=g)
    x = (torch.rand(192, 3, generator=g) @ basis / 3).clamp(0, 1)
    net = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 12))
    loader = DataLoader(TensorDataset(x, x), batch_size=32, shuffle=True)
    recipe = HwaRecipe(fp_lr=1e-2, hwa_lr=2e-3)
    torch.manual_seed(0)
    fp = train_fp_model(net, loader, loader, recipe, epochs=3, loss_fn=nn.MSELoss(), progress=False)
    assert fp[-1].loss < fp[0].loss and math.isnan(fp[-1].val_acc) and fp[-1].val_loss < fp[0].val_loss
    analog = convert_to_analog(net, CFG, recipe, calib=x)
    hwa = train_hwa_model(analog, loader, loader, epochs=2, loss_fn=nn.MSELoss(), progress=False)
    assert math.isnan(hwa[-1].val_acc) and hwa[-1].val_loss < 2 * fp[-1].val_loss


def test_compiled_module_runs_on_the_golden_model(trained, data):
    _, _, analog, _ = trained
    x, _ = data
    analog.train()
    set_analog_mode(analog, "inference", t_inf=3600.0, seed=2)
    prog = compile_module(analog, x[:64], CFG)
    # The modes and the train flag are the caller's again.
    assert all(m.mode == "inference" and m.t_inf == 3600.0 for _, m in analog_layers(analog)) and analog.training
    analog.eval()
    set_analog_mode(analog, "ideal")
    with torch.no_grad():
        want = analog(x).numpy()
    q = prog.io.quantise(x.numpy(), 8)
    out = BitTrueExecutor(CFG, prog).run_batch(q, np.arange(len(q)))[-1].output
    chip = prog.io.dequantise(out.reshape(len(q), -1).numpy())
    assert (chip.argmax(1) == want.argmax(1)).mean() >= 0.9
    assert np.corrcoef(chip.ravel(), want.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("name", ["mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"])
def test_mlperf_models_convert(name, recwarn):
    """The four MLPerf Tiny models (depthwise convs, residual adds outside any Sequential, a
    vector autoencoder): every layer analog, the float network in "ideal" mode; the two with signed
    inputs (MFCCs, log-mel dB) are reported, naming their first layer."""
    from aoncim.model import mlperf

    m = mlperf.get(name)
    net, x = m.build(), m.inputs(8, 1)
    analog = convert_to_analog(net, m.config(), calib=x)
    assert not any(isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not isinstance(l, ANALOG_LAYERS)
                   for l in analog.modules())
    with torch.no_grad():
        assert torch.equal(analog(x), net(x))
    signed = [str(w.message) for w in recwarn if "negative inputs" in str(w.message)]
    first = {"mlperf-kws": "stem_conv", "mlperf-ad": "fc1"}.get(name)
    assert len(signed) == (first is not None) and (first is None or f"analog layer(s) {first} (" in signed[0])


def test_calibration_runs_the_network_as_the_chip_does(data):
    """A module in train mode: calibration sees batch norm in eval mode and leaves its running
    statistics and the train flags as they were."""
    x, _ = data
    net = Net().train()
    analog = convert_to_analog(net, CFG, calib=x[:32])
    assert analog.training and analog.block.dw[1].training
    assert torch.equal(analog.block.dw[1].running_mean, net.block.dw[1].running_mean)
    assert int(analog.block.dw[1].num_batches_tracked) == 0


def test_compile_module_takes_a_float_module_too(data):
    """A float module compiles as it is (8-bit activations); its train flag is restored."""
    x, _ = data
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), Residual(4),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).train()
    with torch.no_grad():
        net(x)  # batch-norm statistics
    prog = compile_module(net, x[:64], CFG)
    assert net.training and prog.layers[0].in_bits == 8
    net.eval()
    with torch.no_grad():
        want = net(x[:64]).numpy()
    q = prog.io.quantise(x[:64].numpy(), 8)
    out = BitTrueExecutor(CFG, prog).run_batch(q, np.arange(64))[-1].output
    chip = prog.io.dequantise(out.reshape(64, -1).numpy())
    assert np.corrcoef(chip.ravel(), want.ravel())[0, 1] > 0.95

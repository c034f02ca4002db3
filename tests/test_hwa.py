"""Hardware-aware training recipe on the small procedural task (fast)."""
import torch

from aoncim.config import DEFAULT_CONFIG
from aoncim.model.analog import analog_layers, set_analog_mode
from aoncim.model.hwa import HwaRecipe, accuracy, clip_weights, to_hwa, train_fp, train_hwa
from aoncim.model.patterns import make_patterns
from aoncim.model.tiny import TinyNet


def test_recipe_trains_and_keeps_accuracy_under_analog_noise():
    recipe = HwaRecipe(fp_epochs=4, hwa_epochs=2, batch_size=64, act_bits=6)
    train, val = make_patterns(1500, seed=1), make_patterns(400, seed=2)
    net = TinyNet()
    fp_log = train_fp(net, train, val, recipe, progress=False)
    assert fp_log[-1].val_acc > 0.6 and fp_log[-1].samples_per_s > 0
    to_hwa(net, DEFAULT_CONFIG, recipe, train[0][:256])
    layers = analog_layers(net)
    assert len(layers) == 2 and float(layers[0][1].input_range) == 1.0 and float(layers[1][1].input_range) > 0
    hwa_log = train_hwa(net, train, val, DEFAULT_CONFIG, recipe, progress=False)
    assert hwa_log[-1].val_acc > 0.6
    set_analog_mode(net, "inference", t_inf=86400.0, seed=0)
    assert accuracy(net, *val) > 0.5


def test_weight_clipping_bounds_every_layer():
    net = TinyNet()
    to_hwa(net, DEFAULT_CONFIG, HwaRecipe(), make_patterns(64, seed=0)[0])
    with torch.no_grad():
        net.fc.weight[0, 0] = 100.0  # an outlier
    limits = [2.5 * float(layer.weight.std()) for _, layer in analog_layers(net)]
    clip_weights(net, 2.5)
    for lim, (_, layer) in zip(limits, analog_layers(net)):
        assert float(layer.weight.abs().max()) <= lim + 1e-6
    assert float(net.fc.weight[0, 0]) < 100.0

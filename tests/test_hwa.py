"""Hardware-aware training recipe on the small procedural task (fast)."""
import torch

from aoncim.config import DEFAULT_CONFIG
from aoncim.model.analog import analog_layers, set_analog_mode
from aoncim.model.hwa import HwaRecipe, accuracy, clip_weights, to_hwa, train_fp, train_hwa
from aoncim.model.patterns import make_patterns
from aoncim.model.tiny import TinyNet


def test_recipe_trains_and_keeps_accuracy_under_analog_noise():
    recipe = HwaRecipe(fp_epochs=3, hwa_epochs=1, batch_size=64, act_bits=6)
    train, val = make_patterns(1000, seed=1), make_patterns(300, seed=2)
    net = TinyNet()
    fp_log = train_fp(net, train, val, recipe, progress=False)
    assert fp_log[-1].val_acc > 0.6 and fp_log[-1].samples_per_s > 0
    to_hwa(net, DEFAULT_CONFIG, recipe, train[0][:256])
    layers = analog_layers(net)
    assert len(layers) == 2 and float(layers[0][1].input_range.detach()) == 1.0 and float(layers[1][1].input_range.detach()) > 0
    hwa_log = train_hwa(net, train, val, DEFAULT_CONFIG, recipe, progress=False)
    assert hwa_log[-1].val_acc > 0.6
    set_analog_mode(net, "inference", t_inf=86400.0, seed=0)
    assert accuracy(net, *val) > 0.5


def test_weight_clipping_bounds_every_layer():
    net = TinyNet()
    to_hwa(net, DEFAULT_CONFIG, HwaRecipe(), make_patterns(64, seed=0)[0])
    with torch.no_grad():
        net.fc.weight[0, 0] = 100.0  # an outlier
    limits = [2.5 * float(layer.weight.detach().std()) for _, layer in analog_layers(net)]
    clip_weights(net, 2.5)
    for lim, (_, layer) in zip(limits, analog_layers(net)):
        assert float(layer.weight.detach().abs().max()) <= lim + 1e-6
    assert float(net.fc.weight.detach()[0, 0]) < 100.0


def test_accuracy_table_and_plot(tmp_path):
    import copy

    from aoncim.model.evaluate import evaluate, plot_rows, save_rows

    from aoncim.model.tiny import load_tiny

    train, val = make_patterns(128, seed=1), make_patterns(300, seed=2)
    fp = load_tiny()  # well trained, so drift effects stand out of the sampling noise
    net = to_hwa(copy.deepcopy(fp), DEFAULT_CONFIG, HwaRecipe(), train[0])
    times = {"1s": 1.0, "1y": 365 * 86400.0}
    rows = evaluate(fp, net, DEFAULT_CONFIG, *val, train[0][:128], bits_list=(8,), times=times, seeds=2,
                    progress=False)
    assert [r.mode for r in rows].count("bit-true") == 4 and [r.mode for r in rows].count("HWA float") == 4
    by = {(r.mode, r.time, r.compensated): r for r in rows}
    assert all(0 <= r.mean <= 1 and r.seeds in (1, 2) for r in rows)
    # One year of uncompensated drift costs accuracy in both models; compensation wins it back.
    for mode in ("HWA float", "bit-true"):
        assert by[(mode, "1y", False)].mean < by[(mode, "1y", True)].mean
    assert abs(by[("HWA float", "1s", True)].mean - by[("bit-true", "1s", True)].mean) < 0.05
    save_rows(rows, tmp_path / "acc.json")
    plot_rows(rows, tmp_path / "acc.png", "test")
    assert (tmp_path / "acc.png").stat().st_size > 10_000

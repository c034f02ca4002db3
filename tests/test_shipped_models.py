"""The shipped AnalogNet checkpoints: they load, classify the offline test sets, and survive the
chip's integer arithmetic and a day of PCM drift with compensation."""
import numpy as np
import pytest

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.firmware.compiler import compile_network, quantise_input
from aoncim.model.analog import calibrate_offsets, set_analog_mode
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.model.hwa import accuracy
from aoncim.model.snapshot import ProgrammedArray, compensated
from aoncim.model.tasks import get_task, load_checkpoint

FLOOR = {"kws": 0.87, "vww": 0.81}  # offline test sets; chance is 1/12 and 1/2


@pytest.fixture(scope="module", params=["kws", "vww"])
def shipped(request):
    task = get_task(request.param)
    fp, hwa, scaler, ck = load_checkpoint(task, None, CFG)
    x, y = task.load("test")
    return task, fp, hwa, scaler(x[:400]), y[:400], ck


def test_float_models_classify(shipped):
    task, fp, hwa, x, y, ck = shipped
    assert accuracy(fp, x, y) >= FLOOR[task.name]
    set_analog_mode(hwa, "hwa")
    assert accuracy(hwa, x, y) >= FLOOR[task.name] - 0.03
    # A day after programming, compensated (alpha + per-column offset calibration), the statistical
    # model keeps its accuracy on every chip tried.
    calibrate_offsets(hwa, x[:256])
    for seed in range(3):
        set_analog_mode(hwa, "inference", t_inf=86400.0, seed=seed)
        assert accuracy(hwa, x, y) >= FLOOR[task.name] - 0.03
    assert ck["recipe"]["act_bits"] == 8 and ck["info"]["data"] == "offline synthetic"


def test_bit_true_after_a_day_of_drift(shipped):
    task, fp, hwa, x, y, ck = shipped
    set_analog_mode(hwa, "ideal")
    prog = compile_network(hwa, CFG, x[:256], act_bits=8)
    arr = ProgrammedArray(prog, CFG, seed=1)
    day = compensated(arr.at(1.0), arr.at(86400.0), CFG, target=prog)
    out = BitTrueExecutor(CFG, day).run_batch(quantise_input(x[:200], 8), np.arange(200))[-1].output
    acc = float((out.reshape(200, -1).argmax(1) == y[:200]).float().mean())
    assert acc >= FLOOR[task.name] - 0.04, acc
    # Without the offset calibration the same chip is worse or at best equal.
    alpha_only = compensated(arr.at(1.0), arr.at(86400.0), CFG)
    out = BitTrueExecutor(CFG, alpha_only).run_batch(quantise_input(x[:200], 8), np.arange(200))[-1].output
    assert float((out.reshape(200, -1).argmax(1) == y[:200]).float().mean()) <= acc + 0.02


def test_checkpoint_from_before_the_drift_aware_recipe_loads_with_its_own_mapping(tmp_path):
    import torch

    from aoncim.model.analog import analog_layers
    from aoncim.model.tasks import shipped_checkpoint

    task = get_task("kws")
    ck = torch.load(shipped_checkpoint(task), weights_only=True)
    old = dict(ck, recipe={k: v for k, v in ck["recipe"].items() if k not in ("per_column", "pcm_train_times")})
    torch.save(old, tmp_path / "old.pt")
    _, hwa, _, _ = load_checkpoint(task, tmp_path / "old.pt", CFG)
    assert all(not layer.per_channel and layer.pcm_train_times is None for _, layer in analog_layers(hwa))
    torch.save(dict(ck, recipe=dict(ck["recipe"], future_knob=1)), tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"recipe fields \['future_knob'\].*upgrade aoncim"):
        load_checkpoint(task, tmp_path / "new.pt", CFG)

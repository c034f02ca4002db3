"""Checkpoint validation (model/checkpoint.py): every broken checkpoint is one line naming the
entry, from `aoncim compile` and `aoncim eval` alike, before any work and with nothing written;
the shipped checkpoints pass and stay untouched by `aoncim train`."""
import hashlib
import math
import shutil

import pytest
import torch

from aoncim.firmware.compiler import PARAM_LIMIT
from aoncim.model.checkpoint import CheckpointError, validate_checkpoint
from aoncim.model.tasks import get_task, shipped_checkpoint
from aoncim.outputs import is_shipped
from cli_helpers import invoke as run
from cli_helpers import one_error_line

KWS = get_task("kws")


@pytest.fixture(scope="module")
def shipped_kws():
    return torch.load(shipped_checkpoint(KWS), weights_only=True)


def _copy(ck: dict) -> dict:
    return {k: ({n: t.clone() for n, t in v.items()} if k.endswith("_state") else
                {n: list(x) if isinstance(x, list) else x for n, x in v.items()} if isinstance(v, dict) else v)
            for k, v in ck.items()}


def _set(entry, key, index, value):
    def f(ck):
        ck[entry][key][index] = value
    return f


def _drop(entry, key):
    return lambda ck: ck[entry].pop(key)


class Raw:
    """A breakage of the file's bytes rather than of the checkpoint dict."""

    def __init__(self, f):
        self.f = f


class Unlisted:
    """Not among the types torch.load(weights_only=True) may build: loading must refuse it."""


# (name, how the checkpoint dict is broken, or the file bytes, text the one error line must hold)
BROKEN = [
    ("missing tensor", _drop("hwa_state", "12.weight"), "hwa_state['12.weight'] missing"),
    ("extra tensor", lambda ck: ck["hwa_state"].__setitem__("99.weight", torch.zeros(3)),
     "hwa_state['99.weight'] is not a tensor of AnalogNet-KWS"),
    ("reshaped tensor",
     lambda ck: ck["hwa_state"].__setitem__("3.weight", ck["hwa_state"]["3.weight"].reshape(72, 64, 9)),
     "hwa_state['3.weight'] has shape (72, 64, 9), AnalogNet-KWS needs (72, 64, 3, 3)"),
    ("not a tensor", lambda ck: ck["fp_state"].__setitem__("17.bias", [0.0] * 12), "fp_state['17.bias'] is a list"),
    ("integer weights", lambda ck: ck["hwa_state"].__setitem__("6.weight", ck["hwa_state"]["6.weight"].int()),
     "hwa_state['6.weight'] is torch.int32"),
    ("NaN", _set("hwa_state", "6.weight", (0, 1, 2, 2), math.nan), "hwa_state['6.weight'][0, 1, 2, 2] = nan"),
    ("inf", _set("fp_state", "1.running_var", 2, math.inf), "fp_state['1.running_var'][2] = inf"),
    ("1e30 weight", _set("hwa_state", "3.weight", (5, 0, 0, 0), 1e30), "hwa_state['3.weight'][5, 0, 0, 0] = 1e+30"),
    ("1e30 final bias", _set("hwa_state", "17.bias", 3, 1e30), "hwa_state['17.bias'][3] = 1e+30"),
    ("just beyond the limit", _set("hwa_state", "13.bias", 0, -PARAM_LIMIT * 1.01), "hwa_state['13.bias'][0]"),
    ("negative variance", _set("hwa_state", "4.running_var", 7, -1.0), "hwa_state['4.running_var'][7] = -1"),
    ("zero DAC range", lambda ck: ck["hwa_state"]["9.input_range"].fill_(0.0), "hwa_state['9.input_range'] = 0"),
    ("task changed", lambda ck: ck.__setitem__("task", "vww"),
     "says task 'vww' but holds the tensors of AnalogNet-KWS"),
    ("task unknown", lambda ck: ck.__setitem__("task", "speech"), "task 'speech' unknown"),
    ("task missing", lambda ck: ck.pop("task"), "entry 'task' missing"),
    ("format", lambda ck: ck.__setitem__("format", 2), "format 2 unknown"),
    ("scaler wrong length", lambda ck: ck["scaler"]["lo"].pop(), "scaler['lo'] has 9 entries"),
    ("scaler hi below lo", lambda ck: ck["scaler"]["hi"].__setitem__(4, ck["scaler"]["lo"][4] - 1),
     "scaler['hi'][4]"),
    ("scaler NaN", lambda ck: ck["scaler"]["lo"].__setitem__(1, math.nan), "scaler['lo'][1]"),
    ("recipe act_bits", lambda ck: ck["recipe"].__setitem__("act_bits", 99), "recipe['act_bits'] = 99"),
    ("recipe pcm times", lambda ck: ck["recipe"].__setitem__("pcm_train_times", (10.0, 1.0)),
     "recipe['pcm_train_times']"),
    ("info not a dict", lambda ck: ck.__setitem__("info", "trained"), "entry 'info' is a str, not a dict"),
    ("not a dict", lambda ck: [1, 2, 3], "holds a list, not the dict"),
    ("unlisted class", lambda ck: {"format": 1, "task": "kws", "x": Unlisted()}, "cannot read checkpoint"),
    ("truncated file", Raw(lambda raw: raw[: len(raw) // 2]), "cannot read checkpoint"),
    ("garbage bytes", Raw(lambda raw: b"\x80\x02garbage" * 64), "cannot read checkpoint"),
    ("empty file", Raw(lambda raw: b""), "is empty (0 bytes)"),
]


def _write(tmp_path, shipped_kws, how):
    path = tmp_path / "broken.pt"
    if isinstance(how, Raw):
        path.write_bytes(how.f(shipped_checkpoint(KWS).read_bytes()))
    else:
        ck = _copy(shipped_kws)
        out = how(ck)  # a replacement object, or None / whatever a mutator returns
        torch.save(out if isinstance(out, (list, dict)) else ck, path)
    return path


@pytest.mark.parametrize("name,how,match", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_checkpoint_is_one_line_from_compile_and_eval(tmp_path, shipped_kws, name, how, match):
    path = _write(tmp_path, shipped_kws, how)
    image, outdir = tmp_path / "x.aonc", tmp_path / "eval_out"
    one_error_line(run("compile", path, "-o", image), match)
    assert not image.exists()
    one_error_line(run("eval", "kws", "--checkpoint", path, "--seeds", 1, "--bits", 8, "--times", "1s",
                       "--samples", 8, "-o", outdir), match)
    assert not outdir.exists()


def test_shipped_checkpoints_pass_validation():
    for name in ("kws", "vww"):
        task = get_task(name)
        assert validate_checkpoint(shipped_checkpoint(task)) == task
        assert validate_checkpoint(torch.load(shipped_checkpoint(task), weights_only=True), name) == task


def test_validate_checkpoint_api(shipped_kws, tmp_path):
    """The function other front ends and fuzzers call: a Task or one CheckpointError line, for any object."""
    assert validate_checkpoint(_copy(shipped_kws), KWS) == KWS
    with pytest.raises(CheckpointError, match=r"^checkpoint is for task 'kws', not 'vww'"):
        validate_checkpoint(shipped_kws, "vww")
    for junk in (None, 3, "kws", b"bytes", {"format": 1}, {**shipped_kws, "fp_state": {1: torch.zeros(1)}},
                 {**shipped_kws, "scaler": {"lo": "abc", "hi": []}}, {**shipped_kws, "recipe": {"seed": []}}):
        with pytest.raises(CheckpointError) as e:
            validate_checkpoint(junk)
        assert "\n" not in str(e.value) and isinstance(e.value, ValueError)
    ck = _copy(shipped_kws)
    ck["hwa_state"]["0.weight"][0, 0, 0, 0] = math.nan
    ck["fp_state"]["17.bias"][0] = math.inf
    with pytest.raises(CheckpointError, match=r"fp_state\['17.bias'\]\[0\] = inf.*\(and 1 more problem\)$"):
        validate_checkpoint(ck)
    with pytest.raises(CheckpointError, match="not found: train one with `aoncim train kws"):
        validate_checkpoint(tmp_path / "none.pt", "kws")
    with pytest.raises(CheckpointError, match="is not a file"):
        validate_checkpoint(tmp_path)


def _fingerprint(paths):
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def test_train_without_out_never_touches_the_shipped_checkpoints(tmp_path, monkeypatch):
    shipped = [shipped_checkpoint(get_task(t)) for t in ("kws", "vww")]
    before = _fingerprint(shipped)
    monkeypatch.chdir(tmp_path)
    r = run("train", "kws", "--fp-epochs", 0, "--hwa-epochs", 0)
    assert r.exit_code == 0, r.output
    written = tmp_path / "out" / "analognet_kws.pt"
    assert validate_checkpoint(written) == KWS and "wrote out/analognet_kws.pt" in r.output
    # -o into the package is refused before any work, whatever the file system allows.
    one_error_line(run("train", "kws", "--fp-epochs", 0, "--hwa-epochs", 0, "-o", shipped[0]), "read-only")
    one_error_line(run("compile", written, "-o", shipped[0].parent / "x.aonc"), "read-only")
    one_error_line(run("eval", "kws", "-o", shipped[0].parent), "read-only")
    assert _fingerprint(shipped) == before
    assert all(is_shipped(p) for p in shipped)
    assert "out/analognet_<task>.pt" in run("train", "--help").output


def test_checkpoint_loads_with_a_config_without_its_trained_precision(tmp_path):
    """The trained precision is the recipe's; the commands set each run's own (compile --act-bits)."""
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"act_bits_supported": [4, 6]}')
    ck = tmp_path / "kws.pt"
    shutil.copy(shipped_checkpoint(KWS), ck)
    r = run("compile", ck, "--config", cfg, "--act-bits", 6, "-o", tmp_path / "x.aonc")
    assert r.exit_code == 0, r.output

"""Bring your own network, end to end from the command line (docs/byo-model.md): an ONNX file of a
model the chip was not designed for (Conv1d stem on a signed signal, depthwise-separable block,
residual block) compiles with `aoncim compile model.onnx --calib x.npy`, co-simulates bit-exact
on every layer with `aoncim cosim --image`, and its final outputs agree with onnxruntime's float
outputs within the documented quantisation error."""
import re

import numpy as np
import pytest
import torch
from byo_models import signal_inputs, signal_net
from cli_helpers import invoke, one_error_line

# docs/byo-model.md, "How close to the float model": 8-bit activations, read noise on.
MAX_REL, RMS_REL, TOP1 = 0.15, 0.05, 0.8


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("byo")
    net = signal_net()
    torch.onnx.export(net, (signal_inputs(1, 0),), str(d / "model.onnx"), dynamo=True, verbose=False)
    np.save(d / "x.npy", signal_inputs(128, 2).numpy())
    np.save(d / "inputs.npy", signal_inputs(5, 3).numpy())  # test inputs: the data's distribution, not the calib's
    return d


def test_compile_reports_what_it_did(onnx_model):
    d = onnx_model
    r = invoke("compile", d / "model.onnx", "--calib", d / "x.npy", "-o", d / "m.img")
    assert r.exit_code == 0, r.output
    assert "calibrated on 128 inputs" in r.output and "wrote" in r.output and "MVMs per inference" in r.output
    r = invoke("compile", d / "model.onnx", "-o", d / "fallback.img")
    assert r.exit_code == 0 and "no --calib given: calibrating on 64 standard-normal inputs" in r.output, r.output


@pytest.mark.cosim
def test_onnx_model_cosimulates_bit_exact_and_agrees_with_onnxruntime(onnx_model):
    d = onnx_model
    if not (d / "m.img").exists():
        assert invoke("compile", d / "model.onnx", "--calib", d / "x.npy", "-o", d / "m.img").exit_code == 0
    r = invoke("cosim", "--image", d / "m.img", "--inputs", 5, "--seed", 1, "--input", d / "inputs.npy",
               "--reference", d / "model.onnx")
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "bit-exact: 5/5 inferences"
    text = " ".join(r.output.split())  # the console wraps long lines
    m = re.search(r"= ([\d.]+) % of the largest \|output\| [\d.e+-]+, RMS ([\d.]+) %, top-1 agreement (\d+)%", text)
    assert m, r.output
    assert float(m[1]) / 100 < MAX_REL and float(m[2]) / 100 < RMS_REL and int(m[3]) / 100 >= TOP1, m[0]


@pytest.mark.parametrize("args, match", [
    (["compile", "{d}/model.onnx", "--calib", "{d}/nope.npy", "-o", "{d}/a.img"], "nope.npy: file not found"),
    (["compile", "{d}/model.onnx", "--calib", "{d}/bad.npy", "-o", "{d}/a.img"], "the model takes (N, 4, 1, 48)"),
    (["compile", "{d}/model.onnx", "--time", "86400", "-o", "{d}/a.img"], "--time writes a drifted chip snapshot"),
    (["cosim", "--reference", "{d}/model.onnx"], "--reference goes with --image"),
])
def test_bad_byo_arguments_are_one_line(onnx_model, args, match):
    d = onnx_model
    np.save(d / "bad.npy", np.zeros((3, 5, 48), np.float32))
    one_error_line(invoke(*[a.format(d=d) for a in args]), match)

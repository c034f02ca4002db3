"""Co-simulation of the generated Verilog under Verilator against the bit-true golden model.

The default-config build (the embedded TinyNet on the 1024 x 512 array) is shared by the tests in
this module through the on-disk build cache; the small config exercises stride 2, several ADC
slots and unaligned column windows, and is where mutated RTL is built to prove mismatches are
caught.
"""
import dataclasses
import shutil

import numpy as np
import pytest

from aoncim.config import DEFAULT_CONFIG
from aoncim.firmware.compiler import compile_network, quantise_input
from aoncim.firmware.driver import ChipError
from aoncim.model.patterns import make_patterns
from aoncim.model.tiny import load_tiny
from aoncim.sim.jobs import small_conv_job
from aoncim.sim.runner import run_cosim
from aoncim.sim.jobs import SMALL_CFG

pytestmark = pytest.mark.cosim

SMALL = SMALL_CFG


def tiny_job(act_bits, n, seed):
    calib, _ = make_patterns(128, seed=3)
    prog = compile_network(load_tiny(), DEFAULT_CONFIG, calib, act_bits=act_bits)
    x, _ = make_patterns(n, seed=seed)
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**32, n)]
    return prog, list(quantise_input(x, act_bits)), seeds


def small_job(act_bits=6, n=4, seed=0):
    return small_conv_job(SMALL, act_bits, n, seed)


@pytest.mark.parametrize("act_bits", [8, 4])
def test_tiny_net_bit_exact_with_read_noise(act_bits):
    assert DEFAULT_CONFIG.read_noise_lsb > 0
    prog, inputs, seeds = tiny_job(act_bits, n=6, seed=act_bits)
    r = run_cosim(DEFAULT_CONFIG, prog, inputs, seeds)
    assert r.mismatches == [], "\n".join(r.mismatches)
    assert r.n_ok == 6
    assert r.compared == [6 * 8 * 8 * 8, 6 * 10]
    assert all(inf["mvms"] == 8 * 8 + 1 for inf in r.inferences)
    assert all(inf["cycles"] > 0 for inf in r.inferences)


def test_small_config_bit_exact():
    prog, inputs, seeds = small_job()
    r = run_cosim(SMALL, prog, inputs, seeds)
    assert r.mismatches == [], "\n".join(r.mismatches)
    assert r.n_ok == len(inputs) and r.compared == [4 * 4 * 4 * 12, 4 * 2 * 2 * 6, 4 * 5]


@pytest.mark.parametrize("mutation", [
    {"adc_gain_shift": SMALL.adc_gain_shift + 1},  # the ADC's fixed gain off by a factor of two
    {"read_noise_lsb": 0.0},                        # the read-noise source disconnected
], ids=["adc-shift-off-by-one", "no-read-noise"])
def test_corrupted_rtl_constant_is_caught(mutation):
    """RTL generated from a mutated config must disagree with the golden model of the real one."""
    bad = dataclasses.replace(SMALL, **mutation)
    prog, inputs, seeds = small_job()
    r = run_cosim(SMALL, prog, inputs, seeds, rtl_cfg=bad, check_identity=False)
    assert r.n_ok < len(inputs)
    assert r.layer_fail[0] > 0 and r.mismatches and "layer 0" in r.mismatches[0]


def test_chip_of_another_config_is_refused():
    bad = dataclasses.replace(SMALL, adc_gain_shift=SMALL.adc_gain_shift + 1)
    prog, inputs, seeds = small_job(n=1)
    with pytest.raises(ChipError, match="config hash"):
        run_cosim(SMALL, prog, inputs, seeds, rtl_cfg=bad)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed (apt-get install iverilog)")
def test_small_config_bit_exact_on_icarus():
    """The second simulator; slow (~1 min, mostly the program load through Icarus' VPI)."""
    prog, inputs, seeds = small_job(n=2)
    r = run_cosim(SMALL, prog, inputs, seeds, sim="icarus")
    assert r.mismatches == [], "\n".join(r.mismatches)
    assert r.n_ok == 2


def test_waveform_dump_is_kept():
    prog, inputs, seeds = small_job(n=1)
    r = run_cosim(SMALL, prog, inputs, seeds, waves=True)
    assert r.n_ok == 1 and r.waves is not None and r.waves.exists() and r.waves_gtkw.exists()
    from aoncim.sim.waves import read_vars

    assert "irq" in {v.name for v in read_vars(r.waves)}


def test_small_config_bit_exact_over_cocotbext_axi():
    """The reference AXI4-Lite manager (cocotbext-axi) agrees with the testbench's fast one
    (sim/host_bus.py) on the same job: same outputs, same cycle counts."""
    prog, inputs, seeds = small_job(n=2)
    fast = run_cosim(SMALL, prog, inputs, seeds)
    ref = run_cosim(SMALL, prog, inputs, seeds, host_bus="cocotbext")
    for r in (fast, ref):
        assert r.mismatches == [], "\n".join(r.mismatches)
        assert r.n_ok == 2
    assert [i["cycles"] for i in fast.inferences] == [i["cycles"] for i in ref.inferences]


def test_cosim_cli_runs_a_users_own_image(tmp_path):
    """`aoncim cosim --image` runs an image from `aoncim compile` on its own config, inputs from a
    .npy of codes (the chip's layout) or generated over the image's input range; bit-exact."""
    from aoncim.firmware.image import write_image

    from cli_helpers import invoke

    prog, inputs, _ = small_job(act_bits=6, n=3)
    img = tmp_path / "mine.img"
    img.write_bytes(write_image(prog, SMALL))
    codes = tmp_path / "codes.npy"
    np.save(codes, np.stack(inputs))
    r = invoke("cosim", "--image", img, "--input", codes, "--seed", 4)
    assert r.exit_code == 0, r.output
    assert "mine.img" in r.output and r.output.strip().splitlines()[-1] == "bit-exact: 3/3 inferences"
    r = invoke("cosim", "--image", img, "--inputs", 2)
    assert r.exit_code == 0 and r.output.strip().splitlines()[-1] == "bit-exact: 2/2 inferences", r.output


def test_image_inputs_from_floats_quantise_as_the_compiler(tmp_path):
    """Float inputs in the model's layout become the codes `quantise_input` gives, rounding ties
    included; integer codes pass through; --inputs takes the first N."""
    import torch

    from aoncim.sim.jobs import image_inputs

    prog, _, _ = small_job(act_bits=6, n=1)
    d = prog.layers[0]
    top = (1 << d.in_bits) - 1
    # Every code's rounding tie (k + 0.5) / top and both rails.
    x = np.concatenate([np.linspace(0, 1, 2 * d.in_c * d.in_h * d.in_w), (np.arange(top) + 0.5) / top])
    x = np.resize(x, (5, d.in_c, d.in_h, d.in_w)).astype(np.float32)
    f = tmp_path / "x.npy"
    np.save(f, x)
    got, seeds = image_inputs(prog, str(f), None, 0)
    want = quantise_input(torch.from_numpy(x), d.in_bits)
    assert len(got) == len(seeds) == 5 and all((g == w).all() for g, w in zip(got, want))
    np.save(f, want)
    again, _ = image_inputs(prog, str(f), 2, 0)
    assert len(again) == 2 and all((g == w).all() for g, w in zip(again, want[:2]))

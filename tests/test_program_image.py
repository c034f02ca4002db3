"""Program, compiler and image: round trips and the errors users see."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.config import AonCimConfig, ConfigError
from aoncim.firmware.compiler import CompileError, compile_network, quantise_input
from aoncim.firmware.image import ImageError, read_image, write_image
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.model.patterns import make_patterns
from aoncim.model.tiny import load_tiny
from aoncim.program import LayerDescriptor, ProgramError


@pytest.fixture(scope="module")
def tiny_prog():
    calib, _ = make_patterns(128, seed=3)
    return compile_network(load_tiny(), CFG, calib)


def test_descriptor_pack_roundtrip(tiny_prog):
    for d in tiny_prog.layers:
        assert LayerDescriptor.unpack(d.pack()) == d
    with pytest.raises(ProgramError, match="row0"):
        dataclasses.replace(tiny_prog.layers[0], row0=1 << 16).pack()


def test_image_roundtrip(tiny_prog):
    blob = write_image(tiny_prog, CFG)
    prog, cfg = read_image(blob, CFG)
    assert cfg == CFG and prog == tiny_prog


def test_image_rejects_corruption(tiny_prog):
    blob = bytearray(write_image(tiny_prog, CFG))
    rng = np.random.default_rng(0)
    for _ in range(200):
        bad = bytearray(blob)
        bad[int(rng.integers(len(bad)))] ^= 1 << int(rng.integers(8))
        with pytest.raises(ImageError):
            read_image(bytes(bad))
    for cut in (0, 10, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ImageError):
            read_image(bytes(blob[:cut]))
    with pytest.raises(ImageError, match="recompile for this config"):
        read_image(bytes(blob), AonCimConfig(read_noise_lsb=0.0))


def test_bittrue_close_to_float(tiny_prog):
    """The quantised chip arithmetic must keep the float model's decisions on clean inputs."""
    net = load_tiny()
    x, y = make_patterns(200, seed=11)
    ex = BitTrueExecutor(CFG, tiny_prog)
    q = quantise_input(x, 8)
    chip = np.array([ex.run(q[i], seed=i)[-1].output.reshape(-1).argmax().item() for i in range(len(q))])
    flt = net(x).argmax(1).numpy()
    assert (chip == flt).mean() >= 0.97
    assert (chip == y.numpy()).mean() >= 0.9


def test_bittrue_noise_is_deterministic_and_seeded(tiny_prog):
    ex = BitTrueExecutor(CFG, tiny_prog)
    x = quantise_input(make_patterns(1, seed=5)[0], 8)[0]
    a, b, c = ex.run(x, 1), ex.run(x, 1), ex.run(x, 2)
    assert all(torch.equal(s.adc_codes, t.adc_codes) for s, t in zip(a, b))
    assert any(not torch.equal(s.adc_codes, t.adc_codes) for s, t in zip(a, c))


def test_bittrue_rejects_bad_input(tiny_prog):
    ex = BitTrueExecutor(CFG, tiny_prog)
    with pytest.raises(ValueError, match="input shape"):
        ex.run(np.zeros((4, 4, 2), dtype=np.int64), 0)
    with pytest.raises(ValueError, match="0..255"):
        ex.run(np.full((8, 8, 2), 300), 0)


def test_model_that_does_not_fit_is_rejected():
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    calib, _ = make_patterns(16, seed=1)
    # 512 rows on a 256-row array: two row tiles of 10 columns, beyond the 16 columns left.
    small = AonCimConfig(rows=256, cols=16, n_adcs=16)
    with pytest.raises(CompileError, match=r"layer 3:Linear: needs 20 columns \(2 row tiles of 10 columns "
                                           r"for its 512 rows\) but the array has 16"):
        compile_network(net, small, calib)
    with pytest.raises(CompileError, match="unsupported module"):
        compile_network(nn.Sequential(nn.Conv2d(2, 4, 3), nn.Sigmoid()), CFG, calib)
    with pytest.raises(CompileError, match="act_bits=5"):
        compile_network(net, CFG, calib, act_bits=5)


@pytest.mark.parametrize("field,value,match", [
    ("rows", 1000, "power of two"), ("n_adcs", 1024, "multiple of n_adcs"), ("adc_bits", 1, "adc_bits"),
    ("act_bits_supported", (8, 10), "act_bits_supported"),
    ("load_lanes", 12, "load_lanes=12 must be a positive power of two"), ("load_lanes", 128, "at most 64"),
    ("pp_lanes", 64, "pp_lanes=64 must be at most n_adcs=32, load_lanes=64"),
])
def test_invalid_config_is_one_clear_line(field, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        AonCimConfig(**{field: value})
    assert "\n" not in str(e.value)


def test_config_file_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"rows": 512, "colz": 3}')
    with pytest.raises(ConfigError, match="unknown config field.*colz"):
        AonCimConfig.load(p)
    p.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AonCimConfig.load(p)
    p.write_text('{"rows": 512}')
    assert AonCimConfig.load(p).rows == 512


@pytest.mark.parametrize("cfg_kw,match", [
    ({"max_layers": 2}, r"3 chip layers > max_layers 2; merge layers"),
    ({"param_depth": 16}, r"needs 26 post-processing entries .* > param_depth 16; use fewer channels"),
    ({"act_depth": 64}, r"input of 2x8x8 = 128 words > act_depth 64"),
])
def test_resource_errors_name_the_resource_and_the_fix(cfg_kw, match):
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 10))
    calib, _ = make_patterns(16, seed=1)
    with pytest.raises(CompileError, match=match):
        compile_network(net, AonCimConfig(**cfg_kw), calib)

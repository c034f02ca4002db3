"""Image round trip on random networks: compile -> write_image -> read_image gives the identical
Program, and writing it again gives the identical bytes.

Hypothesis draws small sequential networks (1-3 blocks of Conv2d with kernel 1-5, stride 1-2,
padding 0-2, 1-16 channels, optionally BatchNorm2d, ReLU, MaxPool2d/AvgPool2d; then Flatten and
Linear) on 1-3 channel inputs of 6-16 pixels. A network the compiler refuses (CompileError: it does
not fit the small array, say) is skipped; any other exception fails the test.
"""
import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import CompileError, compile_network
from aoncim.firmware.image import read_image, write_image

# Small enough that some networks take row tiles (fan-in > 256) and some do not fit at all.
CFG = AonCimConfig(rows=256, cols=256, n_adcs=16, act_depth=8192, out_depth=64, param_depth=512, max_layers=16)


@st.composite
def networks(draw):
    """(net, calibration inputs): a random small CNN whose every layer has an output of size >= 1."""
    cin, h0, w0 = draw(st.integers(1, 3)), draw(st.integers(6, 16)), draw(st.integers(6, 16))
    mods, c, h, w = [], cin, h0, w0
    for _ in range(draw(st.integers(1, 3))):
        p = draw(st.integers(0, 2))
        k = draw(st.integers(1, min(5, h + 2 * p, w + 2 * p)))
        s = draw(st.integers(1, 2))
        oc = draw(st.integers(1, 16))
        mods.append(nn.Conv2d(c, oc, k, stride=s, padding=p, bias=draw(st.booleans())))
        h, w, c = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, oc
        if draw(st.booleans()):
            mods.append(nn.BatchNorm2d(oc))
        if draw(st.booleans()):
            mods.append(nn.ReLU())
        pool = draw(st.sampled_from([None, "max", "avg"]))
        if pool and min(h, w) >= 2:
            ps = draw(st.integers(1, 2))
            mods.append((nn.MaxPool2d if pool == "max" else nn.AvgPool2d)(2, stride=ps))
            h, w = (h - 2) // ps + 1, (w - 2) // ps + 1
    mods += [nn.Flatten(), nn.Linear(c * h * w, draw(st.integers(1, 10)))]
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    net = nn.Sequential(*mods)
    for m in net.modules():  # trained-looking batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    calib = torch.rand(16, cin, h0, w0, generator=torch.Generator().manual_seed(seed))
    return net.eval(), calib


def check_roundtrip(net: nn.Module, calib: torch.Tensor, act_bits: int) -> None:
    try:
        prog = compile_network(net, CFG, calib, act_bits=act_bits)
    except CompileError as e:
        event(f"CompileError: {str(e).split(':')[-1][:40]}")
        assume(False)  # does not fit the small array: not an image question
    event(f"{sum(d.tiles(CFG.rows) > 1 for d in prog.layers)} row-tiled, "
          f"{sum(not d.is_mvm for d in prog.layers)} pooling layers")
    blob = write_image(prog, CFG)
    back, cfg = read_image(blob, CFG)
    assert cfg == CFG and back == prog
    assert back.mvms == prog.mvms and [back.used_rect(i) for i in range(len(back.layers))] == \
        [prog.used_rect(i) for i in range(len(prog.layers))]
    assert write_image(back, cfg) == blob
    assert read_image(blob)[0] == prog  # the config comes from the image itself


def _settings(n: int):
    # Derandomized: the same networks every run. filter_too_much: most draws fit, but keep the run
    # going if a shrink wanders into networks that do not.
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("n", [pytest.param(25, id="fast"), pytest.param(1000, id="many", marks=pytest.mark.slow)])
def test_compile_write_read_is_identity(n):
    @_settings(n)
    @given(networks(), st.sampled_from(CFG.act_bits_supported))
    def check(net_calib, act_bits):
        check_roundtrip(*net_calib, act_bits)

    check()


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_depthwise_programs_round_trip(bits):
    """Hand-built programs with depthwise layers (tests/test_cosim_dwconv.py): the descriptors'
    w_base and the DWW section (Program.dw_weights, one i8 per word) read back identically and
    re-write to the same bytes; without depthwise weights there is no DWW section."""
    from test_cosim_dwconv import chain_program

    from aoncim.firmware.image import Section, section_table

    prog = chain_program(bits, CFG)
    prog = dataclasses.replace(prog, alpha=prog.alphas(CFG))   # the image always carries alpha
    blob = write_image(prog, CFG)
    back, cfg = read_image(blob, CFG)
    assert back == prog and write_image(back, cfg) == blob
    assert [d.w_base for d in back.layers] == [d.w_base for d in prog.layers] and back.dw_weights.dtype.kind == "i"
    (length,) = [n for s, _, n in section_table(blob) if s is Section.DWW]
    assert length == CFG.dw_depth
    pool_only = write_image(prog.__class__(prog.layers[2:3], prog.g_plus, prog.g_minus, prog.pp_scale, prog.pp_bias,
                                           prog.names[2:3]), CFG)
    assert Section.DWW not in {s for s, _, _ in section_table(pool_only)}

"""Row tiling (contract step 12): layers with more im2col rows than the array, in the descriptor
checks, the compiler's placement, the golden model, the float analog model and the host's
calibration reads. The RTL is checked against the same golden model in test_cosim_datapath.py."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network, quantise_input
from aoncim.firmware.image import read_image, write_image
from aoncim.model.bittrue import AdcTransfer, BitTrueExecutor, PostProcessing, ReadNoise, im2col
from aoncim.program import ProgramError

# The co-simulation config of test_cosim_datapath.py: 128 rows, so a 3x3 conv over 15+ channels tiles.
CFG = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, max_layers=8)


def tiled_net(seed=0):
    """Conv 270 rows (3 tiles: 128, 128, 14), conv 54 rows (untiled), linear 144 rows (2 tiles)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(30, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 36, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))


@pytest.fixture(scope="module")
def tiled_prog():
    return compile_network(tiled_net(), CFG, torch.rand(64, 30, 4, 4), act_bits=8)


def test_compiler_places_row_tiles_side_by_side(tiled_prog):
    prog, rows = tiled_prog, CFG.rows
    assert [(d.k_rows, d.tiles(rows)) for d in prog.layers] == [(270, 3), (54, 1), (144, 2)]
    # Wherever the packer puts them: tiled layers are array-high (row 0), nothing overlaps.
    from aoncim.firmware.placement import check_disjoint

    assert prog.layers[0].row0 == 0 and prog.layers[2].row0 == 0
    assert check_disjoint([prog.used_rect(i) for i in range(3)], CFG.rows, CFG.cols)
    c0 = prog.layers[0].col0
    assert prog.tile_rects(0) == [(0, 128, 0, c0), (128, 128, 0, c0 + 6), (256, 14, 0, c0 + 12)]
    assert prog.used_rect(0) == (0, 128, c0, 18) and prog.used_rect(2) == (0, 128, prog.layers[2].col0, 10)
    assert prog.mvms == 16 * 3 + 4 + 2
    # The tiles hold the layer's quantised weights in im2col order; nothing else is programmed.
    net = tiled_net()
    w = net[0].weight.detach().double().numpy()          # O, C, kh, kw
    w = w.transpose(2, 3, 1, 0).reshape(270, 6)           # (ky, kx, c) rows
    dg = prog.layer_dg(0)
    assert np.array_equal(np.sign(dg), np.sign(np.rint(w / np.abs(w).max(0) * CFG.gcode_max)))
    spare = (slice(14, None), slice(c0 + 12, c0 + 18))  # the last tile's unused rows
    assert not prog.g_plus[spare].any() and not prog.g_minus[spare].any()
    # The image stores each layer's bounding box and reads the tiled program back unchanged.
    assert read_image(write_image(prog, CFG), CFG)[0] == prog


def test_descriptor_checks_for_tiled_layers(tiled_prog):
    d = tiled_prog.layers[0]
    d.check(CFG)
    with pytest.raises(ProgramError, match="must start at row 0"):
        dataclasses.replace(d, row0=1).check(CFG)
    with pytest.raises(ProgramError, match=r"3 row tiles of 6 columns"):
        dataclasses.replace(d, col0=CFG.cols - 17).check(CFG)
    dataclasses.replace(d, col0=CFG.cols - 18).check(CFG)  # exactly the last 18 columns


def test_tiled_layer_is_the_sum_of_its_tiles_codes(tiled_prog):
    """Every MVM layer's post-processing input, recomputed from the contract one position and one
    tile at a time: tile t's rows of the im2col vector on its own columns, converted with its own
    read-noise counter mvm0 + p*T + t (mvm0 = the MVMs of the layers before), codes summed."""
    prog = tiled_prog
    ex = BitTrueExecutor(CFG, prog)
    x = quantise_input(torch.rand(2, 30, 4, 4), 8)
    seeds = [3, 0xDEADBEEF]
    traces = ex.run_batch(x, seeds)
    adc, pp, R = AdcTransfer(CFG), PostProcessing(CFG), CFG.rows
    g = prog.g_plus - prog.g_minus
    mvm0, inp = 0, torch.as_tensor(x)
    for i, d in enumerate(prog.layers):
        T = -(-d.k_rows // R)
        cols = im2col(inp, d).numpy()  # N, P, k_rows
        want = np.zeros((len(seeds), d.positions, d.out_c), dtype=np.int64)
        for n, s in enumerate(seeds):
            for p in range(d.positions):
                for t in range(T):
                    rows = np.arange(t * R, min(d.k_rows, (t + 1) * R))
                    phys = d.col0 + t * d.out_c + np.arange(d.out_c)
                    col_sum = cols[n, p, rows] @ g[rows - t * R][:, phys]
                    noise = ReadNoise(CFG, s).raw(np.full(d.out_c, mvm0 + p * T + t), phys)
                    want[n, p] += adc(torch.as_tensor(col_sum), torch.as_tensor(noise), d.in_bits).numpy()
        assert np.array_equal(traces[i].adc_codes.numpy(), want), f"layer {i}"
        if T > 1:
            assert traces[i].col_sums.shape == (len(seeds), d.positions, T, d.out_c)
        sl = slice(d.param_base, d.param_base + d.out_c)
        y = pp(torch.as_tensor(want), torch.as_tensor(prog.pp_scale[sl]), torch.as_tensor(prog.pp_bias[sl]), d)
        assert torch.equal(traces[i].output.reshape(y.shape), y)
        mvm0 += d.positions * T
        inp = traces[i].output
    assert mvm0 == prog.mvms


def test_tiled_codes_differ_from_one_conversion(tiled_prog):
    """The tiles are really converted separately: with large inputs some tile clips, so the sum of
    tile codes is not the code of the whole column sum (the contract is not a no-op)."""
    d = tiled_prog.layers[0]
    ex = BitTrueExecutor(dataclasses.replace(CFG, read_noise_lsb=0.0), tiled_prog)
    x = np.full((1, 4, 4, 30), 255)
    tr = ex.run_batch(x, [0])[0]
    whole = AdcTransfer(CFG)(tr.col_sums.sum(2), torch.zeros(1, d.positions, d.out_c, dtype=torch.int64), 8)
    assert not torch.equal(whole, tr.adc_codes)
    assert tr.adc_codes.abs().max() > CFG.adc_max  # a sum of tile codes can exceed one ADC's range


@pytest.mark.parametrize("bits", [8, 4])
def test_float_analog_model_tiles_like_the_chip(bits):
    """model/analog.py converts row tiles separately (tile t = im2col rows t*rows.., (ky, kx, c)
    order); with weights on the conductance grid, inputs on the DAC grid and no noise its output
    is the bit-true sum of tile codes, clipping included."""
    from aoncim.model.analog import AnalogConv2d, set_analog_mode

    cfg = dataclasses.replace(CFG, read_noise_lsb=0.0, out_depth=128)  # the conv's 96 outputs are the result
    gen = torch.Generator().manual_seed(bits)
    g = torch.randint(-cfg.gcode_max, cfg.gcode_max + 1, (6, 30, 3, 3), generator=gen)
    g[:, 0, 0, 0] = cfg.gcode_max  # every column spans the full range: w_max = 1 per column and layer
    levels = (1 << bits) - 1
    codes = torch.randint(0, levels + 1, (3, 30, 4, 4), generator=gen)
    g[1], codes[0] = cfg.gcode_max, levels  # full input on a full column: every tile of it clips
    conv = nn.Conv2d(30, 6, 3, padding=1, bias=False).double()
    conv.weight.data = g.double() / cfg.gcode_max
    prog = compile_network(nn.Sequential(conv), cfg, codes.double() / levels, act_bits=bits)
    assert prog.layers[0].tiles(cfg.rows) == 3
    tr = BitTrueExecutor(cfg, prog).run_batch(quantise_input(codes.double() / levels, bits), [0, 1, 2])[0]

    layer = AnalogConv2d.from_float(conv, cfg=cfg, in_bits=bits)
    layer.input_range.data.fill_(1.0)
    set_analog_mode(layer, "hwa", noise=False)
    with torch.no_grad():
        _, x_scale = layer.dac(codes.double() / levels)
        out = layer(codes.double() / levels)
    got = (out / (x_scale * cfg.adc_bound / cfg.adc_max)).permute(0, 2, 3, 1).reshape(3, 16, 6)
    assert torch.allclose(got, got.round(), atol=1e-6)
    # Exact halves round differently (float round-half-even vs the ADC's round-half-up): skip them.
    sums = tr.col_sums * (cfg.adc_gain_mult << (cfg.dac_bits - bits))
    tie = ((sums % (1 << cfg.adc_gain_shift)) == (1 << (cfg.adc_gain_shift - 1))).any(2)
    assert torch.equal(got.round().long()[~tie], tr.adc_codes[~tie])
    assert (tr.col_sums.abs() * (cfg.adc_gain_mult << (cfg.dac_bits - bits)) >> cfg.adc_gain_shift).max() \
        > cfg.adc_max, "the test must exercise a clipping tile"


def test_tiled_network_tracks_the_float_network():
    """Compiled with row tiles and read noise, the chip's logits follow the float network's."""
    net = tiled_net(1)
    x = torch.rand(96, 30, 4, 4)
    prog = compile_network(net, CFG, x[:48], act_bits=8)
    assert [d.tiles(CFG.rows) for d in prog.layers] == [3, 1, 2]
    chip = BitTrueExecutor(CFG, prog).run_batch(quantise_input(x, 8), np.arange(96))[-1].output
    chip = chip.reshape(96, -1).double().numpy()
    with torch.no_grad():
        ref = net(x).double().numpy()
    assert np.corrcoef(chip.ravel(), ref.ravel())[0, 1] > 0.97
    assert (chip.argmax(1) == ref.argmax(1)).mean() >= 0.85


def test_calibration_layer_reads_what_the_golden_routine_reads(tiled_prog):
    """The driver's calibration layer (firmware/driver.py), run on the golden model from
    MVM_BASE = base + k0*T, returns exactly the codes model/snapshot.py's measurement gives for
    reads k0.., on tiled and untiled layers: what makes the chip's compensation the model's."""
    from aoncim.firmware.driver import AonCimDriver
    from aoncim.model.snapshot import CALIB_MVM_BASE, CALIB_READS, CalibRead, read_codes

    drv = AonCimDriver(None, CFG)
    prog = tiled_prog
    rng = np.random.default_rng(0)
    for i in prog.mvm_layers:
        d = prog.layers[i]
        read = CalibRead(i, rng.integers(0, 256, d.k_rows), 77, CALIB_MVM_BASE + 16)
        want = read_codes(prog, CFG, read)
        reads, chunks = drv.calibration_plan(d)
        assert chunks == [(0, d.out_c)]
        got = np.zeros_like(want)
        for k0 in range(0, CALIB_READS, reads):
            n = min(reads, CALIB_READS - k0)
            cal = drv.calibration_layer(d, n, 0, d.out_c)
            one = dataclasses.replace(prog, layers=[cal], alpha=None, calib_codes=None,
                                      pp_scale=np.ones(CFG.param_depth, dtype=np.int64),
                                      pp_bias=np.zeros(CFG.param_depth, dtype=np.int64))
            x = np.tile(read.x.reshape(d.k_h, d.k_w, d.in_c), (1, n, 1))
            out = BitTrueExecutor(CFG, one).run(x, read.seed, mvm_base=read.base + k0 * d.tiles(CFG.rows))
            got[k0 : k0 + n] = out[0].output.reshape(n, d.out_c).numpy()
        assert np.array_equal(got, want), f"layer {i}"

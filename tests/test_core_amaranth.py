"""The core (everything behind the AXI adapter) in Amaranth's simulator, driven by the host
driver, against the golden model: a small config and a net with stride 2, several ADC slots and
unaligned column windows."""
import numpy as np
import pytest
import torch
from amaranth.sim import Simulator
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.driver import AonCimDriver
from aoncim.hw.top import AonCimCore
from aoncim.regmap import ST_ERROR, ErrorCode, Reg, Region
from aoncim.sim.amaranth_bus import AmaranthHostBus
from aoncim.sim.runner import golden_outputs
from aoncim.sim.scoreboard import Scoreboard
from aoncim.sim.jobs import SMALL_CFG

SMALL = SMALL_CFG


def small_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))


def run_core(cfg, prog, inputs, seeds):
    dut = AonCimCore(cfg)
    sb = Scoreboard(len(prog.layers))
    expected = golden_outputs(cfg, prog, inputs, seeds)
    counters = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def tb(ctx):
        drv = AonCimDriver(AmaranthHostBus(ctx, dut.bus, dut.irq), cfg)
        await drv.check_identity()
        await drv.load_program(prog)
        for i, (x, s) in enumerate(zip(inputs, seeds)):
            sb.begin()
            await drv.write_input(prog, x)
            counters.append(await drv.run(prog, s, on_layer=lambda layer, got, i=i: sb.compare(i, layer, expected[i][layer], got)))
            sb.end()

    sim.add_testbench(tb)
    sim.run()
    return sb, counters


@pytest.mark.parametrize("act_bits", [4, 6])
def test_core_bit_exact_small_net(act_bits):
    rng = np.random.default_rng(act_bits)
    calib = torch.rand(32, 2, 4, 4)
    prog = compile_network(small_net(act_bits), SMALL, calib, act_bits=act_bits)
    inputs = [rng.integers(0, 2**act_bits, (4, 4, 2)) for _ in range(2)]
    sb, counters = run_core(SMALL, prog, inputs, seeds=[7, 8])
    assert sb.mismatches == [], "\n".join(map(str, sb.mismatches))
    assert all(sb.passed) and sb.compared == [2 * 4 * 4 * 12, 2 * 2 * 2 * 6, 2 * 5]
    assert counters[0]["mvms"] == 16 + 4 + 1


def test_alpha_registers_reset_write_and_read_back():
    """One alpha register per layer: 1.0 out of reset, written and read back by the driver, which
    refuses values the registers cannot hold."""
    dut = AonCimCore(SMALL)
    seen = {}

    async def tb(ctx):
        drv = AonCimDriver(AmaranthHostBus(ctx, dut.bus, dut.irq), SMALL)
        seen["reset"] = await drv.read_alpha(SMALL.max_layers)
        await drv.write_alpha([5, (1 << SMALL.alpha_bits) - 1], first_layer=2)
        seen["written"] = await drv.read_alpha(SMALL.max_layers)
        seen["num_layers"] = await drv.reg_read(Reg.NUM_LAYERS)  # the scalar registers are not aliased
        for bad in ([1 << SMALL.alpha_bits], [-1]):
            with pytest.raises(ValueError, match="alpha_bits"):
                await drv.write_alpha(bad)
        with pytest.raises(ValueError, match="alpha registers"):
            await drv.write_alpha([SMALL.alpha_one] * (SMALL.max_layers + 1))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    one = SMALL.alpha_one
    assert seen["reset"] == [one] * SMALL.max_layers
    assert seen["written"] == [one, one, 5, (1 << SMALL.alpha_bits) - 1]
    assert seen["num_layers"] == 0


def test_error_message_names_layer_and_problem():
    prog = compile_network(small_net(0), SMALL, torch.rand(8, 2, 4, 4), act_bits=4)
    status = ST_ERROR | (1 << 8) | (ErrorCode.ARRAY_COLS << 16)
    msg = AonCimDriver.error_message(status, prog)
    assert msg == (f"chip stopped with error 8 in layer 1 ({prog.layer_name(1)}): ARRAY_COLS: "
                   "columns col0..col0+tiles*out_c-1 outside the array (tiles = ceil(k_rows / rows))")
    assert "at start: NO_LAYERS" in AonCimDriver.error_message(ST_ERROR | (ErrorCode.NO_LAYERS << 16))
    assert "unknown error code 99" in AonCimDriver.error_message(ST_ERROR | (99 << 16))


def test_mvm_base_starts_the_read_noise_counter():
    """MVM_BASE (RW, reset 0) is the read-noise MVM counter of a run's first MVM, here one that
    wraps past 2**32 within the run; MVMS still counts the run's MVMs from 0."""
    from aoncim.model.bittrue import BitTrueExecutor

    prog = compile_network(small_net(1), SMALL, torch.rand(16, 2, 4, 4), act_bits=6)
    x = np.random.default_rng(1).integers(0, 64, (4, 4, 2))
    base = 0xFFFFFFF0  # 16 + 4 + 1 MVMs: the counter wraps in the second layer
    ex = BitTrueExecutor(SMALL, prog)
    want = [t.output.numpy() for t in ex.run(x, 9, mvm_base=base)]
    assert not np.array_equal(want[0], ex.run(x, 9)[0].output.numpy())  # the base matters
    dut = AonCimCore(SMALL)
    seen = {"got": []}

    async def tb(ctx):
        drv = AonCimDriver(AmaranthHostBus(ctx, dut.bus, dut.irq), SMALL)
        seen["reset"] = await drv.reg_read(Reg.MVM_BASE)
        await drv.load_program(prog)
        await drv.write_input(prog, x)
        seen["counters"] = await drv.run(prog, 9, on_layer=lambda layer, got: seen["got"].append(got), mvm_base=base)
        seen["after"] = await drv.reg_read(Reg.MVM_BASE)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen["reset"] == 0 and seen["after"] == base
    assert all(np.array_equal(g, w) for g, w in zip(seen["got"], want, strict=True))
    assert seen["counters"]["mvms"] == prog.mvms == 16 + 4 + 1


@pytest.mark.parametrize("load_lanes", [16, 2])
def test_packed_activation_reads(load_lanes):
    """ACT_PACK: word i of an activation window holds codes 4i..4i+3, byte k = code 4i+k, on both
    banks; the driver's read_act gives the same codes packed or not, at any alignment. A config
    with fewer than four activation SRAMs a bank cannot pack: the bit stays 0 and reads are one
    code a word."""
    cfg = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=256, out_depth=64, param_depth=128, max_layers=4,
                       load_lanes=load_lanes, pp_lanes=2)
    dut = AonCimCore(cfg)
    rng = np.random.default_rng(load_lanes)
    codes = [rng.integers(0, 256, cfg.act_depth) for _ in range(2)]
    seen = {}

    async def tb(ctx):
        drv = AonCimDriver(AmaranthHostBus(ctx, dut.bus, dut.irq), cfg)
        for bank in (0, 1):
            await drv.write_input_words(bank, 0, codes[bank])
        await drv.reg_write(Reg.ACT_PACK, 1)
        seen["pack_bit"] = await drv.reg_read(Reg.ACT_PACK)
        seen["word"] = await drv.bus.read_words(drv.amap.base(Region.ACT1) + 4 * 3, 1)
        await drv.reg_write(Reg.ACT_PACK, 0)
        seen["reads"] = [(bank, base, n, await drv.read_act(bank, base, n))
                         for bank, base, n in ((0, 0, 256), (1, 5, 37), (0, 250, 6), (1, 3, 9))]
        seen["after"] = await drv.reg_read(Reg.ACT_PACK)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    if load_lanes >= 4:
        assert seen["pack_bit"] == 1
        assert seen["word"] == [int(sum(int(codes[1][12 + k]) << (8 * k) for k in range(4)))]
    else:
        assert seen["pack_bit"] == 0 and seen["word"] == [int(codes[1][3])]
    for bank, base, n, got in seen["reads"]:
        assert got.tolist() == codes[bank][base:base + n].tolist(), (bank, base, n)
    assert seen["after"] == 0


def test_core_runs_depthwise_layers_bit_exact():
    """Depthwise layers (Op.DWCONV) through the whole core: the driver writes the program's DWW
    weights through the host window, the sequencer reads each group's 16 weights (18 channels: a
    group of 16 and one of 2) with the window element's codes, pads with the layer's code, and the
    pooling lanes multiply-accumulate; every layer equals the golden model."""
    from test_cosim_dwconv import fit_params, layer, program

    from aoncim.program import Op

    prog = program(SMALL, [
        layer(Op.DWCONV, in_h=3, in_w=4, in_c=18, k_h=3, k_w=3, pad_h=1, pad_w=1, pad_code=7, out_h=3, out_w=4,
              out_c=18, w_base=3000),
        layer(Op.DWCONV, in_h=3, in_w=4, in_c=18, k_h=2, k_w=2, stride=2, pad_w=1, pad_code=100, out_h=1, out_w=3,
              out_c=18, in_bank=1, out_bank=0, w_base=SMALL.dw_depth - 72),
        layer(Op.MVM, in_h=1, in_w=3, in_c=18, k_h=1, k_w=3, out_h=1, out_w=1, out_c=5, to_out=1, col0=3),
    ], seed=5)
    rng = np.random.default_rng(5)
    inputs = [rng.integers(0, 256, (3, 4, 18)) for _ in range(2)]
    prog = fit_params(SMALL, prog, inputs, [3, 4])
    sb, counters = run_core(SMALL, prog, inputs, seeds=[3, 4])
    assert sb.mismatches == [], "\n".join(map(str, sb.mismatches))
    assert all(sb.passed) and sb.compared == [2 * 3 * 4 * 18, 2 * 3 * 18, 2 * 5]
    assert counters[0]["mvms"] == 1

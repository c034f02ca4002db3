"""Stage P (hw/tile_accumulator.py `TileAccumulator`) on its own, in the Amaranth simulator, against
a Python model of the stage: for every output position, each channel's ADC codes summed over the
layer's row tiles (numpy, contract step 12; the extremes: adc_max codes over the most tiles a layer
can have), issued once after the last tile, `pp_lanes` channels a cycle in channel order with the
lanes past out_c masked, the parameter address a cycle ahead; ceil(out_c / pp_lanes) cycles a beat.
The code buffer is a stub that holds the MVM's codes in its half, as stage A leaves them.
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.tile_accumulator import TileAccumulator
from aoncim.program import DESCRIPTOR_FIELDS

from stage_bench import beat, stage_config

FIELD_BITS = dict(DESCRIPTOR_FIELDS)

CONFIGS = {
    "lanes1": stage_config(load_lanes=1, pp_lanes=1),
    "lanes4": stage_config(load_lanes=4, pp_lanes=4),
    "lanes8-one-slot": stage_config(cols=32, n_adcs=32, load_lanes=8, pp_lanes=8),
    "default": AonCimConfig(),
}


def layers(cfg: AonCimConfig, rng) -> list[dict]:
    """Random layers (channels, row tiles, column, positions, parameter base) and the extremes."""
    out = []
    for _ in range(6):
        tiles = int(rng.integers(1, 5))
        out_c = int(rng.integers(1, cfg.cols // max(2, tiles) + 1))
        out.append(dict(out_c=out_c, tiles=tiles, col0=int(rng.integers(0, cfg.cols - tiles * out_c + 1)),
                        positions=int(rng.integers(1, 4)), extreme=None))
    # The most tiles a layer can have (one channel a tile; as many as the array's columns and the
    # descriptor's k_rows allow), all codes at +-adc_max.
    most = min(cfg.cols, -(-(2**FIELD_BITS["k_rows"] - 1) // cfg.rows))
    out.append(dict(out_c=1, tiles=most, col0=0, positions=2, extreme=+1))
    out.append(dict(out_c=1, tiles=most, col0=cfg.cols - most, positions=1, extreme=-1))
    # As many channels as a tiled layer can have; channels not a multiple of pp_lanes.
    out.append(dict(out_c=cfg.cols // 2, tiles=2, col0=0, positions=2, extreme=+1))
    out.append(dict(out_c=cfg.cols // 2 - 1, tiles=2, col0=1, positions=2, extreme=None))
    for d in out:
        d["param_base"] = int(rng.integers(0, cfg.param_depth - d["out_c"] + 1))
    return out


def model_issue(cfg: AonCimConfig, d: dict, codes: np.ndarray) -> list[tuple]:
    """(lane mask, address of lane 0, lane codes, parameter address) per issue, in order;
    codes[p, t, ch] = position p's code of channel ch in tile t."""
    q = cfg.pp_lanes
    sums = codes.sum(axis=1)                                      # over the row tiles
    out = []
    for p in range(d["positions"]):
        for pc in range(0, d["out_c"], q):
            lanes = [pc + i for i in range(q) if pc + i < d["out_c"]]
            out.append((sum(1 << i for i in range(len(lanes))), 100 + p * d["out_c"] + pc,
                        [int(sums[p, ch]) for ch in lanes], d["param_base"] + pc))
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_tile_accumulator_matches_model(name):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(len(name))
    q, n_adcs, n_slots = cfg.pp_lanes, cfg.n_adcs, cfg.cols // cfg.n_adcs
    dut = TileAccumulator(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked = {"layers": 0, "issues": 0}

    async def tb(ctx):
        half = [[0] * cfg.cols, [0] * cfg.cols]      # the code buffer stub: a code per column and half
        got, param = [], [0]

        async def step():
            # The buffer answers a read a cycle after its address; the parameter address leads the
            # issue by a cycle.
            parity, slot = ctx.get(dut.code_rd.parity), ctx.get(dut.code_rd.slot)
            param[0] = ctx.get(dut.issue.param_addr)
            await ctx.tick()
            for i in range(2 * n_adcs):
                ctx.set(dut.code_rd.data[i], half[parity][((slot + i // n_adcs) % n_slots) * n_adcs + i % n_adcs])
            if valid := ctx.get(dut.issue.valid):
                got.append((valid, ctx.get(dut.issue.addr), [ctx.get(dut.issue.code[i]) for i in range(q)
                                                             if valid >> i & 1], param[0]))

        for d in layers(cfg, rng):
            if d["extreme"]:
                codes = np.full((d["positions"], d["tiles"], d["out_c"]), d["extreme"] * cfg.adc_max)
            else:
                codes = rng.integers(-cfg.adc_max, cfg.adc_max + 1, size=(d["positions"], d["tiles"], d["out_c"]))
            ctx.set(dut.desc.out_c, d["out_c"])
            k_rows = (d["tiles"] - 1) * cfg.rows + int(rng.integers(1, cfg.rows + 1))
            ctx.set(dut.desc.k_rows, min(k_rows, 2**FIELD_BITS["k_rows"] - 1))
            ctx.set(dut.desc.param_base, d["param_base"])
            got.clear()
            mvms = [(p, t) for p in range(d["positions"]) for t in range(d["tiles"])]
            for k, mvm in enumerate(mvms + [None]):       # an empty beat after the layer's MVMs
                if mvm is not None:
                    p, t = mvm
                    tcol0 = d["col0"] + t * d["out_c"]
                    # Stage A has converted the MVM into its half; the other columns are noise.
                    half[k % 2] = [int(v) for v in rng.integers(-cfg.adc_max, cfg.adc_max + 1, size=cfg.cols)]
                    half[k % 2][tcol0:tcol0 + d["out_c"]] = [int(v) for v in codes[p, t]]
                    prev = dict(valid=1, tcol0=tcol0, parity=k % 2, tile=t, out_base=100 + p * d["out_c"])
                else:
                    prev = dict(valid=0, tcol0=0, parity=k % 2, tile=0, out_base=0)
                cycles = await beat(ctx, dut, prev, step)
                # ceil(out_c / pp_lanes) cycles a beat; done at once without an MVM.
                assert cycles == (-(-d["out_c"] // q) if mvm else 1)
                for _ in range(int(rng.integers(0, 3))):    # another stage's part of the beat is longer
                    await step()
            for _ in range(3):                              # the last issues leave the pipeline
                await step()
            assert got == model_issue(cfg, d, codes), d
            checked["layers"] += 1
            checked["issues"] += len(got)

    sim.add_testbench(tb)
    sim.run()
    assert checked["layers"] == 10 and checked["issues"] > 20

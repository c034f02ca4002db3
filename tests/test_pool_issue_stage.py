"""Stage S (hw/pool_issue.py `PoolResultIssue`) on its own, in the Amaranth simulator, against a
Python model of the stage: per pooling group, one cycle for the results to land, then `pp_lanes`
channels a cycle from the group's `PoolBank` half, in channel order, the lanes past the group's
channels masked, to the group's output addresses, the parameter address a cycle ahead
(1 + ceil(channels / pp_lanes) cycles a beat, as `perf.cycles` counts stage S). The `PoolBank` is a
stub holding each group's results in its half.
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.pool_issue import PoolResultIssue

from stage_bench import beat, stage_config

CONFIGS = {
    "lanes1": stage_config(load_lanes=1, pp_lanes=1),
    "lanes8-pp4": stage_config(load_lanes=8, pp_lanes=4),
    "default": AonCimConfig(),
}


def model_issue(cfg: AonCimConfig, param_base: int, groups: list[dict]) -> list[tuple]:
    """(lane mask, address of lane 0, lane codes, parameter address) per issue, in order."""
    q = cfg.pp_lanes
    out = []
    for g in groups:
        for i in range(0, g["n"], q):
            lanes = [i + j for j in range(q) if i + j < g["n"]]
            out.append((sum(1 << j for j in range(len(lanes))), g["out_base"] + g["c0"] + i,
                        [g["results"][ch] for ch in lanes], param_base + g["c0"] + i))
    return out


@pytest.mark.parametrize("name", CONFIGS)
def test_pool_issue_matches_model(name):
    cfg = CONFIGS[name]
    W, q = cfg.load_lanes, cfg.pp_lanes
    rng = np.random.default_rng(len(name))
    dut = PoolResultIssue(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked = {"layers": 0, "issues": 0}

    async def tb(ctx):
        half = [[0] * W, [0] * W]                  # the PoolBank stub's two result halves
        got, param = [], [0]

        def results():
            for j, v in enumerate(half[ctx.get(dut.rd_half)]):
                ctx.set(dut.result[j], v)

        async def step():
            param[0] = ctx.get(dut.issue.param_addr)
            await ctx.tick()
            results()
            if valid := ctx.get(dut.issue.valid):
                got.append((valid, ctx.get(dut.issue.addr), [ctx.get(dut.issue.code[i]) for i in range(q)
                                                             if valid >> i & 1], param[0]))

        for _ in range(5):
            in_c = int(rng.integers(1, 3 * W + 1))
            positions = int(rng.integers(1, 4))
            param_base = int(rng.integers(0, cfg.param_depth - in_c + 1))
            ctx.set(dut.desc.param_base, param_base)
            groups = [dict(c0=c0, n=min(W, in_c - c0), out_base=int(rng.integers(0, cfg.act_depth - in_c + 1)),
                           results=[int(v) for v in rng.integers(0, 2**cfg.pool_sum_bits, size=W)])
                      for _ in range(positions) for c0 in range(0, in_c, W)]
            got.clear()
            for k, g in enumerate(groups + [None]):      # an empty beat after the layer's groups
                if g is not None:
                    half[k % 2] = g["results"]            # stage R's results of the group
                    prev = dict(valid=1, c0=g["c0"], n=g["n"], out_base=g["out_base"], parity=k % 2)
                else:
                    prev = dict(valid=0, c0=0, n=0, out_base=0, parity=k % 2)
                cycles = await beat(ctx, dut, prev, step)
                # 1 + ceil(n / pp_lanes) cycles a beat; done at once without a group.
                assert cycles == (1 + -(-g["n"] // q) if g else 1)
                for _ in range(int(rng.integers(0, 3))):    # stage R's part of the beat is longer
                    await step()
            for _ in range(2):
                await step()
            assert got == model_issue(cfg, param_base, groups)
            checked["layers"] += 1
            checked["issues"] += len(got)

    sim.add_testbench(tb)
    sim.run()
    assert checked["layers"] == 5 and checked["issues"] > 10

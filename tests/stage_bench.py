"""Shared bench of the sequencer-stage tests: the small chip they vary, and one beat as the
sequencer's beat control makes it (LUNA-style: one place, not the same lines in every stage test)."""
from __future__ import annotations

from aoncim.config import AonCimConfig

# A small chip: memories and array small enough for the simulator, row tiles on small layers.
SMALL = dict(rows=16, cols=64, n_adcs=8, act_depth=512, out_depth=64, param_depth=128, load_lanes=16, pp_lanes=4)


def stage_config(**fields) -> AonCimConfig:
    """`SMALL` with `fields` changed (lanes, ADCs, ...)."""
    return AonCimConfig(**{**SMALL, **fields})


async def beat(ctx, dut, prev: dict, step) -> int:
    """One beat of a stage: `prev` offered (the previous stage's item), `next` for one cycle (the
    beat's end, where the stage takes it over), then `step` until the stage is `done`. Returns the
    cycles from the beat's end to `done`, both included."""
    for f, v in prev.items():
        ctx.set(getattr(dut.prev, f), v)
    ctx.set(dut.next, 1)
    await step()
    ctx.set(dut.next, 0)
    cycles = 1
    while not ctx.get(dut.done):
        await step()
        cycles += 1
    return cycles

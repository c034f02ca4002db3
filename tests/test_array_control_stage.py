"""Stage A (hw/array_control.py `ArrayControl`) on its own, in the Amaranth simulator, against a
Python model of the stage: per MVM the PWM window of 2**in_bits cycles, then one conversion per ADC
slot of the tile's columns, lowest first, on the MVM's bank (cycles: `perf.cycles.array_cycles`);
the codes a stub array returns land in the MVM's half of the code buffer, where stage P reads them.
"""
import numpy as np
import pytest
from amaranth.sim import Simulator

from aoncim.config import AonCimConfig
from aoncim.hw.array_control import ArrayControl

CONFIGS = {
    "slots8": AonCimConfig(rows=16, cols=64, n_adcs=8, load_lanes=4, pp_lanes=4, act_depth=512, out_depth=64,
                           param_depth=128),
    "slots1": AonCimConfig(rows=16, cols=16, n_adcs=16, load_lanes=4, pp_lanes=4, act_depth=512, out_depth=64,
                           param_depth=128),
    "slots16-adc4": AonCimConfig(rows=16, cols=64, n_adcs=4, load_lanes=2, pp_lanes=2, act_depth=512, out_depth=64,
                                 param_depth=128, act_bits_supported=(2, 4, 8)),
    "default": AonCimConfig(),
}


def model_mvm(cfg: AonCimConfig, in_bits: int, tcol0: int, out_c: int, bank: int) -> tuple[int, list[tuple]]:
    """(cycles of the stage's beat, [(cycle, slot, bank) of each conversion]), cycle 1 = the first
    of the beat: the PWM window is cycles 1..2**in_bits."""
    slots = range(tcol0 // cfg.n_adcs, (tcol0 + out_c - 1) // cfg.n_adcs + 1)
    pwm = 2**in_bits
    return pwm + len(slots), [(pwm + 1 + i, s, bank) for i, s in enumerate(slots)]


def random_codes(cfg, rng) -> list[int]:
    return [int(v) for v in rng.integers(-cfg.adc_max, cfg.adc_max + 1, size=cfg.n_adcs)]


@pytest.mark.parametrize("name", CONFIGS)
def test_array_control_matches_model(name):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(len(name))
    n_slots = cfg.cols // cfg.n_adcs
    dut = ArrayControl(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    checked = {"mvms": 0, "reads": 0, "idle": 0}

    async def tb(ctx):
        buf = {}                                    # (half, slot) -> codes, as the buffer should hold them
        pending = []                                # codes the stub array answers with next cycle

        async def tick():
            # The stub array answers a conversion a cycle later; other cycles' codes are noise.
            await ctx.tick()
            for i, v in enumerate(pending.pop() if pending else random_codes(cfg, rng)):
                ctx.set(dut.codes[i], v)

        for k in range(40):
            in_bits = int(rng.choice(cfg.act_bits_supported))
            out_c = int(rng.integers(1, cfg.cols + 1)) if rng.random() < 0.8 else cfg.cols
            tcol0 = int(rng.integers(0, cfg.cols - out_c + 1))
            valid = int(rng.random() < 0.9)
            prev = dict(valid=valid, tcol0=tcol0, parity=k % 2, tile=int(rng.integers(0, 4)),
                        out_base=int(rng.integers(0, 64)))
            noise_mvm = int(rng.integers(0, 2**32))
            answer = {s: random_codes(cfg, rng) for s in range(n_slots)}   # what the array converts to
            ctx.set(dut.desc.in_bits, in_bits)
            ctx.set(dut.desc.out_c, out_c)
            for f, v in prev.items():
                ctx.set(getattr(dut.prev, f), v)
            # The beat's end: stage A takes the MVM stage L hands over.
            ctx.set(dut.next, 1)
            await tick()
            ctx.set(dut.next, 0)
            for f in prev:                          # stage L's next MVM is not stage A's
                ctx.set(getattr(dut.prev, f), 0)
            ctx.set(dut.noise_mvm, noise_mvm)
            assert {f: ctx.get(getattr(dut.mvm, f)) for f in prev} == prev
            want_cycles, want_convs = model_mvm(cfg, in_bits, tcol0, out_c, k % 2) if valid else (1, [])
            convs, cycle = [], 0
            while True:
                cycle += 1
                if ctx.get(dut.conv.stb):
                    slot, bank = ctx.get(dut.conv.slot), ctx.get(dut.conv.bank)
                    assert ctx.get(dut.conv.bits) == in_bits and ctx.get(dut.conv.mvm) == noise_mvm
                    convs.append((cycle, slot, bank))
                    pending.append(answer[slot])
                    buf[(bank, slot)] = answer[slot]
                if ctx.get(dut.done):
                    break
                assert cycle < 2**cfg.dac_bits + n_slots + 2
                await tick()
            # No MVM: done at once, no conversion.
            assert (cycle, convs) == (want_cycles, want_convs)
            checked["mvms"] += valid
            if rng.random() < 0.5:
                continue                            # the beat ends with the stage's last cycle
            # The beat goes on (another stage is slower): stage A idles, and stage P may read.
            await tick()
            for _ in range(int(rng.integers(1, 4))):
                assert not ctx.get(dut.conv.stb) and ctx.get(dut.done)
                checked["idle"] += 1
                if not buf:
                    await tick()
                    continue
                (half, slot), want = list(buf.items())[int(rng.integers(len(buf)))]
                ctx.set(dut.code_rd.parity, half)
                ctx.set(dut.code_rd.slot, slot)
                await tick()
                got = [ctx.get(dut.code_rd.data[i]) for i in range(2 * cfg.n_adcs)]
                assert got[:cfg.n_adcs] == want
                nxt = buf.get((half, (slot + 1) % n_slots))
                if nxt is not None:
                    assert got[cfg.n_adcs:] == nxt     # the next slot, wrapping within the half
                checked["reads"] += 1

    sim.add_testbench(tb)
    sim.run()
    assert checked["mvms"] > 20 and checked["reads"] > 10 and checked["idle"] > 10

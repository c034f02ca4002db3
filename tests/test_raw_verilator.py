"""The raw Verilator harness (sim/raw_verilator.py, sim/raw/harness.cpp): the host driver's bus
operations recorded in Python, replayed pin-level by a C++ harness with no Python in the loop, the
chip's read data fed back through the driver and scored against the golden model.

Small config of tests/test_cosim.py (one Verilog, one harness build, cached under sim_build/); the
net has stride 2, several ADC slots and unaligned column windows. ~35 s for the first build, a few
seconds cached.
"""
import dataclasses

import pytest

from aoncim.firmware.driver import AonCimDriver
from aoncim.program import DESC_WORDS
from aoncim.sim.raw_verilator import ToolMissing, check_tools, host_session, record, run_raw
from aoncim.sim.recording_bus import ReplayDiverged, ReplayHostBus, run_sync
from aoncim.sim.jobs import small_conv_job
from aoncim.sim.runner import golden_outputs
from aoncim.sim.jobs import SMALL_CFG

SMALL = SMALL_CFG


def small_job(act_bits=8, n=3, seed=0):
    return small_conv_job(SMALL, act_bits, n, seed)


def test_replay_refuses_a_driver_that_departs_from_the_recording():
    """Pure Python: the replay bus answers with the recorded model's reads; another input makes the
    driver write other words, which is a divergence, not a silent mis-replay."""
    prog, inputs, seeds = small_job(n=1)
    rec = record(SMALL, prog, inputs, seeds, step=True)
    kinds = {op[0] for op in rec.ops}
    assert kinds == {"W", "R", "I", "M"} and sum(op[0] == "I" for op in rec.ops) == len(prog.layers)
    answers = [[0] * op[2] for op in rec.ops if op[0] == "R"]
    # Same host code, same answers as recorded: the replay goes through to the end.
    model = run_sync(_answers(rec))
    bus = ReplayHostBus(rec.ops, model)
    run_sync(host_session(AonCimDriver(bus, SMALL), bus, prog, inputs, seeds, True, lambda *a: None))
    bus.finish()
    # Another input: the driver's input write differs from the recording.
    bus = ReplayHostBus(rec.ops, model)
    with pytest.raises(ReplayDiverged, match="first difference"):
        run_sync(host_session(AonCimDriver(bus, SMALL), bus, prog, [inputs[0] ^ 1], seeds, True, lambda *a: None))
    # All-zero answers: ID is wrong, so the driver stops after its identity check.
    bus = ReplayHostBus(rec.ops, answers)
    with pytest.raises(Exception, match="chip ID"):
        run_sync(host_session(AonCimDriver(bus, SMALL), bus, prog, inputs, seeds, True, lambda *a: None))


async def _answers(rec):
    """The recording bus's own answers, in read order (what a healthy chip's control registers say)."""
    from aoncim.sim.recording_bus import RecordingHostBus

    model = RecordingHostBus(rec.cfg)
    out = []
    for op in rec.ops:
        if op[0] == "W":
            await model.write_words(op[1], op[2])
        elif op[0] == "R":
            out.append(await model.read_words(op[1], op[2]))
    return out


def test_missing_compiler_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-c++")
    with pytest.raises(ToolMissing) as e:
        check_tools()
    assert "\n" not in str(e.value) and "C++ compiler" in str(e.value)


@pytest.mark.cosim
def test_every_layer_bit_exact_in_step_mode():
    prog, inputs, seeds = small_job()
    r = run_raw(SMALL, prog, inputs, seeds, compare="layers")
    assert r.error is None and r.mismatches == [], "\n".join(r.mismatches)
    assert r.n_ok == len(inputs) and r.bit_exact
    assert r.compared == [len(inputs) * d.positions * d.out_c for d in prog.layers]
    assert all(i["mvms"] == prog.mvms and i["cycles"] > 0 and i["wall_s"] > 0 for i in r.inferences)
    # The timed load is the driver's load_program: parameters, placed conductances, alphas, descriptors.
    rects = sum(prog.used_rect(i)[1] * prog.used_rect(i)[3] for i in range(len(prog.layers)))
    assert r.harness.load_words == len(prog.pp_scale) + len(prog.pp_bias) + rects + len(prog.alphas(SMALL)) \
        + DESC_WORDS * len(prog.layers) + 1
    assert 0 < r.load_s < r.harness.replay_s


@pytest.mark.cosim
def test_final_output_bit_exact_in_run_mode_with_the_same_cycles():
    prog, inputs, seeds = small_job(act_bits=6, seed=1)
    step = run_raw(SMALL, prog, inputs, seeds, compare="layers")
    run = run_raw(SMALL, prog, inputs, seeds, compare="final")
    assert run.error is None and run.mismatches == [] and run.n_ok == len(inputs)
    assert run.compared == [0] * (len(prog.layers) - 1) + [len(inputs) * prog.layers[-1].out_c]
    assert [i["cycles"] for i in run.inferences] == [i["cycles"] for i in step.inferences]
    assert all(i["clocks"] < j["clocks"] for i, j in zip(run.inferences, step.inferences))  # no layer reads


@pytest.mark.cosim
def test_a_wrong_golden_model_is_caught():
    """Scored against the golden model of another chip (no read noise), every inference fails at
    layer 0: the comparison can fail."""
    prog, inputs, seeds = small_job(n=2)
    wrong = golden_outputs(dataclasses.replace(SMALL, read_noise_lsb=0.0), prog, inputs, seeds)
    r = run_raw(SMALL, prog, inputs, seeds, expected=wrong)
    assert r.n_ok == 0 and not r.bit_exact
    assert r.layer_fail[0] == 2 and "inference 0 layer 0" in r.mismatches[0]


@pytest.mark.cosim
def test_a_hung_chip_times_out_in_the_harness():
    prog, inputs, seeds = small_job(n=1)
    r = run_raw(SMALL, prog, inputs, seeds, compare="final", irq_timeout=100)
    assert r.error == "harness: timeout: no interrupt within 100 cycles" and r.n_ok == 0

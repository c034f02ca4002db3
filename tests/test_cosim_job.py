"""The co-simulation job and result types (sim/cosim.py), without a simulator: what crosses into
the testbench's process is one pickled CosimJob, and a one-case result reads like its case."""
from pathlib import Path

import numpy as np
import pytest

from aoncim.sim.cosim import (Calibration, CaseResult, CosimCase, CosimJob, CosimResult, progress_path,
                              results_path)
from aoncim.sim.random_nets import RANDOM_CFG, random_case


def test_a_job_crosses_as_one_file_and_reads_back_equal(tmp_path):
    c = random_case(3)
    cal = {"reference": c.prog, "target": None, "seed": 5}  # model.flows.drifted_chip's shape
    job = CosimJob(RANDOM_CFG, [CosimCase("a", c.prog, c.inputs, c.noise_seeds, cal, timeout_us=10.0)],
                   compare="final", coverage=True)
    assert isinstance(job.cases, tuple) and job.cases[0].calibration == Calibration(c.prog, None, 5)
    path = job.write(tmp_path)
    back = CosimJob.read(path)
    assert (back.cfg, back.compare, back.coverage, back.n_inferences) == (RANDOM_CFG, "final", True, len(c.inputs))
    case = back.cases[0]
    assert case.prog == c.prog and case.seeds == c.noise_seeds and case.timeout_us == 10.0
    assert all(np.array_equal(a, b) for a, b in zip(case.inputs, c.inputs))
    assert results_path(path).parent == progress_path(path).parent == Path(tmp_path)


def test_a_job_refuses_what_no_runner_does():
    c = random_case(4)
    with pytest.raises(ValueError, match="compare='every'"):
        CosimJob.single(RANDOM_CFG, c.prog, c.inputs, c.noise_seeds, compare="every")
    with pytest.raises(ValueError, match="2 inputs but 1 read-noise seeds"):
        CosimCase("x", c.prog, list(c.inputs) * 2, [1])


def _case(name, oks, error=None, compared=(4, 2)):
    infs = [{"ok": ok, "cycles": 10, "mvms": 1, "wall_s": 0.1} for ok in oks]
    return CaseResult(name, None, len(oks), infs, list(compared), [0, int(not all(oks))],
                      [] if all(oks) else [f"{name} inference 0 layer 1"], 0.5, error)


def test_result_counts_and_one_case_fields():
    one = CosimResult(None, [_case("", [True, True])], 1.0)
    assert one.bit_exact and one.n_ok == one.n_inferences == 2 and one.compared == [4, 2] and one.load_s == 0.5
    many = CosimResult(None, [_case("a", [True]), _case("b", [True, False]), _case("c", [True], "timeout")], 1.0)
    assert not many.bit_exact and many.n_ok == 2 and many.n_inferences == 4
    assert [c.name for c in many.failed] == ["b", "c"] and many.mismatches == ["b inference 0 layer 1"]
    assert len(many.inferences) == 4
    with pytest.raises(ValueError, match="3 cases"):
        many.compared

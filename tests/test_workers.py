"""Parallel runs (aoncim/workers.py): the shared runner gives the serial results, in order, with
local processes and on a Dask LocalCluster; `aoncim eval` and `aoncim cosim --model random` with
workers give the serial run's results bit for bit; bad worker options are one line."""
import json
import os
import sys

import pytest

from aoncim.workers import Workers, WorkersError, check_workers, run_units
from cli_helpers import invoke, one_error_line


# Module level: the workers import them by name (this folder is on the spawned workers' sys.path).
def square_and_pid(u):
    return u * u, os.getpid()


def scaled(shared, u):
    return shared["scale"] * u + len(shared["pad"])


UNITS = list(range(7))
SHARED = {"scale": 3, "pad": b"x" * 100_000}


def test_serial_and_local_processes_agree_in_order():
    serial = run_units(square_and_pid, UNITS)
    assert [r[0] for r in serial] == [u * u for u in UNITS] and {r[1] for r in serial} == {os.getpid()}
    seen = []
    local = run_units(square_and_pid, UNITS, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert [r[0] for r in local] == [r[0] for r in serial]
    assert os.getpid() not in {r[1] for r in local}  # they did run elsewhere
    assert seen[0] == (0, 7) and seen[-1] == (7, 7) and len(seen) == 8
    with Workers(2) as w:  # two maps, one pool; the shared object of each map is its own
        assert w.map(scaled, UNITS, shared=SHARED) == run_units(scaled, UNITS, shared=SHARED)
        assert w.map(scaled, UNITS, shared={**SHARED, "scale": -1}) == [-u + 100_000 for u in UNITS]


def test_dask_local_cluster_agrees():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        with Workers(dask=cl.scheduler_address) as w:
            assert w.size == 2 and w.where == f"Dask {cl.scheduler_address}"
            got = w.map(square_and_pid, UNITS, progress=True)
            assert [r[0] for r in got] == [u * u for u in UNITS]
            assert w.map(scaled, UNITS, shared=SHARED) == [scaled(SHARED, u) for u in UNITS]


def test_worker_errors_are_one_line(monkeypatch):
    for bad, match in ((0, "--workers 0: need at least one"), (True, "--workers True")):
        with pytest.raises(WorkersError, match=match):
            check_workers(bad)
    with pytest.raises(WorkersError, match="give --workers 2 or --dask, not both"):
        check_workers(2, "tcp://host:8786")
    with pytest.raises(WorkersError, match="cannot reach the scheduler: missing port number") as e:
        run_units(abs, [1], dask="nonsense")
    assert "\n" not in str(e.value)
    with pytest.raises(WorkersError, match="cannot reach the scheduler: Timed out"):
        run_units(abs, [1], dask="tcp://127.0.0.1:9", connect_timeout="1s")
    monkeypatch.setitem(sys.modules, "distributed", None)  # not installed
    with pytest.raises(WorkersError, match=r"--dask needs dask.distributed: pip install 'aoncim\[cluster\]'"):
        run_units(abs, [1], dask="tcp://host:8786")


def test_a_unit_error_reaches_the_caller_and_stops_the_pool():
    with pytest.raises(TypeError):
        run_units(square_and_pid, [1, "a", 3], workers=2)


@pytest.mark.parametrize("cmd", [("eval", "kws"), ("cosim", "--model", "random")])
def test_cli_worker_options_are_one_line(cmd, tmp_path):
    one_error_line(invoke(*cmd, "--workers", 0), "'--workers': 0 is not in the range x>=1", code=2)
    one_error_line(invoke(*cmd, "--dask", "nonsense", "-o" if cmd[0] == "eval" else "--coverage-json",
                          tmp_path / "x"), "--dask nonsense: cannot reach the scheduler")
    one_error_line(invoke(*cmd, "--workers", 2, "--dask", "tcp://h:1"), "not both")
    assert not (tmp_path / "x").exists()


def test_cosim_worker_options_need_model_random():
    one_error_line(invoke("cosim", "--workers", 2), "--workers/--dask apply to --model random")
    one_error_line(invoke("cosim", "--model", "random", "--workers", 2, "--waves"), "--waves records one")


# ------------------------------------------------------------------------------ aoncim eval
def test_eval_with_two_workers_is_the_serial_run_bit_for_bit(tmp_path):
    """Shipped KWS checkpoint, 16 test inputs (8 bit-true), two chips, one time: the JSON and the
    plot are the serial run's, byte for byte."""
    args = ("eval", "kws", "--seeds", 2, "--bits", 8, "--times", "1s", "--samples", 16, "--bit-true-samples", 8)
    outs = {}
    for w in (1, 2):
        r = invoke(*args, "--workers", w, "-o", tmp_path / f"w{w}")
        assert r.exit_code == 0, r.output
        outs[w] = (tmp_path / f"w{w}" / "accuracy_kws.json").read_bytes()
        assert ("on 2 local workers" in r.output) == (w == 2)
    assert outs[1] == outs[2]
    rows = json.loads(outs[1])
    assert {(x["mode"], x["compensated"]) for x in rows if x["mode"] != "FP"} == \
        {(m, c) for m in ("HWA float", "bit-true") for c in (True, False)}
    assert (tmp_path / "w1" / "accuracy_kws.png").read_bytes() == (tmp_path / "w2" / "accuracy_kws.png").read_bytes()


# ------------------------------------------------------------------------------ cosim --model random
def fake_chunk(unit):
    """A stand-in for `runner.run_chunk`: per case, results and coverage that depend on the case
    alone (as a simulator's do), without simulating."""
    from pathlib import Path

    from aoncim.sim import coverage as cov
    from aoncim.sim.cosim import CaseResult, CosimResult
    from aoncim.sim.runner import Build

    cases, results, hits, dp = unit["cases"], [], {}, {}
    bins = cov.datapath_bins()
    for c in cases:
        k = int(c.name.rsplit("-", 1)[1])
        ok = k % 3 != 1  # every third case fails
        results.append(CaseResult(c.name, c.prog, len(c.inputs),
                                  [{"ok": ok, "seed": s, "cycles": 100 + k, "mvms": c.prog.mvms, "wall_s": 0.01}
                                   for s in c.seeds],
                                  [k + i for i in range(len(c.prog.layers))], [int(not ok)] * len(c.prog.layers),
                                  [] if ok else [f"{c.name} layer 0: off by one"], 0.001 * k))
        for d in c.prog.layers:
            p = cov.layer_point(d, unit["cfg"].rows)
            hits[p] = hits.get(p, 0) + 1
        dp[bins[k % len(bins)]] = dp.get(bins[k % len(bins)], 0) + k
    report = {**cov.to_json(hits), "datapath": cov.datapath_to_json(dp)}
    return CosimResult(Build("verilator", Path("/b"), Path("/b/v"), 0.0, True), results, 0.5 * len(cases), 1,
                       report if unit["coverage"] else None, f"log of {len(cases)}")


def _cases(seeds):
    from aoncim.sim.cosim import CosimCase
    from aoncim.sim.random_nets import random_case

    return [CosimCase(c.name, c.prog, c.inputs, c.noise_seeds) for c in (random_case(s) for s in seeds)]


def _same_report(a, b, timing=("wall_s", "cpu_s", "load_s")):
    """Everything a co-simulation reports but the wall times."""
    assert [c.name for c in a.cases] == [c.name for c in b.cases]
    for x, y in zip(a.cases, b.cases):
        assert x.prog == y.prog and (x.n_inputs, x.compared, x.layer_fail, x.mismatches, x.error) == \
            (y.n_inputs, y.compared, y.layer_fail, y.mismatches, y.error)
        assert [{k: v for k, v in i.items() if k not in timing} for i in x.inferences] == \
            [{k: v for k, v in i.items() if k not in timing} for i in y.inferences]
    assert (a.n_inferences, a.n_ok, [c.name for c in a.failed]) == (b.n_inferences, b.n_ok, [c.name for c in b.failed])
    assert json.dumps(a.coverage) == json.dumps(b.coverage)


def test_chunks_merge_into_the_serial_report():
    """Chunk and merge logic, no simulator: 7 cases in 3 chunks on two local workers give the
    report of one run over all of them (same order, counts, failures, coverage bins)."""
    from aoncim.sim.random_nets import RANDOM_CFG
    from aoncim.sim.runner import run_cases, split_cases

    assert [len(p) for p in split_cases(list(range(7)), 3)] == [3, 2, 2]
    assert split_cases([1, 2], 5) == [[1], [2]]
    cases = _cases(range(300, 307))
    one = fake_chunk(dict(cfg=RANDOM_CFG, cases=cases, coverage=True))
    seen = []
    for kw in (dict(workers=2, chunks=3), dict(chunks=4), dict(chunks=1)):
        r = run_cases(RANDOM_CFG, cases, coverage=True, chunk_runner=fake_chunk, progress=lambda d, t: seen.append(t),
                      **kw)
        _same_report(r, one, timing=())
        assert r.wall_s == pytest.approx(one.wall_s) and r.log.startswith("log of")
        assert r.runs == kw["chunks"]
    assert set(seen) == {7}  # one inference per case
    assert one.coverage["datapath"]["hit"] > 0 and [c.name for c in one.failed] == ["random-301", "random-304"]


@pytest.mark.cosim
def test_cosim_random_on_two_workers_is_the_serial_run(tmp_path):
    """Three random networks co-simulated in one job and in two chunks on two local workers (one
    build, shared through the cache): the same cases, counts, bit-exact inferences and coverage;
    and `aoncim cosim --model random --workers 2` writes the serial run's coverage report."""
    from aoncim.sim.random_nets import RANDOM_CFG
    from aoncim.sim.runner import run_cases

    cases = _cases(range(3))
    serial = run_cases(RANDOM_CFG, cases, coverage=True)
    par = run_cases(RANDOM_CFG, cases, coverage=True, workers=2)
    assert serial.bit_exact and serial.runs == 1 and par.runs == 2
    _same_report(par, serial)
    assert par.build.build_dir == serial.build.build_dir and par.build.cached
    r = invoke("cosim", "--model", "random", "--inputs", 3, "--workers", 2, "--coverage-json", tmp_path / "cov.json")
    assert r.exit_code == 0, r.output
    assert "on 2 local workers" in r.output and r.output.strip().splitlines()[-1] == "bit-exact: 3/3 inferences"
    assert json.loads((tmp_path / "cov.json").read_text()) == serial.coverage


@pytest.mark.slow
@pytest.mark.cosim
def test_dask_workers_share_one_fresh_build(tmp_path, monkeypatch):
    """Two Dask workers (processes) on an empty build root: both need the simulator, one builds it,
    the other waits on the cache lock and reuses it (one entry, nothing half-built left); the
    merged run is the serial one (~90 s: a Verilator build)."""
    distributed = pytest.importorskip("distributed")
    from aoncim.sim.random_nets import RANDOM_CFG
    from aoncim.sim.runner import run_cases

    monkeypatch.setenv("AONCIM_BUILD_ROOT", str(tmp_path))  # inherited by the workers
    cases = _cases(range(4))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        par = run_cases(RANDOM_CFG, cases, coverage=True, dask=cl.scheduler_address)
    builds = [p for p in tmp_path.iterdir() if p.name.startswith("verilator-") and p.is_dir()]
    assert len(builds) == 1 and not list(tmp_path.glob(".*.part")), sorted(p.name for p in tmp_path.iterdir())
    assert par.runs == 2 and not par.build.cached  # one chunk built it
    serial = run_cases(RANDOM_CFG, cases, coverage=True)
    assert serial.build.cached and serial.build.build_dir == builds[0]
    _same_report(par, serial)

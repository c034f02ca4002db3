"""Build caches that concurrent and interrupted runs cannot corrupt (aoncim.buildcache), simulator
processes that die with their parent (aoncim.procgroup), and waveforms users can open
(sim/waves.py).

The simulator tests share one scenario on a fresh build root (the small config of
tests/test_raw_verilator.py): builds killed while the compiler runs, then two co-simulations with
waves started together in two processes (one Verilator build in all). The cache logic itself is
also checked without a simulator.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aoncim import procgroup
from aoncim.buildcache import STAMP, cached_dir, cached_file
from aoncim.hw.verilog import cached_verilog, design_key
from aoncim.sim.jobs import SMALL_CFG
from aoncim.sim.waves import fst_support, gtkw_signals, read_vars

SMALL = SMALL_CFG
N_INPUTS = 2

# One co-simulation (or only the build) of the small job, in its own Python process; prints the
# result as JSON on its last line.
_CHILD = """
import json, sys
from pathlib import Path
from aoncim.config import AonCimConfig
from aoncim.sim.jobs import small_conv_job
from aoncim.sim.runner import build, run_cosim
what, root, cfg, n, waves = sys.argv[1], Path(sys.argv[2]), AonCimConfig.from_dict(json.loads(sys.argv[3])), \\
    int(sys.argv[4]), sys.argv[5] == "1"
if what == "build":
    b = build(cfg, build_root=root, waves=waves)
    print(json.dumps({"cached": b.cached}))
else:
    prog, inputs, seeds = small_conv_job(cfg, 8, n, 0)
    r = run_cosim(cfg, prog, inputs, seeds, build_root=root, waves=waves)
    print(json.dumps({"n_ok": r.n_ok, "mismatches": r.mismatches, "cached": r.build.cached,
                      "build_dir": str(r.build.build_dir), "format": r.build.waves,
                      "waves": str(r.waves), "waves_gtkw": str(r.waves_gtkw)}))
"""


def child(what: str, root: Path, waves: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, what, str(root), json.dumps(SMALL.to_dict()),
                             str(N_INPUTS), "1" if waves else "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def sim_entries(root: Path) -> list[Path]:
    """The simulator build entries (published or private) under a build root."""
    return [p for p in root.iterdir() if p.is_dir() and p.name.lstrip(".").startswith("verilator-")]


# ------------------------------------------------------------------------------ /proc helpers
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, ppid, pgid) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    return comm, int(fields[1]), int(fields[3])


def running_in_groups_of(proc: subprocess.Popen, comm: str) -> list[int]:
    """The group ids of the processes named `comm` that run in the process groups `proc` started
    (groups whose leader is a child of `proc`), one per process."""
    stats = {pid: s for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if (s := _stat(pid))}
    groups = {pid for pid, (_, ppid, pgid) in stats.items() if ppid == proc.pid and pgid == pid}
    return [pgid for c, _, pgid in stats.values() if c == comm and pgid in groups]


def wait_until_running(proc: subprocess.Popen, comm: str, count: int = 1, timeout: float = 600.0) -> int:
    """Wait until `count` processes named `comm` run in groups `proc` started; return the group id."""
    end = time.monotonic() + timeout
    while len(found := running_in_groups_of(proc, comm)) < count:
        assert proc.poll() is None, f"{proc.args[:3]} ended before {comm} started:\n{proc.stdout and proc.stdout.read()}"
        assert time.monotonic() < end, f"{comm} did not start"
        time.sleep(0.05)
    return found[0]


def interrupt_build(root: Path, sig: int) -> int:
    """Start a waveform build in a child process, send it `sig` while cc1plus runs; return the
    build's process group id after checking that the child is gone."""
    proc = child("build", root, waves=True)
    try:
        pgid = wait_until_running(proc, "cc1plus")
        os.kill(proc.pid, sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    return pgid


# ------------------------------------------------------------------------------ no simulator
_SLEEPER = """
from aoncim import procgroup
with procgroup.sigterm_raises():
    procgroup.run(["sh", "-c", "sleep 120 & sleep 120"])
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["int", "term", "kill"])
def test_child_process_groups_die_with_their_parent(sig):
    """A command run by aoncim.procgroup, and what it started in the background, ends when the
    Python process is interrupted, terminated or killed."""
    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER])
    try:
        pgid = wait_until_running(proc, "sleep", count=2, timeout=60)
        os.kill(proc.pid, sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert procgroup.wait_group_gone(pgid, 10)


def test_unstamped_or_half_built_entries_are_not_reused(tmp_path):
    """An entry without its stamp, a half-built directory left by a killed build, and a failed
    or interrupted build are never reused; the next build replaces them."""
    builds = []

    def build(d: Path):
        builds.append(d)
        (d / "product").write_text("complete")

    # A directory at the key without a stamp (an older aoncim's half-built entry) and the private
    # directory of a killed build.
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "product").write_text("half")
    (tmp_path / ".k.killed.part").mkdir()
    entry, cached = cached_dir(tmp_path, "k", build, what="k")
    assert not cached and len(builds) == 1 and (entry / "product").read_text() == "complete"
    assert (entry / STAMP).is_file() and not list(tmp_path.glob(".k.*"))
    assert cached_dir(tmp_path, "k", build, what="k") == (entry, True) and len(builds) == 1

    # Failed and interrupted builds publish nothing and leave no private directory.
    for exc in (RuntimeError("compiler failed"), KeyboardInterrupt()):
        def failing(d: Path, exc=exc):
            (d / "product").write_text("partial")
            raise exc

        with pytest.raises(type(exc)):
            cached_dir(tmp_path, "f", failing, what="f")
        assert not (tmp_path / "f").exists() and not list(tmp_path.glob(".f.*"))
    assert cached_dir(tmp_path, "f", build, what="f")[1] is False

    # A cached file without its stamp is rewritten; a leftover private file is removed.
    f = tmp_path / "v" / "top-key.v"
    f.parent.mkdir()
    f.write_text("half")
    (f.parent / ".top-key.v.killed.part").write_text("junk")
    assert cached_file(f, lambda p: p.write_text("whole"), what="v") is False
    assert f.read_text() == "whole" and not list(f.parent.glob("*.part"))
    assert cached_file(f, lambda p: pytest.fail("rewritten"), what="v") is True


def test_generated_verilog_without_stamp_is_regenerated(tmp_path):
    """The Verilog cache: an unstamped file (say, truncated by a killed writer of an older
    aoncim) is elaborated again, not handed to the simulator."""
    p = tmp_path / f"aoncim_top-{design_key(SMALL)}.v"
    p.write_text("module aoncim_top(")  # truncated
    got, cached = cached_verilog(SMALL, tmp_path)
    assert got == p and not cached and p.read_text().startswith("// AON-CiM top level")
    assert cached_verilog(SMALL, tmp_path) == (p, True)


# ------------------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """On one fresh build root: a waveform build killed mid-compile with SIGKILL, a half-built
    entry planted at its key, the next build killed with SIGTERM, then two co-simulations with
    waves started together. Returns what each step left behind and the two results."""
    root = tmp_path_factory.mktemp("root")
    seen = {}
    # SIGKILL: Python runs no clean-up; the kernel's death signal reaches the build's guard,
    # which kills the group. The private directory stays until the next build of the key.
    pgid = interrupt_build(root, signal.SIGKILL)
    seen["kill_group_gone"] = procgroup.wait_group_gone(pgid, 10)
    seen["kill_entries"] = sorted(p.name for p in sim_entries(root))
    key = seen["kill_entries"][0].split(".")[1] if seen["kill_entries"] else None
    # A half-built entry at the key, like the one concurrent builds used to leave: a corrupt
    # precompiled header and no stamp.
    if key:
        (root / key).mkdir()
        (root / key / "Vtop__pch.h.fast.gch").write_bytes(b"\0corrupt")
    # SIGTERM: Python raises, kills the group and removes its private directory.
    pgid = interrupt_build(root, signal.SIGTERM)
    seen["term_group_gone"] = procgroup.wait_group_gone(pgid, 10)
    seen["term_entries"] = sorted(p.name for p in sim_entries(root))
    # Two processes at once: one builds, the other waits on the key's lock and reuses the build.
    procs = [child("cosim", root, waves=True) for _ in range(2)]
    runs = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out
        runs.append(json.loads(out.strip().splitlines()[-1]))
    seen["final_entries"] = sorted(p.name for p in sim_entries(root))
    return seen, key, runs


@pytest.mark.cosim
def test_interrupted_build_leaves_nothing_running_or_reused(scenario):
    seen, key, runs = scenario
    assert seen["kill_group_gone"], "a compiler outlived its SIGKILLed parent"
    assert key and len(seen["kill_entries"]) == 1 and seen["kill_entries"][0].startswith(f".{key}.")
    assert seen["term_group_gone"], "a compiler outlived its SIGTERMed parent"
    # The killed build's private directory and the planted entry were removed before the
    # SIGTERMed build started, and it removed its own: nothing is left to reuse.
    assert seen["term_entries"] == []
    # The next runs rebuilt cleanly.
    built = Path(runs[0]["build_dir"])
    assert seen["final_entries"] == [key] and built.name == key and (built / STAMP).is_file()
    assert not list(built.glob("*.gch"))


@pytest.mark.cosim
def test_concurrent_cosims_share_one_build(scenario):
    """Both co-simulations bit-exact on one build: one process built it, the other reused it."""
    _, _, runs = scenario
    for r in runs:
        assert r["n_ok"] == N_INPUTS and r["mismatches"] == []
    assert sorted(r["cached"] for r in runs) == [False, True]
    assert runs[0]["build_dir"] == runs[1]["build_dir"]


@pytest.mark.cosim
def test_waves_run_writes_a_dump_and_a_gtkw_of_its_signals(scenario):
    """`waves=True` keeps a dump (FST when the toolchain builds it), each run its own, and a
    GTKWave save file beside it whose every signal is declared in the dump, in the four block
    groups."""
    _, _, runs = scenario
    dumps = [Path(r["waves"]) for r in runs]
    assert dumps[0].parent != dumps[1].parent  # concurrent runs do not share a run directory
    for r, dump in zip(runs, dumps):
        gtkw = Path(r["waves_gtkw"])
        assert dump.is_file() and gtkw == dump.with_suffix(".gtkw") and gtkw.is_file()
        assert dump.suffix == (".fst" if fst_support() else ".vcd") and r["format"] == dump.suffix[1:]
        declared = read_vars(dump)
        names = {v.path for v in declared}
        listed = gtkw_signals(gtkw)
        assert listed and set(listed) <= names, sorted(set(listed) - names)[:5]
        # Yosys' start-up triggers (their ':' makes GTKWave refuse a VCD) are not traced.
        assert not [v.path for v in declared if ":" in v.name]
    text = gtkw.read_text()
    assert f'[dumpfile] "{dump.resolve()}"' in text
    groups = [ln[1:] for ln in text.splitlines() if ln.startswith("-")]
    assert {"host bus (AXI4-Lite)", "sequencer", "array (crossbar)", "post-processing"} <= set(groups)
    bus = text.split("-host bus (AXI4-Lite)")[1]
    assert sum(ln.endswith(("awvalid", "wvalid", "bvalid", "arvalid", "rvalid")) for ln in bus.splitlines()) == 5
    # The post-processing group has one sub-group per lane.
    assert sum(g.startswith("pp") for g in groups) == (2 * SMALL.pp_lanes if SMALL.pp_lanes > 1 else 0)

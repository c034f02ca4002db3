"""The co-simulation job and its result, one pair for every runner: the cocotb testbench under
Verilator or Icarus (sim/runner.py, sim/tb_top.py) and the raw Verilator harness
(sim/raw_verilator.py).

A `CosimJob` is a config and one or more `CosimCase`s (a program, its inputs and read-noise seeds,
optionally a drift compensation run on the chip first); a single co-simulated network is a job of
one case. The cocotb runner fills in each case's golden outputs and time limit and pickles the job
to one file of the run directory, named by $AONCIM_JOB; the testbench writes its results and
progress beside it (`results_path`, `progress_path`). A `CosimResult` holds one `CaseResult` per
case, scored against the golden model layer by layer.

This module is imported by the testbench in the simulator's Python: it imports nothing heavy.
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import Program

JOB_ENV = "AONCIM_JOB"  # the path of the pickled job, in the testbench's environment
COMPARE_MODES = ("layers", "final")


# ------------------------------------------------------------------------------ the job
@dataclass(frozen=True)
class Calibration:
    """Drift compensation run by the host driver on the chip before a case's inferences (contract
    steps 10 and 11): reference reads on `reference` (the chip read right after programming), then
    the alpha and offset reads on the case's program. The inferences are scored against the golden
    model of `aoncim.model.snapshot.compensated(reference, prog, cfg, seed, target)`."""

    reference: Program
    target: Program | None
    seed: int

    @classmethod
    def of(cls, c: "Calibration | dict | None") -> "Calibration | None":
        """`c` as a Calibration: model.flows.drifted_chip returns {"reference", "target", "seed"}."""
        if c is None or isinstance(c, Calibration):
            return c
        return cls(c["reference"], c.get("target"), int(c["seed"]))


@dataclass(frozen=True)
class CosimCase:
    """One program and its inferences.

    `error_cases` run before the scored inferences (sim/tb_top.py `run_error_case`): each is a dict
    with `descriptors` (lists of 8 descriptor words, written without Program.check, to exercise the
    chip's own checks), `input` (written for the program's first layer), `timeout_us` and
    optionally `num_layers` and `name`; the program is restored afterwards."""

    name: str
    prog: Program
    inputs: Sequence[np.ndarray]
    seeds: Sequence[int]
    calibration: Calibration | None = None
    # Simulated time one inference may take; None: from the schedule (`runner.default_timeout_us`).
    timeout_us: float | None = None
    error_cases: tuple[dict, ...] = ()
    # Every layer's golden outputs per inference; None: computed by the runner.
    expected: list[list[np.ndarray]] | None = None

    def __post_init__(self):
        # Frozen: normalise through object.__setattr__ (plain arrays and ints pickle compactly).
        object.__setattr__(self, "inputs", [np.asarray(x) for x in self.inputs])
        object.__setattr__(self, "seeds", [int(s) for s in self.seeds])
        object.__setattr__(self, "calibration", Calibration.of(self.calibration))
        object.__setattr__(self, "error_cases", tuple(self.error_cases))
        if len(self.inputs) != len(self.seeds):
            raise ValueError(f"case {self.name!r}: {len(self.inputs)} inputs but {len(self.seeds)} read-noise seeds")


@dataclass(frozen=True)
class CosimJob:
    """What to co-simulate on one RTL build of `cfg`; the golden model is computed with `cfg`.

    `compare`: "layers" runs each inference in step mode and scores every layer's output; "final"
    runs it without pauses, as a host would, and scores the last layer only. `check_identity`:
    refuse a chip whose ID or config hash differs (off only where mutated RTL is meant to be caught
    by the scoreboard). `coverage`: sample the sequencer's functional coverage of every layer that
    matched (sim/coverage.py; cocotb runner only). `host_bus`: the testbench's AXI4-Lite manager
    (sim/host_bus.py: "fast", the default, or "cocotbext")."""

    cfg: AonCimConfig
    cases: tuple[CosimCase, ...]
    compare: str = "layers"
    check_identity: bool = True
    coverage: bool = False
    host_bus: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "cases", tuple(self.cases))
        if self.compare not in COMPARE_MODES:
            raise ValueError(f"compare={self.compare!r}: use 'layers' or 'final'")

    @classmethod
    def single(cls, cfg: AonCimConfig, prog: Program, inputs: Sequence[np.ndarray], seeds: Sequence[int], *,
               calibration: Calibration | dict | None = None, error_cases: Sequence[dict] = (),
               timeout_us: float | None = None, expected: list[list[np.ndarray]] | None = None,
               **options: Any) -> "CosimJob":
        """A job of one unnamed case (its mismatches name no case); `options` are CosimJob's fields."""
        return cls(cfg, (CosimCase("", prog, inputs, seeds, calibration, timeout_us, tuple(error_cases),
                                   expected),), **options)

    @property
    def n_inferences(self) -> int:
        return sum(len(c.inputs) for c in self.cases)

    def replace_cases(self, cases: Sequence[CosimCase]) -> "CosimJob":
        return dataclasses.replace(self, cases=tuple(cases))

    def write(self, run_dir: Path) -> Path:
        """Pickle the job into `run_dir`; returns the file (the value of $AONCIM_JOB)."""
        path = Path(run_dir) / "job.pkl"
        path.write_bytes(pickle.dumps(self))
        return path

    @staticmethod
    def read(path: str | Path) -> "CosimJob":
        with open(path, "rb") as f:
            job = pickle.load(f)
        if not isinstance(job, CosimJob):
            raise TypeError(f"{path}: holds a {type(job).__name__}, not a CosimJob")
        return job


def results_path(job_path: Path) -> Path:
    """The testbench's results (JSON), beside the job file."""
    return Path(job_path).with_name("results.json")


def progress_path(job_path: Path) -> Path:
    """One byte per finished inference, beside the job file; the runner polls its size."""
    return Path(job_path).with_name("progress")


# ------------------------------------------------------------------------------ the result
class SimBuild(Protocol):
    """The simulator build a run used: `runner.Build` (cocotb) or `raw_verilator.RawBuild`."""

    build_dir: Path
    seconds: float  # 0 when the cached build was reused
    cached: bool


@dataclass
class CaseResult:
    """One case of a run, scored against the golden model."""

    name: str
    prog: Program  # the program scored against (the compensated one for a calibration case)
    n_inputs: int
    # Per inference run: ok, seed, wall_s and cpu_s, cycles (the CYCLES register), mvms; the raw
    # harness adds clocks (its clock ticks from input write to last read).
    inferences: list[dict]
    compared: list[int]    # values compared per layer
    layer_fail: list[int]  # inferences mismatching per layer
    mismatches: list[str]  # the first difference of each failing layer, one line each
    load_s: float          # the driver's load_program
    error: str | None = None  # the chip stopped with an error, or a timeout; the run went on
    # With a calibration: the alphas and biases the driver computed on the chip, and what the
    # chip's ALPHA registers and BIAS window held afterwards.
    calibration: dict | None = None
    # One record per error case: STATUS, the driver's message, memories before and after.
    error_cases: list[dict] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return sum(r["ok"] for r in self.inferences)

    @property
    def ok(self) -> bool:
        return self.error is None and self.n_ok == self.n_inputs


@dataclass
class HarnessStats:
    """What only the raw Verilator harness measures (sim/raw_verilator.py)."""

    load_cpu_s: float
    load_words: int     # words written by load_program
    words_written: int  # by the whole script
    replay_s: float     # the harness's whole replay (reset released to the last operation)
    replay_cpu_s: float
    process_s: float    # the harness process, start to exit, as seen from Python
    record_s: float     # recording the script in Python (not part of the simulation)
    workdir: Path | None = None  # the script, output and waveform (kept with waves or a given workdir)


@dataclass
class CosimResult:
    """A co-simulation run of a job: one CaseResult per case, in the job's order.

    The fields of a one-case job's case (`compared`, `layer_fail`, `load_s`, `calibration`,
    `error_cases`, `error`) are properties here too; `inferences` and `mismatches` span all cases."""

    build: SimBuild
    cases: list[CaseResult]
    wall_s: float  # simulator runs, start to exit
    runs: int = 1  # simulator invocations
    coverage: dict | None = None  # sim/coverage.py's report, summed over the runs
    log: str = ""  # the last simulator run's log
    waves: Path | None = None  # the last run's waveform dump (FST or VCD), when asked for
    waves_gtkw: Path | None = None  # its GTKWave save file: `gtkwave <waves> <waves_gtkw>`
    harness: HarnessStats | None = None  # raw Verilator only

    @property
    def n_inferences(self) -> int:
        return sum(c.n_inputs for c in self.cases)

    @property
    def n_ok(self) -> int:
        """Inferences equal to the golden model, in cases that ran to the end."""
        return sum(c.n_ok for c in self.cases if c.error is None)

    @property
    def bit_exact(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.ok]

    @property
    def inferences(self) -> list[dict]:
        return [r for c in self.cases for r in c.inferences]

    @property
    def mismatches(self) -> list[str]:
        return [m for c in self.cases for m in c.mismatches]

    @property
    def case(self) -> CaseResult:
        """The case of a one-case job."""
        if len(self.cases) != 1:
            raise ValueError(f"this run has {len(self.cases)} cases: use .cases")
        return self.cases[0]

    @property
    def compared(self) -> list[int]:
        return self.case.compared

    @property
    def layer_fail(self) -> list[int]:
        return self.case.layer_fail

    @property
    def load_s(self) -> float:
        return self.case.load_s

    @property
    def calibration(self) -> dict | None:
        return self.case.calibration

    @property
    def error_cases(self) -> list[dict]:
        return self.case.error_cases

    @property
    def error(self) -> str | None:
        return self.case.error

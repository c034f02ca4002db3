"""The recipes every front end shares, defined once: a trained network compiled to a Program, and
that Program programmed on a simulated PCM chip, read after drift and compensated by the host.

Used by the command line (`aoncim compile`, `aoncim cosim --time`), the co-simulation jobs
(sim/jobs.py), the performance tools (perf/workload.py) and the accuracy evaluation (evaluate.py).
It sits in model/ because it needs the analog layers and the compiler (firmware/compiler.py),
which model/ already uses; nothing below the front ends imports it except evaluate.py.
"""
from __future__ import annotations

from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.program import Program

from .analog import analog_layers, set_analog_mode
from .snapshot import ProgrammedArray, compensated

# The host's reference read of a freshly programmed chip: at REFERENCE_T_S seconds after
# programming, with read-noise seed REFERENCE_READ_SEED + chip seed (the drift-compensation alphas
# and offset calibration compare every later read with it).
REFERENCE_T_S = 1.0
REFERENCE_READ_SEED = 10_000


def compile_trained(hwa: nn.Module, cfg: AonCimConfig, calib, act_bits: int) -> Program:
    """A (HWA-)trained network compiled for `cfg` with `act_bits` activations on every analog
    layer: the compiler reads the trained weights and input ranges in "ideal" mode. Sets the
    layers' in_bits and mode in place. Raises the compiler's CompileError."""
    for _, layer in analog_layers(hwa):
        layer.in_bits = act_bits
    set_analog_mode(hwa, "ideal")
    return compile_network(hwa, cfg, calib, act_bits=act_bits)


def programmed_chip(prog: Program, cfg: AonCimConfig, chip_seed: int) -> tuple[ProgrammedArray, Program]:
    """`prog` programmed on simulated PCM chip `chip_seed`: (the chip, to read at any time, and the
    host's reference read right after programming)."""
    arr = ProgrammedArray(prog, cfg, seed=chip_seed)
    return arr, arr.at(REFERENCE_T_S, read_seed=REFERENCE_READ_SEED + chip_seed)


def drifted_chip(prog: Program, cfg: AonCimConfig, chip_seed: int, t_inf: float) -> tuple[Program, dict]:
    """Program `prog` on simulated PCM chip `chip_seed`: (the conductance snapshot read at
    `t_inf`, the calibration for run_cosim: the reference read right after programming, the
    compiled target and the seed of the calibration reads' noise)."""
    arr, reference = programmed_chip(prog, cfg, chip_seed)
    return arr.at(t_inf, read_seed=chip_seed), {"reference": reference, "target": prog, "seed": chip_seed}


def compensated_chip(prog: Program, cfg: AonCimConfig, chip_seed: int, t_inf: float) -> Program:
    """The drifted snapshot of `drifted_chip` with what the host's compensation loads (alphas and
    offset-calibrated biases): what the chip computes with at `t_inf`."""
    chip, cal = drifted_chip(prog, cfg, chip_seed, t_inf)
    return compensated(cal["reference"], chip, cfg, chip_seed, target=prog)

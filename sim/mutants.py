"""The mutation catalogue: single-point bugs the default suite's verification must catch.

Each `Mutant` is one edit of one file (operators, constants, comparisons, offsets, widths) in a
block of the chip or of the golden model; benchmarks/mutation.py (`make mutate`) applies each to a
private copy of the package and runs `KILL_TESTS` until one fails. A mutant no test kills is
either a hole (write the test that kills it) or equivalent to the original (then it does not
belong here: remove it and say why in the commit).
"""
from __future__ import annotations

from .mutation import Mutant

# Fast tests first: a mutant stops at its first failing test.
KILL_TESTS = [
    "tests/test_formal_axil.py",
    "tests/test_axil.py",
    "tests/test_regmap.py",
    "tests/test_datapath_blocks.py",
    "tests/test_desc_check_stage.py",
    "tests/test_im2col_stage.py",
    "tests/test_pool_bank_stage.py",
    "tests/test_core_amaranth.py",
    "tests/test_bittrue_ops.py",
    "tests/test_cosim_random.py::test_random_networks_bit_exact",
]

CATALOGUE = [
    # AXI4-Lite subordinate (hw/axil.py)
    Mutant("axil_b_no_wait", "host port", "hw/axil.py", "with m.If(ax.bready):", "with m.If(1):"),
    Mutant("axil_strobe_ignored", "host port", "hw/axil.py", "bus.w_stb.eq(whole)", "bus.w_stb.eq(1)"),
    Mutant("axil_addr_lsb", "host port", "hw/axil.py", "bus.addr.eq(ax.araddr[self._lsb:])",
           "bus.addr.eq(ax.araddr[self._lsb - 1:])"),
    # Post-processing (hw/postproc.py)
    Mutant("pp_round_half", "postproc", "hw/postproc.py", "rnd.eq((1 << total_shift) >> 1)",
           "rnd.eq(((1 << total_shift) >> 1) - 1)"),
    Mutant("pp_relu_lo", "postproc", "hw/postproc.py", "lo.eq(Mux(self.to_out & ~self.relu, -out_max - 1, 0))",
           "lo.eq(Mux(self.to_out & ~self.relu, -out_max, 0))"),
    Mutant("pp_act_max", "postproc", "hw/postproc.py", "act_max.eq((1 << self.out_bits) - 1)",
           "act_max.eq((1 << self.out_bits) - 2)"),
    Mutant("pp_bias_shift", "postproc", "hw/postproc.py", "(self.in_bias << f)", "(self.in_bias << (f - 1))"),
    Mutant("pp_clamp_hi", "postproc", "hw/postproc.py", "Mux(y > hi, hi,", "Mux(y > hi + 1, hi,"),
]

"""The scoreboard's whole-state check (sim/scoreboard.py `MemoryImage`, `compare_memories`,
`FullStateCheck`): after a layer, every word of both activation banks and the output memory must be
the golden memory image -- the memories as they were, with the host's input and each layer's golden
output written where its descriptor says. Synthetic memories, no simulator: a stray write one word
past the layer's output, into the other bank and into the output memory, each reported with its
memory, bank, address, expected and got as a write outside the layer's output; a wrong word inside
the output as inside; a bug reported once, at the layer that made it.

`test_one_word_past_the_output_is_caught_in_the_default_suite` (slow: a fresh Verilator build of
the mutated RTL) proves it on the chip: a post-processing lane that writes one word past a layer's
output, which the output-slice check alone let through, fails the default random co-simulation
with such a message.
"""
import asyncio
import types

import numpy as np
import pytest

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Op
from aoncim.sim.scoreboard import (FullStateCheck, MemoryImage, MemoryMismatch, Mismatch, Scoreboard,
                                   full_check_due, mismatch_lines, output_region)

@pytest.fixture(autouse=True)
def _default_full_check(monkeypatch):
    """These tests are about the default mode ($AONCIM_FULL_CHECK unset: first inference checked)."""
    monkeypatch.delenv("AONCIM_FULL_CHECK", raising=False)


CFG = AonCimConfig(rows=32, cols=64, n_adcs=8, act_depth=64, out_depth=16, param_depth=128, max_layers=4,
                   load_lanes=16, pp_lanes=4)


def layer(**f) -> LayerDescriptor:
    return LayerDescriptor(**(dict(
        opcode=Op.MVM.value, in_bits=8, out_bits=8, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0, in_bank=0, out_bank=1,
        shift=0, in_h=2, in_w=2, in_c=3, k_h=1, k_w=1, out_h=2, out_w=2, out_c=3, k_rows=3, row0=0, col0=0,
        param_base=0, in_base=5, out_base=10) | f))


# Input 2x2x3 at ACT0[5..16]; layer 0 to ACT1[10..21]; layer 1 (1x1 kernel, 2 channels) back to
# ACT0[30..37]; layer 2 to OUT[3..10].
PROG = [layer(), layer(in_bank=1, in_base=10, out_bank=0, out_base=30, out_c=2),
        layer(in_bank=0, in_base=30, in_c=2, k_rows=2, to_out=1, out_base=3, out_c=2)]
PROGRAM = types.SimpleNamespace(layers=PROG)  # what the check and mismatch_lines read of a Program


def memories(seed=0) -> dict[str, np.ndarray]:
    """What the memories held before the inference: leftovers of earlier runs, not zeros."""
    rng = np.random.default_rng(seed)
    return {"ACT0": rng.integers(0, 256, CFG.act_depth), "ACT1": rng.integers(0, 256, CFG.act_depth),
            "OUT": rng.integers(-128, 128, CFG.out_depth)}


def golden(seed=1) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (2, 2, 3))
    outs = [rng.integers(0, 256, (d.out_h, d.out_w, d.out_c)) if not d.to_out else
            rng.integers(-128, 128, (d.out_h, d.out_w, d.out_c)) for d in PROG]
    return x, outs


class FakeChip:
    """A chip's memories as the driver's `read_memories` returns them, with the writes of a
    correct run (input, then each layer's output) and optional stray writes after a layer."""

    def __init__(self, stray: dict[int, list[tuple[str, int, int]]] | None = None):
        self.mem = {k: np.array(v) for k, v in memories().items()}
        self.stray = stray or {}
        self.reads = 0

    async def read_memories(self):
        self.reads += 1
        return {k: v.copy() for k, v in self.mem.items()}

    def run_layer(self, i: int, out: np.ndarray) -> None:
        mem, base, n = output_region(PROG[i])
        self.mem[mem][base : base + n] = out.reshape(-1)
        for mem, addr, value in self.stray.get(i, []):
            self.mem[mem][addr] = value


def run_inference(chip: FakeChip, sb: Scoreboard, check: FullStateCheck, x, outs, inference=0) -> bool:
    async def body():
        sb.begin()
        await check.begin(chip, inference)
        chip.mem["ACT0"][5:17] = x.reshape(-1)  # the host's input write
        check.write_input(x)
        for i, out in enumerate(outs):
            chip.run_layer(i, out)
            await check.after_layer(chip, inference, i)
        return sb.end()

    return asyncio.run(body())


def scored(stray=None):
    x, outs = golden()
    chip = FakeChip(stray)
    sb = Scoreboard(len(PROG), ["conv", "mix", "head"])
    ok = run_inference(chip, sb, FullStateCheck(PROGRAM, [outs], sb), x, outs)
    return ok, sb, chip


def test_a_correct_run_matches_the_image_of_leftovers_input_and_outputs():
    """Leftover contents are not zeros: the image starts from the memories as read."""
    ok, sb, chip = scored()
    assert ok and sb.mismatches == [] and sb.memory_layers == len(PROG)
    assert chip.reads == 1 + len(PROG)  # once before the input, once after every layer


def test_one_word_past_the_output_is_a_write_outside_the_layers_output():
    ok, sb, _ = scored({0: [("ACT1", 22, 77)]})  # layer 0 writes ACT1[10..21]
    assert not ok and sb.layer_fail == [1, 0, 0]
    (mm,) = sb.mismatches
    assert isinstance(mm, MemoryMismatch)
    assert (mm.layer, mm.memory, mm.address, mm.got, mm.inside, mm.outside_count) == (0, "ACT1", 22, 77, False, 1)
    assert mm.expected == memories()["ACT1"][22]
    assert str(mm) == (f"inference 0 layer 0 (conv): write outside the layer's output: ACT1 (bank 1) address 22 "
                       f"expected {mm.expected} got 77 (layer's output: ACT1 10..21; ACT1 differs in 1 word(s) "
                       f"outside it, 0 inside)")


def test_writes_into_the_other_bank_and_the_output_memory_are_outside():
    """Layer 1 writes ACT0[30..37]; a stray word in ACT1 (the bank it reads) and one in OUT."""
    ok, sb, _ = scored({1: [("ACT1", 0, 200), ("OUT", 15, -3)]})
    assert not ok and sb.layer_fail == [0, 1, 0]
    got = {(m.memory, m.address, m.got, m.inside) for m in sb.mismatches}
    assert got == {("ACT1", 0, 200, False), ("OUT", 15, -3, False)}
    lines = [str(m) for m in sb.mismatches]
    assert any("ACT1 (bank 1) address 0" in ln and "write outside the layer's output" in ln for ln in lines)
    assert any(ln.startswith("inference 0 layer 1 (mix): write outside the layer's output: OUT address 15 ")
               for ln in lines)


def test_a_to_out_layer_writing_one_past_in_the_output_memory():
    ok, sb, _ = scored({2: [("OUT", 11, 5)]})  # layer 2 writes OUT[3..10]
    (mm,) = sb.mismatches
    assert (mm.layer, mm.memory, mm.address, mm.inside, mm.region) == (2, "OUT", 11, False, ("OUT", 3, 8))


def test_a_wrong_word_inside_the_output_is_reported_as_inside():
    """Outside words come first when both are wrong: they are what the output check cannot see."""
    ok, sb, _ = scored({0: [("ACT1", 12, 255)]})
    (mm,) = sb.mismatches
    assert mm.inside and (mm.address, mm.outside_count, mm.inside_count) == (12, 0, 1)
    assert "inside the layer's output: ACT1 (bank 1) address 12" in str(mm)
    _, sb, _ = scored({0: [("ACT1", 12, 255), ("ACT1", 40, 1), ("ACT1", 9, 1)]})
    (mm,) = sb.mismatches
    assert (mm.address, mm.inside, mm.outside_count, mm.inside_count) == (9, False, 2, 1)


def test_a_bug_is_reported_once_at_the_layer_that_made_it():
    """After a check the image is what was read: a stray word of layer 0 is not blamed on layer 1."""
    ok, sb, _ = scored({0: [("ACT0", 63, 1)]})
    assert [m.layer for m in sb.mismatches] == [0] and sb.layer_fail == [1, 0, 0]


def test_image_and_output_check_count_a_layer_once_per_inference():
    """A wrong value in the output slice is one mismatch and one failing layer, not two: the
    memory check adds only words outside the output."""
    x, outs = golden()
    sb = Scoreboard(len(PROG))
    sb.begin()
    wrong = outs[0].copy()
    wrong[0, 0, 0] ^= 1
    assert not sb.compare(0, 0, outs[0], wrong)
    image = MemoryImage(memories())
    image.write_layer(PROG[0], outs[0])
    got = {k: v.copy() for k, v in image.words.items()}
    got["ACT1"][10] ^= 1
    assert sb.compare_memories(0, 0, PROG[0], image, got)  # the same wrong value: reported once
    got["ACT1"][22] ^= 1
    assert not sb.compare_memories(0, 0, PROG[0], image, got)  # a word outside: news
    assert sb.layer_fail == [1, 0, 0] and not sb.end()
    assert [type(m).__name__ for m in sb.mismatches] == ["Mismatch", "MemoryMismatch"]
    assert sb.mismatches[1].address == 22 and sb.mismatches[1].inside_count == 1


def test_memory_mismatch_round_trips_through_the_testbench_json():
    """The testbench writes mismatches as dicts; the runner reads them back with Mismatch.from_dict
    and adds the layer's cycles for a waveform."""
    import json

    from aoncim.perf.cycles import layer_cycles

    _, sb, _ = scored({0: [("ACT1", 22, 77)]})
    d = json.loads(json.dumps([m.to_dict() for m in sb.mismatches]))
    back = [Mismatch.from_dict(m) for m in d]
    assert back == sb.mismatches
    (line,) = mismatch_lines(CFG, PROGRAM, back, "case-7")
    assert line.startswith("case-7 inference 0 layer 0 (conv): write outside the layer's output: ACT1 (bank 1)")
    assert line.endswith(f"the layer ran in cycles 0..{layer_cycles(CFG, PROG[0]) - 1} of the run "
                         "(START = 0, pauses excluded)")


def test_schedule_checks_the_first_inference_of_a_case(monkeypatch):
    monkeypatch.delenv("AONCIM_FULL_CHECK", raising=False)
    assert [full_check_due(i) for i in range(3)] == [True, False, False]
    monkeypatch.setenv("AONCIM_FULL_CHECK", "all")
    assert all(full_check_due(i) for i in range(3))
    monkeypatch.setenv("AONCIM_FULL_CHECK", "off")
    assert not any(full_check_due(i) for i in range(3))
    monkeypatch.setenv("AONCIM_FULL_CHECK", "sometimes")
    with pytest.raises(ValueError, match="AONCIM_FULL_CHECK"):
        full_check_due(0)


def test_an_unchecked_inference_forgets_the_image(monkeypatch):
    """The second inference is not checked (no reads); a later check starts from a fresh read, so
    what the unchecked inference left is not blamed on the checked one."""
    monkeypatch.delenv("AONCIM_FULL_CHECK", raising=False)
    x, outs = golden()
    chip = FakeChip({1: [("ACT1", 50, 9)]})
    sb = Scoreboard(len(PROG))
    check = FullStateCheck(PROGRAM, [outs, outs, outs], sb)
    assert not run_inference(chip, sb, check, x, outs, 0)  # checked: the stray word is found
    n = chip.reads
    assert run_inference(chip, sb, check, x, outs, 1) and chip.reads == n and check.image is None



def test_the_image_carries_to_the_next_case_until_forgotten(monkeypatch):
    """Loading a program writes no activation or output memory: the next case's first check starts
    from the last layer's read (no read of its own) and still finds a stray word; after `forget`
    (a calibration, error cases, a reset) it reads afresh."""
    monkeypatch.delenv("AONCIM_FULL_CHECK", raising=False)
    x, outs = golden()
    chip = FakeChip()
    sb = Scoreboard(len(PROG))
    check = FullStateCheck(PROGRAM, [outs], sb)
    assert run_inference(chip, sb, check, x, outs) and chip.reads == 1 + len(PROG)
    sb2 = Scoreboard(len(PROG))
    check.next_case(PROGRAM, [outs], sb2)
    chip.stray = {2: [("ACT0", 0, 1)]}
    assert not run_inference(chip, sb2, check, x, outs) and chip.reads == 1 + 2 * len(PROG)
    assert [(m.layer, m.memory, m.address) for m in sb2.mismatches] == [(2, "ACT0", 0)]
    check.forget()
    check.next_case(PROGRAM, [outs], Scoreboard(len(PROG)))
    run_inference(chip, check.sb, check, x, outs)
    assert chip.reads == 2 + 3 * len(PROG)


# ------------------------------------------------------------------------------ on the chip
@pytest.mark.slow
@pytest.mark.cosim
@pytest.mark.parametrize("name", ["tile_lane_mask", "pool_issue_mask"])
def test_one_word_past_the_output_is_caught_in_the_default_suite(name, tmp_path, monkeypatch):
    """Mutants of the catalogue (sim/mutants.py) whose last post-processing group enables one lane
    too many (MVM layers: stage P's lane mask; pooling: stage S's): on a layer whose channel count
    is not a multiple of pp_lanes, that lane writes one word past the layer's output at its last
    position (earlier extra words are overwritten by the next position). The default random
    co-simulation fails with a write outside the layer's output; with the whole-memory check off,
    the output slices alone pass it (the bug this check exists for). Builds the mutated RTL
    (1-2 min each on an idle 2-core machine, 7 under load)."""
    from aoncim.sim.mutants import CATALOGUE
    from aoncim.sim.mutation import run_mutant

    mutant = next(m for m in CATALOGUE if m.name == name)
    test = "tests/test_cosim_random.py::test_random_networks_bit_exact"
    monkeypatch.delenv("AONCIM_FULL_CHECK", raising=False)
    r = run_mutant(mutant, [test], tmp_path / "checked")
    assert r.killed and r.killer == test, r.log
    assert "write outside the layer's output" in r.log, r.log
    monkeypatch.setenv("AONCIM_FULL_CHECK", "off")  # the child inherits it; the build is cached now
    r = run_mutant(mutant, [test], tmp_path / "slices-only")
    assert not r.killed, r.log

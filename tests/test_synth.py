"""Generic synthesis of the chip (hw/synth.py): every synthesisable block maps to cells, the
behavioural array stays a black box, memories stay memories, and a latch fails the run."""
import json

import pytest
from amaranth import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.hw import synth
from aoncim.program import DESC_BITS
from aoncim.sim.jobs import SMALL_CFG

# Small enough to synthesise in a few seconds; the default config takes ~10 s (make synth).
SMALL = SMALL_CFG
BLOCKS = ("axil", "core", "core.host", "core.seq", "core.pp0")  # pp0..: the pp_lanes post-processors


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    return synth.synthesise_chip(SMALL, tmp_path_factory.mktemp("synth"))


def test_every_block_has_cells_and_no_latches(small_report):
    blocks = {b.path: b for b in small_report.blocks}
    for path in BLOCKS:
        assert blocks[path].cells > 0, path
    assert small_report.latches() == []
    assert small_report.total["cells"] == sum(b.cells * b.instances for b in small_report.blocks)
    assert small_report.total["flip_flops"] > 0


def test_array_is_a_black_box(small_report):
    assert small_report.black_boxes == {synth.ARRAY_MACRO: 1}
    array = {b.path: b for b in small_report.blocks}["core.array"]
    assert array.cells == 0 and array.component == "ArrayBlackBox"
    assert "PcmArray" not in {b.component for b in small_report.blocks}


def test_memories_are_reported_as_bits_not_flip_flops(small_report):
    c = SMALL
    sram_bits = (DESC_BITS * c.max_layers + c.param_depth * (c.pp_scale_bits + c.pp_bias_bits)
                 + 2 * c.act_depth * c.dac_bits + c.out_depth * c.out_bits)
    t = small_report.total
    assert t["memories"] >= 6 and t["memory_bits"] >= sram_bits
    # what Yosys kept is what was elaborated
    assert sum(m["bits"] for m in small_report.memory_list) == t["memory_bits"]
    assert len(small_report.memory_list) == t["memories"]
    # Mapped to flip-flops, the two activation banks alone would be act_depth * dac_bits each.
    assert t["flip_flops"] < 2 * c.act_depth * c.dac_bits


def test_report_files(small_report, tmp_path):
    jp, cp = small_report.write(tmp_path)
    d = json.loads(jp.read_text())
    assert d["config_hash"] == SMALL.config_hash and d["total"] == small_report.total
    rows = cp.read_text().splitlines()
    assert rows[0].startswith("block,component") and rows[-1].startswith("total,")
    assert len(rows) == len(small_report.blocks) + 2


LATCH_V = """
module latchy(input en, input [3:0] d, output reg [3:0] q);
  always @* if (en) q = d;   // no else: q keeps its value, a latch
endmodule
"""


class LatchDemo(wiring.Component):
    """Amaranth itself cannot describe a latch (no combinational loops, every comb signal has a
    default), so the only way one gets in is an instance of external HDL, as here."""
    en: In(1)
    d: In(4)
    q: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.l = Instance("latchy", i_en=self.en, i_d=self.d, o_q=self.q)
        return m


def test_latch_is_caught(tmp_path):
    with pytest.raises(synth.LatchError, match=r"latch inferred in latch_demo \(latchy: 4 x \$_DLATCH_P_\)"):
        synth.synthesise(LatchDemo(), "latch_demo", tmp_path, sources={"latchy.v": LATCH_V})


def test_bad_config_is_one_line(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text("rows = 1000\n")
    assert synth.main(["--config", str(p), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aoncim synth: error:") and "rows=1000" in err[0]

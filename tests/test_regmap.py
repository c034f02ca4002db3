"""The register table in aoncim.regmap: the SystemRDL it emits compiles and holds every register,
field and window at the table's address, width and access; the table's resets are the RTL's; and
the names the RTL and driver use (Reg, the bit masks) are derived from it unchanged."""
import subprocess
import sys

import pytest

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.regmap import (ALPHA_BASE, CTRL_CONTINUE, CTRL_START, CTRL_STEP, IRQ_DONE, IRQ_ERROR, IRQ_PAUSED,
                           REGISTERS, ST_BUSY, ST_DONE, ST_ERROR, ST_PAUSED, WINDOWS, Access, AddressMap, Reg,
                           Region, elaborated, systemrdl)
from aoncim.sim.jobs import SMALL_CFG

SMALL = SMALL_CFG
CONFIGS = pytest.mark.parametrize("cfg", [DEFAULT_CONFIG, SMALL], ids=["default", "small"])


def _sw(node) -> str:
    """A compiled field's or mem's software access as the table's Access name."""
    from systemrdl.node import FieldNode
    from systemrdl.rdltypes import AccessType, OnWriteType

    if isinstance(node, FieldNode) and node.get_property("onwrite") == OnWriteType.woclr:
        return "W1C"
    return {AccessType.r: "RO", AccessType.rw: "RW", AccessType.w: "W"}[node.get_property("sw")]


@CONFIGS
def test_compiled_rdl_holds_every_register_field_and_window(cfg):
    from systemrdl.node import MemNode

    amap = AddressMap(cfg)
    with elaborated(cfg) as root:
        top = root.top
        regs = top.get_child_by_name(Region.REGS.name)
        assert regs.absolute_address == amap.base(Region.REGS)
        assert regs.size <= 4 * amap.window_words[Region.REGS]
        names = [c.inst_name for c in regs.children()]
        assert names == [r.name for r in REGISTERS]
        for r in REGISTERS:
            node = regs.get_child_by_name(r.name)
            assert node.raw_absolute_address == amap.reg(Reg[r.name]), r.name  # of element 0 in an array
            assert node.get_property("regwidth") == 32
            if r.count:
                assert node.is_array and node.array_dimensions == [r.length(cfg)] and node.array_stride == 4
                last = r.length(cfg) - 1
                assert node.raw_absolute_address + last * node.array_stride == amap.alpha(last)
            else:
                assert not node.is_array
            fields = {f.inst_name: f for f in node.fields()}
            assert set(fields) == {f.name for f in r.all_fields()}, r.name
            for f in r.all_fields():
                n = fields[f.name]
                assert (n.lsb, n.width) == (f.lsb, f.bits(cfg)), (r.name, f.name)
                assert _sw(n) == (f.access or r.access).name, (r.name, f.name)
                assert n.get_property("singlepulse") == f.self_clearing
                assert n.get_property("reset") == (r.reset_value(cfg) >> f.lsb) & ((1 << f.bits(cfg)) - 1)
        mems = {c.inst_name: c for c in top.children() if isinstance(c, MemNode)}
        assert set(mems) == {w.region.name for w in WINDOWS} == {r.name for r in Region} - {Region.REGS.name}
        for w in WINDOWS:
            m = mems[w.region.name]
            assert m.absolute_address == amap.base(w.region)
            assert m.get_property("mementries") == amap.window_words[w.region]
            assert m.get_property("memwidth") == 32 and _sw(m) == w.access.name


def test_names_the_rtl_and_driver_use_are_unchanged():
    """The offsets and masks the RTL, driver and C hosts were built against (register-map version 1)."""
    assert {r.name: int(r) for r in Reg} == {
        "ID": 0, "CONFIG_HASH": 1, "CTRL": 2, "STATUS": 3, "IRQ_STATUS": 4, "IRQ_ENABLE": 5, "NUM_LAYERS": 6,
        "NOISE_SEED": 7, "CYCLES": 8, "MVMS": 9, "MVM_BASE": 10, "ACT_PACK": 11, "ALPHA": 16}
    assert ALPHA_BASE == 16
    assert (CTRL_START, CTRL_CONTINUE, CTRL_STEP) == (1, 2, 256)
    assert (ST_BUSY, ST_DONE, ST_PAUSED, ST_ERROR) == (1, 2, 4, 8)
    assert (IRQ_DONE, IRQ_PAUSED, IRQ_ERROR) == (1, 2, 4)


def _rtl_resets(cfg: AonCimConfig, offsets: list[int]) -> dict[int, int]:
    """Word offset in REGS -> value read over the register bus right after reset (HostInterface
    alone, its status inputs at 0 as the sequencer's are after reset)."""
    from amaranth.sim import Simulator

    from aoncim.hw.host import HostInterface

    dut = HostInterface(cfg)
    values: dict[int, int] = {}

    async def bench(ctx):
        for off in offsets:
            ctx.set(dut.bus.addr, off)  # REGS is region 0: the word offset is the bus address
            ctx.set(dut.bus.r_stb, 1)
            await ctx.tick()
            ctx.set(dut.bus.r_stb, 0)
            values[off] = ctx.get(dut.bus.r_data)  # the bus answers one cycle after r_stb

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return values


@CONFIGS
def test_table_resets_are_the_rtls(cfg):
    words = {r.word + i: r for r in REGISTERS for i in range(r.length(cfg))}
    got = _rtl_resets(cfg, list(words))
    assert got == {w: r.reset_value(cfg) for w, r in words.items()}


def test_rdl_is_config_specific():
    text = systemrdl(SMALL)
    assert f"{SMALL.config_hash:#010x}" in text and f"ALPHA[{SMALL.max_layers}]" in text
    assert f"mementries = {AddressMap(SMALL).window_words[Region.GCODE]};" in text
    # The depthwise weight window: dw_depth words of signed dw_weight_bits, in region 8.
    assert f"mementries = {SMALL.dw_depth};" in text and f"signed {SMALL.dw_weight_bits} bits" in text


def test_dww_window_and_region_select():
    """DWW is the ninth region: four select bits (sixteen regions, the unused ones named in the
    RDL's description), every window at its region's base, the address map one bit wider."""
    from aoncim.regmap import REGION_BITS

    amap = AddressMap(SMALL)
    assert int(Region.DWW) == 8 and REGION_BITS == 4 and len(Region) == 9
    assert amap.word_addr_bits == amap.region_word_bits + 4
    assert amap.window_words[Region.DWW] == SMALL.dw_depth
    assert amap.base(Region.DWW) == 8 << (amap.region_word_bits + 2)
    assert "top 4 address bits (the other 7 read 0 and ignore writes)" in systemrdl(SMALL)


def test_ipxact_has_an_address_block_per_region():
    from xml.dom import minidom

    from aoncim.hw.docgen import regmap_ipxact

    amap = AddressMap(SMALL)
    doc = minidom.parseString(regmap_ipxact(SMALL))
    blocks = {b.getElementsByTagName("ipxact:name")[0].firstChild.data:
              b.getElementsByTagName("ipxact:baseAddress")[0].firstChild.data
              for b in doc.getElementsByTagName("ipxact:addressBlock")}
    assert blocks == {r.name: f"'h{amap.base(r):x}" for r in Region}


@pytest.mark.parametrize("argv", [["--help"], ["config"]])
def test_startup_does_not_import_peakrdl(argv, tmp_path):
    """The RDL compiler and PeakRDL are imported only by the commands that generate from them."""
    probe = ("import sys\nfrom aoncim.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0].startswith(('systemrdl', 'peakrdl'))),"
             " file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr

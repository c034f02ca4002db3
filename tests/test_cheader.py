"""`aoncim export-c`: the C99 header compiles with gcc -std=c99 -Wall -Werror, its register map
(PeakRDL-cheader's, from aoncim.regmap's table) has the table's offsets, masks and resets, and its
embedded bytes are the image."""
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from aoncim.cli import main
from aoncim.config import DEFAULT_CONFIG as CFG
from aoncim.firmware.cheader import c_header
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.image import VERSION, ImageError, write_image
from aoncim.model.patterns import make_patterns
from aoncim.model.tiny import load_tiny
from aoncim.regmap import CTRL_START, REGISTERS, ST_ERROR, WINDOWS, AddressMap, ErrorCode, Reg, Region

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not installed (apt-get install gcc)")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    calib, _ = make_patterns(64, seed=3)
    blob = write_image(compile_network(load_tiny(), CFG, calib), CFG)
    path = tmp_path_factory.mktemp("img") / "tiny.aonc"
    path.write_bytes(blob)
    return path, blob


@pytest.fixture(scope="module")
def header(image):
    path, _ = image
    out = path.with_name("tiny_image.h")
    r = CliRunner().invoke(main, ["export-c", str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def embedded_bytes(text: str) -> bytes:
    body = re.search(r"aoncim_image\[AONCIM_IMAGE_LEN\] = \{(.*?)\};", text, re.S).group(1)
    return bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2}),", body))


def test_header_holds_the_image_and_the_register_map(image, header):
    _, blob = image
    text = header.read_text()
    assert embedded_bytes(text) == blob
    want = {"AONCIM_CONFIG_HASH": f"{CFG.config_hash:#010x}u", "AONCIM_IMAGE_LEN": f"{len(blob)}u",
            "AONCIM_IMAGE_VERSION": f"{VERSION}u"}
    for name, value in want.items():
        assert re.search(rf"^#define {name}\s+{value}\b", text, re.M), name
    for r in REGISTERS:  # every field of every register, every window, every error code
        for f in r.all_fields():
            macro = f"AONCIM_TOP__REGS__{r.name}__{f.name}"
            assert re.search(rf"^#define {macro}_bp {f.lsb}$", text, re.M), macro
            assert re.search(rf"^#define {macro}_bw {f.bits(CFG)}$", text, re.M), macro
    for w in WINDOWS:
        assert re.search(rf"uint32_t mem\[{AddressMap(CFG).window_words[w.region]}\];\n}} aoncim_top__{w.region.name}_t;",
                         text), w.region.name
    for e in ErrorCode:
        assert f"AONCIM_ERR_{e.name} = {int(e)}," in text


@needs_gcc
def test_header_compiles_and_matches_python(image, header, tmp_path):
    _, blob = image
    amap = AddressMap(CFG)
    checks = {
        "AONCIM_CONFIG_HASH": CFG.config_hash, "AONCIM_CHIP_ID": 0xA0C10001,
        "AONCIM_ADDR(REGS.ALPHA[3])": amap.alpha(3),
        "AONCIM_GCODE_ADDR(5, 7)": amap.gcode(5, 7),
        "AONCIM_TOP__REGS__CTRL__START_bm": CTRL_START, "AONCIM_TOP__REGS__STATUS__ERROR_bm": ST_ERROR,
        "AONCIM_TOP__REGS__STATUS__ERROR_CODE_bm": 0xFF << 16, "AONCIM_TOP__REGS__ALPHA__ALPHA_reset": CFG.alpha_one,
        "AONCIM_ERR_ACT_OVERLAP": int(ErrorCode.ACT_OVERLAP), "AONCIM_IMAGE_LEN": len(blob),
        "AONCIM_GCODE_MINUS_SHIFT": 16, "sizeof aoncim_image": len(blob), "AONCIM_CFG_ROWS": CFG.rows,
    }
    # Every register's and window's byte address in the C struct is the Python address map's.
    checks |= {f"AONCIM_ADDR(REGS.{r.name}{'[0]' if r.count else ''})": amap.reg(Reg[r.name]) for r in REGISTERS}
    checks |= {f"AONCIM_ADDR({region.name})": amap.base(region) for region in Region}
    checks |= {f"sizeof(((aoncim_top_t *)0)->{w.region.name})": 4 * amap.window_words[w.region] for w in WINDOWS}
    src = tmp_path / "check.c"
    src.write_text(f'#include "{header.name}"\n#include <stdio.h>\n'
                   + "".join(f'_Static_assert({k} == {v}u, "{k}");\n' for k, v in checks.items())
                   + "int main(void) { return fwrite(aoncim_image, 1, AONCIM_IMAGE_LEN, stdout) != AONCIM_IMAGE_LEN; }\n")
    flags = ["-std=c99", "-Wall", "-Werror", f"-I{header.parent}"]
    r = subprocess.run([GCC, *flags, "-c", str(src), "-o", str(tmp_path / "check.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # Linked and run, the program's bytes are the image: the C compiler reads the array as written.
    exe = tmp_path / "check"
    r = subprocess.run([GCC, *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == blob


def test_bad_image_is_one_line(image, tmp_path):
    _, blob = image
    with pytest.raises(ImageError):
        c_header(blob[:-1])
    bad = tmp_path / "bad.aonc"
    bad.write_bytes(blob[: len(blob) // 2])
    r = CliRunner().invoke(main, ["export-c", str(bad), "-o", str(tmp_path / "x.h")])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("aoncim: error: ") and "CRC-32" in lines[0]
    assert not (tmp_path / "x.h").exists()

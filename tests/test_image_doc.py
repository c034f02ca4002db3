"""docs/image-format.md says what firmware/image.py does: its tables are checked against the code."""
import ast
import zlib
from pathlib import Path

from aoncim.config import DEFAULT_CONFIG
from aoncim.firmware import image
from aoncim.firmware.image import _ENTRY, _HEADER, MAGIC, OPTIONAL, VERSION, Section
from aoncim.program import DESC_BITS, DESC_WORDS, DESCRIPTOR_FIELDS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "image-format.md").read_text()


def table_rows(first_header: str) -> list[list[str]]:
    """Cells of the Markdown table whose header row starts with `| first_header |`."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("`") for c in line.strip("|").split(" | ")])
    return rows


def test_header_and_table_layout():
    assert f"# Program image format (version {VERSION})" in DOC
    assert f"`struct` format `{_HEADER.format}`" in DOC and f"`struct` format `{_ENTRY.format}`" in DOC
    assert f"{_HEADER.size} bytes" in DOC and f"{_ENTRY.size} bytes per section" in DOC
    offsets = [int(r[0]) for r in table_rows("offset")]
    sizes = [8, 2, 2, 4, 4]  # _HEADER: 8s H H I I
    assert offsets == [sum(sizes[:i]) for i in range(5)] and sum(sizes) == _HEADER.size
    assert " ".join(f"{b:02x}" for b in MAGIC) in DOC
    # TinyNet's image: every section but DWW (it has no depthwise layer)
    example = _HEADER.pack(MAGIC, VERSION, 0, DEFAULT_CONFIG.config_hash, len(Section) - 1)
    assert example.hex(" ") in DOC and f"{DEFAULT_CONFIG.config_hash:#010x}" in DOC
    assert f"`0x{zlib.crc32(b'123456789'):08X}`".lower() in DOC.lower()


def test_section_ids():
    rows = table_rows("id")
    assert [(int(r[0]), r[1], r[2]) for r in rows] == \
        [(int(s), s.name, "no" if s in OPTIONAL else "yes") for s in Section]


def test_descriptor_fields():
    rows = table_rows("field")
    lsb, want = 0, []
    for name, bits in DESCRIPTOR_FIELDS:
        want.append([name, str(bits), f"{lsb + bits - 1}:{lsb}"])
        lsb += bits
    want.append(["(zero)", str(DESC_BITS - lsb), f"{DESC_BITS - 1}:{lsb}"])
    assert rows == want
    assert f"`DESC_WORDS` = {DESC_WORDS} u32 words per layer" in DOC


def test_every_reader_error_is_documented():
    """The literal text of every ImageError the module raises appears in the doc's error table."""
    tree = ast.parse(Path(image.__file__).read_text())
    chunks = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ImageError" and node.args:
            arg = node.args[0]
            parts = arg.values if isinstance(arg, ast.JoinedStr) else [arg]
            chunks += [p.value for p in parts if isinstance(p, ast.Constant) and len(p.value.strip()) >= 6]
    assert len(chunks) > 30
    flat = DOC.replace("`", "")
    missing = [c for c in chunks if c not in flat]
    assert not missing, missing

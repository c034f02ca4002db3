"""Fuzzing the image reader: every corrupted or malformed image is refused with one ImageError line.

Mutants of valid images (a row-tiled network, a network with batch norm and pooling, one without
the optional CALIB section, and one with depthwise layers and the optional DWW section): bit flips, truncation, extension, a corrupted section table
with the CRC recomputed (so the structural checks run, not only the CRC), sections reordered,
duplicated or missing, a wrong config hash, a wrong version. The reader must raise ImageError
whose message is one line, never another exception, and accept a mutant only if it is the
original image. Mutations that keep the structure but change the payload (with the CRC
recomputed) are images of another program: those may be accepted, but only in canonical form.

Hypothesis runs derandomized (same examples every run) with few examples by default; the `slow`
variants run many more (`make test-slow`).
"""
import dataclasses
import struct
import zlib
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.image import _ENTRY, _HEADER, MAGIC, OPTIONAL, VERSION, ImageError, Section, read_image, write_image

# Small array so that the GCODE section does not drown the structure: the 144-row linear layer and
# the 270-row convolution take row tiles (contract step 12).
CFG = AonCimConfig(rows=128, cols=64, n_adcs=8, act_depth=2048, out_depth=64, param_depth=256, max_layers=16,
                   read_noise_lsb=0.0, dw_depth=256)


def _tiled_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(30, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 36, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))


def _pool_net():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 12, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(12, 10, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 4))
    bn = net[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


@cache
def images() -> dict[str, bytes]:
    tiled = compile_network(_tiled_net(), CFG, torch.rand(32, 30, 4, 4, generator=torch.Generator().manual_seed(2)))
    pool = compile_network(_pool_net(), CFG, torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(3)))
    from test_cosim_dwconv import chain_program

    return {"tiled": write_image(tiled, CFG), "pool": write_image(pool, CFG),
            "no_calib": write_image(dataclasses.replace(pool, calib_codes=None), CFG),
            "dwconv": write_image(chain_program(6, CFG), CFG)}


NAMES = ["tiled", "pool", "no_calib", "dwconv"]


# ------------------------------------------------------------------------------------ helpers
def table(blob: bytes) -> list[tuple[int, int, int]]:
    """(id, offset, length) per section table entry of a valid image."""
    count = _HEADER.unpack_from(blob)[4]
    return [_ENTRY.unpack_from(blob, _HEADER.size + _ENTRY.size * k) for k in range(count)]


def payloads(blob: bytes) -> list[tuple[int, bytes]]:
    return [(sid, blob[off : off + length]) for sid, off, length in table(blob)]


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def assemble(sections: list[tuple[int, bytes]], chash: int, version: int = VERSION, count: int | None = None) -> bytes:
    """An image laid out as the writer does it, for any list of (id, payload): what a buggy or
    hostile writer could produce with a correct CRC."""
    offset = _HEADER.size + _ENTRY.size * len(sections)
    head = [_HEADER.pack(MAGIC, version, 0, chash, len(sections) if count is None else count)]
    for sid, blob in sections:
        head.append(_ENTRY.pack(sid, offset, len(blob)))
        offset += len(blob)
    return with_crc(b"".join(head) + b"".join(b for _, b in sections))


def with_table(blob: bytes, entries: list[tuple[int, int, int]]) -> bytes:
    body = bytearray(blob[:-4])
    for k, e in enumerate(entries):
        _ENTRY.pack_into(body, _HEADER.size + _ENTRY.size * k, *e)
    return with_crc(bytes(body))


def rejected(mutant: bytes, original: bytes) -> str | None:
    """The reader's one-line message, or None if it accepted the original image itself. Any other
    exception escapes and fails the test."""
    try:
        read_image(mutant)
    except ImageError as e:
        msg = str(e)
        assert msg and "\n" not in msg, repr(msg)
        return msg
    assert mutant == original, "a mutant image was accepted"
    return None


def flip(blob: bytes, bits) -> bytes:
    b = bytearray(blob)
    for bit in bits:
        b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def boundaries(blob: bytes) -> list[int]:
    """Every place a truncation can cut something in two: header fields, table entries, sections."""
    n, t = len(blob), table(blob)
    cuts = {0, 8, 10, 12, 16, _HEADER.size, n - 4, n - 1}
    cuts |= {_HEADER.size + _ENTRY.size * k + d for k in range(len(t) + 1) for d in (0, 4, 8)}
    cuts |= {x for _, off, length in t for x in (off, off + length // 2, off + length)}
    return sorted(c + d for c in cuts for d in (-1, 0, 1) if 0 <= c + d < n)


def fuzz(max_examples: int):
    """Derandomized hypothesis settings: the same examples on every run, no example database."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


FAST, SLOW = 200, 5000
SIZES = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="many", marks=pytest.mark.slow)]


# ------------------------------------------------------------------------------------ deterministic classes
@pytest.mark.parametrize("name", NAMES)
def test_originals_are_accepted_and_canonical(name):
    blob = images()[name]
    prog, cfg = read_image(blob, CFG)
    assert cfg == CFG and write_image(prog, cfg) == blob
    assert (Section.CALIB in {Section(s) for s, _, _ in table(blob)}) == (name not in ("no_calib", "dwconv"))
    assert (Section.DWW in {Section(s) for s, _, _ in table(blob)}) == (name == "dwconv")


@pytest.mark.parametrize("name", NAMES)
def test_truncation_at_every_boundary(name):
    blob = images()[name]
    for cut in boundaries(blob):
        msg = rejected(blob[:cut], blob)
        assert ("shorter than" in msg) if cut < _HEADER.size + 4 else ("CRC-32 mismatch" in msg), (cut, msg)


@pytest.mark.parametrize("name", NAMES)
def test_every_single_bit_of_header_and_table(name):
    blob = images()[name]
    end = _HEADER.size + _ENTRY.size * len(table(blob))
    for bit in range(8 * end):
        msg = rejected(flip(blob, [bit]), blob)
        if 8 * 8 <= bit < 10 * 8:
            assert "format version" in msg
        elif bit >= 10 * 8:
            assert "CRC-32 mismatch" in msg


@pytest.mark.parametrize("name", NAMES)
def test_wrong_version_and_config_hash(name):
    blob = images()[name]
    chash = _HEADER.unpack_from(blob)[3]
    for v in (0, 1, 2, VERSION + 1, 0xFFFF):
        assert "format version" in rejected(assemble(payloads(blob), chash, version=v), blob)
    for h in (chash ^ 1, chash ^ 0x80000000, 0, 0xFFFFFFFF):
        assert "does not match the CONFIG section" in rejected(assemble(payloads(blob), h), blob)
    # A valid image for another chip is refused when the chip's config is given.
    with pytest.raises(ImageError, match="recompile for this config"):
        read_image(blob, dataclasses.replace(CFG, read_noise_lsb=0.5))


@pytest.mark.parametrize("name", NAMES)
def test_reordered_duplicated_missing_and_unknown_sections(name):
    blob = images()[name]
    chash, secs = _HEADER.unpack_from(blob)[3], payloads(blob)
    assert assemble(secs, chash) == blob  # the helper lays sections out exactly as the writer does
    for i in range(len(secs)):
        for j in range(i + 1, len(secs)):
            swapped = list(secs)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            assert "id order" in rejected(assemble(swapped, chash), blob)
        dup = secs[: i + 1] + [secs[i]] + secs[i + 1 :]
        msg = rejected(assemble(dup, chash), blob)
        assert "appears twice" in msg or "section count" in msg
        if Section(secs[i][0]) not in OPTIONAL:  # CALIB, IO, DWW: a program may lack them
            assert "missing section" in rejected(assemble(secs[:i] + secs[i + 1 :], chash), blob)
    for sid in (0, len(Section) + 1, 0xFFFFFFFF):
        assert "unknown section id" in rejected(assemble(secs[:-1] + [(sid, secs[-1][1])], chash), blob)
    for count in (0, len(Section) + 1, 0xFFFFFFFF):
        assert "section count" in rejected(assemble(secs, chash, count=count), blob)


@pytest.mark.parametrize("name", NAMES)
def test_section_table_offsets_and_lengths(name):
    """Every small change of an offset or a length, with the CRC made right again."""
    blob = images()[name]
    t = table(blob)
    for k in range(len(t)):
        for field in (1, 2):
            for d in (-8, -4, -2, -1, 1, 2, 3, 4, 8, 1000, 1 << 31):
                e = list(t[k])
                e[field] = (e[field] + d) % (1 << 32)
                rejected(with_table(blob, t[:k] + [tuple(e)] + t[k + 1 :]), blob)
        for i in range(len(t)):  # point entry k at another section's bytes, keeping its id
            if i != k:
                rejected(with_table(blob, t[:k] + [(t[k][0], t[i][1], t[i][2])] + t[k + 1 :]), blob)


@pytest.mark.parametrize("name", NAMES)
def test_extension(name):
    blob = images()[name]
    for extra in (b"\0", b"\0" * 4, b"\xff" * 7, blob[:64]):
        assert "CRC-32 mismatch" in rejected(blob + extra, blob)
        assert "stray bytes" in rejected(with_crc(blob[:-4] + extra), blob)
        # Grown inside the last section (its length in the table follows) is not the writer's layout.
        t = table(blob)
        if len(extra) % 4 == 0:
            sid, off, length = t[-1]
            rejected(with_table(with_crc(blob[:-4] + extra), t[:-1] + [(sid, off, length + len(extra))]), blob)


def test_dww_section_checks():
    """The DWW section: one i8 weight per DWW word, exactly dw_depth of them (padded to a whole
    word); weights outside the config's dw_weight_bits, or depthwise layers without the section,
    are programs the chip cannot run; the section without depthwise layers is a valid program."""
    from test_cosim_dwconv import chain_program

    blob = images()["dwconv"]
    chash, secs = _HEADER.unpack_from(blob)[3], payloads(blob)
    k = [s for s, _ in secs].index(Section.DWW)
    for cut in (secs[k][1][:-4], secs[k][1] + b"\0" * 4):
        msg = rejected(assemble(secs[:k] + [(Section.DWW, cut)] + secs[k + 1 :], chash), blob)
        assert f"DWW section holds {len(cut)} weights; the chip's DWW has dw_depth={CFG.dw_depth}" in msg, msg
    msg = rejected(assemble(secs[:k] + secs[k + 1 :], chash), blob)
    assert "program invalid for its config: layer 0 (L0:dwconv) is a depthwise convolution but the program has no " \
           "dw_weights" in msg, msg
    # 6-bit weights: 40 is not one.
    cfg6 = dataclasses.replace(CFG, dw_weight_bits=6, dw_sum_bits=18)
    prog = chain_program(6, cfg6)
    good = write_image(prog, cfg6)
    bad = bytearray(good)
    t = table(good)
    off = next(o for s, o, _ in t if s == Section.DWW)
    bad[off + 3] = 40
    msg = rejected(with_crc(bytes(bad[:-4])), good)
    assert "dw_weights outside -32..31 (signed dw_weight_bits=6)" in msg, msg
    # Weights without depthwise layers: kept, and canonical.
    plain = dataclasses.replace(prog, layers=prog.layers[2:3], names=prog.names[2:3], calib_codes=None,
                                alpha=prog.alphas(cfg6)[:1])
    r0, nr, c0, nc = plain.used_rect(0)
    keep = np.zeros(prog.g_plus.shape, dtype=bool)
    keep[r0 : r0 + nr, c0 : c0 + nc] = True
    plain = dataclasses.replace(plain, g_plus=np.where(keep, prog.g_plus, 0), g_minus=np.where(keep, prog.g_minus, 0))
    assert read_image(write_image(plain, cfg6))[0] == plain
    # A DWW smaller than a word (dw_depth 2): its two bytes padded to four.
    tiny = dataclasses.replace(CFG, load_lanes=2, pp_lanes=2, dw_depth=2)
    prog2 = dataclasses.replace(plain, dw_weights=prog.dw_weights[:2])
    img = write_image(prog2, tiny)
    assert next(n for s, _, n in table(img) if s == Section.DWW) == 4 and read_image(img)[0] == prog2


# ------------------------------------------------------------------------------------ hypothesis
def _bits(blob: bytes):
    """Bit positions anywhere, or concentrated on the header, table and small sections."""
    head = 8 * table(blob)[5][1]  # everything before GCODE
    return st.one_of(st.integers(0, 8 * len(blob) - 1), st.integers(0, head - 1))


@pytest.mark.parametrize("n", SIZES)
def test_random_bit_flips(n):
    @fuzz(n)
    @given(st.data(), st.sampled_from(NAMES))
    def check(data, name):
        blob = images()[name]
        bits = data.draw(st.lists(_bits(blob), min_size=1, max_size=8))
        rejected(flip(blob, bits), blob)

    check()


@pytest.mark.parametrize("n", SIZES)
def test_random_truncation_and_extension(n):
    @fuzz(n)
    @given(st.data(), st.sampled_from(NAMES), st.booleans())
    def check(data, name, fix_crc):
        blob = images()[name]
        if data.draw(st.booleans()):
            mutant = blob[: data.draw(st.integers(0, len(blob) - 1))]
        else:
            mutant = blob + data.draw(st.binary(min_size=1, max_size=64))
        rejected(with_crc(mutant[:-4]) if fix_crc and len(mutant) >= 4 else mutant, blob)

    check()


@pytest.mark.parametrize("n", SIZES)
def test_random_section_table_with_valid_crc(n):
    @fuzz(n)
    @given(st.data(), st.sampled_from(NAMES))
    def check(data, name):
        blob = images()[name]
        t = [list(e) for e in table(blob)]
        for _ in range(data.draw(st.integers(1, 3))):
            e = t[data.draw(st.integers(0, len(t) - 1))]
            field = data.draw(st.integers(0, 2))
            e[field] = data.draw(st.one_of(st.integers(0, 2**32 - 1),
                                           st.integers(-16, 16).map(lambda d, v=e[field]: (v + d) % 2**32)))
        mutant = with_table(blob, [tuple(e) for e in t])
        rejected(mutant, blob)

    check()


@pytest.mark.parametrize("n", SIZES)
def test_random_header_with_valid_crc(n):
    @fuzz(n)
    @given(st.sampled_from(NAMES), st.integers(8, _HEADER.size - 1), st.integers(1, 255))
    def check(name, pos, xor):
        blob = images()[name]
        body = bytearray(blob[:-4])
        body[pos] ^= xor
        rejected(with_crc(bytes(body)), blob)

    check()


@pytest.mark.parametrize("n", SIZES)
def test_payload_changes_with_valid_crc_are_refused_or_canonical(n):
    """Flipping payload bits and fixing the CRC can make a valid image of another program (a
    different conductance code, say): then it must read back and re-write byte for byte."""
    @fuzz(n)
    @given(st.data(), st.sampled_from(NAMES))
    def check(data, name):
        blob = images()[name]
        t = table(blob)
        start, (_, g_off, g_len) = t[0][1], t[5]  # first section; GCODE, mostly codes
        anywhere = st.integers(8 * start, 8 * (len(blob) - 4) - 1)
        not_codes = st.one_of(st.integers(8 * start, 8 * g_off - 1),  # CONFIG .. PP_BIAS
                              st.integers(8 * g_off, 8 * g_off + 8 * 20 - 1),  # rect count, first rect
                              st.integers(8 * (g_off + g_len), 8 * (len(blob) - 4) - 1))  # ALPHA, CALIB
        bits = data.draw(st.lists(st.one_of(anywhere, not_codes), min_size=1, max_size=4))
        mutant = with_crc(flip(blob, bits)[:-4])
        try:
            prog, cfg = read_image(mutant)
        except ImageError as e:
            assert "\n" not in str(e)
            return
        assert write_image(prog, cfg) == mutant

    check()

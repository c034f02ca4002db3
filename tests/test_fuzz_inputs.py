"""Fuzzing every file a user hands the `aoncim` command line: program images, config files and
checkpoints. Each mutant goes through the CLI in-process (click's runner) and must end in one of
two ways: exit 0, or the documented error exit with exactly one `aoncim: error:` line and no
traceback. Any other exception, a multi-line error or a call slower than `LIMIT_S` fails.

- Images: mutants of valid images (the three of tests/test_image_fuzz.py and random programs of
  the small co-simulation config `RANDOM_CFG`) through `aoncim inspect` and `aoncim export-c`.
  Accepted mutants (a payload edit with the CRC recomputed that still reads as a canonical image of
  another program) are co-simulated: every layer bit-exact, or the chip refuses with one line.
- Configs: mutants of `aoncim config --dump` (TOML) and of JSON configs through `aoncim config
  --config FILE`, a sample of the refused ones through `aoncim verilog --config FILE`.
- Checkpoints: mutants of the shipped KWS checkpoint through the checkpoint validator and, for a
  sample, `aoncim compile`.

Mutants come from seeded numpy generators: the same mutants on every run. The `slow` variants run
the full counts (>= 10,000 images, >= 1,000 configs and checkpoints); the fast ones ~50 each, so
the default suite exercises the code. Each prints its tally (accepted / rejected per mutation kind).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import struct
import time
import traceback
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import invoke
from aoncim.config import DEFAULT_CONFIG, AonCimConfig, ConfigError
from aoncim.firmware.image import _ENTRY, _HEADER, VERSION, ImageError, Section, read_image, write_image
from aoncim.program import DESC_WORDS, DESCRIPTOR_FIELDS
from aoncim.sim.random_nets import RANDOM_CFG, random_case

LIMIT_S = 5.0  # wall time one CLI call may take on a mutant (a hang or a quadratic blow-up fails)


# ------------------------------------------------------------------------------------ CLI contract
class Hang(BaseException):
    """Raised by the alarm inside a call that outlived its deadline (BaseException: nothing in the
    CLI may swallow it)."""


@contextlib.contextmanager
def deadline(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Tally:
    """Outcomes per mutation kind, and every contract violation (reported together at the end)."""

    def __init__(self, what: str):
        self.what = what
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.failures: list[str] = []
        self.slowest = 0.0

    def add(self, kind: str, outcome: str) -> None:
        self.counts[kind][outcome] += 1

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    def total(self, outcome: str | None = None) -> int:
        return sum(c[outcome] if outcome else sum(c.values()) for c in self.counts.values())

    def report(self) -> str:
        outcomes = sorted({o for c in self.counts.values() for o in c})
        w = max(len(k) for k in self.counts) + 2
        lines = [f"{self.what}: {self.total()} mutants, slowest call {self.slowest:.3f} s",
                 f"{'kind':<{w}}" + "".join(f"{o:>{len(o) + 3}}" for o in outcomes)]
        for kind in sorted(self.counts):
            lines.append(f"{kind:<{w}}" + "".join(f"{self.counts[kind][o]:>{len(o) + 3}}" for o in outcomes))
        lines.append(f"{'total':<{w}}" + "".join(f"{self.total(o):>{len(o) + 3}}" for o in outcomes))
        return "\n".join(lines)

    def check(self) -> None:
        print("\n" + self.report())
        if self.failures:
            heads = "\n".join(f"- {f.splitlines()[0][:300]}" for f in self.failures[:40])
            detail = "\n\n".join(f[-3000:] for f in self.failures[:3])
            pytest.fail(f"{len(self.failures)} contract violation(s):\n{heads}\n\nfirst in full:\n{detail}",
                        pytrace=False)


def cli(tally: Tally, what: str, *args, codes=(1,), limit: float = LIMIT_S) -> bool | None:
    """Run `aoncim ARGS`; True on exit 0, False on a clean one-line error, None (and a recorded
    failure) on anything else, a call longer than `limit` seconds included."""
    t0 = time.perf_counter()
    try:
        with deadline(limit):
            r = invoke(*args)
    except Hang as e:
        tally.fail(f"{what}: aoncim {' '.join(map(str, args))}: {e}")
        return None
    dt = time.perf_counter() - t0
    tally.slowest = max(tally.slowest, dt)
    if dt >= limit:
        tally.fail(f"{what}: aoncim {args[0]} took {dt:.1f} s")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        tb = "".join(traceback.format_exception(r.exception))
        tally.fail(f"{what}: aoncim {args[0]} crashed with {type(r.exception).__name__}: {r.exception}\n{tb}")
        return None
    if "Traceback" in r.output:
        tally.fail(f"{what}: aoncim {args[0]} printed a traceback:\n{r.output}")
        return None
    if r.exit_code == 0:
        return True
    lines = r.output.strip().splitlines()
    if r.exit_code not in codes or len(lines) != 1 or not lines[0].startswith("aoncim: error: "):
        tally.fail(f"{what}: aoncim {args[0]}: exit {r.exit_code} (want 0 or {codes}), output:\n{r.output}")
        return None
    return False


def pick(rng, seq):
    """One element of `seq` as it is (numpy's choice would turn bytes, None and lists into arrays)."""
    return seq[int(rng.integers(len(seq)))]


# ------------------------------------------------------------------------------------ images
@dataclasses.dataclass
class Base:
    name: str
    blob: bytes
    cfg: AonCimConfig


@dataclasses.dataclass
class Accepted:
    index: int
    kind: str
    base: str
    prog: object
    cfg: AonCimConfig
    change: str  # what differs from the base program, for failure messages


def describe_change(old, new, cfg: AonCimConfig) -> str:
    """What a payload edit changed in a program: descriptor fields, constants, codes, names."""
    out = []
    if len(old.layers) != len(new.layers):
        out.append(f"{len(old.layers)} -> {len(new.layers)} layers")
    for i, (a, b) in enumerate(zip(old.layers, new.layers)):
        out += [f"layer {i} {f.name} {getattr(a, f.name)} -> {getattr(b, f.name)}" for f in dataclasses.fields(a)
                if getattr(a, f.name) != getattr(b, f.name)]
    for name in ("pp_scale", "pp_bias", "g_plus", "g_minus"):
        x, y = getattr(old, name), getattr(new, name)
        if x.shape != y.shape or np.any(x != y):
            out.append(f"{name} changed")
    if np.any(old.alphas(cfg) != new.alphas(cfg)):
        out.append("alpha changed")
    if old.names != new.names:
        out.append("names changed")
    if (old.calib_codes is None) != (new.calib_codes is None) or old.calib_codes is not None and any(
            np.any(u != v) for u, v in zip(old.calib_codes, new.calib_codes)):
        out.append("calibration codes changed")
    return "; ".join(out) or "no change in content"


def broken_chain(prog) -> str | None:
    """Where a layer does not read what the layer before it wrote (bank, base address, shape or
    precision): the golden model feeds each layer the previous layer's output, the chip reads its
    activation memory at the descriptor's address, so such a program means two different things."""
    for i in range(1, len(prog.layers)):
        p, d = prog.layers[i - 1], prog.layers[i]
        if p.to_out or (d.in_bank, d.in_base, d.in_h, d.in_w, d.in_c, d.in_bits) != \
                (p.out_bank, p.out_base, p.out_h, p.out_w, p.out_c, p.out_bits):
            return (f"layer {i} reads bank {d.in_bank} @{d.in_base} {d.in_h}x{d.in_w}x{d.in_c} {d.in_bits}-bit, "
                    f"layer {i - 1} wrote {'the output memory' if p.to_out else f'bank {p.out_bank}'} @{p.out_base} "
                    f"{p.out_h}x{p.out_w}x{p.out_c} {p.out_bits}-bit")
    return None


def image_bases() -> list[Base]:
    """The three images of tests/test_image_fuzz.py (row tiles, batch norm and pooling, no CALIB)
    and random programs of RANDOM_CFG, which one cached Verilator build co-simulates."""
    import test_image_fuzz as tif

    bases = [Base(name, blob, tif.CFG) for name, blob in tif.images().items()]
    for seed in range(6):
        bases.append(Base(f"random{seed}", write_image(random_case(seed).prog, RANDOM_CFG), RANDOM_CFG))
    return bases


def crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def entries(blob: bytes) -> list[tuple[int, int, int]]:
    count = _HEADER.unpack_from(blob)[4]
    return [_ENTRY.unpack_from(blob, _HEADER.size + _ENTRY.size * k) for k in range(count)]


def sections(blob: bytes) -> dict[Section, bytearray]:
    return {Section(sid): bytearray(blob[off : off + n]) for sid, off, n in entries(blob)}


def assemble(secs: dict[Section, bytes], chash: int) -> bytes:
    """The writer's layout for these payloads (each padded to whole words), CRC recomputed."""
    secs = {s: bytes(b) + b"\0" * (-len(b) % 4) for s, b in sorted(secs.items())}
    offset = _HEADER.size + _ENTRY.size * len(secs)
    head = [_HEADER.pack(b"AONCIMG\0", VERSION, 0, chash, len(secs))]
    for sid, b in secs.items():
        head.append(_ENTRY.pack(int(sid), offset, len(b)))
        offset += len(b)
    return crc(b"".join(head) + b"".join(secs.values()))


def _u32_pool(rng, v: int) -> int:
    """A replacement for a u32 field: anything, a near value, or a boundary."""
    how = rng.integers(4)
    if how == 0:
        return int(rng.integers(0, 2**32))
    if how == 1:
        return (v + int(rng.integers(-16, 17))) % 2**32
    return int(pick(rng, [0, 1, 2, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC, 1 << 16]))


def m_bit_flips(rng, b: Base) -> bytes:
    blob = bytearray(b.blob)
    for bit in rng.integers(0, 8 * len(blob), rng.integers(1, 9)):
        blob[bit // 8] ^= 1 << (bit % 8)
    return bytes(blob)


def m_bit_flips_crc(rng, b: Base) -> bytes:
    body = bytearray(b.blob[:-4])
    # Half the flips land before GCODE (header, table, small sections), where the structure is.
    head = entries(b.blob)[5][1]
    for _ in range(rng.integers(1, 5)):
        bit = int(rng.integers(0, 8 * (head if rng.random() < 0.5 else len(body))))
        body[bit // 8] ^= 1 << (bit % 8)
    return crc(bytes(body))


def m_byte_run(rng, b: Base) -> bytes:
    body = bytearray(b.blob[:-4])
    n = int(rng.integers(1, 65))
    at = int(rng.integers(0, len(body)))
    fill = rng.integers(3)
    run = bytes([0] * n) if fill == 0 else bytes([0xFF] * n) if fill == 1 else rng.bytes(n)
    body[at : at + n] = run[: len(body) - at]
    return crc(bytes(body)) if rng.random() < 0.7 else bytes(body) + b.blob[-4:]


def m_truncate(rng, b: Base) -> bytes:
    cut = int(rng.integers(0, len(b.blob)))
    if rng.random() < 0.5 and cut >= 4:
        return crc(b.blob[: cut - 4])
    return b.blob[:cut]


def m_extend(rng, b: Base) -> bytes:
    extra = rng.bytes(int(rng.integers(1, 257)))
    how = rng.integers(3)
    if how == 0:
        return b.blob + extra
    if how == 1:
        return crc(b.blob[:-4] + extra)
    at = int(rng.integers(0, len(b.blob) - 4))  # inserted in the middle, CRC made right
    return crc(b.blob[:at] + extra + b.blob[at:-4])


def m_table(rng, b: Base) -> bytes:
    body = bytearray(b.blob[:-4])
    t = [list(e) for e in entries(b.blob)]
    for _ in range(rng.integers(1, 4)):
        k, f = int(rng.integers(len(t))), int(rng.integers(3))
        t[k][f] = _u32_pool(rng, t[k][f]) if f else int(pick(rng, [0, 1, 7, 8, 9, 100, 0xFFFFFFFF, t[k][0] + 1]))
    for k, e in enumerate(t):
        _ENTRY.pack_into(body, _HEADER.size + _ENTRY.size * k, *e)
    return crc(bytes(body))


def m_header(rng, b: Base) -> bytes:
    body = bytearray(b.blob[:-4])
    magic, version, reserved, chash, count = _HEADER.unpack_from(body)
    field = rng.integers(5)
    if field == 0:
        magic = bytearray(magic)
        magic[rng.integers(8)] ^= int(rng.integers(1, 256))
        magic = bytes(magic)
    elif field == 1:
        version = int(pick(rng, [0, 1, 2, 4, 0xFFFF, int(rng.integers(0, 2**16))]))
    elif field == 2:
        reserved = int(rng.integers(1, 2**16))
    elif field == 3:
        chash = _u32_pool(rng, chash)
    else:
        count = _u32_pool(rng, count)
    _HEADER.pack_into(body, 0, magic, version, reserved, chash, count)
    return crc(bytes(body))


def _edit_array(rng, buf: bytearray, dtype: str, values) -> None:
    a = np.frombuffer(buf, dtype=dtype).copy()
    if len(a):
        idx = rng.integers(0, len(a), rng.integers(1, 4))
        a[idx] = values(len(idx))
        buf[: a.nbytes] = a.tobytes()


def m_payload(rng, b: Base) -> bytes:
    """Edit the content of one section and lay the image out again as the writer would (CRC and
    offsets right): mostly values in range, so that many mutants are valid programs."""
    secs = sections(b.blob)
    chash = _HEADER.unpack_from(b.blob)[3]
    cfg = b.cfg
    what = pick(rng, ["descriptor", "gcode", "pp_scale", "pp_bias", "alpha", "calib", "names", "config"])
    if what == "descriptor":
        words = np.frombuffer(secs[Section.DESCRIPTORS], dtype="<u4").copy()
        layer = int(rng.integers(len(words) // DESC_WORDS))
        value = sum(int(w) << (32 * i) for i, w in enumerate(words[layer * DESC_WORDS : (layer + 1) * DESC_WORDS]))
        pos = 0
        which = int(rng.integers(len(DESCRIPTOR_FIELDS)))
        for k, (name, bits) in enumerate(DESCRIPTOR_FIELDS):
            if k == which:
                old = (value >> pos) & ((1 << bits) - 1)
                new = (old + int(pick(rng, [-2, -1, 1, 2]))) % (1 << bits) if rng.random() < 0.6 else \
                    int(rng.integers(0, 1 << bits))
                value = (value & ~(((1 << bits) - 1) << pos)) | (new << pos)
            pos += bits
        words[layer * DESC_WORDS : (layer + 1) * DESC_WORDS] = [(value >> (32 * i)) & 0xFFFFFFFF
                                                                for i in range(DESC_WORDS)]
        secs[Section.DESCRIPTORS] = bytearray(words.tobytes())
    elif what == "gcode":
        g = secs[Section.GCODE]
        nr, nc = struct.unpack_from("<4I", g, 4)[1::2]
        codes = g[20 : 20 + 4 * nr * nc]  # layer 0's G+ and G- codes
        hi = cfg.gcode_max + 1 if rng.random() < 0.8 else 1 << 16
        _edit_array(rng, codes, "<u2", lambda n: rng.integers(0, hi, n))
        g[20 : 20 + len(codes)] = codes
    elif what in ("pp_scale", "pp_bias"):
        bits = cfg.pp_scale_bits if what == "pp_scale" else cfg.pp_bias_bits
        lim = 1 << (bits - 1) if rng.random() < 0.8 else 1 << 31
        _edit_array(rng, secs[Section[what.upper()]], "<i4", lambda n: rng.integers(-lim + 1, lim, n))
    elif what == "alpha":
        hi = 1 << cfg.alpha_bits if rng.random() < 0.8 else 1 << 32
        _edit_array(rng, secs[Section.ALPHA], "<u4", lambda n: rng.integers(0, hi, n, dtype=np.uint64))
    elif what == "calib" and Section.CALIB in secs:
        hi = 1 << cfg.dac_bits if rng.random() < 0.8 else 1 << 16
        _edit_array(rng, secs[Section.CALIB], "<u2", lambda n: rng.integers(0, hi, n))
    elif what == "names":
        names = json.loads(bytes(secs[Section.NAMES]).rstrip(b"\0"))
        choice = rng.integers(5)
        if choice == 0:
            names[int(rng.integers(len(names)))] = "".join(map(chr, rng.integers(32, 0x250, rng.integers(0, 40))))
        elif choice == 1:
            names[int(rng.integers(len(names)))] = "line\nbreak \x00 \u202e ]*/ %s {}"
        elif choice == 2:
            names = names[:-1]
        elif choice == 3:
            names = {"0": names}
        else:
            names = names + [None]
        secs[Section.NAMES] = bytearray(json.dumps(names).encode())
    else:  # config: a field of the CONFIG JSON changed, the header hash made to agree when possible
        d = json.loads(bytes(secs[Section.CONFIG]).rstrip(b"\0"))
        key = str(pick(rng, sorted(d)))
        d[key] = pick(rng, [d[key] if not isinstance(d[key], (int, float)) else d[key] * 2, 0, -1, None, "x",
                             float("nan"), 1e300, [8]])
        secs[Section.CONFIG] = bytearray(json.dumps(d, sort_keys=True).encode())
        with contextlib.suppress(Exception):
            chash = AonCimConfig.from_dict(d).config_hash
    return assemble(secs, chash)


MUTATORS = {"bit flips": m_bit_flips, "bit flips, CRC fixed": m_bit_flips_crc, "byte run": m_byte_run,
            "truncation": m_truncate, "extension": m_extend, "section table": m_table, "header": m_header,
            "payload": m_payload}
# Payload edits are the ones that can yield valid programs: give them a larger share.
KINDS = list(MUTATORS) + ["payload"] * 3


def cosim_accepted(accepted: list[Accepted], n: int, rng, tally: Tally) -> int:
    """Co-simulate up to `n` accepted mutants of RANDOM_CFG (the bases taken in turn), two
    inferences each: every layer bit-exact, or the chip stops with one error line. Returns how many
    ran."""
    from aoncim.sim.cosim import CosimCase
    from aoncim.sim.runner import golden_outputs, run_cases

    pool = [a for a in accepted if a.cfg == RANDOM_CFG]
    order = rng.permutation(len(pool))
    picked, seen = [], Counter()
    for rnd in range(n):  # round robin over the bases, so one base does not take every slot
        for i in order:
            a = pool[i]
            if all(a.index != p.index for p in picked) and seen[a.base] <= rnd:
                picked.append(a)
                seen[a.base] += 1
                break
        if len(picked) >= n:
            break
    cases = []
    for a in picked:
        d0 = a.prog.layers[0]
        inputs = [rng.integers(0, 1 << d0.in_bits, (d0.in_h, d0.in_w, d0.in_c)) for _ in range(2)]
        seeds = [int(s) for s in rng.integers(0, 2**32, 2)]
        try:  # the golden model must run any program the reader accepts
            golden_outputs(RANDOM_CFG, a.prog, inputs, seeds)
        except Exception as e:
            tally.fail(f"golden model on accepted mutant {a.index} ({a.kind} of {a.base}): {type(e).__name__}: {e}\n"
                       + traceback.format_exc())
            continue
        cases.append(CosimCase(f"mutant {a.index} ({a.kind} of {a.base}: {a.change})", a.prog, inputs, seeds))
    if not cases:
        return 0
    r = run_cases(RANDOM_CFG, cases)
    for c, res in zip(cases, r.cases):
        if res.error is not None:
            if "\n" in res.error or not res.error.startswith("chip stopped with error"):
                tally.fail(f"co-simulation of {c.name}: {res.error}")
            tally.add("co-simulated", "chip refused")
        elif res.ok:
            tally.add("co-simulated", "bit-exact")
        else:
            chain = broken_chain(c.prog)
            tally.fail(f"co-simulation of {c.name}: {res.n_ok}/{res.n_inputs} inferences bit-exact"
                       + (f" [{chain}]" if chain else "") + "\n" + "\n".join(res.mismatches[:5]))
            tally.add("co-simulated", "mismatch")
    return len(cases)


def image_fuzz(tmp_path: Path, n: int, n_cosim: int, seed: int) -> Tally:
    rng = np.random.default_rng(seed)
    bases = image_bases()
    base_progs = {b.name: read_image(b.blob)[0] for b in bases}
    tally, accepted = Tally("image mutants (aoncim inspect + aoncim export-c)"), []
    img, hdr = tmp_path / "mutant.img", tmp_path / "mutant.h"
    for i in range(n):
        kind, base = KINDS[i % len(KINDS)], bases[int(rng.integers(len(bases)))]
        mutant = MUTATORS[kind](rng, base)
        what = f"mutant {i} ({kind} of {base.name})"
        img.write_bytes(mutant)
        try:
            prog, cfg = read_image(mutant)
            ok = True
        except ImageError as e:
            ok = False
            if "\n" in str(e):
                tally.fail(f"{what}: reader message of several lines: {e!r}")
        except Exception as e:
            tally.fail(f"{what}: read_image raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
            tally.add(kind, "CRASHED")
            continue
        a = cli(tally, what, "inspect", img)
        b = cli(tally, what, "export-c", img, "-o", hdr)
        if None in (a, b):
            tally.add(kind, "CRASHED")
            continue
        if a != ok or b != ok:
            tally.fail(f"{what}: reader {'accepted' if ok else 'refused'} it, inspect exit {int(not a)}, "
                       f"export-c exit {int(not b)}")
        if not ok:
            tally.add(kind, "rejected")
        elif mutant == base.blob:
            tally.add(kind, "unchanged")
        else:
            if write_image(prog, cfg) != mutant:
                tally.fail(f"{what}: accepted but not canonical")
            change = describe_change(base_progs[base.name], prog, cfg) if cfg == base.cfg else "config changed"
            accepted.append(Accepted(i, kind, base.name, prog, cfg, change))
            tally.add(kind, "accepted" if cfg == base.cfg else "accepted (other config)")
            if broken_chain(prog):
                tally.add(kind, "of which: layer chain broken")
    ran = cosim_accepted(accepted, n_cosim, rng, tally)
    assert ran >= min(n_cosim, len([a for a in accepted if a.cfg == RANDOM_CFG])), ran
    return tally


@pytest.mark.cosim
def test_image_mutants_fast(tmp_path):
    """60 image mutants: each is refused with one line by `aoncim inspect` and `aoncim export-c`
    or accepted by both as a canonical image; two accepted ones co-simulate bit-exact."""
    tally = image_fuzz(tmp_path, 60, 2, seed=1)
    tally.check()
    assert tally.total("rejected") > 0 and tally.counts["co-simulated"].total() == 2


@pytest.mark.slow
@pytest.mark.cosim
def test_image_mutants_many(tmp_path):
    """10,200 image mutants (bit flips, byte runs, truncation, extension, section table, header and
    payload edits with the CRC recomputed): never a traceback, a hang or a second line; accepted
    mutants are canonical, and 20 of them co-simulate bit-exact (or the chip refuses cleanly)."""
    tally = image_fuzz(tmp_path, 10_200, 20, seed=2)
    tally.check()
    assert tally.total() >= 10_000 + 20 and tally.counts["co-simulated"].total() == 20


# ------------------------------------------------------------------------------------ configs
INT_VALUES = ["0", "-1", "-1024", "1", "3", "1000", str(2**31), str(2**32), str(2**63), str(2**64), str(10**30),
              "1" + "0" * 400, "9" * 5000]
FLOAT_VALUES = ["0.0", "-0.0", "0.5", "1024.0", "1e300", "1e-300", "5e-324", "1e400", "-1e400"]
TOML_ONLY = ["nan", "inf", "-inf", "+inf", "true", "false", '"1024"', '""', '"abc"', "[]", "[8]", "[8, 6, 4]",
             "[1, 2, 3]", "[8.0]", '["8"]', "[[8]]", "[true]", "[nan]", f"[8, {2**70}]", "{}", "{ a = 1 }",
             "1979-05-27T07:32:00Z", "07:32:00", "1979-05-27", "0x400", "0o2000", "0b1", "1_024", "'lit'",
             '"""\nmulti\n"""']
JSON_ONLY = ["NaN", "Infinity", "-Infinity", "true", "false", "null", '"1024"', '""', '"abc"', "[]", "[8]",
             "[8, 6, 4]", "[1, 2, 3]", "[8.0]", '["8"]', "[[8]]", "[true]", "[NaN]", f"[8, {2**70}]", "{}",
             '{"a": 1}', '"\\u0000"', '"\\ud800"']
UNKNOWN_KEYS = ["rowz", "Rows", "rows_", "colls", "adc_bit", "foo", "x" * 300, "n adcs", "a.b", "\u00e9t\u00e9",
                "new\nline", "", "__class__", "to_dict", "config_hash"]


def _field_lines(lines: list[str], json_style: bool) -> list[int]:
    pat = '"' if json_style else ""
    return [i for i, ln in enumerate(lines) if ln.strip().startswith(pat) and (":" if json_style else "=") in ln
            and not ln.strip().startswith("#")]


def _set_value(line: str, value: str, json_style: bool) -> str:
    if json_style:
        key, _, rest = line.partition(":")
        return f"{key}: {value}" + ("," if rest.rstrip().endswith(",") else "")
    key, _, _ = line.partition("=")
    return f"{key}= {value}"


def _key(name: str, json_style: bool) -> str:
    if json_style:
        return json.dumps(name)
    return name if name.replace("_", "a").isalnum() and name.isascii() else json.dumps(name)


def config_mutant(rng, text: str, json_style: bool) -> tuple[str, bytes]:
    """(kind, bytes) of one mutant of a config text."""
    lines = text.splitlines()
    kind = str(pick(rng, ["deleted lines", "changed value", "changed value", "changed value", "unknown field",
                           "duplicate key", "byte corruption", "truncation", "non-UTF-8", "empty",
                           "structure", "deep nesting", "several"]))
    k = kind
    for _ in range(int(rng.integers(2, 5)) if kind == "several" else 1):
        if kind == "several":
            k = str(pick(rng, ["deleted lines", "changed value", "unknown field", "duplicate key"]))
        if k == "deleted lines":
            for _ in range(int(rng.integers(1, 6))):
                if lines:
                    del lines[int(rng.integers(len(lines)))]
        elif k == "changed value":
            fields = _field_lines(lines, json_style)
            if fields:
                i = int(pick(rng, fields))
                pool = INT_VALUES + FLOAT_VALUES + (JSON_ONLY if json_style else TOML_ONLY)
                value = str(pick(rng, pool))
                if rng.random() < 0.1:  # power of two, legal or not
                    value = str(1 << int(rng.integers(0, 70)))
                lines[i] = _set_value(lines[i], value, json_style)
        elif k == "unknown field":
            name = str(pick(rng, UNKNOWN_KEYS))
            value = str(pick(rng, INT_VALUES[:6] + ['"x"']))
            at = int(rng.integers(1, max(2, len(lines))))
            lines.insert(at, f"{_key(name, True)}: {value}," if json_style else f"{_key(name, False)} = {value}")
        elif k == "duplicate key":
            fields = _field_lines(lines, json_style)
            if fields:
                i = int(pick(rng, fields))
                line = lines[i] if not json_style or lines[i].rstrip().endswith(",") else lines[i] + ","
                lines.insert(int(rng.integers(0, len(lines) + 1)), line)
        elif k == "structure":
            alt = (["[]", "[1, 2]", "1024", '"rows"', "null", "true", '{"rows": {"rows": 1024}}', "{", "}",
                    '{"rows": 1024,}', "{'rows': 1024}", "[{}]"] if json_style else
                   ["[rows]\nx = 1", "[[rows]]", "rows = 1\n[rows]", "rows.x = 1", "rows =", "= 1", "[", "rows = [",
                    "rows = {", "a = 1\na = 2", "rows = 1 2", "[cols]\n[cols]"])
            s = str(pick(rng, alt))
            if rng.random() < 0.5:
                lines = s.splitlines()
            else:
                lines.insert(int(rng.integers(0, len(lines) + 1)), s)
        elif k == "deep nesting":
            fields = _field_lines(lines, json_style)
            depth = int(pick(rng, [50, 1000, 10_000, 100_000]))
            deep = "[" * depth + "]" * depth
            if fields and rng.random() < 0.7:
                i = int(pick(rng, fields))
                lines[i] = _set_value(lines[i], deep, json_style)
            else:
                lines = [('{"rows": ' + deep + "}") if json_style else ("rows = " + deep)]
    data = ("\n".join(lines) + "\n").encode()
    if kind == "byte corruption":
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        data = bytes(b)
    elif kind == "truncation":
        data = data[: int(rng.integers(0, len(data)))]
    elif kind == "non-UTF-8":
        how = rng.integers(4)
        if how == 0:
            at = int(rng.integers(len(data)))
            data = data[:at] + pick(rng, [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + data[at:]
        elif how == 1:
            data = ("\ufeff" + data.decode()).encode("utf-16")
        elif how == 2:
            data = data.decode().replace("rows", "r\u00f6ws").encode("latin-1")
        else:
            data = b"\xef\xbb\xbf" + data  # UTF-8 BOM
    elif kind == "empty":
        data = pick(rng, [b"", b"\n", b"   \n\t\n", b"\0", b"{}" if json_style else b"# nothing\n"])
    return kind, data


def config_bases() -> dict[str, tuple[str, bool]]:
    r = invoke("config", "--dump")
    assert r.exit_code == 0, r.output
    small = dataclasses.replace(RANDOM_CFG, read_noise_lsb=0.25)
    return {"dump.toml": (r.output, False), "small.toml": (small.to_toml(), False),
            "default.json": (json.dumps(DEFAULT_CONFIG.to_dict(), indent=1), True),
            "small.json": (json.dumps(small.to_dict()), True)}


def config_fuzz(tmp_path: Path, n: int, n_verilog: int, seed: int) -> Tally:
    rng = np.random.default_rng(seed)
    bases = list(config_bases().items())
    tally, verilog_left = Tally("config mutants (aoncim config --config)"), n_verilog
    for i in range(n):
        name, (text, json_style) = bases[i % len(bases)]
        kind, data = config_mutant(rng, text, json_style)
        suffix = Path(name).suffix if rng.random() < 0.85 else str(pick(rng, [".cfg", "", ".TOML", ".Json"]))
        path = tmp_path / f"mutant{i % 7}{suffix}"
        path.write_bytes(data)
        what = f"mutant {i} ({kind} of {name}, saved as {path.name})"
        try:
            AonCimConfig.load(path)
            ok = True
        except ConfigError as e:
            ok = False
            if "\n" in str(e):
                tally.fail(f"{what}: ConfigError of several lines: {str(e)!r}")
        except BaseException as e:  # noqa: B036 - RecursionError, MemoryError, ... are all findings here
            tally.fail(f"{what}: AonCimConfig.load raised {type(e).__name__}: {str(e)[:300]}\n"
                       f"{traceback.format_exc()[-2000:]}\nfile: {data[:300]!r}")
            ok = None
        res = cli(tally, what, "config", "--config", path, codes=(1, 2))
        if res is None or ok is None:
            tally.add(kind, "CRASHED")
            continue
        if res != ok:
            tally.fail(f"{what}: AonCimConfig.load {'accepted' if ok else 'refused'} it, aoncim config exit "
                       f"{0 if res else 1}")
        tally.add(kind, "accepted" if ok else "rejected")
        if not ok and verilog_left and i % 3 == 0:  # refused before anything is elaborated
            verilog_left -= 1
            out = tmp_path / "verilog_out"
            if cli(tally, what, "verilog", "--config", path, "-o", out, codes=(1, 2)) is not False:
                tally.fail(f"{what}: aoncim verilog accepted a config that aoncim config refused")
            elif out.exists() and any(out.iterdir()):
                tally.fail(f"{what}: aoncim verilog wrote {sorted(p.name for p in out.iterdir())} for a refused config")
            tally.add("verilog (refused configs)", "rejected")
    return tally


def test_config_mutants_fast(tmp_path):
    """52 config mutants (TOML dump and JSON): `aoncim config --config` exits 0 or prints one
    error line, agreeing with AonCimConfig.load; refused ones are refused by `aoncim verilog` too."""
    tally = config_fuzz(tmp_path, 52, 5, seed=1)
    tally.check()
    assert tally.total("rejected") > 0 and tally.counts["verilog (refused configs)"]["rejected"] == 5


@pytest.mark.slow
def test_config_mutants_many(tmp_path):
    """2,000 config mutants (deleted lines; huge, negative, zero, float, string, list, bool, NaN/inf,
    table, date and deeply nested values; unknown fields; duplicate keys; byte corruption;
    truncation; non-UTF-8; empty files): one line or success, never a traceback or a hang."""
    tally = config_fuzz(tmp_path, 2000, 60, seed=2)
    tally.check()
    assert tally.total() >= 1000 + 60


# ------------------------------------------------------------------------------------ checkpoints
# The checkpoint validator (aoncim.model.checkpoint, run by `aoncim compile` / `aoncim eval` before
# anything is built) is called directly for most mutants; a sample goes through `aoncim compile`.
COMPILE_LIMIT_S = 180.0  # an accepted checkpoint is really compiled (calibration data, KWS network)


@pytest.fixture
def one_torch_thread():
    """Checks of 180 K parameters take ~30 ms on one thread; several threads on a busy 2-core
    machine take ten times that."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ckpt_base() -> dict:
    import torch

    from aoncim.model.tasks import get_task, shipped_checkpoint

    return torch.load(shipped_checkpoint(get_task("kws")), map_location="cpu", weights_only=True)


NASTY_NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 2.0**16 + 1, 3.4e38, 1e300]
FINE_NUMBERS = [0.0, -1.0, 1e4, 65536.0, 1e-45, -3.0]
ODD_VALUES = [-1, 0, 1, 2, 2**70, -(2**70), float("nan"), float("inf"), float("-inf"), "x", "", None, True, False, [1],
              (1, 2), {"a": 1}, 1.5, -0.5, 1e308, 12, 13]


def ckpt_mutant(rng, base: dict) -> tuple[str, object]:
    """(kind, mutated checkpoint dict or other object); `base` is not modified."""
    import torch

    ck = dict(base)
    kind = str(pick(rng, ["tensor values", "tensor values", "tensor dtype", "tensor shape", "deleted tensor",
                          "added tensor", "non-tensor value", "top-level entries", "format", "task", "scaler",
                          "scaler", "recipe", "recipe", "info", "whole object"]))
    state = str(pick(rng, ["fp_state", "hwa_state"]))
    sd = ck[state] = dict(base[state])
    key = str(pick(rng, sorted(sd)))
    t = sd[key]
    if kind == "tensor values":
        t = t.clone()
        flat = t.view(-1)
        if rng.random() < 0.2 and t.dtype.is_floating_point:
            t = t * float(pick(rng, [0.0, -1.0, 1e3, 1e6, float("nan")]))
        else:
            pool = NASTY_NUMBERS if rng.random() < 0.6 else FINE_NUMBERS
            for i in rng.integers(0, flat.numel(), rng.integers(1, 4)):
                v = pick(rng, pool)
                if t.dtype.is_floating_point:  # what float32 makes of it (1e300 -> inf)
                    flat[int(i)] = torch.tensor(v, dtype=torch.float64).to(t.dtype)
                else:
                    flat[int(i)] = int(min(max(v, -(2**62)), 2**62)) if math.isfinite(v) else -1
        sd[key] = t
    elif kind == "tensor dtype":
        sd[key] = t.to(pick(rng, [torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.bool,
                                  torch.complex64, torch.uint8]))
    elif kind == "tensor shape":
        how = int(rng.integers(6))
        sd[key] = [t.reshape(-1), t.unsqueeze(0), t[:-1] if t.dim() else t.reshape(1), torch.empty(0),
                   torch.tensor(1.0), t.t() if t.dim() == 2 else t.reshape(*t.shape, 1)][how]
    elif kind == "deleted tensor":
        for k in rng.choice(sorted(sd), int(rng.integers(1, 4)), replace=False):
            del sd[str(k)]
    elif kind == "added tensor":
        name = pick(rng, ["bogus.weight", "0.input_range", "17.input_range", "99.weight", "3.weight.extra", 3, None,
                          ("a",), ""])
        sd[name] = pick(rng, [torch.zeros(2), torch.tensor(1.0), t.clone()])
    elif kind == "non-tensor value":
        sd[key] = pick(rng, [1.0, [1.0], None, "x", {"w": t}, t.tolist() if t.numel() < 100 else [0.0] * 5,
                             t.to_sparse() if t.dim() else t, torch.empty(tuple(t.shape), device="meta")])
    elif kind == "top-level entries":
        how = int(rng.integers(3))
        name = str(pick(rng, sorted(ck)))
        if how == 0:
            del ck[name]
        elif how == 1:
            ck[pick(rng, ["extra", "Task", "fp_state ", 1, None])] = pick(rng, [1, {}, torch.zeros(1)])
        else:
            ck[name] = pick(rng, [[], None, 1, "x", torch.zeros(1), ()])
    elif kind == "format":
        ck["format"] = pick(rng, [0, 2, "1", True, 1.0, None, -1, 2**70, [1]])
    elif kind == "task":
        ck["task"] = pick(rng, ["vww", "KWS", "", None, 3, "kws ", "tiny", True, ["kws"], "k\nws"])
    elif kind == "scaler":
        s = ck["scaler"] = {k: list(v) for k, v in base["scaler"].items()}
        which = str(pick(rng, ["lo", "hi"]))
        how = int(rng.integers(9))
        if how == 0:
            s[which] = s[which][: int(rng.integers(0, len(s[which])))]
        elif how == 1:
            s[which] = s[which] + [0.0] * int(rng.integers(1, 4))
        elif how == 2:
            s[which][int(rng.integers(len(s[which])))] = pick(rng, NASTY_NUMBERS + ["x", None, True])
        elif how == 3:
            s["lo"], s["hi"] = s["hi"], s["lo"]
        elif how == 4:
            del s[which]
        elif how == 5:
            s["mid"] = [0.0]
        elif how == 6:
            s[which] = torch.tensor(s[which])
        elif how == 7:
            ck["scaler"] = pick(rng, [[], None, "lo", {}])
        else:
            s[which][int(rng.integers(len(s[which])))] += float(pick(rng, [-1.0, 1.0, 1e-3]))  # still valid
    elif kind == "recipe":
        r = ck["recipe"] = dict(base["recipe"])
        how = int(rng.integers(4))
        name = str(pick(rng, sorted(r)))
        if how == 0:
            r[name] = pick(rng, ODD_VALUES)
        elif how == 1:
            del r[name]
        elif how == 2:
            r[pick(rng, ["lr", "epochs", "seed2", 7])] = 1
        else:
            r["pcm_train_times"] = pick(rng, [(0.0, 1.0), (2.0, 1.0), (1.0,), [1.0, 2.0], (float("nan"), 1.0), None,
                                              "1s", (1.0, float("inf")), (1, 2**70)])
    elif kind == "info":
        ck["info"] = pick(rng, [{}, {"note": "x" * 1000}, {1: 2}, dict(base["info"], extra=[1, 2]), [], None])
    else:
        from aoncim.model.tasks import get_task, shipped_checkpoint

        # A file holding only a string, e.g. the path of a good checkpoint, is not a checkpoint.
        return kind, pick(rng, [[], None, "kws", str(shipped_checkpoint(get_task("kws"))), 3, torch.zeros(3), {},
                                {"task": "kws"}, (ck,), [ck]])
    return kind, ck


def ckpt_file_mutant(rng, blob: bytes) -> tuple[str, bytes]:
    """(kind, bytes) of a damaged checkpoint file."""
    how = int(rng.integers(8))
    b = bytearray(blob)
    if how == 0:
        for bit in rng.integers(0, 8 * len(b), rng.integers(1, 9)):
            b[int(bit) // 8] ^= 1 << (int(bit) % 8)
        return "file: bit flips", bytes(b)
    if how == 1:
        at, n = int(rng.integers(len(b))), int(rng.integers(1, 4096))
        b[at : at + n] = bytes(min(n, len(b) - at))
        return "file: zeroed run", bytes(b)
    if how == 2:
        return "file: truncation", blob[: int(rng.integers(0, len(blob)))]
    if how == 3:
        return "file: extension", blob + rng.bytes(int(rng.integers(1, 1000)))
    if how == 4:
        at = int(rng.integers(0, 200))  # the zip's local header and first record name
        b[at] = int(rng.integers(256))
        return "file: header byte", bytes(b)
    if how == 5:
        return "file: other content", pick(rng, [b"", b"\0" * 64, rng.bytes(2048), b'{"task": "kws"}', b"PK\x03\x04",
                                                 blob[len(blob) // 2 :], b"\x80\x02}q\x00."])
    if how == 6:  # a pickle that weights_only loading must refuse
        import pickle

        return "file: foreign pickle", pickle.dumps({"task": "kws", "x": Path("/")})
    tail = blob[-22:]  # end-of-central-directory record
    return "file: zip directory", blob[:-22] + bytes(rng.integers(0, 256, len(tail), dtype=np.uint8))


def ckpt_fuzz(tmp_path: Path, n: int, n_cli: int, n_cli_accepted: int, seed: int) -> Tally:
    import io

    import torch

    from aoncim.model.checkpoint import CheckpointError, read_checkpoint, validate_checkpoint

    rng = np.random.default_rng(seed)
    base = ckpt_base()
    buf = io.BytesIO()
    torch.save(base, buf)
    blob = buf.getvalue()
    tally = Tally("checkpoint mutants (validate_checkpoint / read_checkpoint)")
    pick_rng, sample, seen = np.random.default_rng(seed + 1), {False: [], True: []}, Counter()
    path = tmp_path / "mutant.pt"
    for i in range(n):
        to_file = False
        if i % 5 == 4:  # a damaged file
            kind, data = ckpt_file_mutant(rng, blob)
            path.write_bytes(data)
            to_file = True
        else:
            kind, obj = ckpt_mutant(rng, base)
            # validate_checkpoint(str) means a path: a string is only tried as a file's content.
            if i % 5 == 3 or isinstance(obj, str):  # saved and read back as a file (what the commands do)
                with contextlib.suppress(Exception):  # some objects (meta tensors) cannot be saved at all
                    torch.save(obj, path)
                    to_file = True
        what = f"checkpoint mutant {i} ({kind}{', from a file' if to_file else ''})"
        t0 = time.perf_counter()
        try:
            with deadline(LIMIT_S):
                if to_file:
                    task, loaded = read_checkpoint(path)
                    if not (isinstance(loaded, dict) and loaded.get("task") == task.name):
                        tally.fail(f"{what}: read_checkpoint accepted a file holding {type(loaded).__name__} "
                                   f"{str(loaded)[:80]!r}")
                else:
                    validate_checkpoint(obj)
            ok = True
        except CheckpointError as e:
            ok = False
            if "\n" in str(e) or not str(e):
                tally.fail(f"{what}: CheckpointError not one line: {str(e)[:500]!r}")
        except (Exception, Hang) as e:
            tally.fail(f"{what}: raised {type(e).__name__}: {str(e)[:300]}\n{traceback.format_exc()[-3000:]}")
            tally.add(kind, "CRASHED")
            continue
        tally.slowest = max(tally.slowest, time.perf_counter() - t0)
        tally.add(kind, "accepted" if ok else "rejected")
        if to_file:  # reservoir samples of the saved mutants for the command line
            seen[ok] += 1
            want = n_cli_accepted if ok else n_cli
            if len(sample[ok]) < want:
                sample[ok].append((what, path.read_bytes()))
            elif want and (j := int(pick_rng.integers(seen[ok]))) < want:
                sample[ok][j] = (what, path.read_bytes())
    for ok in (False, True):
        assert len(sample[ok]) == (n_cli_accepted if ok else n_cli), (ok, len(sample[ok]))
        for what, data in sample[ok]:
            path.write_bytes(data)
            res = cli(tally, what, "compile", path, "-o", tmp_path / "out.img", limit=COMPILE_LIMIT_S if ok else LIMIT_S)
            if res is True and not ok:
                tally.fail(f"{what}: aoncim compile accepted a checkpoint the validator refused")
            if res is not None:
                tally.add("aoncim compile", ("exit 0" if res else "one error line") + (" (valid)" if ok else " (refused)"))
    return tally


def test_checkpoint_mutants_fast(tmp_path, one_torch_thread):
    """50 checkpoint mutants (tensor values, dtypes, shapes, keys, entries, task, scaler, recipe,
    damaged files): the validator accepts them or raises one CheckpointError line, never another
    exception; three refused files are refused by `aoncim compile` with one line."""
    tally = ckpt_fuzz(tmp_path, 50, 3, 0, seed=1)
    tally.check()
    assert tally.total("rejected") > 0 and tally.total("accepted") > 0


@pytest.mark.slow
def test_checkpoint_mutants_many(tmp_path, one_torch_thread):
    """1,500 checkpoint mutants, 30 refused ones through `aoncim compile` (one line, no work done)
    and two accepted ones compiled for real (exit 0, or one line if the compiler refuses them)."""
    tally = ckpt_fuzz(tmp_path, 1500, 30, 2, seed=2)
    tally.check()
    assert tally.total() >= 1000

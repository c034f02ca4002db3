"""Every command against every kind of bad input: one line, exit 1 or 2, nothing written.

The table is command x {missing file, empty file, wrong kind of file, corrupt content, out-of-range
value, unwritable output}. Each row runs the real command in-process, in an empty working
directory of its own with a build root of its own, and asserts:

- exit code 1 (aoncim's own check) or 2 (a usage error found while parsing the options);
- exactly one line, `aoncim: error: ...`, naming what is wrong (the row's `names`), no traceback;
- no file appeared in the working directory or the build root (the check came before the work);
- every shipped file (checkpoints, offline data, RTL sources) is byte for byte as before.

Every row must fail fast: a row that started elaborating, training or compiling would blow the
test's time budget, which is itself part of the contract ("one line *before* the work starts").
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.image import write_image
from aoncim.model.tasks import get_task, shipped_checkpoint
from aoncim.outputs import package_root

from cli_helpers import invoke

SMALL = AonCimConfig(rows=64, cols=32, n_adcs=8, act_depth=1024, out_depth=64, param_depth=128, max_layers=8)
SHIPPED_DIRS = ("model/weights", "model/data", "hw")


# ------------------------------------------------------------------------------------ the inputs
def _image(cfg: AonCimConfig) -> bytes:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    return write_image(compile_network(net, cfg, torch.rand(8, 2, 4, 4), act_bits=8), cfg)


def _wav(path: Path, frames: bytes) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """One folder of bad (and a few good) input files, shared read-only by every row."""
    d = tmp_path_factory.mktemp("inputs")
    img = _image(SMALL)
    (d / "good.img").write_bytes(img)
    (d / "good.toml").write_text(SMALL.to_toml())
    (d / "empty.any").write_bytes(b"")
    (d / "truncated.img").write_bytes(img[: len(img) // 2])
    (d / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (d / "broken.toml").write_text("rows = [\n")
    (d / "range.toml").write_text("rows = -3\n")
    (d / "unknown.toml").write_text("rowz = 64\n")
    (d / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (d / "a_folder").mkdir()
    (d / "a_file").write_text("not a folder\n")
    # A checkpoint file torch cannot read, and the shipped one copied with its task renamed.
    ck = torch.load(shipped_checkpoint(get_task("kws")), weights_only=True)
    (d / "corrupt.pt").write_bytes(shipped_checkpoint(get_task("kws")).read_bytes()[:4096])
    ck["task"] = "speech"
    torch.save(ck, d / "othertask.pt")
    # .npy inputs: not an array file, wrong shape, codes beyond the first layer's 8 bits.
    import numpy as np

    np.save(d / "shape.npy", np.zeros((2, 3), dtype=np.int64))
    np.save(d / "codes_range.npy", np.full((1, 4, 4, 2), 300, dtype=np.int64))
    np.save(d / "floats_range.npy", np.full((1, 2, 4, 4), 2.0, dtype=np.float32))
    # Speech Commands folders: an empty one, one with a corrupt .wav among good ones.
    (d / "sc_empty").mkdir()
    from aoncim.model.kws_data import BACKGROUND_DIR, KEYWORDS

    sc = d / "sc_corrupt"
    for word in (*KEYWORDS, "bird", BACKGROUND_DIR):
        (sc / word).mkdir(parents=True)
        for k in range(2):
            # Background noise is cut into 1 s silence clips: those files must be longer.
            _wav(sc / word / f"spk{k}_nohash_0.wav", bytes(2 * 16000 * (2 if word == BACKGROUND_DIR else 1)))
    (sc / "yes" / "spk9_nohash_0.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (sc / "validation_list.txt").write_text("yes/spk1_nohash_0.wav\n")
    (sc / "testing_list.txt").write_text("no/spk1_nohash_0.wav\n")
    # VWW folder with an image that is not one.
    vw = d / "vww_corrupt"
    for cls in ("person", "non_person"):
        (vw / cls).mkdir(parents=True)
    (vw / "person" / "p0.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (vw / "non_person" / "n0.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return d


# ------------------------------------------------------------------------------------ the table
# (row id, argv with {in} = the inputs folder, {ro} = an output path that cannot be written,
#  {pkg} = a path inside the installed package, substring the one line must name)
# Kinds: missing, empty, wrong (a file of another kind, or a folder for a file), corrupt,
# range (an out-of-range value), out (an unwritable output).
ROWS: list[tuple[str, list[str], str]] = [
    # verilog
    ("verilog/missing", ["verilog", "--config", "{in}/nope.toml"], "nope.toml"),
    ("verilog/empty", ["verilog", "--config", "{in}/empty.any"], "empty"),
    ("verilog/wrong", ["verilog", "--config", "{in}/picture.png"], "picture.png"),
    ("verilog/corrupt", ["verilog", "--config", "{in}/broken.toml"], "not valid TOML"),
    ("verilog/range", ["verilog", "--config", "{in}/range.toml"], "rows"),
    ("verilog/out", ["verilog", "--config", "{in}/good.toml", "-o", "{ro}"], "-o"),
    ("verilog/out-pkg", ["verilog", "--config", "{in}/good.toml", "-o", "{pkg}"], "read-only"),
    # config
    ("config/missing", ["config", "--config", "{in}/nope.toml"], "nope.toml"),
    ("config/empty", ["config", "--config", "{in}/empty.any"], "empty"),
    ("config/wrong", ["config", "--config", "{in}/a_folder"], "directory"),
    ("config/corrupt", ["config", "--config", "{in}/garbage.bin"], "garbage.bin"),
    ("config/range", ["config", "--config", "{in}/range.toml"], "rows"),
    ("config/unknown", ["config", "--config", "{in}/unknown.toml"], "rowz"),
    # cosim
    ("cosim/missing-image", ["cosim", "--image", "{in}/nope.img"], "nope.img"),
    ("cosim/missing-input", ["cosim", "--image", "{in}/good.img", "--input", "{in}/nope.npy"], "nope.npy"),
    ("cosim/empty-image", ["cosim", "--image", "{in}/empty.any"], "empty.any"),
    ("cosim/empty-input", ["cosim", "--image", "{in}/good.img", "--input", "{in}/empty.any"], "empty.any"),
    ("cosim/wrong-image", ["cosim", "--image", "{in}/good.toml"], "good.toml"),
    ("cosim/wrong-input", ["cosim", "--image", "{in}/good.img", "--input", "{in}/shape.npy"], "shape"),
    ("cosim/corrupt-image", ["cosim", "--image", "{in}/truncated.img"], "truncated.img"),
    ("cosim/corrupt-input", ["cosim", "--image", "{in}/good.img", "--input", "{in}/garbage.bin"], "garbage.bin"),
    ("cosim/corrupt-config", ["cosim", "--config", "{in}/broken.toml"], "broken.toml"),
    ("cosim/range-codes", ["cosim", "--image", "{in}/good.img", "--input", "{in}/codes_range.npy"], "0..255"),
    ("cosim/range-floats", ["cosim", "--image", "{in}/good.img", "--input", "{in}/floats_range.npy"], "[0, 1]"),
    ("cosim/range-seed", ["cosim", "--seed", "-5"], "--seed"),
    ("cosim/range-time", ["cosim", "--time", "1e300"], "--time"),
    ("cosim/range-time-neg", ["cosim", "--time", "-1"], "--time"),
    ("cosim/range-inputs", ["cosim", "--inputs", "0"], "--inputs"),
    ("cosim/range-bits", ["cosim", "--act-bits", "5"], "act_bits=5"),
    ("cosim/range-config", ["cosim", "--config", "{in}/range.toml"], "rows"),
    ("cosim/conflict", ["cosim", "--image", "{in}/good.img", "--act-bits", "4"], "--act-bits"),
    ("cosim/out", ["cosim", "--model", "random", "--coverage-json", "{ro}"], "--coverage-json"),
    # demo
    ("demo/range", ["demo", "--inputs", "0"], "--inputs"),
    ("demo/out", ["demo", "-o", "{ro}"], "-o"),
    ("demo/out-pkg", ["demo", "-o", "{pkg}"], "read-only"),
    # train
    ("train/missing", ["train", "kws", "--data", "{in}/nope_folder"], "nope_folder"),
    ("train/empty", ["train", "kws", "--data", "{in}/sc_empty"], "sc_empty"),
    ("train/wrong", ["train", "kws", "--data", "{in}/a_file"], "a_file"),
    ("train/corrupt", ["train", "kws", "--data", "{in}/sc_corrupt"], "spk9_nohash_0.wav"),
    ("train/corrupt-vww", ["train", "vww", "--data", "{in}/vww_corrupt"], ".png"),
    ("train/range", ["train", "kws", "--fp-epochs", "-1"], "--fp-epochs"),
    ("train/range-bits", ["train", "kws", "--act-bits", "5"], "5"),
    ("train/out", ["train", "kws", "-o", "{ro}"], "-o"),
    ("train/out-pkg", ["train", "kws", "-o", "{pkg}"], "read-only"),
    # eval
    ("eval/missing", ["eval", "kws", "--checkpoint", "{in}/nope.pt"], "nope.pt"),
    ("eval/missing-data", ["eval", "kws", "--data", "{in}/nope_folder"], "nope_folder"),
    ("eval/empty", ["eval", "kws", "--checkpoint", "{in}/empty.any"], "empty.any"),
    ("eval/wrong", ["eval", "kws", "--checkpoint", "{in}/good.img"], "good.img"),
    ("eval/corrupt", ["eval", "kws", "--checkpoint", "{in}/corrupt.pt"], "corrupt.pt"),
    ("eval/task", ["eval", "kws", "--checkpoint", "{in}/othertask.pt"], "speech"),
    ("eval/range", ["eval", "kws", "--seeds", "0"], "--seeds"),
    ("eval/range-times", ["eval", "kws", "--times", "1e300"], "--times"),
    ("eval/out", ["eval", "kws", "-o", "{ro}"], "-o"),
    # compile
    ("compile/missing", ["compile", "{in}/nope.pt", "-o", "x.img"], "nope.pt"),
    ("compile/empty", ["compile", "{in}/empty.any", "-o", "x.img"], "empty.any"),
    ("compile/wrong", ["compile", "{in}/good.toml", "-o", "x.img"], "good.toml"),
    ("compile/corrupt", ["compile", "{in}/corrupt.pt", "-o", "x.img"], "corrupt.pt"),
    ("compile/task", ["compile", "{in}/othertask.pt", "-o", "x.img"], "speech"),
    ("compile/range", ["compile", "{ck}", "-o", "x.img", "--act-bits", "5"], "5"),
    ("compile/range-time", ["compile", "{ck}", "-o", "x.img", "--time", "1e300"], "--time"),
    ("compile/config", ["compile", "{ck}", "-o", "x.img", "--config", "{in}/broken.toml"], "broken.toml"),
    ("compile/out", ["compile", "{ck}", "-o", "{ro}"], "-o"),
    ("compile/out-pkg", ["compile", "{ck}", "-o", "{pkg}"], "read-only"),
    # inspect
    ("inspect/missing", ["inspect", "{in}/nope.img"], "nope.img"),
    ("inspect/empty", ["inspect", "{in}/empty.any"], "empty.any"),
    ("inspect/wrong", ["inspect", "{in}/picture.png"], "picture.png"),
    ("inspect/folder", ["inspect", "{in}/a_folder"], "a_folder"),
    ("inspect/corrupt", ["inspect", "{in}/truncated.img"], "truncated.img"),
    ("inspect/out", ["inspect", "{in}/good.img", "--png", "{ro}"], "--png"),
    # export-c
    ("export-c/missing", ["export-c", "{in}/nope.img", "-o", "x.h"], "nope.img"),
    ("export-c/empty", ["export-c", "{in}/empty.any", "-o", "x.h"], "empty.any"),
    ("export-c/wrong", ["export-c", "{in}/good.toml", "-o", "x.h"], "good.toml"),
    ("export-c/corrupt", ["export-c", "{in}/truncated.img", "-o", "x.h"], "truncated.img"),
    ("export-c/out", ["export-c", "{in}/good.img", "-o", "{ro}"], "-o"),
    # report
    ("report/missing", ["report", "kws", "--tech", "{in}/nope.toml"], "nope.toml"),
    ("report/empty", ["report", "kws", "--tech", "{in}/empty.any"], "empty"),
    ("report/wrong", ["report", "kws", "--tech", "{in}/picture.png"], "picture.png"),
    ("report/corrupt", ["report", "kws", "--config", "{in}/broken.toml"], "broken.toml"),
    ("report/range", ["report", "kws", "--samples", "0"], "--samples"),
    ("report/range-bits", ["report", "kws", "--act-bits", "5"], "5"),
    ("report/range-times", ["report", "kws", "--times", "2w"], "--times"),
    ("report/out", ["report", "kws", "-o", "{ro}"], "-o"),
    # sweep
    ("sweep/missing", ["sweep", "--grid", "{in}/nope.toml"], "nope.toml"),
    ("sweep/empty", ["sweep", "--grid", "{in}/empty.any"], "empty"),
    ("sweep/wrong", ["sweep", "--grid", "{in}/picture.png"], "picture.png"),
    ("sweep/corrupt", ["sweep", "--grid", "{in}/broken.toml"], "not valid TOML"),
    ("sweep/range", ["sweep", "--workers", "0"], "--workers"),
    ("sweep/out", ["sweep", "--quick", "-o", "{ro}"], "-o"),
    # the group itself
    ("aoncim/unknown-command", ["simulate"], "simulate"),
    ("aoncim/unknown-option", ["cosim", "--nope"], "--nope"),
]
KINDS = ("missing", "empty", "wrong", "corrupt", "range", "out")
COMMANDS = ("verilog", "config", "cosim", "demo", "train", "eval", "compile", "inspect", "export-c", "report", "sweep")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def _shipped_digest() -> str:
    h = hashlib.sha256()
    root = package_root()
    for d in SHIPPED_DIRS:
        for p in sorted((root / d).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(root)).encode() + p.read_bytes() + str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def shipped_before():
    before = _shipped_digest()
    yield before
    assert _shipped_digest() == before, "a command changed a shipped file"


@pytest.mark.parametrize("argv,names", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_writes_nothing(argv, names, inputs, shipped_before, tmp_path, monkeypatch):
    work, builds = tmp_path / "work", tmp_path / "builds"
    work.mkdir()
    builds.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("AONCIM_BUILD_ROOT", str(builds))
    ck = work.parent / "ck.pt"  # a valid checkpoint outside the watched folders
    if any("{ck}" in a for a in argv):
        shutil.copyfile(shipped_checkpoint(get_task("kws")), ck)
    sub = {"{in}": str(inputs), "{ro}": str(inputs / "a_file" / "out"), "{ck}": str(ck),
           "{pkg}": str(package_root() / "model" / "weights" / "written_by_a_test")}
    args = []
    for a in argv:
        for k, v in sub.items():
            a = a.replace(k, v)
        args.append(a)
    before = {"work": _tree(work), "builds": _tree(builds), "inputs": _tree(inputs)}

    r = invoke(*args)

    lines = r.output.strip().splitlines()
    assert r.exit_code in (1, 2), f"exit {r.exit_code}: {r.output}"
    assert len(lines) == 1 and lines[0].startswith("aoncim: error: "), r.output
    assert "Traceback" not in r.output
    assert names in lines[0], lines[0]
    assert {"work": _tree(work), "builds": _tree(builds), "inputs": _tree(inputs)} == before, "something was written"
    assert not (package_root() / "model" / "weights" / "written_by_a_test").exists()


def test_the_table_covers_every_command_and_kind():
    """Each command has a row of each kind that applies to it; the ones that cannot apply are named."""
    not_applicable = {("config", "out"), ("demo", "missing"), ("demo", "empty"), ("demo", "wrong"),
                      ("demo", "corrupt"), ("inspect", "range"), ("export-c", "range")}
    have = {(rid.split("/")[0], rid.split("/")[1].split("-")[0]) for rid, _, _ in ROWS}
    for c in COMMANDS:
        for k in KINDS:
            assert (c, k) in have or (c, k) in not_applicable, f"no {k} row for `aoncim {c}`"
    from aoncim.cli import main

    assert set(main.commands) == set(COMMANDS), "a command without rows in the table"

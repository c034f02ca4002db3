"""`aoncim train` / `aoncim eval` end to end: on the offline KWS set, on a Google Speech Commands v2
folder and a VWW folder in the real on-disk formats, and their one-line errors for bad folders."""
import json
import shutil
import wave

import numpy as np
import pytest
from PIL import Image

from aoncim.model.vww_data import hash_split
from cli_helpers import invoke as run
from cli_helpers import one_error_line

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
OTHER_WORDS = ("bed", "cat")
CLIPS_PER_WORD = 5  # 3 train, 1 validation, 1 test
SMALLEST_EVAL = ("--seeds", 1, "--bits", 8, "--times", "1s")


def write_pcm_wav(path, x, rate=16000):
    """Float samples -> a mono 16-bit PCM .wav, written with the standard library alone (not the
    loader's own writer, so the loader is tested against the format, not against itself)."""
    pcm = np.clip(np.round(np.asarray(x) * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def make_speech_commands(root):
    """A small Speech Commands v2 folder: <word>/<hash>_nohash_<k>.wav (1 s or shorter tones with
    noise, one pitch per word), validation_list.txt, testing_list.txt, _background_noise_/."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    val, test = [], []
    for i, word in enumerate(KEYWORDS + OTHER_WORDS):
        (root / word).mkdir(parents=True)
        for k in range(CLIPS_PER_WORD):
            name = f"{word}/{k:04x}{i:04x}_nohash_0.wav"
            n = 16000 - 1000 * (k % 3)  # real clips are up to 1 s long
            tone = 0.3 * np.sin(2 * np.pi * (300 + 150 * i) * t[:n]) * np.hanning(n)
            write_pcm_wav(root / name, tone + 0.01 * rng.standard_normal(n))
            {3: val, 4: test}.get(k, []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir()
    write_pcm_wav(root / "_background_noise_" / "white_noise.wav", 0.2 * rng.standard_normal(24000))
    return root


def make_vww(root, per_split=(("train", 16), ("val", 3), ("test", 3))):
    """A small VWW folder (vw_coco2014_96 layout): person/ and non_person/ of 96 x 96 RGB images,
    JPEG and PNG; person images hold a bright upright bar, so the classes differ. Without split
    files the loader splits by a hash of the file name: names are drawn until every split of every
    class has its count."""
    rng = np.random.default_rng(0)
    for d in ("person", "non_person"):
        (root / d).mkdir(parents=True)
        want, i = dict(per_split), 0
        while any(want.values()):
            name = f"COCO_train2014_{d}_{i:06d}{'.jpg' if i % 3 else '.png'}"
            i += 1
            if want[hash_split(name)] == 0:
                continue
            want[hash_split(name)] -= 1
            img = rng.integers(0, 120, (96, 96, 3), dtype=np.uint8)
            if d == "person":
                x0 = int(rng.integers(10, 70))
                img[20:90, x0 : x0 + 12] = 230
            Image.fromarray(img).save(root / d / name)
    return root


@pytest.fixture(scope="module")
def gsc(tmp_path_factory):
    return make_speech_commands(tmp_path_factory.mktemp("speech_commands_v0.02"))


@pytest.fixture(scope="module")
def vww(tmp_path_factory):
    return make_vww(tmp_path_factory.mktemp("vw_coco2014_96"))


def _variant(src, dst, change):
    shutil.copytree(src, dst)
    change(dst)
    return dst


def test_train_then_eval_kws(tmp_path):
    ck = tmp_path / "kws.pt"
    r = run("train", "kws", "--fp-epochs", "1", "--hwa-epochs", "1", "-o", str(ck))
    assert r.exit_code == 0, r.output
    assert ck.stat().st_size > 100_000 and "HWA retraining: val accuracy" in r.output
    r = run("eval", "kws", "--checkpoint", str(ck), "--seeds", "2", "--bits", "8", "--samples", "96",
            "--times", "1s,1d", "-o", str(tmp_path))
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "accuracy_kws.json").read_text())
    modes = {(x["mode"], x["time"], x["compensated"]) for x in rows}
    assert ("bit-true", "1d", True) in modes and ("HWA float", "1d", False) in modes and len(modes) == 9
    assert all(0.0 <= x["mean"] <= 1.0 for x in rows)
    assert (tmp_path / "accuracy_kws.png").stat().st_size > 10_000
    assert "float <-> bit-true gap" in r.output


def _train_and_eval_real(task, data, tmp_path, samples):
    ck, out = tmp_path / "ck" / f"{task}.pt", tmp_path / "eval"
    r = run("train", task, "--data", data, "--fp-epochs", 1, "--hwa-epochs", 1, "-o", ck)
    assert r.exit_code == 0, r.output
    assert ck.is_file() and f"wrote {ck}" in r.output and "HWA retraining: val accuracy" in r.output
    r = run("eval", task, "--data", data, "--checkpoint", ck, *SMALLEST_EVAL, "--samples", samples, "-o", out)
    assert r.exit_code == 0, r.output
    rows = json.loads((out / f"accuracy_{task}.json").read_text())
    assert {x["mode"] for x in rows} == {"FP", "HWA float", "bit-true"}
    assert all(0.0 <= x["mean"] <= 1.0 for x in rows)
    assert (out / f"accuracy_{task}.png").is_file()
    assert f"{samples} test samples ({data} training)" in " ".join(r.output.split())
    return rows


def test_train_then_eval_on_a_speech_commands_folder(gsc, tmp_path):
    _train_and_eval_real("kws", gsc, tmp_path, 12)


def test_train_then_eval_on_a_vww_folder(vww, tmp_path):
    _train_and_eval_real("vww", vww, tmp_path, 4)


def _corrupt_wav(root):
    clip = root / "yes" / "00000000_nohash_0.wav"
    clip.write_bytes(clip.read_bytes()[:30])  # cut inside the header
    return clip


def _truncated_wav(root):
    clip = root / "go" / "00010009_nohash_0.wav"
    clip.write_bytes(clip.read_bytes()[:5000])  # the header promises more samples than follow
    return clip


def _float_wav(root):
    clip = root / "stop" / "00000008_nohash_0.wav"
    raw = bytearray(clip.read_bytes())
    raw[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    clip.write_bytes(bytes(raw))
    return clip


def _text_as_wav(root):
    clip = root / "off" / "00020007_nohash_0.wav"
    clip.write_text("this is not audio\n" * 10)
    return clip


def _corrupt_noise(root):
    f = root / "_background_noise_" / "white_noise.wav"
    f.write_bytes(b"RIFF\x00\x00")
    return f


def _empty_keyword(root):
    for p in (root / "up").glob("*.wav"):
        p.unlink()
    return root / "up"


def _empty_test_list(root):
    (root / "testing_list.txt").write_text("")
    return "testing_list.txt"


BOTH = ("train", "eval")
# (case, how the folder is broken -> what the line must name, text of the line, commands it stops)
BAD_GSC = [
    ("corrupt wav", _corrupt_wav, "not a complete WAV file", BOTH),
    ("truncated wav", _truncated_wav, "is truncated", BOTH),
    ("float wav", _float_wav, "not a PCM WAV file", BOTH),
    ("text named .wav", _text_as_wav, "not a PCM WAV file", BOTH),
    ("corrupt background noise", _corrupt_noise, "not a complete WAV file", BOTH),
    ("missing split file", lambda r: (r / "testing_list.txt").unlink() or "testing_list.txt",
     "missing testing_list.txt", BOTH),
    ("empty keyword folder", _empty_keyword, "holds no .wav clips", BOTH),
    ("missing keyword folder", lambda r: shutil.rmtree(r / "left") or "left", "missing left", BOTH),
    # Without a test list every clip trains: only eval has nothing to score.
    ("empty test list", _empty_test_list, "no keyword clips for split 'test'", ("eval",)),
]


def _bad_folder_runs(task, data, tmp_path, commands):
    ck, out = tmp_path / "ck.pt", tmp_path / "eval"
    runs = []
    if "train" in commands:
        runs.append(run("train", task, "--data", data, "--fp-epochs", 1, "--hwa-epochs", 1, "-o", ck))
    if "eval" in commands:
        runs.append(run("eval", task, "--data", data, *SMALLEST_EVAL, "-o", out))
    return runs, (ck, out)


@pytest.mark.parametrize("name,change,match,commands", BAD_GSC, ids=[b[0] for b in BAD_GSC])
def test_bad_speech_commands_folder_is_one_line(gsc, tmp_path, name, change, match, commands):
    data = _variant(gsc, tmp_path / "gsc", lambda d: None)
    culprit = change(data)
    runs, outputs = _bad_folder_runs("kws", data, tmp_path, commands)
    for r in runs:
        one_error_line(r, match)
        assert str(culprit) in r.output
    assert not any(p.exists() for p in outputs)


def _train_image(root, folder, suffix):
    """An image of the training split: train decodes it, and so does eval (its calibration inputs)."""
    return next(p for p in sorted((root / folder).glob(f"*{suffix}")) if hash_split(p.name) == "train")


def _corrupt_jpeg(root):
    img = _train_image(root, "person", ".jpg")
    img.write_bytes(img.read_bytes()[:300])  # header only: the pixels are missing
    return img


def _garbage_png(root):
    img = _train_image(root, "non_person", ".png")
    img.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return img


def _wrong_kind(root):
    f = root / "person" / "notes.txt"
    f.write_text("labels checked by hand")
    return f


def _gif(root):
    f = root / "non_person" / "COCO_extra.gif"
    Image.new("L", (8, 8)).save(f)
    return f


def _empty_class(root):
    for p in (root / "person").iterdir():
        p.unlink()
    return root / "person"


def _split_files_without_test(root):
    names = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*"))
    (root / "train.txt").write_text("\n".join(names[:-8]) + "\n")
    (root / "val.txt").write_text("\n".join(names[-8:-4]) + "\n")
    return root / "test.txt"


BAD_VWW = [
    ("corrupt jpeg", _corrupt_jpeg, "cannot decode image"),
    ("garbage png", _garbage_png, "cannot decode image"),
    ("wrong kind of file", _wrong_kind, "not a .jpg/.jpeg/.png image"),
    ("gif", _gif, "not a .jpg/.jpeg/.png image"),
    ("empty class folder", _empty_class, "holds no .jpg/.jpeg/.png images"),
    ("missing class folder", lambda r: shutil.rmtree(r / "non_person") or "person/ and non_person/",
     "must contain person/ and non_person/"),
    ("missing split file", _split_files_without_test, "test.txt missing"),
]


@pytest.mark.parametrize("name,change,match", BAD_VWW, ids=[b[0] for b in BAD_VWW])
def test_bad_vww_folder_is_one_line(vww, tmp_path, name, change, match):
    data = _variant(vww, tmp_path / "vww", lambda d: None)
    culprit = change(data)
    runs, outputs = _bad_folder_runs("vww", data, tmp_path, BOTH)
    for r in runs:
        one_error_line(r, match)
        assert str(culprit) in r.output
    assert not any(p.exists() for p in outputs)


def test_eval_errors_are_one_line(tmp_path):
    one_error_line(run("eval", "kws", "--checkpoint", str(tmp_path / "missing.pt")), "aoncim train kws")
    r = run("eval", "kws", "--bits", "8,5")
    assert r.exit_code == 1 and "--bits [5]" in r.output
    r = run("eval", "kws", "--times", "1s,2d")
    assert r.exit_code == 1 and "--times" in r.output and "1y" in r.output
    r = run("train", "vww", "--data", str(tmp_path / "nowhere"), "--fp-epochs", "0", "--hwa-epochs", "0",
            "-o", str(tmp_path / "x.pt"))
    assert r.exit_code == 1 and "not a directory" in r.output and len(r.output.strip().splitlines()) == 1
    one_error_line(run("eval", "kws", "--samples", 0), "'--samples': 0 is not in the range", code=2)
    one_error_line(run("train", "kws", "--act-bits", 5, "-o", tmp_path / "x.pt"), "--act-bits 5")
    assert not (tmp_path / "x.pt").exists()


def test_accuracy_table_and_drift_summary_from_rows():
    """What `aoncim eval` prints is built in model/evaluate.py from the rows alone."""
    from aoncim.model.evaluate import AccuracyRow, accuracy_table, drift_summary

    rows = [AccuracyRow("FP", 32, "-", False, 0.9, 0.0, 1)]
    for mode, base in (("HWA float", 0.88), ("bit-true", 0.87)):
        for comp in (True, False):
            rows += [AccuracyRow(mode, 8, "1s", comp, base, 0.01, 2),
                     AccuracyRow(mode, 8, "1d", comp, base - (0.01 if comp else 0.05), 0.01, 2)]
    t = accuracy_table(rows, "AnalogNet-KWS")
    assert t.title == "AnalogNet-KWS: accuracy (%) after PCM drift, mean ± std over 2 seeds"
    assert [c.header for c in t.columns] == ["mode", "bits", "compensation", "1s", "1d"] and t.row_count == 5
    lines = drift_summary(rows, "kws")
    assert lines == ["HWA float, 8 bit, compensated: accuracy loss 1 s -> 24 h = 1.00 points (paper: 0.8 %)",
                     "bit-true, 8 bit, compensated: accuracy loss 1 s -> 24 h = 1.00 points (paper: 0.8 %)",
                     "float <-> bit-true gap at 8 bit, 1 s: +1.00 points"]
    assert drift_summary(rows[:1], "vww") == []

"""KWS data: the Speech Commands loader on a fake tree, the shipped synthetic set, the synth pipeline."""
import re
import shutil
import wave

import numpy as np
import pytest
import torch

from aoncim.model import kws_synth
from aoncim.model.kws_data import (CLASS_NAMES, KEYWORDS, SPLITS, KwsTensors, SpeechCommands, fit_to_clip,
                                   load_kws_synth, main, read_wav, write_wav)
from aoncim.model.mfcc import MfccFrontEnd

UNKNOWN_WORDS = ("bed", "cat")


@pytest.fixture(scope="module")
def fake_gsc(tmp_path_factory):
    """10 keywords + 2 other words, one clip per split each, plus a 2 s background-noise file."""
    root = tmp_path_factory.mktemp("speech_commands_v0.02")
    rng = np.random.default_rng(0)
    val, test = [], []
    for word in KEYWORDS + UNKNOWN_WORDS:
        (root / word).mkdir()
        for k, split in enumerate(SPLITS):
            name = f"{word}/{k:08x}_nohash_0.wav"
            n = 12000 if k == 0 else 17000  # shorter and longer than 1 s
            write_wav(root / name, 0.1 * rng.standard_normal(n))
            {"val": val, "test": test}.get(split, []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white_noise.wav", 0.5 * rng.standard_normal(32000))
    return root


def test_speech_commands_labels_splits_silence_unknown(fake_gsc):
    ds = SpeechCommands(fake_gsc, "train", unknown_percent=None)
    # 10 keyword clips, both unknown clips, ceil(10 % of 10) = 1 silence clip
    assert len(ds) == 13
    x, y = ds.tensors()
    assert x.shape == (13, 1, 49, 10) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sorted(y.tolist()) == [0, 1, 1] + list(range(2, 12))
    names = [CLASS_NAMES[l] for (_, l, _) in ds.items]
    paths = [p for (p, _, _) in ds.items if p is not None]
    assert all(p.name.startswith("00000000") for p in paths)  # only the train files
    assert {p.parent.name for p, l, _ in ds.items if l == 1} == set(UNKNOWN_WORDS)
    assert names.count("_silence_") == 1
    silence = ds.waveform(len(ds) - 1)
    assert silence.shape == (16000,) and np.abs(silence).max() <= 0.5 * 4.5
    feats, label = ds[0]
    assert feats.shape == (1, 49, 10) and torch.allclose(feats, x[0])
    assert ds.class_counts()["yes"] == 1

    val = SpeechCommands(fake_gsc, "val", unknown_percent=10.0, silence_percent=0.0)
    assert len(val) == 10 + 1  # ceil(10 % of 10 keywords) unknown clip, no silence
    assert all(p.name.startswith("00000001") for p, _, _ in val.items)
    again = SpeechCommands(fake_gsc, "val", unknown_percent=10.0, silence_percent=0.0)
    assert again.items == val.items  # seeded choice


def test_speech_commands_bad_paths(fake_gsc, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SpeechCommands(tmp_path / "nowhere")
    (tmp_path / "yes").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Speech Commands v2 directory.*testing_list.txt"):
        SpeechCommands(tmp_path)
    with pytest.raises(ValueError, match="split 'dev'"):
        SpeechCommands(fake_gsc, "dev")


def test_wav_io(tmp_path):
    x = np.sin(np.linspace(0, 100, 8000)) * 0.5
    write_wav(tmp_path / "a.wav", x)
    np.testing.assert_allclose(read_wav(tmp_path / "a.wav"), x, atol=1 / 32768)
    write_wav(tmp_path / "b.wav", x, sample_rate=8000)
    with pytest.raises(ValueError, match="8000 Hz, need 16000 Hz"):
        read_wav(tmp_path / "b.wav")
    assert fit_to_clip(np.ones(100)).shape == (16000,)
    assert fit_to_clip(np.arange(16010.0))[0] == 5


def test_shipped_synth_set():
    sizes = {}
    for split in SPLITS:
        ds = load_kws_synth(split)
        x, y = ds.tensors()
        assert isinstance(ds, KwsTensors) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 49, 10) and torch.isfinite(x).all()
        assert tuple(ds.class_names) == CLASS_NAMES
        counts = torch.bincount(y, minlength=12)
        assert (counts == counts[0]).all() and counts[0] > 0  # balanced
        sizes[split] = len(ds)
    assert sizes["train"] > sizes["val"] > 0 and sizes["test"] > 0
    meta = load_kws_synth("test").meta
    assert meta["front_end"] == MfccFrontEnd().params()
    variants = meta["variants"]
    assert not set(variants["train"]) & (set(variants["val"]) | set(variants["test"]))
    assert not set(meta["speeds"]["train"]) & set(meta["speeds"]["test"])
    with pytest.raises(ValueError, match="split 'all'"):
        load_kws_synth("all")


def test_resample_keeps_a_tone():
    t = np.arange(22050) / 22050
    y = kws_synth.resample(np.sin(2 * np.pi * 1000 * t), 22050, 16000)
    assert len(y) == 16000
    assert np.argmax(np.abs(np.fft.rfft(y))) == 1000  # 1 Hz bins over 1 s
    ref = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.max(np.abs(y[200:-200] - ref[200:-200])) < 0.02


def test_missing_espeak_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setattr(kws_synth.shutil, "which", lambda name: None)
    with pytest.raises(kws_synth.SynthError, match="^espeak-ng not found: apt-get install espeak-ng$"):
        kws_synth.espeak_binary()
    assert main(["synth", "--out", "unused.npz"]) == 1
    assert capsys.readouterr().err.strip() == "espeak-ng not found: apt-get install espeak-ng"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_synth_pipeline_two_words():
    rng = np.random.default_rng(0)
    bank = [kws_synth.speak("water table", "en-gb+m3")]
    specs = [kws_synth.ClipSpec(split="test", label=CLASS_NAMES.index(w), word=w, voice=v, speed=160, pitch=50,
                                warp=1.0, intonation="", noise=("pink", "babble"), level_dbfs=-20.0, snr_db=20.0,
                                seed=int(rng.integers(1000)))
             for w, v in (("yes", "en-us+f3"), ("go", "en-gb-scotland+m2"))]
    clips = np.stack(list(kws_synth.render_all(specs, {"test": bank}, workers=1, progress=False)))
    assert clips.shape == (2, 16000) and np.isfinite(clips).all()
    for clip in clips:
        rms = np.sqrt(np.mean(clip.reshape(50, 320) ** 2, axis=1))
        assert rms.max() / np.percentile(rms, 10) > 3  # the word stands out of the 20 dB-down background
    feats = MfccFrontEnd()(torch.from_numpy(clips))
    assert feats.shape == (2, 1, 49, 10) and torch.isfinite(feats).all()
    again = kws_synth.render(specs[0], bank)
    np.testing.assert_array_equal(again, clips[0])  # deterministic for a given spec


def _pcm_wav(path, n=16000, rate=16000, width=2, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * (n * channels * width // 2))
    return path


def test_unreadable_wavs_are_one_line_naming_the_file(tmp_path):
    good = _pcm_wav(tmp_path / "good.wav")
    raw = good.read_bytes()
    float_fmt = bytearray(raw)
    float_fmt[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    cases = {"header_cut.wav": (raw[:30], "not a complete WAV file"),
             "tiny.wav": (b"RIFF", "not a complete WAV file"),
             "empty.wav": (b"", "not a complete WAV file"),
             "text.wav": (b"this is not audio, just text\n" * 4, "not a PCM WAV file"),
             "float.wav": (bytes(float_fmt), "not a PCM WAV file"),
             "truncated.wav": (raw[:1000], "is truncated (its header promises 16000 samples, it holds 478)")}
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=rf"{name}: {re.escape(match)}.*delete it or replace it") as e:
            read_wav(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"silent.wav: holds no samples"):
        read_wav(_pcm_wav(tmp_path / "silent.wav", n=0))
    with pytest.raises(ValueError, match=r"eight.wav: 8-bit samples, need 16-bit PCM"):
        read_wav(_pcm_wav(tmp_path / "eight.wav", width=1))
    stereo = read_wav(_pcm_wav(tmp_path / "stereo.wav", channels=2))
    assert stereo.shape == (16000,)


def test_a_corrupt_clip_stops_the_split_naming_it(fake_gsc, tmp_path):
    root = tmp_path / "gsc"
    shutil.copytree(fake_gsc, root)
    clip = root / "yes" / "00000000_nohash_0.wav"
    clip.write_bytes(clip.read_bytes()[:30])
    ds = SpeechCommands(root, "train")  # listing does not decode
    with pytest.raises(ValueError, match=rf"{clip}: not a complete WAV file"):
        ds.tensors()
    SpeechCommands(root, "val").tensors()  # other splits are unaffected


def test_speech_commands_layout_errors(fake_gsc, tmp_path):
    root = tmp_path / "gsc"
    shutil.copytree(fake_gsc, root)
    (root / "testing_list.txt").write_text("")
    SpeechCommands(root, "train")
    with pytest.raises(ValueError, match="no keyword clips for split 'test' \\(testing_list.txt lists none"):
        SpeechCommands(root, "test")
    for p in (root / "down").glob("*.wav"):
        p.unlink()
    with pytest.raises(ValueError, match=r"down holds no .wav clips"):
        SpeechCommands(root, "train")


def test_real_data_order_is_fixed_mixed_and_limit_is_its_prefix(fake_gsc):
    from aoncim.model.tasks import get_task

    task = get_task("kws")
    x, y = task.load("train", fake_gsc)
    x2, y2 = task.load("train", fake_gsc)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    ds = SpeechCommands(fake_gsc, "train")
    xs, ys = ds.tensors()
    assert sorted(y.tolist()) == sorted(ys.tolist()) and y.tolist() != ys.tolist()  # shuffled, not the folder order
    assert len(set(y[:6].tolist())) > 3  # the first few already mix the classes
    xl, yl = task.load("train", fake_gsc, limit=5)
    assert torch.equal(xl, x[:5]) and torch.equal(yl, y[:5])

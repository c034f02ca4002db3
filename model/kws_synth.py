"""Offline synthetic keyword-spotting set: espeak-ng words in synthesised noise, nothing downloaded.

Every clip is 1 s at 16 kHz: one word spoken by espeak-ng (accent + voice variant, speed, pitch,
statement/question/exclamation intonation), resampled 22050 -> 16000 Hz with a vocal-tract warp,
trimmed, placed at a random offset, scaled to a random RMS level (exact, instead of espeak's -a
amplitude) and mixed at a random SNR with synthesised background (white, pink, brown noise, mains
hum with harmonics, babble of other synthesised words). `_silence_` clips are background only;
`_unknown_` clips speak one of the 20 Speech Commands auxiliary words.

Split by voice (documented in the file's metadata): a voice is an espeak-ng accent + voice variant;
train, val and test use DISJOINT variants (so disjoint voices) and DISJOINT speed and pitch values,
so no test voice, speed or pitch was seen in training and test accuracy measures generalisation to
new speakers, not memorisation. The 8 accents are shared (see ACCENTS). The vocal-tract warp, level,
SNR and noise mixture are drawn from the same ranges in every split. Each split's babble bank is
spoken by that split's voices only.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
import wave
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from .kws_classes import CLASS_NAMES, SPLITS, SYNTH_FILE
from .mfcc import CLIP_SAMPLES, SAMPLE_RATE, MfccFrontEnd

VERSION = 1
DEFAULT_TRAIN_PER_CLASS = 250
EVAL_FRACTION = 5  # val and test each get train_per_class // EVAL_FRACTION clips per class

# The 20 auxiliary (non-keyword) words of Speech Commands: the real set's `_unknown_` vocabulary,
# including its hard near-misses (tree/three, dog/down, off/four...).
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
                 "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero")
# Babble is built from words in neither list, so background speech never carries a label.
BABBLE_WORDS = ("water", "table", "morning", "coffee", "paper", "window", "music", "people", "number",
                "garden", "little", "because", "remember", "yellow", "winter", "kitchen", "about",
                "maybe", "never", "children", "listen", "basket", "between", "already", "picture")

# espeak-ng accents (pronunciation rules, like a dialect region, not a speaker) are shared by all
# splits: holding accents out as well made test a different dialect task (~65 % vs ~80 %).
ACCENTS = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029")
# espeak-ng voice variants (`+name`); the odd ones (whisper, robots, croak...) are left out. Train
# holds most of them, extremes included (zac, anika, travis), so test voices fall inside its range.
VARIANTS = {
    "train": ("m1", "m2", "m3", "m4", "m5", "m8", "f1", "f2", "f3", "klatt", "klatt2", "klatt3", "klatt5",
              "Alex", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb",
              "david", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave",
              "Henrique", "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "linda", "marcelo",
              "Marco", "Mario", "max", "Michael", "miguel", "Mike", "Nguyen", "pablo", "paul", "pedro",
              "quincy", "rob", "steph", "zac", "anika", "travis", "norbert", "sandro", "shelby", "grandpa"),
    "val": ("m6", "f4", "klatt4", "Alicia", "robert", "steph2", "michel", "Lee"),
    "test": ("m7", "f5", "klatt6", "adam", "steph3", "Andrea", "Hugo", "Jacky", "grandma", "victor"),
}
SPEEDS = {"train": (120, 135, 150, 165, 180, 195), "val": (128, 172), "test": (142, 188)}  # words/min
PITCHES = {"train": (25, 35, 45, 55, 65, 75), "val": (40, 60), "test": (30, 50, 70)}  # espeak 0..99
INTONATION = ("", ".", "?", "!")
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
SNR_DB = (5.0, 30.0)  # speech clips: uniform SNR range, speech power measured over the word only
SPEECH_DBFS = (-35.0, -12.0)  # RMS level of the word
SILENCE_DBFS = (-65.0, -25.0)  # RMS level of a silence clip's background
BABBLE_BANK = 40  # babble phrases per split
# Vocal-tract-length warp: the word is resampled to 16 kHz / warp, scaling every formant and the
# pitch by `warp` (and the duration by 1 / warp); same continuous range in every split.
WARP = (0.9, 1.1)


class SynthError(RuntimeError):
    pass


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SynthError("espeak-ng not found: apt-get install espeak-ng")
    return path


def espeak_version() -> str:
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


def check_voices() -> None:
    """espeak-ng silently falls back to its default voice for an unknown name, which would change
    the data set without notice: refuse to synthesise unless every accent and variant exists."""
    def names(arg: str, column: int) -> set[str]:
        out = subprocess.run([espeak_binary(), f"--voices={arg}"], capture_output=True, text=True, check=True).stdout
        return {line.split()[column] for line in out.splitlines()[1:] if len(line.split()) > column}

    variants = {n.removeprefix("!v/") for n in names("variant", 4)}
    missing = [a for a in ACCENTS if a not in names("en", 1)]
    missing += [v for split in SPLITS for v in VARIANTS[split] if v not in variants]
    if missing:
        raise SynthError(f"espeak-ng lacks voices {', '.join(missing)}: install the Debian espeak-ng-data package")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling by FFT (ideal low-pass at min(sr)/2); the input is zero-padded so
    the output length is exact and the circular wrap only touches padding."""
    if sr_in == sr_out:
        return x.astype(np.float32)
    g = np.gcd(sr_in, sr_out)
    step_in = sr_in // g
    n_pad = -(-(len(x) + 64) // step_in) * step_in  # room for the wrap, multiple of the ratio
    n_out = n_pad * sr_out // sr_in
    spec = np.fft.rfft(x.astype(np.float64), n_pad)
    keep = min(len(spec), n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=complex)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n_out) * (n_out / n_pad)
    return y[: round(len(x) * sr_out / sr_in)].astype(np.float32)


def speak(text: str, voice: str, speed: int = 160, pitch: int = 50, warp: float = 1.0) -> np.ndarray:
    """espeak-ng `text` -> float32 waveform at 16 kHz, leading/trailing silence trimmed; `warp` > 1
    raises formants and pitch by that factor (vocal-tract-length perturbation)."""
    cmd = [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(raw), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")  # header length is a placeholder
    if len(pcm) == 0:
        raise SynthError(f"espeak-ng produced no audio for {text!r} with voice {voice}")
    return trim(resample(pcm.astype(np.float32) / 32768.0, rate, round(SAMPLE_RATE / warp)))


def trim(x: np.ndarray, rel_threshold: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing samples below rel_threshold x peak, keeping a 10 ms margin."""
    loud = np.flatnonzero(np.abs(x) > rel_threshold * np.abs(x).max())
    if len(loud) == 0:
        return x
    return x[max(0, loud[0] - margin): loud[-1] + margin + 1]


# ------------------------------------------------------------------------------------ backgrounds
def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    y -= y.mean()
    return y / (np.sqrt(np.mean(y ** 2)) + 1e-12)


def mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    f0 = rng.choice([50.0, 60.0]) * (1 + rng.uniform(-0.005, 0.005))
    t = np.arange(n) / SAMPLE_RATE
    y = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi)) for h in range(1, 8))
    y = y + 0.05 * rng.standard_normal(n)  # a hum is never perfectly clean
    return y / np.sqrt(np.mean(y ** 2))


def babble(rng: np.random.Generator, n: int, bank: list[np.ndarray]) -> np.ndarray:
    y = np.zeros(n)
    for _ in range(rng.integers(3, 7)):
        phrase = bank[rng.integers(len(bank))]
        start = rng.integers(-len(phrase) // 2, n)
        seg_lo, seg_hi = max(0, -start), min(len(phrase), n - start)
        if seg_hi > seg_lo:
            y[start + seg_lo: start + seg_hi] += rng.uniform(0.3, 1.0) * phrase[seg_lo:seg_hi]
    rms = np.sqrt(np.mean(y ** 2))
    return y / rms if rms > 0 else coloured_noise(rng, n, 1.0)


def background(rng: np.random.Generator, n: int, bank: list[np.ndarray], kinds: tuple[str, ...]) -> np.ndarray:
    """A unit-RMS mixture of the given noise kinds with random weights."""
    makers = {
        "white": lambda: coloured_noise(rng, n, 0.0),
        "pink": lambda: coloured_noise(rng, n, 1.0),
        "brown": lambda: coloured_noise(rng, n, 2.0),
        "hum": lambda: mains_hum(rng, n),
        "babble": lambda: babble(rng, n, bank),
    }
    y = sum(rng.uniform(0.3, 1.0) * makers[k]() for k in kinds)
    return y / np.sqrt(np.mean(y ** 2))


# -------------------------------------------------------------------------------------- the clips
@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip (the rest comes from `seed`)."""

    split: str
    label: int
    word: str  # "" for silence
    voice: str
    speed: int
    pitch: int
    warp: float
    intonation: str
    noise: tuple[str, ...]
    level_dbfs: float
    snr_db: float
    seed: int


def plan_split(split: str, per_class: int, rng: np.random.Generator) -> list[ClipSpec]:
    """per_class ClipSpecs for each of the 12 classes, drawn from the split's voices only."""
    specs = []
    for label, name in enumerate(CLASS_NAMES):
        for _ in range(per_class):
            if name == "_silence_":
                word = ""
            elif name == "_unknown_":
                word = str(rng.choice(UNKNOWN_WORDS))
            else:
                word = name
            n_kinds = rng.integers(1, 3)
            specs.append(ClipSpec(
                split=split, label=label, word=word,
                voice=f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS[split])}",
                speed=int(rng.choice(SPEEDS[split])), pitch=int(rng.choice(PITCHES[split])),
                warp=round(float(rng.uniform(*WARP)), 3),
                intonation=str(rng.choice(INTONATION)),
                noise=tuple(sorted(rng.choice(NOISE_KINDS, n_kinds, replace=False).tolist())),
                level_dbfs=float(rng.uniform(*(SILENCE_DBFS if not word else SPEECH_DBFS))),
                snr_db=float(rng.uniform(*SNR_DB)),
                seed=int(rng.integers(2 ** 31))))
    return specs


def babble_bank(split: str, rng: np.random.Generator, n: int = BABBLE_BANK) -> list[np.ndarray]:
    """n short phrases of babble words spoken by the split's voices, unit RMS each."""
    bank = []
    for _ in range(n):
        words = " ".join(rng.choice(BABBLE_WORDS, rng.integers(2, 5)))
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS[split])}"
        x = speak(words, voice, int(rng.choice(SPEEDS[split])), int(rng.choice(PITCHES[split])))
        bank.append(x / np.sqrt(np.mean(x ** 2)))
    return bank


def render(spec: ClipSpec, bank: list[np.ndarray]) -> np.ndarray:
    """The 1 s float32 waveform of one ClipSpec."""
    rng = np.random.default_rng(spec.seed)
    noise = background(rng, CLIP_SAMPLES, bank, spec.noise)
    if not spec.word:
        return np.clip(noise * 10 ** (spec.level_dbfs / 20), -1, 1).astype(np.float32)
    word = speak(spec.word + spec.intonation, spec.voice, spec.speed, spec.pitch, spec.warp)
    if len(word) > CLIP_SAMPLES:
        start = (len(word) - CLIP_SAMPLES) // 2
        word = word[start:start + CLIP_SAMPLES]
    word = word * (10 ** (spec.level_dbfs / 20) / np.sqrt(np.mean(word ** 2)))
    clip = noise * 10 ** ((spec.level_dbfs - spec.snr_db) / 20)
    offset = rng.integers(0, CLIP_SAMPLES - len(word) + 1)
    clip[offset:offset + len(word)] += word
    return np.clip(clip, -1, 1).astype(np.float32)


_BANKS: dict[str, list[np.ndarray]] = {}


def _init_worker(banks: dict[str, list[np.ndarray]]) -> None:
    _BANKS.update(banks)


def _render_worker(spec: ClipSpec) -> np.ndarray:
    return render(spec, _BANKS[spec.split])


def render_all(specs: list[ClipSpec], banks: dict[str, list[np.ndarray]], workers: int = 2, progress: bool = True):
    """Yield the waveforms of specs in order, rendered by a pool of `workers` processes."""
    from tqdm import tqdm

    bar = tqdm(total=len(specs), desc="espeak-ng clips", unit="clip", disable=not progress)
    if workers <= 1:
        for spec in specs:
            yield render(spec, banks[spec.split])
            bar.update()
    else:
        # fork: workers inherit the imported modules; they only run numpy and espeak-ng
        ctx = get_context("fork") if os.name == "posix" else get_context()
        with ctx.Pool(workers, initializer=_init_worker, initargs=(banks,)) as pool:
            for clip in pool.imap(_render_worker, specs, chunksize=16):
                yield clip
                bar.update()
    bar.close()


def build_synth_file(out: str | Path, train_per_class: int = DEFAULT_TRAIN_PER_CLASS, seed: int = 0,
                     workers: int = 2, progress: bool = True) -> dict:
    """Synthesise train/val/test, compute MFCCs and write the compressed .npz; returns its metadata."""
    check_voices()
    t0 = time.monotonic()
    eval_per_class = max(1, train_per_class // EVAL_FRACTION)
    per_class = {"train": train_per_class, "val": eval_per_class, "test": eval_per_class}
    rng = np.random.default_rng(seed)
    specs = [s for split in SPLITS for s in plan_split(split, per_class[split], rng)]
    banks = {split: babble_bank(split, rng) for split in SPLITS}
    front_end = MfccFrontEnd()
    features, batch = [], []
    for clip in render_all(specs, banks, workers, progress):
        batch.append(clip)
        if len(batch) == 256:
            features.append(front_end(torch.from_numpy(np.stack(batch))).numpy())
            batch = []
    if batch:
        features.append(front_end(torch.from_numpy(np.stack(batch))).numpy())
    feats = np.concatenate(features).astype(np.float16)
    if not np.isfinite(feats).all():
        raise SynthError("non-finite MFCC features: the log floor or float16 range is wrong")

    voices = sorted({s.voice for s in specs})
    labels = np.array([s.label for s in specs], dtype=np.uint8)
    split_ids = np.array([SPLITS.index(s.split) for s in specs], dtype=np.uint8)
    meta = {
        "version": VERSION,
        "class_names": list(CLASS_NAMES),
        "splits": list(SPLITS),
        "per_class": per_class,
        "n_samples": len(specs),
        "seed": seed,
        "espeak": espeak_version(),
        "front_end": front_end.params(),
        "accents": list(ACCENTS),
        "variants": {k: list(v) for k, v in VARIANTS.items()},
        "speeds": {k: list(v) for k, v in SPEEDS.items()},
        "pitches": {k: list(v) for k, v in PITCHES.items()},
        "voices": voices,
        "unknown_words": list(UNKNOWN_WORDS),
        "babble_words": list(BABBLE_WORDS),
        "noise_kinds": list(NOISE_KINDS),
        "warp": list(WARP),
        "snr_db": list(SNR_DB),
        "speech_dbfs": list(SPEECH_DBFS),
        "silence_dbfs": list(SILENCE_DBFS),
        "split_rule": "train/val/test use disjoint voice variants, speeds and pitches; accents are shared",
        "command": f"python -m aoncim.model.kws_data synth --out model/data/{SYNTH_FILE} --per-class {train_per_class} --seed {seed}",
    }
    words = sorted({s.word for s in specs})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        features=feats,
        labels=labels,
        split=split_ids,
        voice=np.array([voices.index(s.voice) for s in specs], dtype=np.uint16),
        word=np.array([words.index(s.word) for s in specs], dtype=np.uint8),
        snr_db=np.array([s.snr_db if s.word else np.nan for s in specs], dtype=np.float16),
        meta=np.array(json.dumps(dict(meta, words=words))),
    )
    meta["class_counts"] = {
        split: {name: int(((split_ids == si) & (labels == ci)).sum()) for ci, name in enumerate(CLASS_NAMES)}
        for si, split in enumerate(SPLITS)}
    meta["build_seconds"] = time.monotonic() - t0
    return meta

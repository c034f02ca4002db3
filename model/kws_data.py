"""Keyword-spotting data: the real Google Speech Commands v2 and the shipped offline synthetic set.

Both sources give the same thing: MFCC features (N, 1, 49, 10) float32, labels (N,) int64 and the
12 class names, in the TF speech_commands order (`_silence_` = 0, `_unknown_` = 1, then the keywords).

    python -m aoncim.model.kws_data synth --out model/data/kws_synth.npz [--per-class N]

regenerates the shipped synthetic set (needs espeak-ng; see `kws_synth`).
"""
from __future__ import annotations

import argparse
import json
import sys
import wave
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# The class names, splits and file name live in kws_classes (shared with kws_synth); re-exported.
from .kws_classes import CLASS_NAMES, KEYWORDS, SILENCE, SPLITS, SYNTH_FILE, UNKNOWN  # noqa: F401
from .mfcc import CLIP_SAMPLES, SAMPLE_RATE, MfccFrontEnd

BACKGROUND_DIR = "_background_noise_"


class KwsDataset(Dataset):
    """Common interface: item -> (features (1, 49, 10) float32, label int64); `tensors()` -> all."""

    class_names: tuple[str, ...] = CLASS_NAMES

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def class_counts(self) -> dict[str, int]:
        labels = self.tensors()[1]
        return {name: int((labels == i).sum()) for i, name in enumerate(self.class_names)}


class KwsTensors(KwsDataset):
    """A split held in memory as features (N, 1, 49, 10) float32 and labels (N,) int64."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, class_names=CLASS_NAMES, meta: dict | None = None):
        if features.dim() != 4 or features.shape[0] != labels.shape[0]:
            raise ValueError(f"features {tuple(features.shape)} / labels {tuple(labels.shape)}: need (N, 1, T, C) and (N,)")
        self.features = features.float()
        self.labels = labels.long()
        self.class_names = tuple(class_names)
        self.meta = meta or {}

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i):
        return self.features[i], self.labels[i]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features, self.labels


# ---------------------------------------------------------------------------------------- audio I/O
class WavError(ValueError):
    """A .wav file the loader cannot use; the message names the file and the fix."""


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono 16-bit PCM WAV -> float32 in [-1, 1) (several channels are averaged).

    Anything else, including a damaged file, is one WavError line naming the file."""
    fix = f"delete it or replace it with a {sample_rate // 1000} kHz 16-bit PCM WAV"
    try:
        with wave.open(str(path), "rb") as w:
            width, rate, channels, n = w.getsampwidth(), w.getframerate(), w.getnchannels(), w.getnframes()
            if width != 2:
                raise WavError(f"{path}: {8 * width}-bit samples, need 16-bit PCM (sox in.wav -b 16 out.wav)")
            if rate != sample_rate:
                raise WavError(f"{path}: {rate} Hz, need {sample_rate} Hz (sox in.wav -r {sample_rate} out.wav)")
            raw = w.readframes(n)
    except WavError:
        raise
    except wave.Error as e:  # not RIFF/WAVE, no fmt or data chunk, a compressed or float format
        raise WavError(f"{path}: not a PCM WAV file ({e}): {fix}") from None
    except EOFError:
        size = Path(path).stat().st_size
        raise WavError(f"{path}: not a complete WAV file (its {size} bytes end inside the header): {fix}") from None
    except OSError as e:
        raise WavError(f"{path}: cannot read it ({e.strerror or e}): {fix}") from None
    got = len(raw) // (2 * channels)
    if got < n or n == 0:
        what = "holds no samples" if n == 0 else f"is truncated (its header promises {n} samples, it holds {got})"
        raise WavError(f"{path}: {what}: {fix}")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, channels).mean(1) if channels > 1 else x


def write_wav(path: str | Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """float waveform in [-1, 1] -> mono 16-bit PCM WAV (clipped)."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def fit_to_clip(x: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad at the end or centre-crop to exactly n samples (GSC clips are <= 1 s, padded at the end)."""
    if len(x) >= n:
        start = (len(x) - n) // 2
        return x[start:start + n]
    return np.pad(x, (0, n - len(x)))


# ------------------------------------------------------------------------------- Speech Commands v2
class SpeechCommands(KwsDataset):
    """Google Speech Commands v2 from a local directory, 12-class TF convention.

    Layout: `<root>/<word>/<speaker>_nohash_<k>.wav`, `validation_list.txt`, `testing_list.txt`,
    `_background_noise_/*.wav`. Files in neither list are training files. Keyword files keep their
    label; every other word is `_unknown_`, subsampled to `unknown_percent` % of the split's keyword
    count (None keeps all); `silence_percent` % extra `_silence_` clips are 1 s crops of the
    background-noise files at a random gain in [0, 1] (all zeros if `silence_gain_max` is 0).
    Choices are seeded per split, so a split is the same list on every run.
    Features are computed on access (`tensors()` computes the whole split once and caches it).
    """

    def __init__(self, root: str | Path, split: str = "train", silence_percent: float = 10.0,
                 unknown_percent: float | None = 10.0, silence_gain_max: float = 1.0, seed: int = 0,
                 front_end: MfccFrontEnd | None = None):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} unknown: use one of {', '.join(SPLITS)}")
        self.root = Path(root)
        self._check_layout(self.root)
        self.split = split
        self.front_end = front_end or MfccFrontEnd()
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        keyword_items, unknown_items = self._list_files(split)
        if unknown_percent is not None:
            n_unknown = min(len(unknown_items), int(np.ceil(len(keyword_items) * unknown_percent / 100)))
            pick = np.sort(rng.choice(len(unknown_items), n_unknown, replace=False))
            unknown_items = [unknown_items[i] for i in pick]
        n_silence = int(np.ceil(len(keyword_items) * silence_percent / 100))
        self.noise = [read_wav(p) for p in sorted((self.root / BACKGROUND_DIR).glob("*.wav"))]
        self.noise = [n for n in self.noise if len(n) >= CLIP_SAMPLES]
        if n_silence and not self.noise:
            raise ValueError(f"{self.root / BACKGROUND_DIR} has no WAV of >= 1 s for silence clips: restore it or use silence_percent=0")
        silence_items = [self._silence_spec(rng, silence_gain_max) for _ in range(n_silence)]
        # items are (path or None, label, silence spec or None); silence specs are fixed here so
        # __getitem__ stays deterministic whatever the access order
        self.items = ([(p, l, None) for p, l in keyword_items + unknown_items]
                      + [(None, 0, s) for s in silence_items])
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _check_layout(root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"Speech Commands root {root} does not exist: download and extract speech_commands_v0.02 there")
        missing = [n for n in ("validation_list.txt", "testing_list.txt") if not (root / n).is_file()]
        missing += [n for n in (BACKGROUND_DIR, *KEYWORDS) if not (root / n).is_dir()]
        if missing:
            raise FileNotFoundError(f"{root} is not a Speech Commands v2 directory (missing {', '.join(missing)}): point to the extracted speech_commands_v0.02")
        for k in KEYWORDS:
            if not any((root / k).glob("*.wav")):
                raise ValueError(f"{root / k} holds no .wav clips: every keyword needs its clips; restore the folder "
                                 "from speech_commands_v0.02")

    @staticmethod
    def _read_list(f: Path) -> set[str]:
        try:
            return set(f.read_text().split())
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{f}: not a readable list of clip paths ({e}): restore it from speech_commands_v0.02") from None

    def _list_files(self, split: str) -> tuple[list, list]:
        val = self._read_list(self.root / "validation_list.txt")
        test = self._read_list(self.root / "testing_list.txt")
        keyword_items, unknown_items = [], []
        for word_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_")):
            for wav in sorted(word_dir.glob("*.wav")):
                rel = f"{word_dir.name}/{wav.name}"
                in_split = "val" if rel in val else "test" if rel in test else "train"
                if in_split != split:
                    continue
                if word_dir.name in KEYWORDS:
                    keyword_items.append((wav, CLASS_NAMES.index(word_dir.name)))
                else:
                    unknown_items.append((wav, 1))
        if not keyword_items:
            # Files in neither list train; a split without keyword clips would evaluate (or train)
            # on nothing and report 0 % without saying why.
            where = {"val": "validation_list.txt lists", "test": "testing_list.txt lists",
                     "train": "validation_list.txt and testing_list.txt leave"}[split]
            raise ValueError(f"{self.root}: no keyword clips for split {split!r} ({where} none of the keyword .wav "
                             "files): restore the list files from speech_commands_v0.02")
        return keyword_items, unknown_items

    def _silence_spec(self, rng: np.random.Generator, gain_max: float) -> tuple[int, int, float]:
        k = int(rng.integers(len(self.noise)))
        start = int(rng.integers(len(self.noise[k]) - CLIP_SAMPLES + 1))
        return k, start, float(rng.uniform(0, gain_max))

    def __len__(self) -> int:
        return len(self.items)

    def waveform(self, i: int) -> np.ndarray:
        path, _, silence = self.items[i]
        if path is not None:
            return fit_to_clip(read_wav(path))
        k, start, gain = silence
        return self.noise[k][start:start + CLIP_SAMPLES] * np.float32(gain)

    def __getitem__(self, i):
        if self._cache is not None:
            return self._cache[0][i], self._cache[1][i]
        x = torch.from_numpy(np.ascontiguousarray(self.waveform(i), dtype=np.float32))
        return self.front_end(x)[0], torch.tensor(self.items[i][1], dtype=torch.int64)

    def subset_tensors(self, indices, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of the items at `indices`, in that order (only those are decoded)."""
        idx = [int(i) for i in indices]
        if self._cache is not None:
            t = torch.as_tensor(idx, dtype=torch.int64)
            return self._cache[0][t], self._cache[1][t]
        feats = [self.front_end(torch.from_numpy(np.stack([self.waveform(i) for i in idx[s:s + batch]])
                                                 .astype(np.float32))) for s in range(0, len(idx), batch)]
        features = torch.cat(feats) if feats else torch.zeros((0,) + self.front_end.output_shape)
        return features, torch.tensor([self.items[i][1] for i in idx], dtype=torch.int64)

    def tensors(self, batch: int = 256, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            from tqdm import tqdm

            feats = []
            starts = range(0, len(self), batch)
            for s in tqdm(starts, desc=f"MFCC {self.split}", disable=not progress):
                waves = np.stack([self.waveform(i) for i in range(s, min(s + batch, len(self)))])
                feats.append(self.front_end(torch.from_numpy(waves.astype(np.float32))))
            shape = (0,) + self.front_end.output_shape
            features = torch.cat(feats) if feats else torch.zeros(shape)
            labels = torch.tensor([item[1] for item in self.items], dtype=torch.int64)
            self._cache = (features, labels)
        return self._cache


# --------------------------------------------------------------------------- shipped synthetic set
def load_kws_synth(split: str = "train", path: str | Path | None = None) -> KwsTensors:
    """One split of the synthetic espeak-ng KWS set (the shipped `aoncim.model.data/kws_synth.npz`
    unless `path` is given); `.meta` holds voices, class names, front-end params and version."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} unknown: use one of {', '.join(SPLITS)}")
    if path is None:
        ref = resources.files("aoncim.model.data").joinpath(SYNTH_FILE)
        if not ref.is_file():
            raise FileNotFoundError(f"{SYNTH_FILE} not shipped: run `python -m aoncim.model.kws_data synth --out model/data/{SYNTH_FILE}`")
        with ref.open("rb") as f:
            arrays = dict(np.load(f, allow_pickle=False))
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist: generate it with `python -m aoncim.model.kws_data synth --out {path}`")
        arrays = dict(np.load(path, allow_pickle=False))
    meta = json.loads(str(arrays["meta"]))
    keep = arrays["split"] == SPLITS.index(split)
    return KwsTensors(torch.from_numpy(arrays["features"][keep].astype(np.float32)),
                      torch.from_numpy(arrays["labels"][keep].astype(np.int64)),
                      meta["class_names"], meta)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aoncim.model.kws_data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    synth = sub.add_parser("synth", help="synthesise the offline KWS set with espeak-ng")
    synth.add_argument("--out", type=Path, default=Path("model/data") / SYNTH_FILE)
    synth.add_argument("--per-class", type=int, default=None, help="training clips per class (val/test scale with it)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    from . import kws_synth

    try:
        kws_synth.espeak_binary()
    except kws_synth.SynthError as e:
        print(e, file=sys.stderr)
        return 1
    per_class = args.per_class or kws_synth.DEFAULT_TRAIN_PER_CLASS
    meta = kws_synth.build_synth_file(args.out, train_per_class=per_class, seed=args.seed, workers=args.workers)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {size / 1e6:.2f} MB, {meta['n_samples']} clips in {meta['build_seconds']:.0f} s")
    for split, counts in meta["class_counts"].items():
        print(f"  {split:5s} " + " ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

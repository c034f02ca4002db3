"""Visual-wake-words data without the internet: the real VWW from a local folder, and a procedural set.

Both give images (N, 1, 64, 64) float32 in [0, 1] (grayscale, the AnalogNet-VWW input) and labels
int64, 0 = no_person, 1 = person (`VWW_CLASS_NAMES`).

Real VWW (`VisualWakeWords`): the COCO-2014 person / non-person split in the layout of the widely
copied `vw_coco2014_96` folder (MLPerf Tiny reference, 96 x 96 RGB JPEGs):

    <root>/person/*.jpg            (also .jpeg / .png)
    <root>/non_person/*.jpg        (`no_person/` is accepted as the same class)
    <root>/{train,val,test}.txt    optional split files, one image path relative to <root> per line

With split files, a split is exactly its file (paths missing on disk are an error). Without them,
each image goes to a split by a hash of its file name (test 10 %, val 10 %, train the rest by
default), the same on every machine and independent of which other files exist. Images are decoded
with Pillow, converted to grayscale and resized (not cropped: a crop could cut the person out) to
64 x 64.

Procedural set (`make_vww_synth`): see its docstring and docs/analognets.md.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from .analognets import VWW_CLASS_NAMES

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CLASS_DIRS = {"person": 1, "non_person": 0, "no_person": 0}
SIZE = 64


# ---------------------------------------------------------------------------------------- real VWW
def hash_bucket(name: str) -> int:
    """0..99 from a file name, stable across machines and Python versions (unlike hash())."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") % 100


def hash_split(name: str, val_percent: float = 10.0, test_percent: float = 10.0) -> str:
    b = hash_bucket(name)
    return "test" if b < test_percent else "val" if b < test_percent + val_percent else "train"


def load_gray(path: str | Path, size: int = SIZE) -> np.ndarray:
    """One image file -> (size, size) float32 in [0, 1], grayscale, resized with a box filter."""
    try:
        with Image.open(path) as im:
            im.draft("L", (size, size))  # JPEG: decode at a reduced scale, much faster for big photos
            g = im.convert("L").resize((size, size), Image.Resampling.BOX)
    except Exception as e:  # noqa: BLE001 - Pillow's decoders fail with OSError, SyntaxError, struct.error, ...
        why = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ValueError(f"cannot decode image {path}: {why}: delete it or replace it with a "
                         f"{'/'.join(IMAGE_SUFFIXES)} image") from None
    return np.asarray(g, dtype=np.float32) / 255.0


def class_images(folder: Path) -> list[Path]:
    """The images of one class folder, sorted; every other file there is an error naming it.

    Hidden files (`.DS_Store`, macOS `._name.jpg` resource forks, which are not images whatever
    their suffix) are skipped; sub-folders are not read."""
    images = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{p}: not a {'/'.join(IMAGE_SUFFIXES)} image, which is all the VWW loader reads: "
                             f"convert it or move it out of {folder.name}/")
        images.append(p)
    if not images:
        raise ValueError(f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} images: every class needs its images "
                         "(vw_coco2014_96 layout)")
    return images


class VisualWakeWords(Dataset):
    """The real VWW (COCO person / non-person) from a local folder; see the module docstring for layout.

    Items are (image (1, 64, 64) float32 in [0, 1], label int). `tensors()` decodes the whole split
    once and returns (images (N, 1, 64, 64), labels (N,)).
    """

    class_names = VWW_CLASS_NAMES

    def __init__(self, root: str | Path, split: str = "train", size: int = SIZE,
                 val_percent: float = 10.0, test_percent: float = 10.0):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} unknown: use one of {', '.join(SPLITS)}")
        if not (0 <= val_percent and 0 <= test_percent and val_percent + test_percent < 100):
            raise ValueError(f"val_percent={val_percent}, test_percent={test_percent}: need both >= 0 and sum < 100")
        self.root, self.split, self.size = Path(root), split, size
        if not self.root.is_dir():
            raise FileNotFoundError(f"VWW root {self.root} is not a directory: give the folder that holds person/ "
                                    "and non_person/ (vw_coco2014_96 layout)")
        dirs = {d: CLASS_DIRS[d] for d in CLASS_DIRS if (self.root / d).is_dir()}
        if set(dirs.values()) != {0, 1}:
            raise FileNotFoundError(f"VWW root {self.root} must contain person/ and non_person/ subfolders "
                                    f"(found: {', '.join(sorted(p.name for p in self.root.iterdir() if p.is_dir())) or 'none'})")
        images = {d: class_images(self.root / d) for d in dirs}
        split_files = {s: self.root / f"{s}.txt" for s in SPLITS}
        if any(f.exists() for f in split_files.values()):
            # All three or none, checked whichever split is asked for: a missing val.txt must stop
            # `aoncim eval` (which reads test and train) as it stops `aoncim train`.
            for f in split_files.values():
                if not f.is_file():
                    raise FileNotFoundError(f"{f} missing: with split files in {self.root}, give all of "
                                            f"{', '.join(s + '.txt' for s in SPLITS)} (or none, to split by file-name "
                                            "hash)")
            self.items = self._from_split_file(split_files[split], dirs)
        else:
            self.items = [(p, lab) for d, lab in dirs.items() for p in images[d]
                          if hash_split(p.name, val_percent, test_percent) == split]
        if not self.items:
            raise FileNotFoundError(f"VWW root {self.root}: no {'/'.join(IMAGE_SUFFIXES)} images for split {split!r} "
                                    "under person/ and non_person/")

    def _from_split_file(self, f: Path, dirs: dict[str, int]) -> list[tuple[Path, int]]:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{f}: not a readable text file of image paths ({e}): rewrite it, one path "
                             "relative to the root per line") from None
        items = []
        for n, line in enumerate(text.split("\n"), 1):
            rel = line.strip()
            if not rel:
                continue
            top = Path(rel).parts[0]
            if top not in dirs or ".." in Path(rel).parts:
                raise ValueError(f"{f}, line {n}: entry {rel!r} is not under person/ or non_person/")
            if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{f}, line {n}: entry {rel!r} is not a {'/'.join(IMAGE_SUFFIXES)} image")
            p = self.root / rel
            if not p.is_file():
                raise FileNotFoundError(f"{f}: listed image {rel!r} does not exist under {self.root}")
            items.append((p, dirs[top]))
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        p, lab = self.items[i]
        return torch.from_numpy(load_gray(p, self.size))[None], lab

    @property
    def labels(self) -> np.ndarray:
        return np.array([lab for _, lab in self.items], dtype=np.int64)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split decoded in memory: (N, 1, size, size) float32, (N,) int64."""
        return self.subset_tensors(range(len(self.items)))

    def subset_tensors(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of the items at `indices`, in that order (only those are decoded)."""
        idx = [int(i) for i in indices]
        x = np.zeros((len(idx), 1, self.size, self.size), dtype=np.float32)
        for j, i in enumerate(idx):
            x[j, 0] = load_gray(self.items[i][0], self.size)
        return torch.from_numpy(x), torch.from_numpy(self.labels[idx])


# ---------------------------------------------------------------------------------- procedural VWW
SUPERSAMPLE = 2     # shapes are drawn at 2x and box-filtered down: anti-aliasing for free
_CHUNK = 256        # images per vectorised background / lighting batch
_RANDOMS = 768      # uniforms drawn per image up front (a scene uses ~150-400)
MAIN_CONTRAST = 0.2  # least grey-level distance of the person (or its stand-in) from the scene level


class _Stream:
    """Cheap scalar draws from a block of pre-drawn uniforms (numpy's scalar calls cost ~1 us each)."""

    __slots__ = ("u", "i", "extra")

    def __init__(self, u: np.ndarray, extra: np.random.Generator):
        self.u, self.i, self.extra = u.tolist(), 0, extra

    def __call__(self, a: float = 0.0, b: float = 1.0) -> float:
        if self.i == len(self.u):  # rare: an unusually busy scene; stays deterministic
            self.u, self.i = self.extra.random(_RANDOMS).tolist(), 0
        v = self.u[self.i]
        self.i += 1
        return a + (b - a) * v

    def int(self, a: int, b: int) -> int:
        """Integer in a..b inclusive."""
        return min(b, a + int(self() * (b - a + 1)))

    def normal(self, mu: float = 0.0, sd: float = 1.0) -> float:
        return mu + sd * (self() + self() + self() + self() - 2.0) * 1.7320508  # Irwin-Hall, var 1

    def sign(self) -> float:
        return 1.0 if self() < 0.5 else -1.0


class _Canvas:
    """Pillow drawing in image units (0..size) on a supersampled 8-bit grayscale canvas."""

    def __init__(self, bg: np.ndarray, k: int):
        self.im = Image.fromarray(bg)
        self.d = ImageDraw.Draw(self.im)
        self.k = k

    def poly(self, pts, v: int) -> None:
        k = self.k
        self.d.polygon([(x * k, y * k) for x, y in pts], fill=v)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, ang: float, v: int) -> None:
        ca, sa = math.cos(ang), math.sin(ang)
        self.poly([(cx + rx * c * ca - ry * s * sa, cy + rx * c * sa + ry * s * ca) for c, s in _CIRCLE], v)

    def limb(self, pts, width: float, v: int) -> None:
        """Thick polyline with round joints and caps (a capsule chain)."""
        k = self.k
        w = max(1, round(width * k))
        self.d.line([(x * k, y * k) for x, y in pts], fill=v, width=w, joint="curve")
        r = w / 2
        for x, y in (pts[0], pts[-1]):
            self.d.ellipse((x * k - r, y * k - r, x * k + r, y * k + r), fill=v)

    def rect(self, cx: float, cy: float, hw: float, hh: float, ang: float, v: int) -> None:
        ca, sa = math.cos(ang), math.sin(ang)
        self.poly([(cx + a * hw * ca - b * hh * sa, cy + a * hw * sa + b * hh * ca)
                   for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))], v)


_CIRCLE = [(math.cos(2 * math.pi * i / 16), math.sin(2 * math.pi * i / 16)) for i in range(16)]


def _body(fx: float, fy: float, tilt: float):
    """Map body coordinates (u right, v up from the feet point, image units) to image (x, y)."""
    ct, st = math.cos(tilt), math.sin(tilt)
    return lambda u, v: (fx + u * ct + v * st, fy - v * ct + u * st)


def _shade(r: _Stream, base: float, lo: float = 0.12) -> int:
    """An object grey level with contrast to the scene's base level; the same law for the person and
    for the objects that stand in for it, so contrast never tells the classes apart."""
    v = base + r.sign() * r(lo, 0.55)
    if not 0.0 <= v <= 1.0:
        v = base - (v - base)  # reflect into range rather than clip to a give-away 0 or 1
    return int(255 * min(1.0, max(0.0, v)))


def _draw_person(cv: _Canvas, r: _Stream, S: float, h: float, fx: float, fy: float, base: float) -> None:
    """A human figure of height h with its feet point at (fx, fy): legs, torso, arms, head."""
    P = _body(fx, fy, r.normal(0, 0.12))
    top, bottom, skin = _shade(r, base, MAIN_CONTRAST), _shade(r, base, MAIN_CONTRAST), _shade(r, base, MAIN_CONTRAST)
    if r() < 0.5:
        bottom = top  # dress / overall: one colour from shoulders to feet
    stride = r(0, 0.55) if r() < 0.6 else r(0, 0.12)  # walking or standing
    sway = r.normal(0, 0.1)
    leg_w, arm_w = h * r(0.075, 0.10), h * r(0.055, 0.075)
    hip_v, sh_v = 0.5 * h, 0.8 * h
    facing = r.sign()  # knees bend backwards, i.e. away from the facing side
    for side in (-1.0, 1.0):  # legs: hip -> knee -> foot; the two legs swing apart when walking
        a = sway + side * stride * 0.5
        b = a - facing * r(0, 0.5)
        hu = side * h * r(0.035, 0.06)
        ku, kv = hu + math.sin(a) * 0.25 * h, hip_v - math.cos(a) * 0.25 * h
        fu, fv = ku + math.sin(b) * 0.25 * h, kv - math.cos(b) * 0.25 * h
        cv.limb([P(hu, hip_v), P(ku, kv), P(fu, max(fv, 0.0))], leg_w, bottom)
    tw_s, tw_h = h * r(0.10, 0.14), h * r(0.08, 0.11)  # half widths at shoulders and hips
    cv.poly([P(-tw_s, sh_v + 0.02 * h), P(tw_s, sh_v + 0.02 * h), P(tw_h, hip_v - 0.03 * h), P(-tw_h, hip_v - 0.03 * h)], top)
    for side in (-1.0, 1.0):  # arms: shoulder -> elbow -> hand; hanging, swinging or raised
        mode = r()
        a = r(0.05, 0.45) if mode < 0.55 else r(0.4, 1.3) if mode < 0.8 else r(1.6, 2.9)
        elbow = r(0, 1.4) * (1 if r() < 0.7 else -1)
        su, sv = side * tw_s * 0.9, sh_v
        eu, ev = su + side * math.sin(a) * 0.17 * h, sv - math.cos(a) * 0.17 * h
        b = a + elbow
        hu_, hv_ = eu + side * math.sin(b) * 0.16 * h, ev - math.cos(b) * 0.16 * h
        cv.limb([P(su, sv), P(eu, ev), P(hu_, hv_)], arm_w, top if r() < 0.7 else skin)
    cv.limb([P(0, sh_v), P(0, 0.87 * h)], h * 0.045, skin)  # neck
    hx, hy = P(r.normal(0, 0.01) * h, 0.925 * h)
    cv.ellipse(hx, hy, h * r(0.055, 0.07), h * r(0.07, 0.085), r.normal(0, 0.15), skin)


def _draw_decoy(cv: _Canvas, r: _Stream, S: float, h: float, fx: float, fy: float, base: float,
                lo: float = 0.12) -> None:
    """An object of a person's size and placement that is not a person (the negatives' main object)."""
    kind = r.int(0, 6)
    P = _body(fx, fy, r.normal(0, 0.12))
    c1, c2 = _shade(r, base, lo), _shade(r, base, lo)
    if kind == 0:    # four-legged animal
        L = h * r(0.5, 0.9)
        bv = h * r(0.3, 0.45)
        d = r.sign()
        for u in (-0.4, -0.3, 0.3, 0.4):
            cv.limb([P(u * L, bv), P(u * L + r.normal(0, 0.05) * L, 0)], h * r(0.05, 0.08), c1)
        cv.ellipse(*P(0, bv + 0.05 * h), L * 0.5, h * r(0.1, 0.17), r.normal(0, 0.1), c1)
        cv.limb([P(d * 0.45 * L, bv + 0.1 * h), P(d * 0.55 * L, bv + h * r(0.15, 0.35))], h * 0.08, c1)
        cv.ellipse(*P(d * 0.6 * L, bv + h * r(0.2, 0.4)), h * r(0.06, 0.1), h * r(0.05, 0.08), 0, c2)
        cv.limb([P(-d * 0.5 * L, bv + 0.1 * h), P(-d * 0.7 * L, bv + r(-0.1, 0.2) * h)], h * 0.03, c1)
    elif kind == 1:  # tree: trunk and crown
        cv.limb([P(0, 0), P(r.normal(0, 0.03) * h, 0.6 * h)], h * r(0.05, 0.12), c1)
        cv.ellipse(*P(0, h * r(0.65, 0.8)), h * r(0.15, 0.35), h * r(0.2, 0.35), r.normal(0, 0.2), c2)
    elif kind == 2:  # pole with a sign or lamp on top
        cv.limb([P(0, 0), P(0, h)], h * r(0.03, 0.06), c1)
        if r() < 0.5:
            cv.rect(*P(0, h * 0.85), h * r(0.08, 0.2), h * r(0.06, 0.15), r.normal(0, 0.1), c2)
        else:
            cv.ellipse(*P(0, h * 0.95), h * r(0.05, 0.1), h * r(0.05, 0.1), 0, c2)
    elif kind == 3:  # stacked blobs (snowman, bottle, vase): a head on a body but no limbs
        v = 0.0
        for j in range(r.int(2, 3)):
            ry = h * r(0.12, 0.28) / (1 + 0.4 * j)
            cv.ellipse(*P(r.normal(0, 0.02) * h, v + ry), ry * r(0.5, 1.2), ry, 0, c1 if j % 2 == 0 else c2)
            v += 2 * ry * 0.9
    elif kind == 4:  # bare branching stick: limb-like strokes without a body's layout
        cv.limb([P(0, 0), P(r.normal(0, 0.05) * h, h)], h * r(0.04, 0.08), c1)
        for _ in range(r.int(2, 5)):
            v0, a, ln = h * r(0.2, 0.9), r(-2.5, 2.5), h * r(0.15, 0.35)
            cv.limb([P(0, v0), P(math.sin(a) * ln, v0 + math.cos(a) * ln * 0.7)], h * r(0.03, 0.06), c1)
    elif kind == 5:  # chair / table: boxes on legs
        w = h * r(0.25, 0.45)
        seat = h * r(0.25, 0.45)
        for u in (-0.9, 0.9):
            cv.limb([P(u * w, 0), P(u * w, seat)], h * 0.04, c1)
        cv.rect(*P(0, seat), w, h * 0.04, 0, c1)
        if r() < 0.6:
            cv.rect(*P(-0.9 * w * r.sign(), seat + h * 0.2), h * 0.04, h * 0.2, 0, c2)
    else:            # door / window / cabinet: an upright box with a detail
        cv.rect(*P(0, 0.5 * h), h * r(0.15, 0.3), 0.5 * h, 0, c1)
        cv.rect(*P(0, h * r(0.5, 0.8)), h * r(0.05, 0.12), h * r(0.05, 0.15), 0, c2)


def _draw_clutter(cv: _Canvas, r: _Stream, S: float, base: float) -> None:
    """One background object shared by both classes: boxes, discs, poles, wires, bushes, stripes,
    triangles, or a small decoy."""
    kind = r.int(0, 8)
    x, y = r(-0.1, 1.1) * S, r(-0.1, 1.1) * S
    s = S * r(0.06, 0.35)
    v = _shade(r, base)
    if kind == 0:
        cv.rect(x, y, s * r(0.3, 1.0), s * r(0.3, 1.0), r.normal(0, 0.3) if r() < 0.5 else 0.0, v)
    elif kind == 1:
        cv.ellipse(x, y, s * r(0.3, 0.7), s * r(0.3, 0.7), r(0, math.pi), v)
    elif kind == 2:  # pole or trunk crossing much of the image
        cv.limb([(x, y - S * r(0.3, 1.0)), (x + r.normal(0, 0.05) * S, y + S * r(0.3, 1.0))], S * r(0.01, 0.06), v)
    elif kind == 3:  # wire / branch at any angle
        a, ln = r(0, math.pi), S * r(0.2, 0.8)
        cv.limb([(x, y), (x + math.cos(a) * ln, y + math.sin(a) * ln)], S * r(0.01, 0.03), v)
    elif kind == 4:  # bush: a few overlapping discs
        for _ in range(r.int(2, 4)):
            cv.ellipse(x + r.normal(0, 0.3) * s, y + r.normal(0, 0.2) * s, s * r(0.2, 0.45), s * r(0.2, 0.4), 0, v)
    elif kind == 5:  # striped texture patch
        hw, hh, v2 = s * r(0.4, 0.9), s * r(0.4, 0.9), _shade(r, base)
        cv.rect(x, y, hw, hh, 0, v)
        step = max(1.0, s * r(0.08, 0.25))
        vertical = r() < 0.5
        t = -(hw if vertical else hh)
        while t < (hw if vertical else hh):
            pts = [(x + t, y - hh), (x + t, y + hh)] if vertical else [(x - hw, y + t), (x + hw, y + t)]
            cv.limb(pts, step * 0.4, v2)
            t += step
    elif kind == 6:
        cv.poly([(x + s * r(-1, 1), y + s * r(-1, 1)) for _ in range(3)], v)
    else:            # a smaller decoy (animal, tree, sign, ...) anywhere in the scene
        _draw_decoy(cv, r, S, S * r(0.1, 0.4), x, y, base)


def _draw_occluder(cv: _Canvas, r: _Stream, S: float, h: float, fx: float, fy: float, base: float) -> None:
    """Something in front of the main object that hides part of it, never all of it: a low wall or
    car over the lower body, a pole, or a bush at one side."""
    v = _shade(r, base)
    kind = r.int(0, 2)
    if kind == 0:
        top = fy - h * r(0.1, 0.45)
        cv.rect(fx + r.normal(0, 0.3) * h, top + S, h * r(0.3, 1.2), S, 0, v)
    elif kind == 1:
        x = fx + r(-0.3, 0.3) * h
        cv.limb([(x, -1.0), (x + r.normal(0, 0.05) * S, S + 1.0)], h * r(0.04, 0.12), v)
    else:
        cv.ellipse(fx + r.sign() * h * r(0.2, 0.45), fy - h * r(0.2, 0.8), h * r(0.1, 0.25), h * r(0.1, 0.25), 0, v)


def _backgrounds(rng: np.random.Generator, n: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """n smooth backgrounds (n, S, S) in [0, 1] and their base levels: level, gradient, optional
    ground plane, low-frequency texture."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    base = rng.uniform(0.2, 0.8, (n, 1, 1)).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    grad = rng.uniform(-0.25, 0.25, (n, 1, 1)).astype(np.float32)
    bg = base + grad * (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5))
    horizon = rng.uniform(0.3, 0.85, (n, 1, 1)).astype(np.float32)
    ground = rng.uniform(-0.2, 0.2, (n, 1, 1)).astype(np.float32) * (rng.random((n, 1, 1)) < 0.6)
    bg += ground * (yy > horizon)
    g = 8  # low-frequency texture: an (g+1)^2 noise field, bilinearly upsampled by two matrix products
    coarse = rng.normal(0, 1, (n, g + 1, g + 1)).astype(np.float32) * rng.uniform(0, 0.08, (n, 1, 1)).astype(np.float32)
    t = np.linspace(0, g, S, dtype=np.float32)
    up = np.maximum(0, 1 - np.abs(t[:, None] - np.arange(g + 1, dtype=np.float32)[None, :]))  # (S, g+1) hat weights
    bg += up @ coarse @ up.T
    return np.clip(bg, 0, 1), base[:, 0, 0]


def _photometric(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Lighting, blur and sensor noise over a batch (n, S, S), identical law for both classes."""
    n = x.shape[0]
    u = lambda a, b: rng.uniform(a, b, (n, 1, 1)).astype(np.float32)  # noqa: E731
    m = x.mean(axis=(1, 2), keepdims=True)
    x = (x - m) * u(0.5, 1.2) + m + u(-0.15, 0.15)          # contrast and exposure
    x = np.clip(x, 0, 1) ** u(0.7, 1.4)                       # gamma
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")      # separable 3x3 box blur, mixed in per image
    p = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    blur = (p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]) * np.float32(1 / 9)
    beta = u(0.0, 1.0) ** 2
    x = x + beta * (blur - x)
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * u(0.005, 0.05)
    return np.clip(x, 0, 1)


def _render_chunk(seed: int, chunk: int, labels: np.ndarray, size: int) -> np.ndarray:
    rng = np.random.default_rng([seed, chunk])
    n, k = len(labels), SUPERSAMPLE
    S = float(size)
    bg, base = _backgrounds(rng, n, size * k)
    bg8 = (bg * 255 + 0.5).astype(np.uint8)
    U = rng.random((n, _RANDOMS))
    canvas = np.empty((n, size * k, size * k), dtype=np.uint8)
    for i in range(n):
        r = _Stream(U[i], np.random.default_rng([seed, chunk, i]))
        cv = _Canvas(bg8[i], k)
        b = float(base[i])
        for _ in range(r.int(1, 6)):
            _draw_clutter(cv, r, S, b)
        h = S * r(0.15, 0.70)
        # At least half the figure's width is in frame, and its head; legs may leave it at the bottom.
        fx = r(0.0, S)
        fy = r(0.85 * h, S + 0.3 * h)
        if labels[i]:
            _draw_person(cv, r, S, h, fx, fy, b)
        else:
            _draw_decoy(cv, r, S, h, fx, fy, b, MAIN_CONTRAST)
        if r() < 0.3:
            _draw_occluder(cv, r, S, h, fx, fy, b)
        canvas[i] = np.asarray(cv.im)
    acc = sum(canvas[:, i::k, j::k].astype(np.uint16) for i in range(k) for j in range(k))
    out = acc.astype(np.float32) * np.float32(1 / (255 * k * k))
    return _photometric(rng, out)


def make_vww_synth(n: int, seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """n procedural VWW-like images (n, 1, size, size) float32 in [0, 1] and labels (n,) int64.

    person (1): a human figure (head, neck, torso, two jointed arms, two jointed legs) in a random
    walking / standing pose with random arm positions, 15-70 % of the image height, tilted a little
    from upright, placed anywhere, cropped at the borders and sometimes partly occluded.
    no_person (0): an object of the same size and placement that is not a person (animal, tree, pole
    with sign, stacked blobs, branching stick, chair, door). Both classes share the background law
    (level, gradient, ground plane, texture), 1-6 clutter objects (which include small decoys),
    occluders, object contrast, lighting, blur and noise: only the figure's shape tells them apart.
    Labels are balanced in every chunk of 256; same (n, seed, size) -> same arrays.
    """
    if n < 1 or size < 16:
        raise ValueError(f"make_vww_synth: need n >= 1 and size >= 16 (got n={n}, size={size})")
    x = np.empty((n, 1, size, size), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for c, start in enumerate(range(0, n, _CHUNK)):
        m = min(_CHUNK, n - start)
        lab = np.random.default_rng([seed, c, 1]).permutation(np.arange(m) % 2)
        y[start : start + m] = lab
        x[start : start + m, 0] = _render_chunk(seed, c, lab, size)
    return x, y


def learnability_check(n_train: int = 16384, n_test: int = 4096, epochs: int = 8, seed: int = 0,
                       threads: int = 1) -> float:
    """Train AnalogNet-VWW in float on the procedural set (one-cycle Adam, mirror augmentation) and
    return its test accuracy: a sanity check of data and network together, not a test. Chance is 50 %.
    """
    import time

    from .analognets import analognet_vww

    torch.manual_seed(seed)
    torch.set_num_threads(threads)  # the check shares a small machine; oversubscribed threads crawl
    x, y = (torch.from_numpy(a) for a in make_vww_synth(n_train, seed))
    xt, yt = (torch.from_numpy(a) for a in make_vww_synth(n_test, seed + 1000))
    net = analognet_vww()
    batch = 64
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * -(-n_train // batch))
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n_train)
        for i in range(0, n_train, batch):
            idx = perm[i : i + batch]
            xb = x[idx]
            flip = torch.rand(len(idx)) < 0.5  # a mirrored scene keeps its label
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = _accuracy(net, xt, yt)
        print(f"epoch {epoch + 1}: {time.time() - t0:5.0f} s, loss {loss.item():.3f}, test accuracy {acc:.3f}", flush=True)
    return acc


@torch.no_grad()
def _accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return (pred == y).float().mean().item()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m aoncim.model.vww_data",
                                 description="Float learnability check of AnalogNet-VWW on the procedural set.")
    ap.add_argument("--n-train", type=int, default=16384)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    print(f"test accuracy {learnability_check(args.n_train, epochs=args.epochs):.3f}")

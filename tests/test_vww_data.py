"""VWW data: the procedural set (shapes, range, balance, determinism, no trivial cue) and the folder
loader of the real VWW on a fake tree of generated JPEGs."""
import numpy as np
import pytest
from PIL import Image

from aoncim.model.vww_data import (
    SPLITS,
    VisualWakeWords,
    hash_split,
    load_gray,
    make_vww_synth,
)


@pytest.fixture(scope="module")
def synth():
    return make_vww_synth(1024, seed=7)


def test_synth_shapes_range_and_balance(synth):
    x, y = synth
    assert x.shape == (1024, 1, 64, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == {0, 1} and y.sum() == 512
    assert y[:256].sum() == 128  # balanced within every chunk, not only overall
    assert x.std(axis=(1, 2, 3)).min() > 0.01  # no blank images


def test_synth_is_deterministic_by_seed(synth):
    x, y = synth
    x2, y2 = make_vww_synth(300, seed=7)
    assert np.array_equal(x[:256], x2[:256]) and np.array_equal(y[:256], y2[:256])
    x3, _ = make_vww_synth(300, seed=8)
    assert not np.allclose(x2, x3)
    assert make_vww_synth(5, seed=1, size=32)[0].shape == (5, 1, 32, 32)


def test_synth_classes_not_separable_by_global_statistics(synth):
    """Brightness, contrast and edge energy alone must not tell person from no person."""
    x, y = synth
    img = x[:, 0]
    edges = np.abs(np.diff(img, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(img, axis=2)).mean(axis=(1, 2))
    for name, f in (("mean", img.mean(axis=(1, 2))), ("std", img.std(axis=(1, 2))), ("edges", edges)):
        acc = max(np.mean((f > t) == y) for t in np.quantile(f, np.linspace(0.02, 0.98, 49)))
        best = max(acc, 1 - acc)
        assert best < 0.62, f"{name} alone separates the classes ({best:.2f})"


def test_synth_bad_arguments():
    with pytest.raises(ValueError, match="need n >= 1"):
        make_vww_synth(0, seed=0)


def _fake_tree(root, n_per_class=12, size=96, non_person_dir="non_person"):
    rng = np.random.default_rng(0)
    for d in ("person", non_person_dir):
        (root / d).mkdir(parents=True)
        for i in range(n_per_class):
            rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(root / d / f"COCO_train2014_{d}_{i:06d}.jpg", quality=90)
    (root / "README").write_text("not an image")
    return root


def test_folder_loader_on_fake_tree(tmp_path):
    root = _fake_tree(tmp_path / "vw_coco2014_96")
    splits = {s: VisualWakeWords(root, s, val_percent=25, test_percent=25) for s in SPLITS}
    names = [p.name for s in SPLITS for p, _ in splits[s].items]
    assert len(names) == len(set(names)) == 24  # disjoint, complete, README ignored
    for s, ds in splits.items():
        assert all(hash_split(p.name, 25, 25) == s for p, _ in ds.items)
        assert all(lab == (p.parent.name == "person") for p, lab in ds.items)
    ds = splits["train"]
    img, lab = ds[0]
    assert img.shape == (1, 64, 64) and img.dtype.is_floating_point and 0 <= img.min() and img.max() <= 1
    x, y = ds.tensors()
    assert x.shape == (len(ds), 1, 64, 64) and y.tolist() == ds.labels.tolist()


def test_grayscale_conversion_and_resize(tmp_path):
    p = tmp_path / "red.png"
    Image.new("RGB", (96, 80), (255, 0, 0)).save(p)
    g = load_gray(p)
    assert g.shape == (64, 64)
    assert np.allclose(g, 76 / 255, atol=1 / 255)  # ITU-R 601 luma of pure red: 0.299 * 255


def test_split_files_are_used_when_present(tmp_path):
    root = _fake_tree(tmp_path / "vww", n_per_class=3, non_person_dir="no_person")
    (root / "train.txt").write_text("person/COCO_train2014_person_000000.jpg\nno_person/COCO_train2014_no_person_000001.jpg\n")
    (root / "val.txt").write_text("person/COCO_train2014_person_000001.jpg\n")
    (root / "test.txt").write_text("")
    ds = VisualWakeWords(root, "train")
    assert [lab for _, lab in ds.items] == [1, 0] and len(VisualWakeWords(root, "val")) == 1
    with pytest.raises(FileNotFoundError, match="no .* images for split 'test'"):
        VisualWakeWords(root, "test")
    (root / "val.txt").unlink()
    for split in SPLITS:  # every split needs all three files, so eval stops as train does
        with pytest.raises(FileNotFoundError, match=r"val.txt missing"):
            VisualWakeWords(root, split)
    (root / "val.txt").write_text("")
    (root / "train.txt").write_text("person/missing.jpg\n")
    with pytest.raises(FileNotFoundError, match="listed image 'person/missing.jpg' does not exist"):
        VisualWakeWords(root, "train")


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VWW root .*nowhere is not a directory.*person/ and non_person/"):
        VisualWakeWords(tmp_path / "nowhere")
    (tmp_path / "only" / "person").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"must contain person/ and non_person/ subfolders \(found: person\)"):
        VisualWakeWords(tmp_path / "only")
    with pytest.raises(ValueError, match="split 'dev' unknown"):
        VisualWakeWords(tmp_path / "only", "dev")
    bad = _fake_tree(tmp_path / "bad", n_per_class=1)
    (bad / "person" / "COCO_broken.jpg").write_bytes(b"not a jpeg")
    ds = VisualWakeWords(bad, "train", val_percent=0, test_percent=0)
    i = next(i for i, (p, _) in enumerate(ds.items) if p.name == "COCO_broken.jpg")
    with pytest.raises(ValueError, match="cannot decode image .*COCO_broken.jpg"):
        ds[i]


def test_hash_split_is_stable_and_proportional():
    names = [f"COCO_train2014_{i:012d}.jpg" for i in range(4000)]
    got = [hash_split(n) for n in names]
    assert got == [hash_split(n) for n in names]
    frac = {s: got.count(s) / len(got) for s in SPLITS}
    assert abs(frac["test"] - 0.1) < 0.02 and abs(frac["val"] - 0.1) < 0.02


def test_class_folders_hold_images_only(tmp_path):
    root = _fake_tree(tmp_path / "vww", n_per_class=2)
    (root / "person" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "person" / "._COCO_x.jpg").write_bytes(b"\0\5\26\7")  # macOS resource fork, not an image
    (root / "person" / "thumbs").mkdir()
    assert len(VisualWakeWords(root, "train", val_percent=0, test_percent=0)) == 4  # hidden files, folders skipped
    (root / "non_person" / "labels.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"non_person/labels.csv: not a .jpg/.jpeg/.png image.*out of non_person/"):
        VisualWakeWords(root, "train")
    (root / "non_person" / "labels.csv").unlink()
    for p in (root / "person").glob("*.jpg"):
        p.unlink()
    with pytest.raises(ValueError, match=r"person holds no .jpg/.jpeg/.png images"):
        VisualWakeWords(root, "test")


def test_split_file_entries_are_checked(tmp_path):
    root = _fake_tree(tmp_path / "vww", n_per_class=2)
    for s in SPLITS:
        (root / f"{s}.txt").write_text("person/COCO_train2014_person_000000.jpg\n")
    assert len(VisualWakeWords(root, "val")) == 1
    for entry, match in (("../outside.jpg", "line 1: entry '../outside.jpg' is not under person/"),
                         ("person/../../x.jpg", "is not under person/"),
                         ("person/notes.txt", "is not a .jpg/.jpeg/.png image")):
        (root / "test.txt").write_text(entry + "\n")
        with pytest.raises(ValueError, match=match):
            VisualWakeWords(root, "test")
    (root / "test.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="test.txt: not a readable text file"):
        VisualWakeWords(root, "test")


def test_undecodable_images_name_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(good)
    cases = {"truncated.jpg": good.read_bytes()[:200], "empty.png": b"",
             "header_only.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "text.jpeg": b"hello"}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=rf"cannot decode image .*{name}: .*: delete it or replace it") as e:
            load_gray(tmp_path / name)
        assert "\n" not in str(e.value)


def test_subset_tensors_decode_only_what_is_asked(tmp_path):
    root = _fake_tree(tmp_path / "vww", n_per_class=3)
    ds = VisualWakeWords(root, "train", val_percent=0, test_percent=0)
    x, y = ds.tensors()
    xs, ys = ds.subset_tensors([4, 0, 2])
    assert np.array_equal(xs.numpy(), x.numpy()[[4, 0, 2]]) and ys.tolist() == y[[4, 0, 2]].tolist()
    (ds.items[1][0]).write_bytes(b"broken")  # not asked for: never decoded
    ds.subset_tensors([0, 2])

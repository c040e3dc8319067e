import warnings

import cv2
import numpy as np
import pytest

from conftest import tiny_faces
from ferkit.data import load_fer2013
from ferkit.errors import DataError
from ferkit.labels import EMOTIONS


def test_csv_splits_follow_usage(tiny_csv):
    d = load_fer2013(tiny_csv)
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 56, "val": 14, "test": 14}
    assert d.class_names == EMOTIONS
    tr = d["train"]
    assert tr.images.shape == (56, 48, 48) and tr.images.dtype == np.uint8
    assert tr.targets.dtype == np.int64
    expected, labels = tiny_faces(56, seed=0)
    assert np.array_equal(tr.images, expected) and np.array_equal(tr.targets, labels)
    assert tr.sources[0] == "row 2"


def test_csv_class_sets(tiny_csv):
    six = load_fer2013(tiny_csv, "6")
    assert len(six.class_names) == 6 and len(six["train"]) == 56
    assert (six["train"].targets == six.class_names.index("angry")).sum() == 16  # 8 angry + 8 disgust
    sub = load_fer2013(tiny_csv, "happy,sad,neutral")
    assert len(sub["train"]) == 24 and set(sub["train"].targets.tolist()) == {0, 1, 2}


def test_cache_is_written_once_and_reused(tiny_csv, cache_dir):
    first = load_fer2013(tiny_csv)
    files = list(cache_dir.glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = load_fer2013(tiny_csv)
    assert files[0].stat().st_mtime_ns == mtime
    assert np.array_equal(first["test"].images, second["test"].images)


def test_bad_csv_rows_are_named_not_reshaped(tmp_path, cache_dir):
    good = " ".join(["1"] * 2304)
    path = tmp_path / "bad.csv"
    path.write_text("emotion,pixels,Usage\n"
                    f"3,{good},Training\n"
                    f"9,{good},Training\n"                      # row 3: unknown label
                    f"2,{' '.join(['1'] * 2300)},Training\n"    # row 4: short row
                    f"2,{good},Elsewhere\n"                      # row 5: unknown usage
                    f"4,{good},PublicTest\n")
    with pytest.raises(DataError) as err:
        load_fer2013(path)
    text = str(err.value)
    assert "row 3" in text and "unknown emotion label" in text
    assert "row 4: 2300 pixels, expected 2304" in text
    assert "row 5" in text and len(err.value.problems) == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_fer2013(path, on_error="skip")
    assert any("row 4" in str(w.message) for w in caught)
    assert len(d["train"]) == 1 and len(d["val"]) == 1


def test_csv_without_usage_gets_seeded_split(tmp_path, cache_dir):
    images, labels = tiny_faces(50, seed=3)
    path = tmp_path / "nousage.csv"
    path.write_text("emotion,pixels\n" + "".join(
        f"{y},{' '.join(map(str, im.ravel()))}\n" for im, y in zip(images, labels)))
    a = load_fer2013(path, cache=False)
    b = load_fer2013(path, cache=False)
    assert [len(a[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert np.array_equal(a["val"].sources, b["val"].sources)
    c = load_fer2013(path, cache=False, fallback_seed=1)
    assert not np.array_equal(a["val"].sources, c["val"].sources)


def test_folders_with_prefixes(tiny_folder):
    d = load_fer2013(tiny_folder)
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 28, "val": 7, "test": 7}
    assert all(s.startswith("test/") and "PrivateTest_" in s for s in d["test"].sources)
    assert all("PublicTest_" in s for s in d["val"].sources)
    for img, y, src in zip(d["train"].images, d["train"].targets, d["train"].sources):
        assert src.split("/")[1] == EMOTIONS[y]
        assert np.array_equal(img, cv2.imread(str(tiny_folder / src), cv2.IMREAD_GRAYSCALE))


def test_folders_without_prefixes_split_test_in_half(tmp_path, cache_dir):
    root = tmp_path / "plain"
    images, labels = tiny_faces(40, seed=5)
    for i, (img, y) in enumerate(zip(images, labels)):
        d = root / ("train" if i < 20 else "test") / EMOTIONS[y]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"im{i}.png"), cv2.resize(img, (64, 64)))  # other size: resized
    a = load_fer2013(root)
    assert [len(a[s]) for s in ("train", "val", "test")] == [20, 10, 10]
    assert a["val"].images.shape[1:] == (48, 48)
    b = load_fer2013(root, cache=False)
    assert np.array_equal(a["val"].sources, b["val"].sources)


def test_unreadable_image_is_named_and_others_load(tiny_folder):
    bad = tiny_folder / "train" / "happy" / "Training_999.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="Training_999.jpg"):
        load_fer2013(tiny_folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = load_fer2013(tiny_folder, on_error="skip")
    assert len(d["train"]) == 28


def test_unknown_emotion_folder_is_reported(tiny_folder):
    d = tiny_folder / "train" / "contempt"
    d.mkdir()
    cv2.imwrite(str(d / "Training_1000.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match="contempt"):
        load_fer2013(tiny_folder)


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        load_fer2013("/no/such/fer2013.csv")


@pytest.mark.parametrize("suffix", [".npz", ".npz.xz"])
def test_pack_round_trips_the_kept_splits(tiny_folder, tmp_path, suffix):
    from ferkit.data import pack_fer2013

    out = tmp_path / "carry" / f"fer{suffix}"
    counts = pack_fer2013(tiny_folder, out, ("train", "val"))
    assert counts == {"train": 28, "val": 7}
    original, packed = load_fer2013(tiny_folder), load_fer2013(out)
    for split in ("train", "val"):
        for field in ("images", "targets", "sources"):
            assert np.array_equal(getattr(original[split], field), getattr(packed[split], field)), (split, field)
    assert len(packed["test"]) == 0 and packed["test"].images.shape == (0, 48, 48)
    # Labels are FER2013's ids, so a class set is chosen when the pack is read.
    assert len(load_fer2013(out, "happy,sad,neutral")["train"]) == len(
        load_fer2013(tiny_folder, "happy,sad,neutral")["train"])
    # Another side: resized with area interpolation, as image folders are.
    small = load_fer2013(out, image_size=32)["train"].images
    assert small.shape == (28, 32, 32)
    assert np.array_equal(small[0], cv2.resize(original["train"].images[0], (32, 32),
                                               interpolation=cv2.INTER_AREA))
    assert not list(out.parent.glob(".*tmp"))  # written atomically


def test_pack_refuses_bad_arguments_and_names_a_broken_pack(tiny_csv, tmp_path):
    from ferkit.data import pack_fer2013

    with pytest.raises(ValueError, match="unknown or no splits"):
        pack_fer2013(tiny_csv, tmp_path / "p.npz", ("train", "holdout"))
    with pytest.raises(ValueError, match=r"\.npz or \.npz\.xz"):
        pack_fer2013(tiny_csv, tmp_path / "p.zip")
    broken = tmp_path / "broken.npz.xz"
    broken.write_bytes(b"not xz at all")
    with pytest.raises(DataError, match="broken.npz.xz: not a readable ferkit pack"):
        load_fer2013(broken)
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(DataError, match="lacks labels, splits, sources"):
        load_fer2013(other)


def test_pack_skips_bad_files_only_when_asked(tiny_folder, tmp_path):
    from ferkit.data import pack_fer2013

    (tiny_folder / "train" / "happy" / "Training_999.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="Training_999.jpg"):
        pack_fer2013(tiny_folder, tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
    with pytest.warns(UserWarning, match="left out of the pack"):
        counts = pack_fer2013(tiny_folder, tmp_path / "p.npz", on_error="skip")
    assert counts == {"train": 28, "val": 7}
    assert len(load_fer2013(tmp_path / "p.npz")["train"]) == 28  # a clean pack: nothing to skip


def test_an_empty_split_of_a_pack_is_named_not_evaluated(tiny_csv, tmp_path):
    from ferkit.data import pack_fer2013
    from ferkit.evaluate import evaluate

    pack_fer2013(tiny_csv, tmp_path / "p.npz")  # train and val only
    with pytest.raises(DataError, match="the test split is empty"):
        evaluate(None, tmp_path / "p.npz", "test")
    assert evaluate(None, tmp_path / "p.npz", "val")["n"] == 14

"""``ferkit explore``: figures and the data check, on a tiny CSV with planted problems."""

import csv
import json

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.explore import duplicate_stats, exact_hashes, explore, phash

FIGURES = ("class_distribution", "samples", "pixel_stats", "duplicates_across_splits", "blank_images")


def noise_faces(n: int, seed: int) -> np.ndarray:
    """n distinct 48x48 uint8 noise faces in 20-235, so a +6 brightness shift never clips."""
    return np.random.default_rng(seed).integers(20, 236, size=(n, 48, 48)).astype(np.uint8)


def popcount(h) -> int:
    return bin(int(h)).count("1")


@pytest.fixture
def planted_csv(tmp_path, cache_dir):
    """A Kaggle-layout CSV (43 faces) with known problems planted:

    * train: 20 faces T0-T19 (label i % 7), plus T0 once more, T1 twice more, T2 once more
      with another label (3 groups, 7 faces, 1 conflicting), and an all-black face;
    * val: 6 faces, a copy of T6 (train/val), and a grey face with faint noise (std < 1);
    * test: 6 faces, a copy of T3 (same label), a copy of T7 (angry) labelled disgust,
      T5 six grey levels brighter (a near duplicate: equal pHash, different pixels), and an
      all-black face labelled angry (a blank exact train/test duplicate, conflicting).
    """
    t, v, s = noise_faces(20, 1), noise_faces(6, 2), noise_faces(6, 3)
    rng = np.random.default_rng(4)
    grey = (128 + rng.integers(-1, 2, size=(48, 48))).astype(np.uint8)
    rows = [(i % 7, img, "Training") for i, img in enumerate(t)]
    rows += [(0, t[0], "Training"), (1, t[1], "Training"), (1, t[1], "Training"),
             (3, t[2], "Training"), (5, np.zeros((48, 48), np.uint8), "Training")]
    rows += [(i % 7, img, "PublicTest") for i, img in enumerate(v)]
    rows += [(6, t[6], "PublicTest"), (3, grey, "PublicTest")]
    rows += [(i % 7, img, "PrivateTest") for i, img in enumerate(s)]
    rows += [(3, t[3], "PrivateTest"), (1, t[7], "PrivateTest"), (5, t[5] + 6, "PrivateTest"),
             (0, np.zeros((48, 48), np.uint8), "PrivateTest")]
    path = tmp_path / "planted.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for y, img, usage in rows:
            w.writerow([y, " ".join(map(str, img.ravel())), usage])
    return path


def test_phash_ignores_brightness_and_separates_faces():
    faces = noise_faces(50, 0)
    h = phash(faces)
    assert h.dtype == np.uint64 and h.shape == (50,)
    assert len(set(h.tolist())) == 50  # distinct faces, distinct hashes
    assert all(popcount(x) == 32 for x in h)  # one bit per coefficient above the median of 64
    assert np.array_equal(phash(faces + 6), h)  # brightness shift: same hash, other pixels
    assert np.array_equal(phash(faces.astype(np.float32)), h)
    flipped = phash(faces[:, :, ::-1].copy())
    assert all(popcount(a ^ b) > 8 for a, b in zip(flipped, h))


def test_exact_hashes_equal_only_for_identical_faces():
    faces = noise_faces(3, 0)
    changed = faces[0].copy()
    changed[10, 10] ^= 1
    keys = exact_hashes(np.stack([faces[0], faces[1], faces[0], changed]))
    assert keys[0] == keys[2]
    assert keys[0] != keys[1] and keys[0] != keys[3]


def test_duplicate_stats_scopes_and_conflicts():
    keys = np.array([1, 1, 2, 2, 2, 3, 1, 4, 4])
    codes = np.array([0, 0, 0, 2, 2, 1, 2, 1, 1])  # 0 train, 1 val, 2 test
    labels = np.array([0, 0, 5, 5, 6, 3, 2, 1, 1])
    stats, group = duplicate_stats(keys, codes, labels)
    assert stats["within"]["train"] == {"groups": 1, "images": 2, "redundant": 1, "conflicting_label_groups": 0}
    assert stats["within"]["val"] == {"groups": 1, "images": 2, "redundant": 1, "conflicting_label_groups": 0}
    assert stats["within"]["test"] == {"groups": 1, "images": 2, "redundant": 1, "conflicting_label_groups": 1}
    assert stats["across"]["train/test"] == {"groups": 2, "images_train": 3, "images_test": 3, "pairs": 4,
                                             "conflicting_label_groups": 2}
    assert stats["across"]["train/val"]["groups"] == 0 and stats["across"]["val/test"]["pairs"] == 0
    assert stats["all"] == {"groups": 3, "images": 8, "redundant": 5, "conflicting_label_groups": 2}
    assert group[0] == group[1] == group[6] and group[0] != group[2]
    left_out, group = duplicate_stats(keys, codes, labels, include=keys != 1)
    assert left_out["across"]["train/test"]["pairs"] == 2 and (group[keys == 1] == -1).all()


def test_explore_finds_exactly_the_planted_problems(planted_csv, tmp_path):
    out = tmp_path / "explore"
    s = explore(planted_csv, out, seed=3)
    assert s["totals"] == {"train": 25, "val": 8, "test": 10, "all": 43}
    assert s["counts"]["train"]["angry"] == 4 and s["counts"]["test"]["disgust"] == 2
    q = s["quality"]

    exact = q["exact_duplicates"]
    assert exact["within"]["train"] == {"groups": 3, "images": 7, "redundant": 4, "conflicting_label_groups": 1}
    assert exact["within"]["val"]["groups"] == 0 and exact["within"]["test"]["groups"] == 0
    assert exact["across"]["train/val"] == {"groups": 1, "images_train": 1, "images_val": 1, "pairs": 1,
                                            "conflicting_label_groups": 0}
    assert exact["across"]["train/test"] == {"groups": 3, "images_train": 3, "images_test": 3, "pairs": 3,
                                             "conflicting_label_groups": 2}
    assert exact["across"]["val/test"]["groups"] == 0
    assert exact["all"] == {"groups": 7, "images": 15, "redundant": 8, "conflicting_label_groups": 3}
    assert exact["blank_groups"] == 1

    near = q["near_duplicates"]
    assert near["max_hamming_distance"] == 0 and "pHash" in near["criterion"] and near["excludes_blank"]
    # the black pair is an exact duplicate, but blank faces are left out of pHash matching
    assert near["across"]["train/test"] == {"groups": 3, "images_train": 3, "images_test": 3, "pairs": 3,
                                            "conflicting_label_groups": 1, "pairs_not_exact": 1}
    assert near["across"]["train/val"]["pairs_not_exact"] == 0 and near["across"]["val/test"]["pairs"] == 0
    assert near["within"]["train"]["groups"] == 3 and near["within"]["train"]["groups_not_exact"] == 0
    assert near["all"]["groups"] == 7 and near["all"]["groups_not_exact"] == 1

    blank = q["blank"]
    assert blank["std_threshold"] == 3.0 and "std < 3" in blank["criterion"]
    assert blank["count"] == 3 and blank["per_split"] == {"train": 1, "val": 1, "test": 1}
    assert blank["sources"] == ["row 26", "row 34", "row 44"]
    assert q["no_face"] is None

    px = s["pixel_stats"]
    assert px["per_class"]["angry"]["images"] == 7
    assert px["all"]["frac_at_0"] == pytest.approx(2 / 43)  # the black faces, nothing else below 20
    assert px["all"]["frac_at_255"] == 0
    assert 100 < px["train"]["mean"] < 130 and px["per_class"]["happy"]["std"] > 50

    for name in FIGURES:
        path = out / f"{name}.png"
        assert s["files"][name] == str(path)
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        assert img is not None and min(img.shape) > 150 and img.std() > 10, name
        assert path.stat().st_size > 10_000, name
    assert json.loads((out / "summary.json").read_text()) == s
    with open(out / "duplicates.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["kind"] == "exact" for r in rows) == 15
    near_rows = [r for r in rows if r["kind"] == "near"]
    assert {(r["split"], r["source"]) for r in near_rows} == {("train", "row 7"), ("test", "row 43")}


def test_explore_uses_the_class_set_for_conflicts(planted_csv, tmp_path):
    q = explore(planted_csv, tmp_path / "six", "6")["quality"]
    # T7 (angry) vs its test copy (disgust) agree once disgust is merged into angry
    assert q["exact_duplicates"]["across"]["train/test"]["conflicting_label_groups"] == 1
    assert q["exact_duplicates"]["within"]["train"]["conflicting_label_groups"] == 1


def test_face_check_flags_the_blank_faces(planted_csv, tmp_path):
    s = explore(planted_csv, tmp_path / "faces", face_check=True)
    nf = s["quality"]["no_face"]
    assert "Haar" in nf["criterion"] and sum(nf["per_split"].values()) == nf["count"]
    assert set(s["quality"]["blank"]["sources"]) <= set(nf["sources"])
    assert (tmp_path / "faces" / "no_face_images.png").stat().st_size > 10_000


def test_cli_explore(planted_csv, tiny_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["explore", str(planted_csv), "--out", str(out), "--blank-std", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "43 faces" in text and "train/test leakage: 3 test faces" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["quality"]["blank"]["count"] == 2  # only the black faces have std < 0.5
    assert all((out / f"{name}.png").is_file() for name in FIGURES)

    assert main(["explore", str(tiny_folder), "--out", str(tmp_path / "folder")]) == 0
    assert json.loads((tmp_path / "folder" / "summary.json").read_text())["totals"]["all"] == 42

    assert main(["explore", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "dataset not found" in capsys.readouterr().err

"""Checks on the real FER2013 beside the project; skipped with a reason when it is absent."""

import numpy as np
import pytest

from ferkit.classifier import OnnxClassifier, bundled_models
from ferkit.data import load_fer2013
from ferkit.evaluate import evaluate
from ferkit.recognize import sharpness

# Counts per split of the standard FER2013 (../shared/datasets/README.md).
EXPECTED = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171, "neutral": 4965},
    "val": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607},
    "test": {"angry": 491, "disgust": 55, "fear": 528, "happy": 879, "sad": 594, "surprise": 416, "neutral": 626},
}


def test_splits_and_counts(real_fer2013):
    d = load_fer2013(real_fer2013)
    assert d.counts() == EXPECTED
    assert d["train"].images.shape[1:] == (48, 48)
    assert all(s.startswith("test/") and "/PrivateTest_" in s for s in d["test"].sources[:50])


def test_class_sets_on_real_data(real_fer2013):
    six = load_fer2013(real_fer2013, "6")
    assert six.counts()["test"]["angry"] == 491 + 55
    three = load_fer2013(real_fer2013, "happy,sad,neutral")
    assert len(three["val"]) == 895 + 653 + 607


# Each bundled model and the accuracy floor it must keep on PrivateTest.
BUNDLED_FLOORS = {"default": 0.73, "default-int8": 0.73, "int8": 0.65, "ensemble": 0.73,
                  "small-faces": 0.71}  # small-faces: its figure on 48 px faces, which never reach it


@pytest.mark.parametrize("name", sorted(BUNDLED_FLOORS))
def test_bundled_model_matches_its_recorded_test_accuracy(real_fer2013, tmp_path, name):
    recorded = OnnxClassifier(name).meta["metrics"]["test"]
    m = evaluate(name, real_fer2013, split="test", out=tmp_path)
    assert m["n"] == recorded["n"] == 3589
    # the same faces right, give or take one borderline face across CPUs
    assert abs(m["accuracy"] - recorded["accuracy"]) * m["n"] <= 1.0 + 1e-9
    assert m["accuracy"] >= BUNDLED_FLOORS[name]
    assert np.isclose(m["macro_f1"], recorded["macro_f1"], atol=2e-3)


def test_every_bundled_model_has_a_floor():
    assert set(bundled_models()) == set(BUNDLED_FLOORS)


@pytest.mark.parametrize("detector", ["yunet", "haar"])
def test_default_crop_frames_a_detected_face_as_fer2013_does(real_fer2013, detector):
    """Session 37's measurement (benchmarks/crop_margin.py) in small: FER2013 faces set 2x
    and 4x larger in a canvas; the Recognizer's default crop around the detector's box
    (with the detector's own margin) covers about the face's own frame. The old 10% margin
    made it 1.15-1.2x too wide at 4x, and val accuracy 1.4-1.6 points lower."""
    import importlib.util
    from pathlib import Path

    from ferkit import Recognizer
    from ferkit.detect import Detection

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "crop_margin.py"
    spec = importlib.util.spec_from_file_location("crop_margin", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    faces = load_fer2013(real_fer2013)["val"].images[:200]
    rec = Recognizer(OnnxClassifier("int8"), detector=detector)
    for scale in (2, 4):
        found = [f for f in bench.find_boxes(rec, faces, scale=scale, min_iou=0.3) if f[2] is not None]
        assert len(found) >= 0.7 * len(faces)
        ratios = []
        for canvas, frame, box in found:
            _, (crop,) = rec.crop(canvas, [Detection(box)])
            ratios.append(frame[2] / crop.shape[0])
        geometry = bench.geometry(found)  # frame side / box side, centre offsets in box sides
        assert 0.92 <= np.median(ratios) <= 1.1, (scale, np.median(ratios))
        assert np.all(np.abs(np.median(geometry[:, 1:], axis=0)) < 0.05)


def test_small_faces_keep_more_accuracy_than_bilinear_enlarging(real_fer2013):
    """Session 37 (benchmarks/face_size.py): val faces shrunk to 24 px, enlarged by the
    model's preprocessing (Lanczos), score well above the same faces enlarged bilinearly
    (63.89% against 54.86% on all of val)."""
    import cv2

    val = load_fer2013(real_fer2013)["val"]
    faces, y = val.images[:400], val.targets[:400]
    small = [cv2.resize(f, (24, 24), interpolation=cv2.INTER_AREA) for f in faces]
    bilinear = np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_LINEAR) for f in small])
    clf = OnnxClassifier("default")
    ours = (clf.predict_probs(small).argmax(1) == y).mean()
    theirs = (clf.predict_probs(bilinear).argmax(1) == y).mean()
    assert ours >= theirs + 0.03, (ours, theirs)


def test_the_default_routes_small_faces_to_a_network_that_knows_them(real_fer2013):
    """Session 38 (benchmarks/face_size.py): on val faces shrunk to 16 px the bundled
    ``small-faces`` network scored 58.09% against the default's 39.20%; a face of 48 px still
    goes to the default, unchanged."""
    import cv2

    from ferkit.recognize import Recognizer

    val = load_fer2013(real_fer2013)["val"]
    faces, y = val.images[:600], val.targets[:600]
    small = [cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in faces]
    routed, plain = Recognizer(detector="haar"), Recognizer(detector="haar", small_faces=None)
    ours = (routed.classify_faces(small).argmax(1) == y).mean()
    theirs = (plain.classify_faces(small).argmax(1) == y).mean()
    assert ours >= theirs + 0.08, (ours, theirs)
    sharp = [f for f in faces[:64] if sharpness(f) >= routed.sharpness_below]  # the blurred few are routed
    assert len(sharp) >= 56 and np.array_equal(routed.classify_faces(sharp), plain.classify_faces(sharp))


def test_the_default_routes_blurred_faces_to_the_small_face_network(real_fer2013):
    """Session 40 (benchmarks/sharpness.py): val faces enlarged to 96 px and blurred by 2 px
    scored 66.45% routed by their sharpness against 55.73% for the default alone; the same
    faces unblurred lose nothing (71.69% against 71.72%). Session 41: with sensor noise on
    top (16 grey levels), routed by the median-filtered measure, 62.44% against 54.17%."""
    import cv2

    from ferkit.recognize import Recognizer

    val = load_fer2013(real_fer2013)["val"]
    faces, y = val.images[:600], val.targets[:600]
    big = [cv2.resize(f, (96, 96), interpolation=cv2.INTER_CUBIC) for f in faces]
    blurred = [cv2.GaussianBlur(f, (0, 0), 2) for f in big]
    routed, plain = Recognizer(detector="haar"), Recognizer(detector="haar", sharpness_below=0)
    ours = (routed.classify_faces(blurred).argmax(1) == y).mean()
    theirs = (plain.classify_faces(blurred).argmax(1) == y).mean()
    assert ours >= theirs + 0.05, (ours, theirs)
    # 600 faces drawn across val: blurred and noisy, val's first 600 are unusually hard for
    # both networks (41.5% and 43.8%, against 54.2% and 63.1% on all of val)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(val.targets), 600, replace=False)
    drawn = [cv2.resize(f, (96, 96), interpolation=cv2.INTER_CUBIC) for f in val.images[pick]]
    noisy = [np.clip(cv2.GaussianBlur(f, (0, 0), 2) + rng.normal(0, 16, f.shape), 0, 255).astype(np.uint8)
             for f in drawn]
    ours = (routed.classify_faces(noisy).argmax(1) == val.targets[pick]).mean()
    theirs = (plain.classify_faces(noisy).argmax(1) == val.targets[pick]).mean()
    assert ours >= theirs + 0.04, (ours, theirs)
    clean_ours = (routed.classify_faces(big).argmax(1) == y).mean()
    clean_theirs = (plain.classify_faces(big).argmax(1) == y).mean()
    assert clean_ours >= clean_theirs - 0.005, (clean_ours, clean_theirs)


def test_rolled_faces_are_classified_better_turned_upright(real_fer2013):
    """Session 39 (benchmarks/roll.py): val faces at 192 px rolled by 30 degrees scored
    69.66% / 68.50% (-30 / +30 degrees) when the Recognizer turned them upright by their
    eye landmarks, against 61.81% / 62.94% on the box as it lies (bundled default)."""
    import cv2

    from ferkit.recognize import Recognizer

    data = load_fer2013(real_fer2013)
    val, names = data["val"], data.class_names
    clf = OnnxClassifier("default-int8")
    rec, plain = Recognizer(clf, detector="yunet"), Recognizer(clf, detector="yunet", align_above=None)
    right = {"levelled": 0, "box": 0, "found": 0}
    for face, target in zip(val.images[:300], val.targets[:300]):
        up = cv2.copyMakeBorder(cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC),
                                96, 96, 96, 96, cv2.BORDER_REPLICATE)
        for angle in (-30, 30):
            m = cv2.getRotationMatrix2D((191.5, 191.5), angle, 1.0)
            canvas = cv2.warpAffine(up, m, (384, 384), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            found = [d for d in rec.detect(canvas)
                     if np.hypot(d.box[0] + d.box[2] / 2 - 191.5, d.box[1] + d.box[3] / 2 - 191.5) < 0.35 * 192]
            if not found:
                continue
            right["found"] += 1
            right["levelled"] += rec.classify(canvas, found[:1])[0].label == names[target]
            right["box"] += plain.classify(canvas, found[:1])[0].label == names[target]
    assert right["found"] >= 250, right
    assert right["levelled"] >= right["box"] + 0.03 * right["found"], right

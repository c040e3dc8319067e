"""Checks on the real FER2013 beside the project; skipped with a reason when it is absent."""

import numpy as np
import pytest

from ferkit.classifier import OnnxClassifier, bundled_models
from ferkit.data import load_fer2013
from ferkit.evaluate import evaluate

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
BUNDLED_FLOORS = {"default": 0.73, "default-int8": 0.73, "int8": 0.65, "ensemble": 0.73}


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

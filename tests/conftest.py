"""Shared fixtures: tiny FER datasets written by the tests themselves, and the path of the
real FER2013 beside the project (``../shared/datasets/fer2013``, or ``$FERKIT_FER2013``)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.labels import EMOTIONS

REAL_FER2013 = Path(os.environ.get("FERKIT_FER2013",
                                   Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"))
USAGES = ("Training", "PublicTest", "PrivateTest")


def tiny_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n random 48x48 uint8 'faces' whose brightness pattern depends on the label, so a
    model can learn something; labels cycle through all seven emotions."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 7
    images = rng.integers(0, 60, size=(n, 48, 48))
    for i, y in enumerate(labels):
        images[i, :, y * 6:(y + 1) * 6] += 180  # a bright vertical band at a label-dependent place
    return images.clip(0, 255).astype(np.uint8), labels


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(d))
    return d


@pytest.fixture
def tiny_csv(tmp_path, cache_dir) -> Path:
    """A Kaggle-layout CSV: 56 train, 14 val, 14 test rows."""
    path = tmp_path / "fer2013.csv"
    lines = ["emotion,pixels,Usage"]
    for usage, n, seed in zip(USAGES, (56, 14, 14), (0, 1, 2)):
        images, labels = tiny_faces(n, seed)
        for img, y in zip(images, labels):
            lines.append(f"{y},{' '.join(map(str, img.ravel()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_folder(tmp_path, cache_dir) -> Path:
    """An image-folder layout with Training_/PublicTest_/PrivateTest_ prefixes: 28 train,
    7 val and 7 test PNGs."""
    root = tmp_path / "fer_folders"
    k = 0
    for usage, top, n in zip(USAGES, ("train", "test", "test"), (28, 7, 7)):
        images, labels = tiny_faces(n, seed=k)
        for img, y in zip(images, labels):
            d = root / top / EMOTIONS[y]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{usage}_{k}.png"), img)
            k += 1
    return root


@pytest.fixture
def real_fer2013() -> Path:
    if not (REAL_FER2013 / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {REAL_FER2013} (set FERKIT_FER2013 to its folder)")
    return REAL_FER2013

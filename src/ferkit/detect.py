"""Face detection behind a small interface, with OpenCV's Haar cascade as the default.

Any object with a ``detect(image) -> list[Detection]`` method is a detector; register a
constructor with :func:`register_detector` to make it available by name (for example to
``Recognizer(detector="name")`` and ``ferkit predict --detector name``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face found by a detector.

    Attributes:
        box: (x, y, w, h) in integer pixels, top-left origin, inside the image.
        confidence: the detector's own score, higher is surer; its scale depends on the
            detector (for Haar: the cascade's final stage weight, not a probability);
            ``None`` when the detector gives none. Not the emotion score.
    """

    box: tuple[int, int, int, int]
    confidence: float | None = None


@runtime_checkable
class Detector(Protocol):
    """What a face detector provides."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find faces in an (H, W, 3) uint8 BGR or (H, W) uint8 gray image."""
        ...


class HaarDetector:
    """OpenCV's Viola-Jones Haar cascade (Viola & Jones, 2001, "Rapid Object Detection
    using a Boosted Cascade of Simple Features"), frontal faces.

    Args:
        cascade: a cascade file name in ``cv2.data.haarcascades`` or a path to one.
        scale_factor: image pyramid step (> 1).
        min_neighbors: overlapping candidates a face needs; higher gives fewer false
            faces and more missed ones.
        min_size: smallest face side in pixels.

    Raises:
        FileNotFoundError: the cascade file does not exist or does not load.
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30):
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        self.classifier = cv2.CascadeClassifier(str(path))
        if not path.is_file() or self.classifier.empty():
            raise FileNotFoundError(f"Haar cascade not found or not loadable: {cascade}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 BGR or (H, W) uint8 gray image, largest first."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rects, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        found = [Detection(tuple(int(v) for v in r), float(w)) for r, w in zip(rects, np.ravel(weights))]
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])


_DETECTORS: dict[str, Callable[..., Detector]] = {"haar": HaarDetector}


def register_detector(name: str, factory: Callable[..., Detector]) -> None:
    """Make a detector constructor available by ``name``."""
    _DETECTORS[name] = factory


def create_detector(name: str = "haar", **kwargs) -> Detector:
    """Build a registered detector by name.

    Raises:
        ValueError: unknown name (with a "did you mean").
    """
    if name not in _DETECTORS:
        close = difflib.get_close_matches(name, _DETECTORS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown detector {name!r}: expected one of {', '.join(sorted(_DETECTORS))}{hint}")
    return _DETECTORS[name](**kwargs)

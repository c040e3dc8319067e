"""Emotion names and class sets.

FER2013 (Goodfellow et al., 2013, "Challenges in Representation Learning: A report on
three machine learning contests") labels faces with seven emotions whose integer ids are
fixed by the Kaggle challenge CSV. Those ids are defined here once; every other module
refers to :data:`EMOTIONS`.

A *class set* selects which emotions a model predicts:

* ``"all"`` (also ``"7"``): the seven FER2013 emotions;
* ``"6"`` (also ``"six"``): disgust merged into angry, as in several published reports;
* a comma-separated subset such as ``"happy,sad,neutral"``; faces of other emotions are
  dropped from the data.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

#: The seven FER2013 emotions in the id order of the challenge CSV (0=angry ... 6=neutral).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Other spellings found in FER datasets' folder names, mapped to :data:`EMOTIONS`.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "neutrality": "neutral",
}


def emotion_id(name: str) -> int:
    """Return the FER2013 id (0-6) of an emotion name or one of its :data:`ALIASES`.

    Raises:
        ValueError: the name is not an emotion; the message suggests the closest one.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in EMOTIONS:
        return EMOTIONS.index(key)
    close = difflib.get_close_matches(key, EMOTIONS + tuple(ALIASES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown emotion {name!r}: expected one of {', '.join(EMOTIONS)}{hint}")


@dataclass(frozen=True)
class ClassSet:
    """A mapping from the seven FER2013 emotions to the classes a model predicts.

    Attributes:
        names: class names in model-output order, length C.
        mapping: int64 array of shape (7,): for each FER2013 id, the class index in
            ``[0, C)``, or -1 when faces of that emotion are dropped.
    """

    names: tuple[str, ...]
    mapping: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def apply(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map FER2013 ids to class indices.

        Args:
            targets: (N,) integer FER2013 ids in [0, 6].

        Returns:
            ``(keep, mapped)``: a (N,) bool mask of the faces this class set keeps, and
            the (K,) int64 class indices of the kept faces.
        """
        mapped = self.mapping[np.asarray(targets, dtype=np.int64)]
        keep = mapped >= 0
        return keep, mapped[keep]


def resolve_classes(spec: str | None = "all") -> ClassSet:
    """Build a :class:`ClassSet` from ``"all"``, ``"6"`` or a comma-separated list of names.

    Raises:
        ValueError: an unknown or repeated name, or fewer than two classes.
    """
    spec = (spec or "all").strip().lower()
    if spec in ("all", "7", "seven"):
        return ClassSet(EMOTIONS, np.arange(7, dtype=np.int64))
    if spec in ("6", "six"):
        names = tuple(e for e in EMOTIONS if e != "disgust")
        mapping = np.array([names.index("angry" if e == "disgust" else e) for e in EMOTIONS])
        return ClassSet(names, mapping.astype(np.int64))
    ids = [emotion_id(part) for part in spec.split(",") if part.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"class set {spec!r} names an emotion twice")
    if len(ids) < 2:
        raise ValueError(f"class set {spec!r} needs at least two emotions")
    mapping = np.full(7, -1, dtype=np.int64)
    mapping[ids] = np.arange(len(ids))
    return ClassSet(tuple(EMOTIONS[i] for i in ids), mapping)

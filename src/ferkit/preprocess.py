"""Turning grayscale faces into model input: resize and normalise (NumPy and OpenCV only).

The same function serves FER2013 crops at evaluation time and faces found by a detector
in a photo, so a model sees identical preprocessing in both places.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """How a model expects its input.

    Attributes:
        input_size: side in pixels of the square grayscale input.
        mean: mean subtracted after scaling pixels to [0, 1].
        std: standard deviation divided by after subtracting ``mean``.
        equalize: histogram-equalise each face (OpenCV ``equalizeHist``) after resizing,
            to make crops from photos under any lighting look alike. Off for the bundled
            model: turning it on at inference lowered its val accuracy by 2.2 points;
            training with it (``ferkit train --equalize``, the fast recipe, session 19)
            tied with a plain run of the same day on val (ten-crop 64.31% against
            64.45%) and made the model immune to gamma changes, not to shifts that clip
            pixels (``benchmarks/lighting.py``).
    """

    input_size: int = 48
    mean: float = 0.5
    std: float = 0.25
    equalize: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(input_size=int(d["input_size"]), mean=float(d["mean"]), std=float(d["std"]),
                   equalize=bool(d.get("equalize", False)))


def fit_face(face: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """One (H, W) uint8 gray face as the model sees it before normalisation: resized to
    ``pre.input_size`` (OpenCV ``INTER_AREA`` to shrink, ``INTER_LANCZOS4`` to enlarge),
    then histogram-equalised when ``pre.equalize``; returns (S, S) uint8.

    Small faces are enlarged with Lanczos (8x8 windowed sinc) rather than bilinear
    interpolation since session 37: FER2013 val faces shrunk to 16 / 24 / 32 px were
    classified by the bundled ``default`` at 36.17 / 54.86 / 64.70% enlarged bilinearly,
    39.48 / 62.72 / 68.38% bicubically and 39.20 / 63.89 / 68.82% with Lanczos, the best
    mean (``benchmarks/face_size.py --enlarge``; docs/accuracy.md).
    """
    s = pre.input_size
    if face.shape != (s, s):
        interp = cv2.INTER_AREA if face.shape[0] > s else cv2.INTER_LANCZOS4
        face = cv2.resize(face, (s, s), interpolation=interp)
    if pre.equalize:
        face = cv2.equalizeHist(np.ascontiguousarray(face, dtype=np.uint8))
    return face


def prepare_faces(faces: np.ndarray | list[np.ndarray], pre: Preprocessing) -> np.ndarray:
    """Resize grayscale faces to the model's size and normalise them.

    Args:
        faces: (N, H, W) uint8 array, or a list of N (H_i, W_i) uint8 gray crops of any
            size; values 0-255.
        pre: the model's preprocessing.

    Returns:
        ``images``: (N, 1, S, S) float32, ``(pixel / 255 - mean) / std``, S = input_size
        (pixels histogram-equalised first when ``pre.equalize``).

    Raises:
        ValueError: a face that is not a 2-D array.
    """
    s = pre.input_size
    out = np.empty((len(faces), 1, s, s), dtype=np.float32)
    for i, face in enumerate(faces):
        if face.ndim != 2:
            raise ValueError(f"face {i}: expected a (H, W) gray array, got shape {face.shape}")
        out[i, 0] = fit_face(face, pre)
    out *= 1.0 / 255.0
    out -= pre.mean
    out /= pre.std
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits; returns (N, C) float32 probs summing to 1."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

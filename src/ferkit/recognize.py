"""Recognition: find every face in an image and give its emotion probabilities.

Pipeline (after paz's detect -> square box -> crop -> classify): detect faces, take a
square crop around each box, enlarged by ``margin`` (by default the detector's own, so
that the crop frames a face as FER2013 does; edges replicated where the crop leaves the
image) and turned upright when the detector's eye landmarks say the face is rolled beyond
``align_above`` degrees (:data:`ALIGN_ABOVE`), convert to grayscale, resize to the model's input size, classify all faces of
the image in one ONNX Runtime batch. A face whose crop is smaller than the bundled default
model's ``small_below`` pixels is classified by the bundled ``small-faces`` network instead
(:data:`SMALL_FACES`), which was trained on faces shrunk and enlarged back.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from .classifier import OnnxClassifier, resolve_model
from .detect import Detection, Detector, create_detector, detect_downscaled, refine_landmarks
from .errors import FerkitError
from .images import read_image


@dataclass
class Face:
    """One face and its emotions.

    Attributes:
        box: (x, y, w, h) in integer pixels of the input image, top-left origin.
        probs: ``{emotion: probability}`` over the model's classes, each in [0, 1],
            summing to 1.
        label: the most probable emotion.
        score: its probability, in [0, 1].
        detector_confidence: the detector's own score (see
            :class:`~ferkit.detect.Detection`); not an emotion probability.
        landmarks: the detector's facial points as (x, y) float pixels of the input image
            (YuNet: five, in :class:`~ferkit.detect.Detection`'s order: the eyes, the nose
            tip, the mouth corners; refined when :class:`Recognizer`'s ``refine_below``
            applied), or ``None`` (Haar gives none).
        roll: degrees by which the face was turned before it was classified (see
            :meth:`Recognizer.roll`): its eyes' roll (:func:`eye_roll`, positive when the
            eye on the image's right lies lower) when that exceeds the recognizer's
            ``align_above``, else 0.0 (the box's crop as it lies).
    """

    box: tuple[int, int, int, int]
    probs: dict[str, float]
    label: str
    score: float
    detector_confidence: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    roll: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready dict: box as a list, probabilities rounded to 6 decimals, landmarks
        as a list of [x, y] rounded to 0.1 pixel (or ``None``), roll rounded to 0.1 degree."""
        return {"box": list(self.box), "label": self.label, "score": round(self.score, 6),
                "probs": {k: round(v, 6) for k, v in self.probs.items()},
                "detector_confidence": None if self.detector_confidence is None
                else round(self.detector_confidence, 4),
                "landmarks": None if self.landmarks is None
                else [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
                "roll": round(float(self.roll), 1)}


@dataclass
class ImageResult:
    """What :meth:`Recognizer.predict_files` gives for one file.

    Attributes:
        path: the file as given.
        faces: the faces found (empty when none, or on error).
        error: why the file could not be processed, naming it; ``None`` on success.
        image: the decoded (H, W, 3) uint8 BGR image (``None`` on error).
    """

    path: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = {"image": self.path, "faces": [f.to_dict() for f in self.faces]}
        if self.error:
            d["error"] = self.error
        elif not self.faces:
            d["message"] = "no face found"
        return d


#: Fraction of the face box's square side added on each side before cropping, for a
#: detector without a ``margin`` of its own (see :class:`~ferkit.detect.Detector`): none,
#: the box's square itself. The built-in detectors carry the margin measured for them in
#: session 37 (``benchmarks/crop_margin.py``; docs/accuracy.md, "Faces from a detector: how
#: the box is cropped"): 0.05 for YuNet, 0 for the Haar cascade. The 0.1 used for every
#: detector until then framed faces 1.1-1.2x wider than FER2013 does and cost the bundled
#: ``default`` 1.4 points of val accuracy on 192 px faces with YuNet and 1.6 with Haar.
DEFAULT_MARGIN = 0.0


#: The network the bundled models route small faces to, and below which crop side in
#: pixels: ``{bundled model: (small-face model, side)}``. ``small-faces`` is the bundled
#: ``default`` fine-tuned in session 38 with half its train faces shrunk to 12-47 px and
#: enlarged back (``configs/wide-lowres.yaml``), distilled from the ``default`` on the sharp
#: faces, int8. On val (FER2013 faces shrunk to S px, ``benchmarks/face_size.py``) its float
#: network beat the ``default`` at every size measured under 48 px (16 px: 58.34% against
#: 39.20%; 44 px: 71.22% against 71.05%) and lost at 48 px (71.25% against 72.00%), so every
#: crop smaller than the model's 48 px input goes to it (docs/accuracy.md, "Small faces").
#: The third value is the :func:`sharpness` under which a crop of any size goes to it too:
#: the faces it was trained on were blurred by their shrinking, and it carries blur far
#: better (session 40, ``benchmarks/camera.py``: val faces at 96 px blurred by 2 px, 66.45%
#: against the default's 55.73%). 0.173 is the 10% quantile of the sharpness of clean 96 px
#: val faces, chosen on val with the measure in session 41 by ``benchmarks/sharpness.py``
#: (rules in its docstring) over 12 blurred conditions, blur alone and blur followed by
#: sensor noise and JPEG: 63.19% against 53.29% for the default alone on their mean (session
#: 40's measure and threshold, which noise fooled: 61.73%); clean 96 px 71.64% against
#: 71.72%, 48 px 72.00% against 72.00%.
#: ``int8``, the speed model, and ``default-int8`` route to it at the same side and threshold
#: (session 40; kept through session 41's change, each checked on val against itself alone:
#: ``int8`` 62.88% against 53.95% on the 12 conditions' mean, 48 px 68.63% against 68.54%;
#: ``default-int8`` 63.20% against 53.24%, 48 px 71.94% against 71.97%; ``small-faces`` ahead
#: of both at every size under 48 px).
SMALL_FACES: dict[str, tuple[str, int, float]] = {"default": ("small-faces", 48, 0.173),
                                                  "default-int8": ("small-faces", 48, 0.173),
                                                  "int8": ("small-faces", 48, 0.173)}

#: Degrees of eye roll (:func:`eye_roll`) beyond which :class:`Recognizer` turns a face
#: upright before classifying it (:func:`level_crop`), when its detector gives eye landmarks.
#: Chosen on val (session 39, ``benchmarks/roll.py``, rule in ``runs/s39/plan.txt``): on
#: PublicTest faces at 192 px rolled by -30 to 30 degrees the bundled ``default`` scored a
#: mean 68.76% levelled beyond 15 degrees against 66.49% on the box alone (69.30% levelling
#: every face, but that cost 0.36 points on upright faces, where beyond 15 cost 0.18).
ALIGN_ABOVE = 15.0

#: Box side in pixels under which ``Recognizer(refine_below=REFINE_BELOW)`` finds a face's
#: landmarks again on an enlarged patch (:func:`~ferkit.detect.refine_landmarks`) before
#: measuring its roll: YuNet's own barely follow a small face's roll. Val chose it (session
#: 39: 96 px faces rolled -30 to 30 degrees, mean 69.79% against 67.74% on YuNet's own
#: landmarks), but it costs one more YuNet call per face, 15-25 ms on 2 cores, which would
#: take the speed goals of video and folders out of reach, so it is not the default.
REFINE_BELOW = 160


def default_margin(detector: Detector) -> float:
    """The crop margin a detector's boxes want: its ``margin`` attribute, else
    :data:`DEFAULT_MARGIN`."""
    return float(getattr(detector, "margin", DEFAULT_MARGIN))


def _square(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int]:
    """The square a crop takes: top-left (x0, y0) and side in integer pixels, centred on
    ``box``, side ``max(w, h) * (1 + 2 * margin)``."""
    x, y, w, h = box
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side


def sharpness(crop: np.ndarray) -> float:
    """How sharp a face crop is: ``var(Laplacian(median3(x))) / var(x)``, ``x`` the crop
    shrunk (or enlarged) to 48 x 48 (``INTER_AREA``), ``median3`` OpenCV's 3 x 3 median filter
    and the Laplacian OpenCV's 3 x 3 one.

    The variance-of-Laplacian focus measure (Pech-Pacheco, Cristobal, Chamorro-Martinez &
    Fernandez-Valdivia, "Diatom autofocusing in brightfield microscopy: a comparative
    study", ICPR 2000), divided by the crop's own variance so that a face in dim or flat
    light is not taken for a blurred one, and taken after a 3 x 3 median filter so that
    sensor noise is not taken for detail: without the filter, val faces blurred by 2 px and
    given noise of 16 grey levels measured as sharp and 81% of them missed the routing
    (session 41, ``benchmarks/sharpness.py --mixtures``). Measured at 48 px, the
    classifiers' input size, so a crop's size does not change it much. FER2013 val faces:
    median 0.38 at their own 48 px; enlarged to 96 px, median 0.30 (10% under 0.173),
    blurred there by 1, 2 and 3 px 0.17, 0.07 and 0.03 (session 41).

    Args:
        crop: (H, W) uint8 gray crop.

    Returns:
        The measure, >= 0 (no unit); 0.0 for a flat crop.
    """
    return laplacian_ratio(crop, 48, lambda x: cv2.medianBlur(x, 3))


def laplacian_ratio(crop: np.ndarray, side: int = 48, prefilter=None) -> float:
    """``var(Laplacian(prefilter(x))) / var(x)``, ``x`` the crop resized to ``side`` x
    ``side`` (``INTER_AREA``), the Laplacian OpenCV's 3 x 3 one in float32: the family of
    focus measures :func:`sharpness` belongs to (``benchmarks/sharpness.py`` compares others).

    Args:
        crop: (H, W) uint8 gray crop.
        side: the side in pixels it is measured at (>= 1).
        prefilter: ``None``, or a function of the (side, side) uint8 crop that returns the
            array the Laplacian is taken of (e.g. a median or Gaussian filter).

    Returns:
        The measure, >= 0 (no unit); 0.0 for a flat crop (variance under 1e-6).
    """
    x = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    var = float(x.astype(np.float32).var())
    if var <= 1e-6:
        return 0.0
    y = x if prefilter is None else prefilter(x)
    return float(cv2.Laplacian(np.asarray(y, np.float32), cv2.CV_32F).var()) / var


def square_crop(gray: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """A square crop centred on ``box``, its side ``max(w, h) * (1 + 2 * margin)``.

    Args:
        gray: (H, W) uint8 image.
        box: (x, y, w, h) pixels.
        margin: fraction of the box side added on each side (0.1 = 10%).

    Returns:
        (S, S) uint8 crop; parts outside the image repeat its edge pixels.
    """
    x0, y0, side = _square(box, margin)
    x1, y1 = x0 + side, y0 + side
    H, W = gray.shape
    pad = (max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W))
    crop = gray[max(0, y0):min(H, y1), max(0, x0):min(W, x1)]
    if any(pad):
        crop = cv2.copyMakeBorder(crop, *pad, borderType=cv2.BORDER_REPLICATE)
    return crop


def eye_roll(landmarks) -> float | None:
    """The in-plane roll of a face from its eye landmarks: the angle of the line through
    the two eyes against the image's horizontal, in degrees, positive when the eye on the
    right of the image lies lower (y grows downward), in (-90, 90].

    Args:
        landmarks: a :class:`~ferkit.detect.Detection`'s ``landmarks`` (the first two
            points are the eyes, in either order), or ``None``.

    Returns:
        The angle, or ``None`` without landmarks or when the two eyes coincide.
    """
    if landmarks is None or len(landmarks) < 2:
        return None
    (x0, y0), (x1, y1) = sorted(landmarks[:2])
    if x0 == x1 and y0 == y1:
        return None
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def level_crop(gray: np.ndarray, box: tuple[int, int, int, int], margin: float, roll: float) -> np.ndarray:
    """:func:`square_crop`'s square, rotated about its centre by ``roll`` degrees so that a
    face rolled by that much (:func:`eye_roll`) comes out upright.

    Args:
        gray: (H, W) uint8 image.
        box: (x, y, w, h) pixels.
        margin: fraction of the box side added on each side (0.1 = 10%).
        roll: degrees, as :func:`eye_roll` gives them; 0 gives exactly :func:`square_crop`.

    Returns:
        (S, S) uint8 crop, S as in :func:`square_crop`, sampled bilinearly
        (``cv2.warpAffine``); parts outside the image repeat its edge pixels.
    """
    if roll == 0:
        return square_crop(gray, box, margin)
    x0, y0, side = _square(box, margin)
    centre = (x0 + (side - 1) / 2, y0 + (side - 1) / 2)  # pixel centres sit at integer coordinates
    m = cv2.getRotationMatrix2D(centre, roll, 1.0)
    m[:, 2] -= (x0, y0)
    return cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


class Recognizer:
    """Find faces and classify their emotions.

    Args:
        model: an ``.onnx`` model path (with its ``.json``), an
            :class:`~ferkit.classifier.OnnxClassifier`, the name of a bundled model
            (``"default"``, ``"int8"``), or ``None`` for the bundled default.
        detector: a detector name (``"auto"``: YuNet if ``yuface`` is installed, else
            Haar; ``"yunet"``; ``"haar"``) or any object with
            ``detect(image) -> list[Detection]``.
        margin: fraction of the face box's square side added on each side before
            cropping, >= 0; ``None``: the detector's own (:func:`default_margin`: 0.05 for
            YuNet, 0 for Haar, measured so that crops frame a face as FER2013 does).
        threads: ONNX Runtime threads (0: all cores).
        detect_width: run the detector on a copy shrunk to this many pixels wide (boxes
            mapped back to the full image, faces cropped from the full image); ``None``:
            full size. Faster on large photos; faces smaller than the detector's minimum
            at that width are missed.
        small_faces: the model for faces whose square crop is under ``small_below``
            pixels wide: ``"auto"`` (the bundled ``small-faces`` network when ``model``
            is a bundled model :data:`SMALL_FACES` names: ``default``, ``default-int8``
            or ``int8``; no routing for any other model), ``None`` (every face goes to
            ``model``), or a model as ``model`` is given. It must classify the same classes.
        small_below: crop side in pixels (of the photo, before resizing) under which a
            face goes to ``small_faces``; ``None``: :data:`SMALL_FACES`'s side for the
            bundled pair, else ``model``'s input size (every face that is enlarged).
        sharpness_below: :func:`sharpness` under which a crop of any size goes to
            ``small_faces`` too (a blurred face); ``None``: :data:`SMALL_FACES`'s value
            (0.173) when ``small_faces`` is ``"auto"`` and ``model`` one it names, else 0;
            0: never.
        align_above: degrees; a face whose eyes are rolled by more than this
            (:func:`eye_roll` of the detection's landmarks) is cropped turned upright
            (:func:`level_crop`), the others as the box lies (:func:`square_crop`). Only
            detectors that give eye landmarks (YuNet) can level a face. ``None``: never.
            Default :data:`ALIGN_ABOVE`.
        refine_below: face side in pixels, as the detector saw it (the box's side divided
            by the detection's ``scale``: a face 200 px wide found with ``detect_width``
            half the photo's width was 100 px to the detector), under which the landmarks
            are found again on an enlarged patch of the full image before the roll is
            measured (:func:`~ferkit.detect.refine_landmarks`, one more detector call per
            such face, 15-25 ms with YuNet on 2 cores);
            ``None`` or 0 (the default): never. :data:`REFINE_BELOW` (160) is the value val
            measured. Unused when ``align_above`` is ``None``.

    Example:
        >>> rec = Recognizer()
        >>> faces = rec.predict("photo.jpg")
        >>> [(f.box, f.label, round(f.score, 2)) for f in faces]
    """

    def __init__(self, model: str | os.PathLike | OnnxClassifier | None = None,
                 detector: str | Detector = "auto", margin: float | None = None, threads: int = 0,
                 detect_width: int | None = None, small_faces: str | os.PathLike | OnnxClassifier | None = "auto",
                 small_below: int | None = None, align_above: float | None = ALIGN_ABOVE,
                 refine_below: int | None = None, sharpness_below: float | None = None):
        self.detector = create_detector(detector) if isinstance(detector, str) else detector
        if align_above is not None and not 0 <= align_above < 90:
            raise ValueError(f"align_above must be in [0, 90) degrees or None, got {align_above}")
        self.align_above = align_above
        if refine_below is not None and refine_below < 0:
            raise ValueError(f"refine_below must be >= 0 pixels or None, got {refine_below}")
        self.refine_below = refine_below or 0
        margin = default_margin(self.detector) if margin is None else margin
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if detect_width is not None and detect_width < 16:
            raise ValueError(f"detect_width must be >= 16 pixels or None, got {detect_width}")
        self.classifier = model if isinstance(model, OnnxClassifier) else OnnxClassifier(model, threads)
        self.margin = margin
        self.detect_width = detect_width
        if sharpness_below is not None and not sharpness_below >= 0:
            raise ValueError(f"sharpness_below must be >= 0 or None, got {sharpness_below}")
        self.small_classifier, self.small_below, self.sharpness_below = self._small_faces(
            small_faces, small_below, sharpness_below, threads)

    def _small_faces(self, small_faces, small_below, sharpness_below,
                     threads) -> tuple[OnnxClassifier | None, int, float]:
        """The small-face classifier, its side and its sharpness threshold (see the class's
        arguments)."""
        if isinstance(small_faces, str) and small_faces == "auto":
            pair = next((v for k, v in SMALL_FACES.items()
                         if self.classifier.path.resolve() == resolve_model(k).resolve()), None)
            if pair is None:
                return None, 0, 0.0
            small_faces = pair[0]
            small_below = pair[1] if small_below is None else small_below
            sharpness_below = pair[2] if sharpness_below is None else sharpness_below
        if small_faces is None:
            return None, 0, 0.0
        small = small_faces if isinstance(small_faces, OnnxClassifier) else OnnxClassifier(small_faces, threads)
        if small.class_names != self.classifier.class_names:
            raise ValueError(f"small_faces {small.path.name} classifies {list(small.class_names)}, but "
                             f"the model {self.classifier.path.name} classifies {list(self.class_names)}")
        below = self.classifier.preprocessing.input_size if small_below is None else small_below
        if below < 1:
            raise ValueError(f"small_below must be >= 1 pixel, got {below}")
        return small, int(below), float(sharpness_below or 0.0)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classifier.class_names

    def predict(self, image: np.ndarray | str | os.PathLike) -> list[Face]:
        """Faces and emotions of one image.

        Args:
            image: an (H, W, 3) uint8 BGR array, an (H, W) uint8 gray array, or a path.

        Returns:
            The faces, largest first; an empty list when no face is found.

        Raises:
            ImageReadError: a path that cannot be read as an image.
            ValueError: an array that is not uint8 (H, W) or (H, W, 3).
        """
        image = self._check(image)
        return self.classify(image, self.detect(image))

    def predict_batch(self, images: Iterable[np.ndarray | str | os.PathLike],
                      batch_size: int = 256, workers: int = 2) -> list[list[Face]]:
        """Faces and emotions of many images, the faces of all images classified together
        in batches of up to ``batch_size`` (far cheaper per face than one call per image).

        Args:
            images: (H, W, 3) uint8 BGR arrays, (H, W) uint8 gray arrays, or paths.
            batch_size: faces per ONNX Runtime call.
            workers: threads that detect and crop, several images at once (Haar and, on
                Linux, YuNet release the GIL; see :mod:`ferkit.detect`); 1 = one after
                another.

        Returns:
            One list of faces per image, in input order (see :meth:`predict`).

        Raises:
            ImageReadError: a path that cannot be read (use :func:`ferkit.batch.predict_files`
                to skip bad files and go on).
            ValueError: an array that is not uint8 (H, W) or (H, W, 3), or ``workers`` < 1.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        checked = [self._check(image) for image in images]

        def detect_and_crop(image: np.ndarray):
            return self.crop(image, self.detect(image))

        if workers == 1 or len(checked) < 2:
            crops = [detect_and_crop(image) for image in checked]
        else:
            with ThreadPoolExecutor(min(workers, len(checked)), thread_name_prefix="ferkit-detect") as pool:
                crops = list(pool.map(detect_and_crop, checked))
        return self.classify_crops(crops, batch_size)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The detector's faces of an image (on a copy ``detect_width`` wide if set), boxes
        in full-image pixels."""
        return detect_downscaled(self.detector, image, self.detect_width)

    def crop(self, image: np.ndarray, detections: list[Detection]) -> tuple[list[Detection], list[np.ndarray]]:
        """The square gray crops of the detected faces (see :func:`square_crop`), each
        turned upright when its eyes are rolled beyond ``align_above`` degrees.

        Returns:
            ``(detections, crops)``: crops are (S_i, S_i) uint8; the detections of faces
            under ``refine_below`` pixels carry their refined landmarks.
        """
        if not detections:
            return detections, []
        if self.align_above is not None and self.refine_below:
            detections = [refine_landmarks(self.detector, image, d)
                          if d.landmarks is not None and max(d.box[2:]) / d.scale < self.refine_below else d
                          for d in detections]
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return detections, [level_crop(gray, d.box, self.margin, self.roll(d)) for d in detections]

    def roll(self, detection: Detection) -> float:
        """The degrees by which :meth:`crop` turns a detected face (see :func:`eye_roll`):
        its eyes' roll when that exceeds ``align_above``, else 0."""
        roll = None if self.align_above is None else eye_roll(detection.landmarks)
        return roll if roll is not None and abs(roll) > self.align_above else 0.0

    def classify_crops(self, cropped: list[tuple[list[Detection], list[np.ndarray]]],
                       batch_size: int = 256) -> list[list[Face]]:
        """Classify the crops of several images (from :meth:`crop`) in shared batches.

        Returns:
            One list of :class:`Face` per image, in the order given.
        """
        flat = [c for _, crops in cropped for c in crops]
        probs = self.classify_faces(flat, batch_size)  # (N, C) over all images' faces
        names, out, k = self.class_names, [], 0
        for detections, _ in cropped:
            faces = []
            for det, p in zip(detections, probs[k:k + len(detections)]):
                j = int(p.argmax())
                faces.append(Face(box=det.box, probs={n: float(v) for n, v in zip(names, p)},
                                  label=names[j], score=float(p[j]), detector_confidence=det.confidence,
                                  landmarks=det.landmarks, roll=self.roll(det)))
            k += len(detections)
            out.append(faces)
        return out

    def classify_faces(self, crops: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Probabilities of gray face crops, each by the network its size and sharpness call
        for: a crop under ``small_below`` pixels wide, or whose :func:`sharpness` is under
        ``sharpness_below``, by ``small_classifier``, the others by ``classifier``.

        Args:
            crops: N (H_i, W_i) uint8 gray crops of any size.
            batch_size: faces per ONNX Runtime call.

        Returns:
            (N, C) float32 calibrated probabilities, rows summing to 1, in input order.
        """
        if self.small_classifier is None:
            return self.classifier.predict_probs(crops, batch_size)
        small = np.array([max(c.shape[:2]) < self.small_below
                          or (self.sharpness_below > 0 and sharpness(c) < self.sharpness_below)
                          for c in crops], dtype=bool)
        probs = np.empty((len(crops), len(self.class_names)), dtype=np.float32)
        for mask, clf in ((~small, self.classifier), (small, self.small_classifier)):
            if mask.any():
                probs[mask] = clf.predict_probs([c for c, m in zip(crops, mask) if m], batch_size)
        return probs

    def classify(self, image: np.ndarray, detections: list[Detection]) -> list[Face]:
        """Classify given face boxes of an image, all in one batch."""
        return self.classify_crops([self.crop(image, detections)])[0]

    @staticmethod
    def _check(image: np.ndarray | str | os.PathLike) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) \
                or (image.ndim == 3 and image.shape[2] != 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"expected a uint8 (H, W, 3) BGR or (H, W) gray image, got {got}")
        return image

    def predict_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[ImageResult]:
        """Process files one by one; a bad file yields a result with ``error`` set and the
        others are still processed."""
        for path in paths:
            try:
                image = read_image(path)
                yield ImageResult(str(path), self.predict(image), image=image)
            except FerkitError as exc:
                yield ImageResult(str(path), error=str(exc))


def demo_image_path() -> Path:
    """A real photo shipped by an installed package: matplotlib's ``grace_hopper.jpg``.

    Raises:
        FerkitError: matplotlib is not installed (``pip install ferkit[demo]``).
    """
    try:
        import matplotlib
    except ImportError:
        raise FerkitError("the demo photo comes with matplotlib: pip install 'ferkit[demo]'") from None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FerkitError(f"matplotlib's sample photo is missing: {path}")
    return path

"""Emotions of the faces in a video, frame by frame, with face tracking and smoothing.

Two layers:

* :class:`StreamRecognizer` takes one frame at a time ((H, W, 3) uint8 BGR, from a file,
  a webcam or a web page) and returns the tracked faces of that frame; it knows nothing
  about files. Every ``stride``-th frame it detects the faces (optionally on a downscaled
  copy), classifies them all in one batch with :meth:`Recognizer.classify
  <ferkit.recognize.Recognizer.classify>`, and matches them to the running tracks with
  :class:`IouTracker`, which also smooths each track's probabilities over time. Frames in
  between get the tracks seen at the last detection pass, with their last box and
  smoothed probabilities.
* :func:`analyze_video` streams a video file through it with ``cv2.VideoCapture`` (one
  frame in memory at a time) and writes the annotated video, the CSV and JSON timelines
  and the plot, each under a temporary name that is renamed at the end.
"""

from __future__ import annotations

import csv
import json
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from .detect import Detection
from .draw import COLORS, draw_faces
from .errors import FerkitError, VideoReadError
from .recognize import Face, Recognizer

#: Codec of the annotated video for each file suffix (both write and read back with the
#: FFmpeg backend of the opencv-python wheels).
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

#: Frame rate of the annotated video when the input does not state one.
FALLBACK_FPS = 30.0


# --------------------------------------------------------------------------- tracking


def iou_matrix(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        a: T boxes (x, y, w, h) in pixels.
        b: N boxes (x, y, w, h) in pixels.

    Returns:
        (T, N) float64 in [0, 1]; 0 for pairs where neither box has any area.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Pairs (row, column) taken in decreasing IoU order, each row and column at most once.

    Args:
        iou: (T, N) IoU of T tracks against N detections.
        min_iou: pairs below this IoU are never matched.

    Returns:
        The matched (track index, detection index) pairs; ties go to the lower indices.
    """
    rows, cols = np.nonzero(iou >= min_iou)
    order = np.lexsort((cols, rows, -iou[rows, cols]))
    used_rows, used_cols, pairs = set(), set(), []
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs


@dataclass
class Track:
    """One face followed over the frames of a stream.

    Attributes:
        track_id: integer id, from 1 upward in order of creation, never reused by the
            tracker that made it.
        box: the last matched box (x, y, w, h) in integer pixels.
        probs: (C,) float64 smoothed probabilities, each in [0, 1], summing to 1.
        detector_confidence: the detector's score of the last matched box (or ``None``).
        hits: updates in which the track was matched (1 when new).
        missed: consecutive updates without a match since (0: matched in the last one).
        landmarks: the last matched detection's facial points as (x, y) float pixels (YuNet:
            five), or ``None`` (Haar, or none given); not smoothed.
        roll: degrees by which the last matched face was turned before it was classified
            (:attr:`ferkit.recognize.Face.roll`); 0.0 when none was given.
    """

    track_id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray = field(repr=False)
    detector_confidence: float | None = None
    hits: int = 1
    missed: int = 0
    landmarks: tuple[tuple[float, float], ...] | None = None
    roll: float = 0.0


def _per_box(values: Sequence | None, default, n: int, what: str) -> list:
    """``values`` as a list of ``n`` (``[default] * n`` for ``None``); ValueError otherwise."""
    values = list(values) if values is not None else [default] * n
    if len(values) != n:
        raise ValueError(f"expected {n} {what}, got {len(values)}")
    return values


class IouTracker:
    """Greedy IoU tracker with smoothed emotion probabilities per track.

    The IOU tracker of Bochinski, Eiselein & Sikora (2017), "High-Speed
    Tracking-by-Detection Without Using Image Information" (AVSS): detections of
    consecutive frames belong to the same object when their boxes overlap enough. Each
    :meth:`update` gets the detections of one frame; track-detection pairs are taken
    greedily in decreasing IoU order, each track and detection at most once, and a pair
    needs IoU >= ``min_iou``. A matched track takes the new box and smooths in the new
    probabilities; an unmatched detection starts a new track with a fresh id. Two changes
    from the paper, which ends a track at its first miss and keeps only tracks that are
    long and confident enough once they have ended (offline): a track survives up to
    ``max_missed`` consecutive updates without a match (it is matched again by IoU with
    its last box, so a face the detector drops for a frame or two keeps its id), and
    every track is reported while it runs (online), whatever its length.

    Smoothing: exponential moving average per track, per update,
    ``s_t = alpha * p_t + (1 - alpha) * s_(t-1)``, starting from ``s_0 = p_0`` when the
    track starts (a new track never inherits another's probabilities).

    Args:
        min_iou: smallest IoU, in (0, 1], that links a detection to a track.
        max_missed: updates without a match after which a track ends (>= 0; 0: at the
            first miss, as in the paper).
        alpha: EMA weight of the newest probabilities, in (0, 1]; 1 is no smoothing.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5, alpha: float = 0.3):
        if not 0 < min_iou <= 1:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.min_iou, self.max_missed, self.alpha = min_iou, max_missed, alpha
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again from 1."""
        self.tracks: list[Track] = []
        self.visible: list[Track] = []  # the tracks matched in the last update, in detection order
        self._next_id = 1

    def update(self, boxes: Sequence[tuple[int, int, int, int]], probs: np.ndarray,
               confidences: Sequence[float | None] | None = None,
               landmarks: Sequence[Sequence[tuple[float, float]] | None] | None = None,
               rolls: Sequence[float] | None = None) -> list[Track]:
        """Match one frame's detections to the tracks.

        Args:
            boxes: N boxes (x, y, w, h) in integer pixels.
            probs: (N, C) probabilities of those faces (rows summing to 1).
            confidences: N detector scores, or ``None``.
            landmarks: N point lists ((x, y) float pixels each, or ``None`` for a face
                without), or ``None``: kept as they are by the matched tracks.
            rolls: N rolls in degrees (see :attr:`Track.roll`), or ``None`` (0.0 each).

        Returns:
            The N tracks of the detections, in the order of ``boxes`` (also kept in
            :attr:`visible`).

        Raises:
            ValueError: probs, confidences, landmarks or rolls do not have one entry per box.
        """
        boxes = [tuple(int(v) for v in b) for b in boxes]
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or len(probs) != len(boxes):
            raise ValueError(f"expected (N, C) probabilities for N={len(boxes)} boxes, "
                             f"got shape {probs.shape}")
        confidences = _per_box(confidences, None, len(boxes), "confidences")
        points = [None if p is None else tuple((float(x), float(y)) for x, y in p)
                  for p in _per_box(landmarks, None, len(boxes), "landmark lists")]
        rolls = [float(r) for r in _per_box(rolls, 0.0, len(boxes), "rolls")]
        pairs = greedy_match(iou_matrix([t.box for t in self.tracks], boxes), self.min_iou)
        of_detection: dict[int, Track] = {}
        for ti, di in pairs:
            track = self.tracks[ti]
            track.box, track.detector_confidence = boxes[di], confidences[di]
            track.landmarks, track.roll = points[di], rolls[di]
            track.probs = self.alpha * probs[di] + (1 - self.alpha) * track.probs
            track.hits, track.missed = track.hits + 1, 0
            of_detection[di] = track
        matched = {ti for ti, _ in pairs}
        for ti, track in enumerate(self.tracks):
            if ti not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for di in range(len(boxes)):
            if di not in of_detection:
                of_detection[di] = Track(self._next_id, boxes[di], probs[di].copy(), confidences[di],
                                         landmarks=points[di], roll=rolls[di])
                self._next_id += 1
                self.tracks.append(of_detection[di])
        self.visible = [of_detection[di] for di in range(len(boxes))]
        return list(self.visible)


# --------------------------------------------------------------------------- one frame at a time


@dataclass
class TrackedFace(Face):
    """A face of one frame of a stream, with its track.

    Attributes (besides :class:`~ferkit.recognize.Face`'s, whose ``probs``, ``label``
    and ``score`` are here the track's smoothed ones):
        track_id: the track's integer id, the same while the face is followed.
        detected: ``True`` when the face was detected in this very frame; ``False`` when
            it is carried over from the last detection pass (``stride`` > 1).

    ``box``, ``landmarks`` and ``roll`` are those of the track's last detection: of this
    frame when ``detected``, else carried over with the box (not smoothed, not moved).
    """

    track_id: int = 0
    detected: bool = True

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, **super().to_dict(), "detected": self.detected}


class StreamRecognizer:
    """Tracked, smoothed emotions of the faces of a stream of frames, one frame at a time.

    Args:
        recognizer: detector, crop margin and classifier; ``None`` for ``Recognizer()``.
        stride: detect and classify every ``stride``-th frame (1: every frame). Frames in
            between get the tracks matched at the last detection pass, with their last
            box and smoothed probabilities (``detected=False``); a face that appears in
            between shows from the next detection pass on.
        detect_scale: factor in (0, 1] by which the frame is shrunk (``INTER_AREA``) for
            the detector only; boxes are mapped back to full-frame pixels and faces are
            cropped from the full frame. The detector's smallest face (Haar: 30 px) then
            applies to the small frame: faces need ``30 / detect_scale`` px. At 1 the
            recognizer detects as it would on a photo (on a copy ``detect_width`` wide if it
            has one); below 1, ``detect_scale`` replaces its ``detect_width``.
        min_iou: see :class:`IouTracker`.
        max_missed: a track ends when it has not been matched for more than this many
            frames (>= 0); with ``stride`` N that is ``max_missed // N`` detection passes.
        alpha: EMA weight of the newest probabilities per frame, in (0, 1] (1: no
            smoothing). With ``stride`` N a detection pass uses ``1 - (1 - alpha) ** N``,
            so the smoothing time in frames does not depend on the stride.

    Attributes:
        frame_index: frames processed so far.
        tracker: the :class:`IouTracker`.

    Example:
        >>> stream = StreamRecognizer(Recognizer(), stride=2)
        >>> for frame in frames:                 # (H, W, 3) uint8 BGR
        ...     for face in stream.process(frame):
        ...         print(face.track_id, face.box, face.label, round(face.score, 2))
    """

    def __init__(self, recognizer: Recognizer | None = None, stride: int = 1, detect_scale: float = 1.0,
                 min_iou: float = 0.3, max_missed: int = 5, alpha: float = 0.3):
        if stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride}")
        if not 0 < detect_scale <= 1:
            raise ValueError(f"detect_scale must be in (0, 1], got {detect_scale}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0 frames, got {max_missed}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.recognizer = recognizer if recognizer is not None else Recognizer()
        self.stride, self.detect_scale = int(stride), float(detect_scale)
        self.max_missed, self.alpha = int(max_missed), float(alpha)
        self.tracker = IouTracker(min_iou, self.max_missed // self.stride, 1 - (1 - alpha) ** self.stride)
        self.frame_index = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.recognizer.class_names

    @property
    def landmark_names(self) -> tuple[str, ...]:
        """The detector's names of its landmarks (YuNet: five; none for Haar), the
        timelines' landmark columns (:func:`timeline_columns`)."""
        return tuple(getattr(self.recognizer.detector, "landmark_names", ()))

    def settings(self) -> dict:
        """The settings, JSON-ready (for a timeline's header)."""
        return {"stride": self.stride, "detect_scale": self.detect_scale, "min_iou": self.tracker.min_iou,
                "max_missed_frames": self.max_missed,
                "smoothing": f"exponential moving average per track, alpha={self.alpha:g} per frame",
                "margin": self.recognizer.margin, "model": str(self.recognizer.classifier.path),
                "small_faces": (None if self.recognizer.small_classifier is None else
                                {"model": str(self.recognizer.small_classifier.path),
                                 "below_px": self.recognizer.small_below,
                                 "sharpness_below": self.recognizer.sharpness_below}),
                "align_above": self.recognizer.align_above, "refine_below": self.recognizer.refine_below}

    def reset(self) -> None:
        """Start a new stream: no tracks, frame index 0, ids from 1."""
        self.tracker.reset()
        self.frame_index = 0

    def process(self, frame: np.ndarray) -> list[TrackedFace]:
        """The tracked faces of the next frame.

        Args:
            frame: (H, W, 3) uint8 BGR (or (H, W) uint8 gray) image.

        Returns:
            One :class:`TrackedFace` per face visible in this frame, in the detector's
            order (Haar: largest first); an empty list when there is none.

        Raises:
            ValueError: a frame that is not uint8 (H, W, 3) or (H, W).
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim not in (2, 3) \
                or (frame.ndim == 3 and frame.shape[2] != 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"expected a uint8 (H, W, 3) BGR or (H, W) gray frame, got {got}")
        detected = self.frame_index % self.stride == 0
        if detected:
            faces = self.recognizer.classify(frame, self._detect(frame))
            probs = np.array([[f.probs[n] for n in self.class_names] for f in faces], dtype=np.float64)
            self.tracker.update([f.box for f in faces], probs.reshape(len(faces), len(self.class_names)),
                                [f.detector_confidence for f in faces], [f.landmarks for f in faces],
                                [f.roll for f in faces])
        self.frame_index += 1
        return [self._face(track, detected) for track in self.tracker.visible]

    def _detect(self, frame: np.ndarray) -> list[Detection]:
        if self.detect_scale == 1:  # the recognizer's own detection (its detect_width, if any)
            return self.recognizer.detect(frame)
        height, width = frame.shape[:2]
        size = (max(1, round(width * self.detect_scale)), max(1, round(height * self.detect_scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        sx, sy = width / size[0], height / size[1]
        return [d.scaled(sx, sy, width, height) for d in self.recognizer.detector.detect(small)]

    def _face(self, track: Track, detected: bool) -> TrackedFace:
        k = int(track.probs.argmax())
        return TrackedFace(box=track.box, probs={n: float(p) for n, p in zip(self.class_names, track.probs)},
                           label=self.class_names[k], score=float(track.probs[k]),
                           detector_confidence=track.detector_confidence, landmarks=track.landmarks,
                           roll=track.roll, track_id=track.track_id, detected=detected)


# --------------------------------------------------------------------------- reading a video file


class VideoReader:
    """The frames of a video file, decoded one at a time with ``cv2.VideoCapture``.

    Timestamps: ``frame_index / fps`` seconds with the frame rate the container states;
    when it states none (fps 0 or not finite), the decoder's own position
    (``CAP_PROP_POS_MSEC`` / 1000) after each frame.

    A video that ends before the frame count its container announces
    (``CAP_PROP_FRAME_COUNT``, when > 0) has broken off (truncated, or a frame OpenCV
    could not decode): reading stops there and :attr:`error` says so, naming the file.
    Without an announced count the end of the frames cannot be told from an error.

    Decoding runs ahead in a background thread (OpenCV releases the GIL while it decodes),
    so the next frames decode while the caller works on this one; at most ``prefetch``
    decoded frames wait, so memory stays bounded.

    Args:
        path: the video file (anything OpenCV's backends read: mp4, avi, mkv, ...).
        prefetch: decoded frames that may wait for the caller (>= 1).

    Attributes:
        path: the file as given.
        fps: frames per second as the container states, or ``None`` when unknown.
        frame_count: frames the container announces, or ``None`` when unknown.
        width, height: frame size in pixels.
        frames_read: frames delivered so far.
        error: ``None``, or why reading stopped before the announced end.

    Raises:
        VideoReadError: the file is missing or a directory, OpenCV cannot open it, or it
            cannot decode its first frame.
    """

    def __init__(self, path: str | os.PathLike, prefetch: int = 4):
        self.path = Path(path)
        self.prefetch = max(1, int(prefetch))
        self._decoded = 0  # frames decoded so far (may run ahead of frames_read)
        if not self.path.exists():
            raise VideoReadError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise VideoReadError(f"{self.path}: is a directory, not a video file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoReadError(f"{self.path}: OpenCV cannot open it as a video (not a video, empty, "
                                 "corrupt, or a codec this OpenCV build lacks)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
        self.frames_read = 0
        self.error: str | None = None
        self._first = self._read()
        if self._first is None:
            self.close()
            raise VideoReadError(f"{self.path}: OpenCV opened it but cannot decode a single frame "
                                 "(corrupt, truncated, or a codec this OpenCV build lacks)")
        self.height, self.width = self._first[1].shape[:2]

    def _read(self) -> tuple[float, np.ndarray] | None:
        try:
            ok, frame = self._cap.read()
        except cv2.error as exc:
            self.error = f"{self.path}: OpenCV failed to decode frame {self._decoded} ({exc})"
            return None
        if not ok or frame is None:
            return None
        t = self._decoded / self.fps if self.fps else self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        self._decoded += 1
        return t, frame

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(frame_index, timestamp_s, frame)``, frame (H, W, 3) uint8 BGR."""
        item, self._first = self._first, None
        if item is None:
            return
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def decode() -> None:
            while not stop.is_set():
                nxt = self._read()
                while not stop.is_set():
                    try:
                        ready.put(nxt, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if nxt is None:
                    return

        worker = threading.Thread(target=decode, name="ferkit-video-decode", daemon=True)
        self._decoding = (stop, worker)
        worker.start()
        try:
            while item is not None:
                index = self.frames_read
                self.frames_read += 1
                yield index, item[0], item[1]
                item = ready.get()
        finally:  # also when the caller stops early: the decoder must be done before release
            stop.set()
            worker.join()
        if self.error is None and self.frame_count is not None and self.frames_read < self.frame_count:
            self.error = (f"{self.path}: video broke off after {self.frames_read} of the "
                          f"{self.frame_count} frames its header announces (truncated or corrupt)")

    def close(self) -> None:
        """Stop the decoding thread, if one runs, and release the file."""
        stop, worker = getattr(self, "_decoding", (None, None))
        if worker is not None:
            stop.set()
            worker.join()
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- summary


class TimelineSummary:
    """Per-track and whole-video statistics, accumulated frame by frame in memory
    proportional to the number of tracks (no rows kept).

    Time in an emotion counts each frame by its label (argmax of the smoothed
    probabilities) for ``frame_duration`` seconds: ``1 / fps``, or with no stated fps the
    mean interval between the first and last timestamps. For the whole video these are
    face-seconds, summed over tracks (two faces for one second count two seconds).

    Args:
        class_names: the C emotion names.
        fps: the video's frame rate, or ``None`` when unknown.
    """

    def __init__(self, class_names: Sequence[str], fps: float | None):
        self.class_names, self.fps = tuple(class_names), fps
        self.frames = self.frames_without_face = 0
        self.first_s: float | None = None
        self.last_s: float | None = None
        self._tracks: dict[int, dict] = {}

    def add(self, timestamp_s: float, faces: Sequence[TrackedFace]) -> None:
        """Count one frame and its faces."""
        self.frames += 1
        self.first_s = timestamp_s if self.first_s is None else self.first_s
        self.last_s = timestamp_s
        if not faces:
            self.frames_without_face += 1
        for face in faces:
            t = self._tracks.get(face.track_id)
            if t is None:
                t = self._tracks[face.track_id] = {"first_s": timestamp_s, "frames": 0,
                                                   "prob_sum": np.zeros(len(self.class_names)),
                                                   "label_frames": np.zeros(len(self.class_names), np.int64)}
            t["last_s"] = timestamp_s
            t["frames"] += 1
            t["prob_sum"] += [face.probs[n] for n in self.class_names]
            t["label_frames"][self.class_names.index(face.label)] += 1

    def frame_duration(self) -> float:
        """Seconds per frame (see the class notes); 0 for fewer than two frames of unknown rate."""
        if self.fps:
            return 1 / self.fps
        return (self.last_s - self.first_s) / (self.frames - 1) if self.frames > 1 else 0.0

    def _stats(self, frames: int, prob_sum: np.ndarray, label_frames: np.ndarray, dt: float) -> dict:
        mean = prob_sum / max(1, frames)
        return {"frames": int(frames), "seconds": round(frames * dt, 6),
                "dominant": self.class_names[int(mean.argmax())] if frames else None,
                "mean_probs": {n: round(float(v), 6) for n, v in zip(self.class_names, mean)},
                "time_s": {n: round(float(k) * dt, 6) for n, k in zip(self.class_names, label_frames)}}

    def result(self) -> dict:
        """JSON-ready summary: ``video`` (whole video) and ``tracks`` (one dict per track, in
        id order), each with frames, seconds, dominant emotion (highest mean smoothed
        probability), mean_probs, time_s per emotion, and first/last timestamps per track."""
        dt = self.frame_duration()
        tracks = []
        for track_id in sorted(self._tracks):
            t = self._tracks[track_id]
            tracks.append({"track_id": track_id, "first_s": round(t["first_s"], 6),
                           "last_s": round(t["last_s"], 6),
                           **self._stats(t["frames"], t["prob_sum"], t["label_frames"], dt)})
        zero = np.zeros(len(self.class_names))
        face_frames = sum(t["frames"] for t in self._tracks.values())
        whole = self._stats(face_frames, sum((t["prob_sum"] for t in self._tracks.values()), zero),
                            sum((t["label_frames"] for t in self._tracks.values()), zero), dt)
        whole["face_frames"] = whole.pop("frames")
        whole["face_seconds"] = whole.pop("seconds")
        video = {"frames": self.frames, "duration_s": round(self.frames * dt, 6),
                 "frame_duration_s": round(dt, 6), "tracks": len(tracks),
                 "frames_with_face": self.frames - self.frames_without_face,
                 "frames_without_face": self.frames_without_face,
                 "seconds_without_face": round(self.frames_without_face * dt, 6), **whole}
        return {"video": video, "tracks": tracks}


def format_summary(summary: dict, name: str = "video", max_tracks: int = 20) -> str:
    """A few human-readable lines of a :meth:`TimelineSummary.result` summary, with at most
    ``max_tracks`` track lines (the first ones by id)."""
    v = summary["video"]

    def times(d: dict) -> str:
        shown = sorted(((s, n) for n, s in d["time_s"].items() if s > 0), reverse=True)
        return ", ".join(f"{n} {s:.2f} s" for s, n in shown) or "-"

    lines = [f"{name}: {v['frames']} frames, {v['duration_s']:.2f} s; {v['tracks']} face tracks; "
             f"{v['frames_without_face']} frames ({v['seconds_without_face']:.2f} s) without a face"]
    for t in summary["tracks"][:max_tracks]:
        lines.append(f"  track {t['track_id']}: {t['first_s']:.2f}-{t['last_s']:.2f} s, "
                     f"{t['frames']} frames, dominant {t['dominant']}; {times(t)}")
    if len(summary["tracks"]) > max_tracks:
        lines.append(f"  ... and {len(summary['tracks']) - max_tracks} more tracks (all in the JSON summary)")
    if v["face_frames"]:
        lines.append(f"  whole video: dominant {v['dominant']}; {times(v)} "
                     "(face-seconds, summed over tracks)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- outputs


def timeline_columns(class_names: Sequence[str], landmark_names: Sequence[str] = ()) -> list[str]:
    """Column names of a timeline row (CSV header, JSON row keys): ``frame``,
    ``timestamp_s``, ``track_id``, the box ``x, y, w, h``, ``prob_<class>`` per class,
    ``label``, ``score``, ``detected``, ``roll``, then ``<name>_x, <name>_y`` per landmark
    name (the detector's ``landmark_names``; YuNet's five, none for Haar)."""
    return ["frame", "timestamp_s", "track_id", "x", "y", "w", "h",
            *(f"prob_{n}" for n in class_names), "label", "score", "detected", "roll",
            *(f"{n}_{axis}" for n in landmark_names for axis in "xy")]


def timeline_row(frame_index: int, timestamp_s: float, face: TrackedFace,
                 landmark_names: Sequence[str] = ()) -> dict:
    """One face of one frame as a flat dict with the keys of :func:`timeline_columns`.

    Probabilities and score are the track's smoothed ones, rounded to 6 decimals;
    ``roll`` is the degrees by which the face was turned upright (0.0: not turned), to
    0.1 degree; the landmarks are the track's last detection's (x, y) pixels of the
    frame, to 0.1 pixel, ``None`` (an empty CSV cell) where the face has none. Points
    beyond ``landmark_names`` have no column and are left out.
    """
    x, y, w, h = face.box
    points = face.landmarks or ()
    marks = {}
    for i, name in enumerate(landmark_names):
        px, py = points[i] if i < len(points) else (None, None)
        marks[f"{name}_x"] = None if px is None else round(float(px), 1)
        marks[f"{name}_y"] = None if py is None else round(float(py), 1)
    return {"frame": frame_index, "timestamp_s": round(timestamp_s, 6), "track_id": face.track_id,
            "x": x, "y": y, "w": w, "h": h, **{f"prob_{n}": round(p, 6) for n, p in face.probs.items()},
            "label": face.label, "score": round(face.score, 6), "detected": int(face.detected),
            "roll": round(float(face.roll), 1), **marks}


def temp_path(path: Path) -> Path:
    """A temporary name beside ``path`` with the same suffix (writers that go by the
    suffix pick the same format): ``.NAME.PID.tmp.SUFFIX``."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


class _Outputs:
    """The output files of one run: each written under :func:`temp_path` and renamed onto
    its final name by :meth:`commit`, so no half-written file ever carries the final name.

    The CSV rows are written as they come; the JSON is streamed too (a header object,
    then each row, then the summary when the run ends), so no rows are kept in memory.
    The plot's series (time and C probabilities per face and frame) are the only thing
    kept, and only when a plot is asked for.
    """

    def __init__(self, reader: VideoReader, stream: StreamRecognizer, out: Path | None, csv_path: Path | None,
                 json_path: Path | None, plot: Path | None, fourcc: str | None, landmarks: bool = True):
        self.staged: list[tuple[Path, Path]] = []
        self.class_names, self.landmark_names = stream.class_names, stream.landmark_names
        self.draw_landmarks = landmarks
        self.writer = self.csv_file = self.csv = self.json_file = None
        self.plot, self.series = plot, {} if plot else None
        self._rows = 0
        try:
            if out:
                size = (reader.width, reader.height)
                self.writer = cv2.VideoWriter(str(self._stage(out)), cv2.VideoWriter_fourcc(*fourcc),
                                              reader.fps or FALLBACK_FPS, size)
                if not self.writer.isOpened():
                    raise FerkitError(f"{out}: OpenCV cannot write a {fourcc} video with this suffix")
            if csv_path:
                self.csv_file = open(self._stage(csv_path), "w", newline="")
                self.csv = csv.DictWriter(self.csv_file, timeline_columns(self.class_names, self.landmark_names))
                self.csv.writeheader()
            if json_path:
                self.json_file = open(self._stage(json_path), "w")
                head = {"video": str(reader.path), "fps": reader.fps,
                        "timestamps": getattr(reader, "timestamps", None)
                        or ("frame / fps" if reader.fps else "decoder position (CAP_PROP_POS_MSEC)"),
                        "frame_count_announced": reader.frame_count, "width": reader.width,
                        "height": reader.height, "class_names": list(self.class_names),
                        "settings": stream.settings(),
                        "probabilities": "smoothed per track (see settings.smoothing)"}
                self.json_file.write(json.dumps(head)[:-1] + ',\n"rows": [')
            if plot:
                self._stage(plot)
        except BaseException:
            self.discard()
            raise

    def _stage(self, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final)
        self.staged.append((tmp, final))
        return tmp

    def annotate(self, frame: np.ndarray, faces: list[TrackedFace]) -> np.ndarray:
        """A copy of the frame with each face's box, ``#track label score`` and (unless
        turned off) landmarks: what the annotated video and the webcam window show."""
        return draw_faces(frame, faces, texts=[f"#{f.track_id} {f.label} {f.score:.2f}" for f in faces],
                          landmarks=self.draw_landmarks)

    def add(self, frame_index: int, timestamp_s: float, frame: np.ndarray, faces: list[TrackedFace],
            annotated: np.ndarray | None = None) -> None:
        """Write one frame's rows and annotated frame (``annotated``, when the caller has
        already drawn it with :meth:`annotate`)."""
        if self.writer is not None:
            self.writer.write(annotated if annotated is not None else self.annotate(frame, faces))
        for face in faces:
            row = timeline_row(frame_index, timestamp_s, face, self.landmark_names)
            if self.csv is not None:
                self.csv.writerow(row)
            if self.json_file is not None:
                self.json_file.write(("," if self._rows else "") + "\n" + json.dumps(row))
            if self.series is not None:
                times, probs = self.series.setdefault(face.track_id, ([], []))
                times.append(timestamp_s)
                probs.append(np.array([face.probs[n] for n in self.class_names], np.float32))
            self._rows += 1

    def commit(self, summary: dict, error: str | None, title: str) -> list[Path]:
        """Finish every file and rename it onto its final name; the paths written.
        On failure the temporary files are removed and the error raised."""
        try:
            if self.writer is not None:
                self.writer.release()
            if self.csv_file is not None:
                self.csv_file.close()
            if self.json_file is not None:
                self.json_file.write(f'\n],\n"summary": {json.dumps(summary, indent=1)},\n'
                                     f'"error": {json.dumps(error)}}}\n')
                self.json_file.close()
            if self.plot:
                from .plots import plot_timeline

                series = {k: (np.array(t), np.array(p).reshape(len(t), len(self.class_names)))
                          for k, (t, p) in self.series.items()}
                plot_timeline(series, self.class_names, temp_path(self.plot), title, COLORS)
            for tmp, final in self.staged:
                os.replace(tmp, final)
        except BaseException:
            self.discard()
            raise
        return [final for _, final in self.staged]

    def discard(self) -> None:
        """Close and remove every temporary file."""
        if self.writer is not None:
            self.writer.release()
        for f in (self.csv_file, self.json_file):
            if f is not None:
                f.close()
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)


def _check_outputs(video: Path, out, csv_path, json_path, plot, fourcc: str | None):
    """Resolve the output paths; reject clashes, unknown video suffixes and a missing
    matplotlib before any frame is read."""
    paths = {k: Path(p) if p else None for k, p in (("out", out), ("csv", csv_path), ("json", json_path),
                                                       ("plot", plot))}
    seen: dict[Path, str] = {video.resolve(): "the input video"}
    for key, p in paths.items():
        if p is None:
            continue
        if p.resolve() in seen:
            raise FerkitError(f"{p}: --{key} would overwrite {seen[p.resolve()]}")
        seen[p.resolve()] = f"--{key}"
    if paths["out"] is not None and fourcc is None:
        fourcc = FOURCC_BY_SUFFIX.get(paths["out"].suffix.lower())
        if fourcc is None:
            raise FerkitError(f"{paths['out']}: expected a video suffix ({', '.join(FOURCC_BY_SUFFIX)}) "
                              "or an explicit fourcc")
    if fourcc is not None and len(fourcc) != 4:
        raise FerkitError(f"fourcc must be 4 characters (e.g. mp4v, MJPG), got {fourcc!r}")
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise FerkitError("the plot needs matplotlib: pip install 'ferkit[demo]'") from None
    return paths, fourcc


def _progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar in frames and frames/s, or ``None`` when disabled or tqdm is not installed
    (it is not a runtime dependency)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True)


@dataclass
class VideoReport:
    """What :func:`analyze_video` did.

    Attributes:
        path: the input video.
        fps: its stated frame rate, or ``None``.
        frames: frames read and processed.
        frame_count: frames its header announces, or ``None``.
        summary: :meth:`TimelineSummary.result`.
        written: the output files written.
        seconds: wall-clock processing time.
        error: ``None``, or why it stopped before the end (the results cover the frames
            before, and are written).
    """

    path: str
    fps: float | None
    frames: int
    frame_count: int | None
    summary: dict
    written: list[Path]
    seconds: float
    error: str | None = None

    @property
    def frames_per_second(self) -> float:
        """Processing speed: frames / wall-clock seconds."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def analyze_video(path: str | os.PathLike, stream: StreamRecognizer | None = None, *,
                  out: str | os.PathLike | None = None, csv_path: str | os.PathLike | None = None,
                  json_path: str | os.PathLike | None = None, plot: str | os.PathLike | None = None,
                  fourcc: str | None = None, progress: bool = False, landmarks: bool = True) -> VideoReport:
    """Tracked, smoothed emotions of every face in a video file, frame by frame.

    Frames are streamed (one in memory at a time) through ``stream``. Each output is
    written under a temporary name beside its final one and renamed at the end, also
    when the video breaks off, on an error or on Ctrl-C (then covering the frames
    processed so far); a failure while finishing them removes the temporary files.

    Args:
        path: the video (anything OpenCV reads: mp4, avi, mkv, ...).
        stream: a fresh :class:`StreamRecognizer` (it is reset); ``None`` for defaults.
        out: annotated video (boxes, ``#track label score``, landmarks as dots), same size,
            fps and frame count as the input (30 fps when the input states none).
        csv_path: timeline CSV, one row per face per frame (:func:`timeline_columns`,
            with the roll and landmark columns).
        json_path: the same rows as JSON, with a header (video, settings) and the summary.
        plot: PNG of the probabilities over time per track (needs matplotlib).
        fourcc: codec of ``out``; default from its suffix (:data:`FOURCC_BY_SUFFIX`).
        progress: show a tqdm bar with frames/s when tqdm is installed.
        landmarks: draw the landmarks on ``out`` (:func:`~ferkit.draw.draw_faces`); the
            timelines have their columns either way.

    Returns:
        A :class:`VideoReport`; its ``error`` is set when the video broke off mid-way.

    Raises:
        VideoReadError: missing file, or one OpenCV cannot open or decode at all.
        FerkitError: bad output paths (clash with the input or each other, unknown video
            suffix) or ``plot`` without matplotlib.
    """
    path = Path(path)
    paths, fourcc = _check_outputs(path, out, csv_path, json_path, plot, fourcc)
    stream = stream if stream is not None else StreamRecognizer()
    stream.reset()
    with VideoReader(path) as video:
        summary = TimelineSummary(stream.class_names, video.fps)
        outputs = _Outputs(video, stream, paths["out"], paths["csv"], paths["json"], paths["plot"], fourcc,
                           landmarks)
        bar, start, error = None, time.perf_counter(), None
        try:
            bar = _progress_bar(video.frame_count, path.name, progress)
            for index, timestamp_s, frame in video:
                faces = stream.process(frame)
                summary.add(timestamp_s, faces)
                outputs.add(index, timestamp_s, frame, faces)
                if bar is not None:
                    bar.update()
            error = video.error
        except KeyboardInterrupt:
            error = f"{path}: interrupted after {summary.frames} frames"
            raise
        except BaseException as exc:
            error = f"{path}: stopped after {summary.frames} frames ({type(exc).__name__}: {exc})"
            raise
        finally:
            if bar is not None:
                bar.close()
            elapsed = time.perf_counter() - start
            result = summary.result()
            written = outputs.commit(result, error, f"{path.name}: emotion probabilities per face track")
    return VideoReport(str(path), video.fps, summary.frames, video.frame_count, result, written, elapsed,
                       error)

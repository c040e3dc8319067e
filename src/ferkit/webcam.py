"""Live emotions from a camera (or a video file) in a desktop window, with boxes, labels and FPS.

A thin loop over :class:`~ferkit.video.StreamRecognizer` (tracks, smoothed probabilities)
and :mod:`ferkit.draw`: read a frame, process it, draw it, show it. The window needs an
OpenCV build with GUI support and a display; ferkit depends on
``opencv-python-headless``, which has none, so :func:`check_window_support` says what to
do instead (``pip install opencv-python``, ``--no-window``, or ``ferkit serve`` for the
browser's camera). Without a window the same loop writes the annotated video and the
timelines of ``ferkit video``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import FerkitError, VideoReadError
from .video import StreamRecognizer, TimelineSummary, VideoReader, VideoReport, _check_outputs, _Outputs

WINDOW_TITLE = "ferkit webcam (q or Esc quits)"

_NO_WINDOW_HINT = ("run without a window (--no-window with --out FILE.mp4 and/or --csv FILE.csv), "
                   "or use `ferkit serve` and open its page in a browser for the browser's camera")


def gui_backend() -> str | None:
    """The GUI backend of the installed OpenCV (e.g. ``"GTK3"``, ``"QT5"``, ``"WIN32UI"``), or
    ``None`` when it has none (``opencv-python-headless``), read from its build information."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    backend = match.group(1) if match else None
    return None if backend in (None, "NONE") else backend


def check_window_support() -> None:
    """Make sure a window can be opened, before any camera is.

    Raises:
        FerkitError: on Linux without ``$DISPLAY`` / ``$WAYLAND_DISPLAY``, or with an
            OpenCV without GUI support; the message says what to do instead.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FerkitError(f"no display to open a window on ($DISPLAY is not set): {_NO_WINDOW_HINT}")
    if gui_backend() is None:
        raise FerkitError("this OpenCV has no window support (ferkit installs opencv-python-headless): "
                          "pip uninstall opencv-python-headless && pip install 'opencv-python<5' for the "
                          f"window, or {_NO_WINDOW_HINT}")
    try:
        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise FerkitError(f"OpenCV cannot open a window ({str(exc).strip().splitlines()[-1][:200]}): "
                          f"{_NO_WINDOW_HINT}") from None


class CameraReader:
    """The frames of a camera, read with ``cv2.VideoCapture(index)``; the interface of
    :class:`~ferkit.video.VideoReader` (timestamps are seconds since the first frame, by
    the wall clock).

    Args:
        index: the camera's number (0: the default camera).

    Attributes:
        path: ``"camera N"`` (a name, for messages and the JSON header).
        fps: the frame rate the driver states, or ``None``.
        frame_count: always ``None`` (a camera has no end).
        width, height: frame size in pixels.
        error: ``None``, or why the camera stopped delivering frames.
        timestamps: how timestamps are measured (for the JSON timeline's header).

    Raises:
        VideoReadError: the camera does not open or gives no first frame.
    """

    def __init__(self, index: int):
        self.path = f"camera {index}"
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our error says it better
        try:
            self._cap = cv2.VideoCapture(index)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self._cap.isOpened():
            self._cap.release()
            raise VideoReadError(f"{self.path} does not open (no camera with that number, no permission to "
                                 "use it, or in use by another program): try another --camera number or a "
                                 "video file, or `ferkit serve` to use the browser's camera")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise VideoReadError(f"{self.path} opened but gives no frames")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and fps > 0 else None
        self.frame_count = None
        self.timestamps = "seconds since the first frame, wall clock"
        self.height, self.width = frame.shape[:2]
        self.frames_read = 0
        self.error: str | None = None
        self._first = frame

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Yield ``(frame_index, timestamp_s, frame)``, frame (H, W, 3) uint8 BGR."""
        start = time.perf_counter()
        frame, self._first = self._first, None
        while frame is not None:
            self.frames_read += 1
            yield self.frames_read - 1, time.perf_counter() - start, frame
            ok, frame = self._cap.read()
            if not ok or frame is None:
                self.error = f"{self.path} stopped delivering frames after {self.frames_read}"
                frame = None

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CameraReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(camera: str | int) -> CameraReader | VideoReader:
    """A camera for an integer (or a string of digits), else a video file.

    Raises:
        VideoReadError: the camera or file cannot be opened or read.
    """
    text = str(camera).strip()
    if re.fullmatch(r"\d+", text):
        return CameraReader(int(text))
    return VideoReader(Path(text))


def draw_fps(image: np.ndarray, fps: float) -> np.ndarray:
    """Write ``"{fps:.1f} fps"`` in the top-left corner of a (H, W, 3) uint8 BGR image, in place."""
    scale = max(0.5, image.shape[1] / 1000)
    cv2.putText(image, f"{fps:.1f} fps", (8, int(30 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), max(2, round(3 * scale)) + 2, cv2.LINE_AA)
    cv2.putText(image, f"{fps:.1f} fps", (8, int(30 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, round(2 * scale)), cv2.LINE_AA)
    return image


def run_webcam(camera: str | int = 0, stream: StreamRecognizer | None = None, *, window: bool = True,
               out: str | os.PathLike | None = None, csv_path: str | os.PathLike | None = None,
               json_path: str | os.PathLike | None = None, max_frames: int | None = None,
               fourcc: str | None = None, landmarks: bool = True) -> VideoReport:
    """Show (and/or record) the tracked emotions of the faces in front of a camera.

    The window shows each frame with the faces' boxes, ``#track label score``, their
    landmarks as dots (YuNet) and the processing rate in frames per second (an
    exponential moving average); ``q``, Esc, closing the window, or Ctrl-C stop it, as
    does the end of a video file or ``max_frames``. The outputs are those of :func:`~ferkit.video.analyze_video`
    (written under temporary names, renamed at the end, also after Ctrl-C).

    Args:
        camera: a camera number (``0``: the default camera) or a video file path.
        stream: a :class:`~ferkit.video.StreamRecognizer` (it is reset); ``None`` for defaults.
        window: show the live window (needs a display and an OpenCV with GUI support).
        out: annotated video file (.mp4, .avi, ...), at the camera's stated frame rate
            (30 when it states none; a camera's real rate may differ).
        csv_path, json_path: timelines, one row per face per frame.
        max_frames: stop after this many frames (``None``: until stopped).
        fourcc: codec of ``out``; default from its suffix.
        landmarks: draw each face's landmarks as dots in the window and on ``out``.

    Returns:
        A :class:`~ferkit.video.VideoReport` (``error`` set when a camera stopped
        delivering frames or a file broke off).

    Raises:
        FerkitError: no window possible (see :func:`check_window_support`), bad output
            paths, ``max_frames`` < 1.
        VideoReadError: the camera or file does not open.
    """
    if max_frames is not None and max_frames < 1:
        raise FerkitError(f"max_frames must be >= 1, got {max_frames}")
    paths, fourcc = _check_outputs(Path(str(camera)), out, csv_path, json_path, None, fourcc)
    if window:
        check_window_support()
    stream = stream if stream is not None else StreamRecognizer()
    stream.reset()
    try:
        source = open_source(camera)
    except BaseException:
        if window:
            cv2.destroyAllWindows()
        raise
    with source:
        summary = TimelineSummary(stream.class_names, source.fps)
        outputs = _Outputs(source, stream, paths["out"], paths["csv"], paths["json"], None, fourcc, landmarks)
        start = last = time.perf_counter()
        fps, error = 0.0, None
        try:
            for index, timestamp_s, frame in source:
                faces = stream.process(frame)
                summary.add(timestamp_s, faces)
                shown = outputs.annotate(frame, faces) if window else None  # drawn once, for both
                outputs.add(index, timestamp_s, frame, faces, shown)
                now = time.perf_counter()
                rate = 1 / max(now - last, 1e-6)
                fps, last = (rate if index == 0 else 0.9 * fps + 0.1 * rate), now
                if window:
                    cv2.imshow(WINDOW_TITLE, draw_fps(shown, fps))  # after the write: no FPS in --out
                    key = cv2.waitKey(1) & 0xFF
                    if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
                        break
                if max_frames is not None and summary.frames >= max_frames:
                    break
            else:
                error = source.error
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a run without a window ends: keep and write what was recorded
        except BaseException as exc:
            error = f"{source.path}: stopped after {summary.frames} frames ({type(exc).__name__}: {exc})"
            raise
        finally:
            elapsed = time.perf_counter() - start
            result = summary.result()
            written = outputs.commit(result, error, f"{source.path}: emotion probabilities per face track")
            if window:
                cv2.destroyAllWindows()
    return VideoReport(str(source.path), source.fps, summary.frames, source.frame_count, result, written, elapsed,
                       error)


__all__ = ["CameraReader", "check_window_support", "draw_fps", "gui_backend", "open_source",
           "run_webcam"]

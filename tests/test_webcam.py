"""ferkit webcam: clear one-line errors without a display, a GUI-less OpenCV or a camera, and a
run without a window on a generated video with a real face (the frames of test_video.py)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from test_video import A_SIDE, FPS, SIZE, _face_crop, _frame

from ferkit.cli import main
from ferkit.draw import COLORS
from ferkit.recognize import Recognizer
from ferkit.video import StreamRecognizer
from ferkit.webcam import gui_backend, run_webcam

FERKIT = [sys.executable, "-m", "ferkit.cli"]
N_FRAMES = 16


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    crop = _face_crop()
    a = cv2.resize(crop, (A_SIDE, A_SIDE), interpolation=cv2.INTER_AREA)
    b = cv2.resize(cv2.flip(crop, 1), (int(A_SIDE * 0.85),) * 2, interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("webcam") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for i in range(N_FRAMES):
        writer.write(_frame(i, a, b))
    writer.release()
    return path


def _run(args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    environ.update(env)
    return subprocess.run([*FERKIT, "webcam", *args], capture_output=True, text=True, env=environ, timeout=120)


def _one_line_error(result) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="$DISPLAY is how Linux finds a display")
def test_no_display_is_a_clear_error():
    line = _one_line_error(_run([]))
    assert line.startswith("ferkit webcam: error: no display") and "$DISPLAY" in line
    assert "--no-window" in line and "ferkit serve" in line


def test_opencv_without_gui_is_a_clear_error():
    if gui_backend() is not None:
        pytest.skip(f"this OpenCV has a GUI ({gui_backend()})")
    line = _one_line_error(_run(["--camera", "0"], DISPLAY=":99"))
    assert "no window support" in line and "pip install 'opencv-python<5'" in line and "ferkit serve" in line


def test_camera_that_does_not_open_is_a_clear_error():
    line = _one_line_error(_run(["--no-window", "--camera", "9"]))
    assert "camera 9 does not open" in line and "ferkit serve" in line


def test_missing_video_file_is_a_clear_error(tmp_path):
    line = _one_line_error(_run(["--no-window", "--camera", str(tmp_path / "none.mp4")]))
    assert "none.mp4: no such file" in line


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_headless_run_records_what_ferkit_video_records(clip, tmp_path, capsys):
    out, table = tmp_path / "live.avi", tmp_path / "live.csv"
    assert main(["webcam", "--camera", str(clip), "--no-window", "--out", str(out), "--csv", str(table),
                 "--max-frames", "12", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "12 frames in" in printed and f"wrote {table}" in printed
    rows = _rows(table)
    assert {int(r["frame"]) for r in rows} == set(range(12))
    # Face A in every frame with one track id; face B (frames 6-11) with another.
    assert len(rows) == 12 + 6
    assert len({r["track_id"] for r in rows}) == 2
    # The same frames through `ferkit video` give the same rows (same tracker, same smoothing).
    assert main(["video", str(clip), "--csv", str(tmp_path / "video.csv"), "--no-progress", "--threads", "1"]) == 0
    reference = [r for r in _rows(tmp_path / "video.csv") if int(r["frame"]) < 12]
    assert rows == reference
    reader = cv2.VideoCapture(str(out))
    frames = 0
    while reader.read()[0]:
        frames += 1
    assert frames == 12


def test_headless_run_to_the_end_of_a_file(clip):
    report = run_webcam(str(clip), window=False)
    assert report.frames == N_FRAMES and report.error is None and report.written == []
    assert len(report.summary["tracks"]) == 2


def test_bad_max_frames_and_output_suffix(clip, tmp_path):
    with pytest.raises(ValueError, match="max_frames"):
        run_webcam(str(clip), window=False, max_frames=0)
    with pytest.raises(ValueError, match="video suffix"):
        run_webcam(str(clip), window=False, out=tmp_path / "x.txt")


def _fake_window(monkeypatch, keys) -> list[np.ndarray]:
    """No OpenCV GUI can run here (opencv-python-headless, no display): stand in for the
    window calls only, answering waitKey with ``keys``; returns the list the shown images
    go into."""
    import ferkit.webcam as webcam

    shown, keys = [], iter(keys)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(webcam, "gui_backend", lambda: "TEST")
    monkeypatch.setattr(webcam.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(webcam.cv2, "imshow", lambda title, image: shown.append(image.copy()))
    monkeypatch.setattr(webcam.cv2, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(webcam.cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(webcam.cv2, "destroyAllWindows", lambda: None)
    return shown


def test_window_loop_shows_boxes_and_fps_and_quits_on_q(clip, monkeypatch):
    shown = _fake_window(monkeypatch, [-1, -1, -1, -1, ord("q")])
    report = run_webcam(str(clip), window=True)
    assert report.frames == len(shown) == 5 and report.error is None
    raw = cv2.VideoCapture(str(clip)).read()[1]
    changed = np.any(shown[0] != raw, axis=2)
    assert changed[:40, :120].mean() > 0.05  # the FPS text in the top-left corner
    assert changed[40:, :].sum() > 500  # the face's box and caption


def test_window_marks_yunets_landmarks_unless_told_not_to(clip, monkeypatch):
    raw = cv2.VideoCapture(str(clip)).read()[1]
    (face,) = StreamRecognizer(Recognizer(detector="yunet", threads=1)).process(raw)
    assert len(face.landmarks) == 5
    shown = {}
    for landmarks in (True, False):
        shown[landmarks] = _fake_window(monkeypatch, [-1])
        run_webcam(str(clip), StreamRecognizer(Recognizer(detector="yunet", threads=1)), window=True,
                   max_frames=1, landmarks=landmarks)
    for x, y in face.landmarks:  # a dot of the label's colour over each point (the window is not compressed)
        x, y = round(x), round(y)
        assert (shown[True][0][y - 1:y + 2, x - 1:x + 2] == COLORS[face.label]).all()
        assert np.array_equal(shown[False][0][y - 1:y + 2, x - 1:x + 2], raw[y - 1:y + 2, x - 1:x + 2])

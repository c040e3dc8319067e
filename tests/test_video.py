"""Videos: face tracking, smoothing, stride, detect scale, the timeline files, the annotated
video, and broken or unreadable inputs, on a short video built from a real face photo."""

import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ferkit.cli import main
from ferkit.detect import HaarDetector, YuNetDetector
from ferkit.draw import COLORS
from ferkit.recognize import Recognizer, demo_image_path
from ferkit.video import (IouTracker, StreamRecognizer, VideoReader, analyze_video, iou_matrix,
                          timeline_columns)

FERKIT = [sys.executable, "-m", "ferkit.cli"]

# The test video: 36 frames of 320x240 at 10 fps (MJPG in .avi, which this OpenCV build
# writes and reads back frame-exactly, and which still opens when cut in half).
# Face A (Grace Hopper, face about 84 px) moves right 3 px a frame in frames 0-19, is
# gone in frames 20-27, and is back in frames 28-35 where it left off. Face B (the same
# photo flipped and scaled to 0.85, face about 70 px) stands at the top right in 6-15.
FPS, N_FRAMES, SIZE = 10, 36, (320, 240)
A_FIRST, GAP, A_AGAIN = range(0, 20), range(20, 28), range(28, 36)
B_FRAMES = range(6, 16)
A_SIDE = 120  # side of the pasted photo crop; the face Haar finds in it is ~84 px


def faces_in(i: int) -> int:
    return (i not in GAP) + (i in B_FRAMES)


def _face_crop() -> np.ndarray:
    photo = cv2.imread(str(demo_image_path()))
    x, y, w, h = 155, 105, 222, 222  # Haar's box of the face in grace_hopper.jpg
    m = int(0.25 * w)
    return photo[y - m:y + h + m, x - m:x + w + m]


def _frame(i: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    frame = np.full((SIZE[1], SIZE[0], 3), (90, 110, 100), np.uint8)
    if i not in GAP:
        ax = 4 + 3 * min(i, A_FIRST[-1])
        frame[60:60 + A_SIDE, ax:ax + A_SIDE] = a
    if i in B_FRAMES:
        frame[20:20 + b.shape[0], 310 - b.shape[1]:310] = b
    return frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    crop = _face_crop()
    a = cv2.resize(crop, (A_SIDE, A_SIDE), interpolation=cv2.INTER_AREA)
    b = cv2.resize(cv2.flip(crop, 1), (int(A_SIDE * 0.85),) * 2, interpolation=cv2.INTER_AREA)
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened(), "this OpenCV build cannot write MJPG .avi"
    for i in range(N_FRAMES):
        writer.write(_frame(i, a, b))
    writer.release()
    return path


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(detector="haar", threads=1)  # the clip and its figures are made for Haar


def _read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("frame", "track_id", "x", "y", "w", "h", "detected"):
            r[k] = int(r[k])
        for k in r:
            if k in ("timestamp_s", "score", "roll") or k.startswith("prob_"):
                r[k] = float(r[k])
            elif k.endswith(("_x", "_y")):  # landmark columns: empty where a face has none
                r[k] = float(r[k]) if r[k] else None
    return rows


def _by_frame(rows) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r["frame"], []).append(r)
    return out


def _ids(rows, frames, left: bool) -> set[int]:
    """Track ids of face A (left half) or B (right half) in the given frames."""
    return {r["track_id"] for r in rows if r["frame"] in frames and (r["x"] < 160) == left}


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def _count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_fixture_video_reads_back_and_haar_finds_its_faces(clip):
    with VideoReader(clip) as video:
        assert (video.fps, video.frame_count, video.width, video.height) == (FPS, N_FRAMES, *SIZE)
        found = [len(HaarDetector().detect(frame)) for _, _, frame in video]
    assert found == [faces_in(i) for i in range(N_FRAMES)]


def test_reader_decodes_ahead_in_order_and_stops_its_thread_when_left_early(clip):
    cap = cv2.VideoCapture(str(clip))
    expected = [cap.read()[1] for _ in range(N_FRAMES)]
    cap.release()
    with VideoReader(clip, prefetch=2) as video:
        got = [(i, t, frame) for i, t, frame in video]
    assert [i for i, _, _ in got] == list(range(N_FRAMES))
    assert [t for _, t, _ in got] == [i / FPS for i in range(N_FRAMES)]
    assert all(np.array_equal(f, e) for (_, _, f), e in zip(got, expected))
    video = VideoReader(clip, prefetch=2)
    frames = iter(video)
    for _ in range(3):
        next(frames)
    video.close()  # while the decoder is ahead and blocked on a full queue
    stop, worker = video._decoding
    assert stop.is_set() and not worker.is_alive() and video.frames_read == 3


def test_timeline_tracks_gap_summary_and_outputs(clip, recognizer, tmp_path):
    out, csv_path, json_path, plot = (tmp_path / n for n in ("ann.mp4", "t.csv", "t.json", "t.png"))
    report = analyze_video(clip, StreamRecognizer(recognizer), out=out, csv_path=csv_path,
                           json_path=json_path, plot=plot)
    assert report.error is None and report.frames == N_FRAMES
    assert sorted(report.written) == sorted([out, csv_path, json_path, plot])
    rows = _read_csv(csv_path)
    assert list(rows[0]) == timeline_columns(recognizer.class_names)

    # one row per face per frame, none in the gap; timestamps are frame / fps
    by_frame = _by_frame(rows)
    assert {i: len(by_frame.get(i, [])) for i in range(N_FRAMES)} == {i: faces_in(i) for i in range(N_FRAMES)}
    assert all(abs(r["timestamp_s"] - r["frame"] / FPS) < 1e-6 for r in rows)

    # the moving face keeps one id; the second face has another in the same frames; the
    # face after the gap (8 frames > max_missed=5) gets a new id
    (a1,), (b,), (a2,) = _ids(rows, A_FIRST, True), _ids(rows, B_FRAMES, False), _ids(rows, A_AGAIN, True)
    assert len({a1, b, a2}) == 3
    a_x = [r["x"] for r in rows if r["track_id"] == a1]
    assert a_x == sorted(a_x)
    assert a_x[-1] - a_x[0] > 45  # it really moved (57 px pasted)

    for r in rows:
        probs = {k[5:]: v for k, v in r.items() if k.startswith("prob_")}
        assert abs(sum(probs.values()) - 1) < 1e-4
        assert r["label"] == max(probs, key=probs.get) and r["score"] == probs[r["label"]]
        assert r["detected"] == 1
        assert r["roll"] == 0.0  # Haar gives no landmarks: no roll, and no landmark columns

    # the JSON holds the same rows, the settings and the summary
    doc = json.loads(json_path.read_text())
    assert doc["error"] is None and doc["fps"] == FPS and doc["settings"]["stride"] == 1
    small = doc["settings"]["small_faces"]
    assert small["below_px"] == 48 and small["sharpness_below"] == 0.173  # the network faces under 48 px went to
    assert doc["settings"]["small_faces"]["model"].endswith("small-faces.onnx")
    assert doc["settings"]["align_above"] == 15 and doc["settings"]["refine_below"] == 0
    assert len(doc["rows"]) == len(rows)
    assert all(j == c for j, c in zip(doc["rows"], rows)), "JSON and CSV rows differ"
    summary = doc["summary"]
    assert summary == report.summary
    video = summary["video"]
    assert (video["frames"], video["tracks"], video["frames_without_face"]) == (N_FRAMES, 3, len(GAP))
    assert video["seconds_without_face"] == pytest.approx(len(GAP) / FPS)
    spans = {t["track_id"]: (t["first_s"], t["last_s"], t["frames"]) for t in summary["tracks"]}
    assert spans == {a1: (0.0, 1.9, 20), b: (0.6, 1.5, 10), a2: (2.8, 3.5, 8)}
    for t in summary["tracks"] + [video]:
        assert t["dominant"] == max(t["mean_probs"], key=t["mean_probs"].get)
    for t in summary["tracks"]:
        assert sum(t["time_s"].values()) == pytest.approx(t["frames"] / FPS)
        labels = [r["label"] for r in rows if r["track_id"] == t["track_id"]]
        assert t["time_s"] == {n: pytest.approx(labels.count(n) / FPS) for n in recognizer.class_names}
    assert sum(video["time_s"].values()) == pytest.approx(len(rows) / FPS)

    # the annotated video has the input's frame count, size and fps
    cap = cv2.VideoCapture(str(out))
    props = (cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT)
    assert tuple(cap.get(p) for p in props) == (FPS, *SIZE)
    cap.release()
    assert _count_frames(out) == N_FRAMES
    assert cv2.imread(str(plot)).shape[1] > 400
    assert _leftovers(tmp_path) == []


def test_annotated_video_shows_the_boxes(clip, recognizer, tmp_path):
    out, csv_path = tmp_path / "ann.avi", tmp_path / "t.csv"
    analyze_video(clip, StreamRecognizer(recognizer), out=out, csv_path=csv_path)
    (row,) = [r for r in _read_csv(csv_path) if r["frame"] == 10 and r["x"] < 160]
    x, y, w = row["x"], row["y"], row["w"]

    def top_edge_diff(i: int) -> float:
        """Mean |annotated - input| along face A's top box edge in frame i."""
        frames = {}
        for name in ("input", "annotated"):
            cap = cv2.VideoCapture(str(clip if name == "input" else out))
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            frames[name] = cap.read()[1].astype(int)
            cap.release()
        return float(np.abs(frames["annotated"] - frames["input"])[y, x + 5:x + w - 5].mean())

    assert top_edge_diff(10) > 40  # the box is drawn there
    assert top_edge_diff(24) < 10  # in the gap nothing is drawn


def test_face_back_within_max_missed_keeps_its_id(clip, recognizer):
    stream = StreamRecognizer(recognizer, max_missed=len(GAP))
    with VideoReader(clip) as video:
        seen = [(i, f.track_id, f.box[0]) for i, _, frame in video for f in stream.process(frame)]
    assert {tid for i, tid, x in seen if x < 160} == {1}  # before and after the gap
    assert {tid for i, tid, x in seen if x >= 160} == {2}


def test_stride_2_gives_rows_on_every_frame_with_a_face(clip, recognizer, tmp_path):
    csv_path = tmp_path / "t.csv"
    report = analyze_video(clip, StreamRecognizer(recognizer, stride=2), csv_path=csv_path)
    assert report.error is None
    rows = _read_csv(csv_path)
    by_frame = _by_frame(rows)
    assert {i: len(by_frame.get(i, [])) for i in range(N_FRAMES)} == {i: faces_in(i) for i in range(N_FRAMES)}
    assert all(r["detected"] == (r["frame"] % 2 == 0) for r in rows)
    same = ("track_id", "x", "y", "w", "h", "label", "score", *(k for k in rows[0] if k.startswith("prob_")))
    for i in range(1, N_FRAMES, 2):  # carried frames repeat the last detection pass
        assert [{k: r[k] for k in same} for r in by_frame.get(i, [])] == \
            [{k: r[k] for k in same} for r in by_frame.get(i - 1, [])]
    (a1,), (b,), (a2,) = _ids(rows, A_FIRST, True), _ids(rows, B_FRAMES, False), _ids(rows, A_AGAIN, True)
    assert len({a1, b, a2}) == 3  # the 8-frame gap still ends the track (max_missed 5 frames)


def test_detect_scale_maps_boxes_back_to_full_resolution(clip, recognizer):
    boxes = {}
    for scale in (1.0, 0.5):
        stream = StreamRecognizer(recognizer, detect_scale=scale)
        with VideoReader(clip) as video:
            boxes[scale] = [sorted(f.box for f in stream.process(frame)) for _, _, frame in video]
    assert [len(b) for b in boxes[0.5]] == [faces_in(i) for i in range(N_FRAMES)]
    for full, half in zip(boxes[1.0], boxes[0.5]):
        if full:  # same faces, at full-resolution coordinates (Haar is coarser on the small frame)
            assert np.diag(iou_matrix(full, half)).min() > 0.6, (full, half)


def test_truncated_video_writes_partial_results_and_exits_1(clip, tmp_path):
    half = tmp_path / "half.avi"
    data = clip.read_bytes()
    half.write_bytes(data[:len(data) // 2])
    out, csv_path, json_path = tmp_path / "ann.mp4", tmp_path / "t.csv", tmp_path / "t.json"
    r = subprocess.run([*FERKIT, "video", str(half), "--out", str(out), "--csv", str(csv_path),
                        "--json", str(json_path), "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert str(half) in r.stderr and "broke off" in r.stderr
    doc = json.loads(json_path.read_text())
    n = doc["summary"]["video"]["frames"]
    assert 0 < n < N_FRAMES and str(half) in doc["error"]
    rows = _read_csv(csv_path)
    assert sorted({r["frame"] for r in rows}) == [i for i in range(n) if faces_in(i)]
    assert len(doc["rows"]) == len(rows)
    assert _count_frames(out) == n
    assert _leftovers(tmp_path) == []


def test_unreadable_inputs_exit_2_naming_the_file(tmp_path, capsys):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all")
    csv_path = tmp_path / "t.csv"
    assert main(["video", str(notes), "--csv", str(csv_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(notes) in err and "cannot open it as a video" in err
    missing = tmp_path / "missing.avi"
    assert main(["video", str(missing), "--csv", str(csv_path), "--no-progress"]) == 2
    assert f"{missing}: no such file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_output_clashing_with_the_input_is_refused(clip, tmp_path, capsys):
    assert main(["video", str(clip), "--out", str(clip), "--no-progress"]) == 2
    assert "would overwrite the input video" in capsys.readouterr().err


def test_interrupt_writes_what_was_processed(clip, recognizer, tmp_path):
    class StopAtFrame:
        """The Haar detector, with a Ctrl-C on its 12th frame."""

        def __init__(self):
            self.haar, self.calls = HaarDetector(), 0

        def detect(self, image):
            self.calls += 1
            if self.calls == 12:
                raise KeyboardInterrupt
            return self.haar.detect(image)

    rec = Recognizer(recognizer.classifier, detector=StopAtFrame())
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "t.json"
    with pytest.raises(KeyboardInterrupt):
        analyze_video(clip, StreamRecognizer(rec), csv_path=csv_path, json_path=json_path)
    assert sorted({r["frame"] for r in _read_csv(csv_path)}) == list(range(11))
    doc = json.loads(json_path.read_text())
    assert "interrupted" in doc["error"] and doc["summary"]["video"]["frames"] == 11
    assert _leftovers(tmp_path) == []


def test_iou_matrix():
    iou = iou_matrix([(0, 0, 10, 10)], [(0, 0, 10, 10), (5, 0, 10, 10), (20, 20, 5, 5), (0, 0, 0, 0)])
    assert np.allclose(iou, [[1.0, 50 / 150, 0.0, 0.0]])
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_tracker_smooths_per_track_and_restarts_for_a_new_track():
    p1, p2, p3 = np.eye(3)
    tracker = IouTracker(min_iou=0.3, max_missed=1, alpha=0.25)
    (t,) = tracker.update([(0, 0, 100, 100)], [p1])
    assert t.track_id == 1 and np.allclose(t.probs, p1)
    (t,) = tracker.update([(10, 0, 100, 100)], [p2])
    assert t.track_id == 1 and np.allclose(t.probs, 0.25 * p2 + 0.75 * p1)
    (t,) = tracker.update([(10, 0, 100, 100)], [p2])
    assert np.allclose(t.probs, 0.25 * p2 + 0.75 * (0.25 * p2 + 0.75 * p1))
    (new,) = tracker.update([(300, 300, 50, 50)], [p3])  # no overlap: a new track, its own probs
    assert new.track_id == 2 and np.allclose(new.probs, p3)
    assert [(x.track_id, x.missed) for x in tracker.tracks] == [(1, 1), (2, 0)]
    tracker.update([(300, 300, 50, 50)], [p3])  # track 1 misses a second time: it ends
    assert [x.track_id for x in tracker.tracks] == [2]
    (back,) = tracker.update([(10, 0, 100, 100)], [p1])  # where track 1 was: a new id
    assert back.track_id == 3 and np.allclose(back.probs, p1)


def test_tracker_keeps_each_tracks_last_landmarks_and_roll():
    """A matched track takes its detection's landmarks and roll as they are (not smoothed);
    a face without (Haar) gives None and 0.0; counts that do not match the boxes are refused."""
    tracker, probs = IouTracker(), np.full((2, 7), 1 / 7)
    eyes = [((10, 20), (40, 21)), ((110, 20), (140, 30))]
    first = tracker.update([(0, 0, 50, 50), (100, 0, 50, 50)], probs, landmarks=eyes, rolls=[0.0, 18.4])
    assert [(t.landmarks, t.roll) for t in first] == [(((10.0, 20.0), (40.0, 21.0)), 0.0),
                                                      (((110.0, 20.0), (140.0, 30.0)), 18.4)]
    moved = [((13, 20), (43, 22)), None]
    second = tracker.update([(3, 0, 50, 50), (102, 0, 50, 50)], probs, landmarks=moved, rolls=[-2.5, 0.0])
    assert [t.track_id for t in second] == [1, 2]
    assert [(t.landmarks, t.roll) for t in second] == [(((13.0, 20.0), (43.0, 22.0)), -2.5), (None, 0.0)]
    (plain,) = tracker.update([(3, 0, 50, 50)], probs[:1])  # no points given: none kept
    assert (plain.landmarks, plain.roll) == (None, 0.0)
    with pytest.raises(ValueError, match="expected 1 landmark lists, got 2"):
        tracker.update([(3, 0, 50, 50)], probs[:1], landmarks=eyes)
    with pytest.raises(ValueError, match="expected 1 rolls, got 0"):
        tracker.update([(3, 0, 50, 50)], probs[:1], rolls=[])


def test_stream_reports_the_landmarks_and_roll_of_each_tracks_face():
    """YuNet on a rolled face: each tracked face carries the landmarks and roll that
    Recognizer.predict gives for the frame it was detected in, also in its JSON; with
    stride 2 the frame in between carries them over with the box."""
    photo = cv2.imread(str(demo_image_path()))
    h, w = photo.shape[:2]
    rolled = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)
    frames = [np.roll(rolled, 4 * i, axis=1) for i in range(3)]
    rec = Recognizer(detector="yunet", threads=1)
    stream = StreamRecognizer(rec, stride=2)
    out = [stream.process(frame) for frame in frames]
    assert [len(faces) for faces in out] == [1, 1, 1] and [f[0].track_id for f in out] == [1, 1, 1]
    for i in (0, 2):  # detection passes
        (expected,), (got,) = rec.predict(frames[i]), out[i]
        assert got.detected and got.box == expected.box and got.landmarks == expected.landmarks
        assert got.roll == expected.roll < -15  # rolled beyond align_above: turned upright
    carried = out[1][0]
    assert not carried.detected and (carried.box, carried.landmarks, carried.roll) == \
        (out[0][0].box, out[0][0].landmarks, out[0][0].roll)
    assert out[2][0].landmarks[0][0] > out[0][0].landmarks[0][0]  # the points follow the face
    d = out[2][0].to_dict()
    assert len(d["landmarks"]) == 5 and d["roll"] == round(out[2][0].roll, 1) and d["track_id"] == 1


def test_yunet_timelines_have_each_faces_roll_and_landmarks_and_the_video_draws_them(tmp_path):
    """With YuNet the CSV and JSON timelines have a roll column and x, y columns for each of
    its five points, equal to what the stream gives for the decoded frames; the annotated
    video marks the points with dots, and `ferkit video --no-landmarks` does not."""
    photo = cv2.imread(str(demo_image_path()))
    h, w = photo.shape[:2]
    rolled = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)
    small = rolled[:h // 8 * 8, :w // 8 * 8]  # full size: YuNet's points lag the roll of faces under ~100 px
    path = tmp_path / "rolled.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, small.shape[1::-1])
    for i in range(3):
        writer.write(np.roll(small, 3 * i, axis=1))
    writer.release()
    decoded = [frame for _, _, frame in VideoReader(path)]

    rec = Recognizer(detector="yunet", threads=1)
    stream = StreamRecognizer(rec)
    expected = [stream.process(frame) for frame in decoded]
    csv_path, json_path, dots, plain = (tmp_path / n for n in ("t.csv", "t.json", "dots.avi", "plain.avi"))
    analyze_video(path, StreamRecognizer(rec), out=dots, csv_path=csv_path, json_path=json_path)
    names = YuNetDetector.landmark_names
    rows = _read_csv(csv_path)
    assert list(rows[0]) == timeline_columns(rec.class_names, names)
    assert [k for k in rows[0] if k.endswith("_x")] == ["eye_l_x", "eye_r_x", "nose_x", "mouth_l_x", "mouth_r_x"]
    assert [len(faces) for faces in expected] == [1, 1, 1] and len(rows) == 3
    for row, (face,) in zip(rows, expected):
        assert row["roll"] == round(face.roll, 1) and row["roll"] < -15  # turned upright
        assert [(row[f"{n}_x"], row[f"{n}_y"]) for n in names] == \
            [(round(x, 1), round(y, 1)) for x, y in face.landmarks]
    assert rows[0]["eye_l_x"] < rows[0]["eye_r_x"]  # the eye on the image's left comes first
    assert json.loads(json_path.read_text())["rows"] == rows

    assert main(["video", str(path), "--out", str(plain), "--no-landmarks", "--detector", "yunet",
                 "--threads", "1", "--no-progress"]) == 0
    with_dots, without = ([f.astype(int) for _, _, f in VideoReader(p)] for p in (dots, plain))
    for i, (face,) in enumerate(expected):
        color = COLORS[face.label]
        for x, y in face.landmarks:  # a dot of the label's colour over each point, only with landmarks on
            x, y = round(x), round(y)
            assert np.abs(with_dots[i][y - 1:y + 2, x - 1:x + 2] - color).mean() < 25
            assert np.abs(without[i] - decoded[i])[y - 1:y + 2, x - 1:x + 2].mean() < 12
        x, y, bw, bh = face.box
        assert np.abs(with_dots[i] - without[i])[y, x + 5:x + bw - 5].mean() < 12  # the same box


def test_tracker_matches_by_overlap_not_by_order():
    probs = np.full((2, 7), 1 / 7)
    tracker = IouTracker()
    first = tracker.update([(0, 0, 50, 50), (100, 0, 50, 50)], probs)
    second = tracker.update([(104, 2, 50, 50), (3, 1, 50, 50)], probs)
    assert [t.track_id for t in first] == [1, 2]
    assert [t.track_id for t in second] == [2, 1]
    # one detection overlapping two tracks goes to the one it overlaps most
    tracker = IouTracker(min_iou=0.1)
    tracker.update([(0, 0, 50, 50), (40, 0, 50, 50)], probs)
    (t,) = tracker.update([(35, 0, 50, 50)], probs[:1])
    assert t.track_id == 2


def test_bad_settings_and_frames_raise_clear_errors(recognizer):
    with pytest.raises(ValueError, match="stride"):
        StreamRecognizer(recognizer, stride=0)
    with pytest.raises(ValueError, match="detect_scale"):
        StreamRecognizer(recognizer, detect_scale=1.5)
    with pytest.raises(ValueError, match="min_iou"):
        StreamRecognizer(recognizer, min_iou=0)
    with pytest.raises(ValueError, match="uint8"):
        StreamRecognizer(recognizer).process(np.zeros((24, 32, 3), np.float32))

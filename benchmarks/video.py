"""Video, ferkit against the ``fer`` pip package from the same run: frames/s end to end
(decode, detect, classify every frame: stride 1) on a 640x480 video with one real face.

    python benchmarks/video.py [--frames 300] [--fer-python /work/fer-venv/bin/python]

The video is generated into a temporary directory (MJPG .avi, 30 fps): Grace Hopper's
portrait on a real background, drifting 1 px a frame. ferkit runs
``ferkit.video.analyze_video`` (what ``ferkit video clip.avi --csv t.csv`` does, CSV
written) with each model and detector setting; fer runs ``detect_emotions`` on every
frame read with OpenCV.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchlib import add_fer_option, one_face_photo, run_fer
from ferkit.recognize import Recognizer
from ferkit.video import StreamRecognizer, analyze_video


def make_video(path: Path, frames: int) -> None:
    base = one_face_photo()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for i in range(frames):
        shift = (i % 120) - 60  # drift right then jump back
        writer.write(np.roll(base, shift, axis=1))
    writer.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    add_fer_option(ap)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ferkit-video-"))
    try:
        clip = tmp / "clip.avi"
        make_video(clip, args.frames)
        print(f"{args.frames} frames 640x480, one face, stride 1")
        print(f"{'pipeline':<34}{'frames/s':>9}{'ms/frame':>9}{'faces':>7}")
        rows = {}
        for model, det, scale in (("default", "haar", 1.0), ("default", "yunet", 1.0), ("default", "yunet", 0.5),
                                  ("int8", "yunet", 1.0), ("int8", "yunet", 0.5), ("int8", "yunet", 0.25)):
            stream = StreamRecognizer(Recognizer(model, detector=det, threads=args.threads), detect_scale=scale)
            report = analyze_video(clip, stream, csv_path=tmp / "t.csv")
            faces = sum(1 for _ in open(tmp / "t.csv")) - 1
            name = f"ferkit {model} {det} detect@{scale:g}"
            rows[name] = report.frames_per_second
            print(f"{name:<34}{report.frames_per_second:>9.1f}{1e3 / report.frames_per_second:>9.2f}{faces:>7}",
                  flush=True)
        fer = run_fer(args.fer_python, "video", video=str(clip))
        for name in ("tflite", "keras") if fer else ():
            r = fer[name]
            print(f"{f'fer {name}':<34}{r['frames_per_s']:>9.1f}{1e3 / r['frames_per_s']:>9.2f}{r['faces']:>7}")
        if fer:
            best = max(rows, key=rows.get)
            print(f"fastest ferkit ({best}): {rows[best] / fer['tflite']['frames_per_s']:.1f}x fer tflite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

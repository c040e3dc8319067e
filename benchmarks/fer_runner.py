"""The ``fer`` pip package's side of the benchmarks, run with fer's own Python (it needs
TensorFlow, so it lives in its own environment; see the README):

    /work/fer-venv/bin/python benchmarks/fer_runner.py TASK ARGS_JSON

prints one JSON object. Tasks: ``classifier`` (ms per face at batch 1 and 64 and accuracy
on the given faces), ``photos`` (ms per photo end to end and per stage), ``folder``
(images/s over files), ``video`` (frames/s over a video file). Both of fer's pipelines
are measured: Haar + TFLite (its default) and Haar + Keras. Imports nothing of ferkit.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

logging.disable(logging.WARNING)


def _fer(tflite: bool):
    from fer.fer import FER

    return FER(use_tflite=tflite)


def _median_ms(fn, items, seconds=1.0) -> float:
    fn(items[0])
    times, start, k = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        fn(items[k % len(items)])
        times.append(time.perf_counter() - t0)
        k += 1
    return float(np.median(times)) * 1e3


def classifier(args) -> dict:
    data = np.load(args["faces"])  # faces (N, 48, 48) uint8, targets (N,)
    faces, targets = data["faces"], data["targets"]
    out = {}
    for name, tflite in (("tflite", True), ("keras", False)):
        det = _fer(tflite)
        size = det._FER__emotion_target_size
        x = np.stack([cv2.resize(f, size) for f in faces]).astype(np.float32) / 255.0
        x = (x - 0.5) * 2.0  # fer's preprocessing
        classify = det._classify_emotions
        if not tflite:
            model = det._FER__emotion_classifier
            classify = lambda b: model.predict_on_batch(b)  # noqa: E731  (no per-call overhead of __call__)
        probs = np.concatenate([np.asarray(classify(x[i:i + 256])) for i in range(0, len(x), 256)])
        r = {"accuracy": float((probs.argmax(1) == targets).mean()), "n": int(len(targets))}
        for b in (1, 64):
            batches = [x[i:i + b] for i in range(0, 64 * 8, b)]
            r[f"ms_per_face_b{b}"] = _median_ms(classify, batches) / b
        out[name] = r
    return out


def photos(args) -> dict:
    out = {}
    for name, tflite in (("tflite", True), ("keras", False)):
        det = _fer(tflite)
        r = {}
        for path in args["photos"]:
            image = cv2.imread(path)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            boxes = det.find_faces(image, gray_img=gray)
            r[path] = {
                "faces": len(boxes),
                "ms_end_to_end": _median_ms(lambda p: det.detect_emotions(cv2.imread(p)), [path]),
                "ms_decode": _median_ms(cv2.imread, [path]),
                "ms_detect": _median_ms(lambda g: det.find_faces(image, gray_img=g), [gray]),
                "ms_classify_and_crop": _median_ms(lambda i: det.detect_emotions(i, face_rectangles=boxes), [image]),
            }
        out[name] = r
    return out


def folder(args) -> dict:
    det = _fer(args.get("tflite", True))
    paths = args["paths"]
    t0 = time.perf_counter()
    faces = 0
    for p in paths:
        faces += len(det.detect_emotions(cv2.imread(p)))
    dt = time.perf_counter() - t0
    return {"images": len(paths), "faces": faces, "seconds": dt, "images_per_s": len(paths) / dt,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def video(args) -> dict:
    out = {}
    for name, tflite in (("tflite", True), ("keras", False)):
        det = _fer(tflite)
        cap = cv2.VideoCapture(args["video"])
        n = faces = 0
        t0 = time.perf_counter()
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            faces += len(det.detect_emotions(frame))
            n += 1
        dt = time.perf_counter() - t0
        out[name] = {"frames": n, "faces": faces, "frames_per_s": n / dt}
    return out


if __name__ == "__main__":
    task, arg = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"fer_version": __import__("fer").__version__, **globals()[task](arg)}))

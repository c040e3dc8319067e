"""ferkit against the ``fer`` pip package, from the same run: the classifier alone (ms per
face at batch 1 and 64, faces/s, PrivateTest accuracy), end to end on a 640x480 photo
with one face and on one with five faces (ms per photo), and the cost of each stage
(decode, detect, crop + classify).

    python benchmarks/speed.py --data ../shared/datasets/fer2013 [--fer-python /work/fer-venv/bin/python]

ferkit runs with the bundled float model (``default``), its int8 twin (``default-int8``) and
the small int8 model (``int8``), detector
YuNet (default; also on a copy 320 px wide) and Haar; fer with its Haar + TFLite (default) and Haar + Keras
pipelines, in its own environment (``--fer-python``). Inputs are generated into a
temporary folder from real photos that installed packages ship (see ``benchlib``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import add_fer_option, group_photo, ms_per_face, one_face_photo, run_fer, write_photo
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.images import read_image
from ferkit.preprocess import softmax
from ferkit.recognize import Recognizer


def median_ms(fn, arg, seconds: float = 1.0) -> float:
    fn(arg)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def classifier_table(args, tmp: Path) -> None:
    test = load_fer2013(args.data)["test"]
    print(f"\n== classifier only: {len(test)} PrivateTest faces ==")
    print(f"{'pipeline':<26}{'ms/face b1':>11}{'faces/s b1':>11}{'ms/face b64':>12}{'faces/s b64':>12}{'test acc':>9}")
    rows = {}
    for name in ("default", "default-int8", "int8"):
        clf = OnnxClassifier(name, threads=args.threads)
        acc = float((softmax(clf.predict_logits(test.images)).argmax(1) == test.targets).mean())
        rows[f"ferkit {name}"] = (ms_per_face(clf, test.images, 1), ms_per_face(clf, test.images, 64), acc)
    faces_npz = tmp / "faces.npz"
    np.savez(faces_npz, faces=test.images, targets=test.targets)
    fer = run_fer(args.fer_python, "classifier", faces=str(faces_npz))
    for name in ("tflite", "keras") if fer else ():
        r = fer[name]
        rows[f"fer {fer['fer_version']} {name}"] = (r["ms_per_face_b1"], r["ms_per_face_b64"], r["accuracy"])
    for name, (b1, b64, acc) in rows.items():
        print(f"{name:<26}{b1:>11.3f}{1e3 / b1:>11.0f}{b64:>12.3f}{1e3 / b64:>12.0f}{acc:>9.4f}")
    if fer:
        ref = rows[f"fer {fer['fer_version']} tflite"]
        for name in ("ferkit default", "ferkit default-int8", "ferkit int8"):
            print(f"{name} vs fer tflite: {ref[0] / rows[name][0]:.2f}x faces/s at batch 1, "
                  f"{ref[1] / rows[name][1]:.2f}x at batch 64, {100 * (rows[name][2] - ref[2]):+.1f} points accuracy")


def photo_table(args, tmp: Path) -> None:
    photos = {"1 face": write_photo(tmp / "one.jpg", one_face_photo()),
              "5 faces": write_photo(tmp / "group.jpg", group_photo(0, 5)[0])}
    print("\n== end to end, 640x480 JPEG file -> faces and emotions (ms per photo) ==")
    print(f"{'pipeline':<30}{'photo':<9}{'faces':>6}{'total':>9}{'decode':>8}{'detect':>8}{'crop+cls':>9}")
    rows = {}
    for model, det, width in (("default", "yunet", None), ("default", "haar", None), ("default-int8", "yunet", 320),
                              ("int8", "yunet", None), ("int8", "yunet", 320), ("int8", "haar", None)):
        rec = Recognizer(model, detector=det, threads=args.threads, detect_width=width)
        name = f"ferkit {model} {det}" + (f"@{width}" if width else "")
        for label, path in photos.items():
            image = read_image(path)
            dets = rec.detect(image)
            total = median_ms(rec.predict, path)
            rows[(name, label)] = total
            print(f"{name:<30}{label:<9}{len(dets):>6}{total:>9.2f}"
                  f"{median_ms(read_image, path):>8.2f}{median_ms(rec.detect, image):>8.2f}"
                  f"{median_ms(lambda i: rec.classify(i, dets), image):>9.2f}", flush=True)
    fer = run_fer(args.fer_python, "photos", photos=list(photos.values()))
    for name in ("tflite", "keras") if fer else ():
        for label, path in photos.items():
            r = fer[name][path]
            rows[(f"fer {name}", label)] = r["ms_end_to_end"]
            print(f"{f'fer {name}':<30}{label:<9}{r['faces']:>6}{r['ms_end_to_end']:>9.2f}{r['ms_decode']:>8.2f}"
                  f"{r['ms_detect']:>8.2f}{r['ms_classify_and_crop']:>9.2f}")
    if fer:
        for label in photos:
            ref = rows[("fer tflite", label)]
            best = min((v, k) for (k, lab), v in rows.items() if lab == label and k.startswith("ferkit"))
            print(f"{label}: fastest ferkit ({best[1]}) {ref / best[0]:.1f}x faster than fer tflite "
                  f"({best[0]:.2f} vs {ref:.2f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013", help="FER2013 (PrivateTest faces)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    add_fer_option(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo_table(args, Path(tmp))
        classifier_table(args, Path(tmp))


if __name__ == "__main__":
    main()

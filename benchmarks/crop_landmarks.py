"""Does a crop built from YuNet's five landmarks frame a face more as FER2013 does than
its box? Session 37's second question, after ``crop_margin.py`` set the box margin to 0.

The canvas is ``crop_margin.py``'s: each FER2013 face upscaled ``--scale`` times in the
middle of a canvas twice its side, borders replicated. YuNet runs on it; the face's
detection is the one whose box has the highest IoU with the true frame (at least 0.3).

Geometry, per found face (printed for the Training faces, fitted there only):

- box: scale ``frame side / max(w, h)``, offset ``(frame centre - box centre) / max(w, h)``;
- landmarks: ``d`` = distance from the eyes' midpoint to the mouth corners' midpoint;
  scale ``frame side / d``, offset ``(frame centre - their midpoint) / d``.

The relative spread of a scale is ``(Q3 - Q1) / median``. Only if the landmarks' spread is
at most 0.9x the box's (the gate in ``runs/s37/plan2.txt``) are these scored on val, with
the bundled ``default`` (its own TTA), on the faces YuNet finds:

- ``margin 0``: the box's square (``Recognizer``'s default crop);
- ``lm``: a square of side ``median scale * d`` centred at the landmarks' midpoint plus the
  median offset times ``d``;
- ``lm-rot``: ``lm`` rotated about its centre so that the eyes lie level.

Session 37 (2-core Intel Xeon): the gate failed. On the 5,335 of 6,000 Training faces
YuNet found, the spread was 0.260 for the landmarks against 0.255 for the box (ratio
1.02). Nothing was scored on val, and ``Recognizer`` crops the box (docs/accuracy.md).
Session 40 read the landmarks from :class:`~ferkit.detect.Detection` (session 37 read
YuNet's raw rows, whose boxes are not clipped to the image) and found 5,336 faces, with
the same spreads and ratio.

    python benchmarks/crop_landmarks.py [--data ../shared/datasets/fer2013] [--fit 6000]
        [--split val] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import cv2
import numpy as np

from crop_margin import canvas_of, iou
from crop_margin import geometry as box_geometry
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.detect import YuNetDetector
from ferkit.recognize import square_crop


def detect_rows(detector: YuNetDetector, faces: np.ndarray, scale: int, min_iou: float = 0.3):
    """Per face: ``(canvas, frame, box, landmarks)``, landmarks a (5, 2) float array (the
    :class:`~ferkit.detect.Detection`'s: the eyes, the nose tip, the mouth corners, in the
    image's pixels), or ``None`` for a face YuNet does not find."""
    out = []
    for face in faces:
        canvas, frame = canvas_of(face, scale)
        best = max(detector.detect(canvas), key=lambda d: iou(d.box, frame), default=None)
        if best is None or iou(best.box, frame) < min_iou:
            out.append(None)
            continue
        out.append((canvas, frame, best.box, np.array(best.landmarks, dtype=float)))
    return out


def landmark_frame(lm: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The landmarks' reference point (midpoint of the eyes' and the mouth's midpoints),
    the eye-to-mouth distance ``d`` in pixels and the eyes' angle in degrees."""
    eyes, mouth = lm[:2].mean(0), lm[3:5].mean(0)
    (ax, ay), (bx, by) = sorted(map(tuple, lm[:2]))  # the eye on the image's left first
    return (eyes + mouth) / 2, float(np.linalg.norm(mouth - eyes)), math.degrees(math.atan2(by - ay, bx - ax))


def geometry(found) -> dict[str, np.ndarray]:
    """Per found face: box scale and offset (x, y) (``crop_margin.geometry``), landmark
    scale and offset (x, y)."""
    box = box_geometry([(canvas, frame, b) for canvas, frame, b, _ in found])
    lm_s, lm_o = [], []
    for _, frame, _, lm in found:
        fc = np.array([frame[0] + frame[2] / 2, frame[1] + frame[3] / 2])
        ref, d, _ = landmark_frame(lm)
        lm_s.append(frame[2] / d)
        lm_o.append((fc - ref) / d)
    return {"box_scale": box[:, 0], "box_offset": box[:, 1:],
            "lm_scale": np.array(lm_s), "lm_offset": np.array(lm_o)}


def spread(x: np.ndarray) -> float:
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return float((q3 - q1) / q2)


def landmark_crop(gray: np.ndarray, lm: np.ndarray, scale: float, offset: np.ndarray, level: bool) -> np.ndarray:
    """The ``lm`` / ``lm-rot`` crop (see the module docstring), (S, S) uint8."""
    ref, d, angle = landmark_frame(lm)
    side = max(1, int(round(scale * d)))
    if not level:
        cx, cy = ref + offset * d
        return square_crop(gray, (int(round(cx - side / 2)), int(round(cy - side / 2)), side, side), 0.0)
    # rotate about the landmarks' reference point so that the eyes lie level; the offset is
    # applied in the levelled face's frame
    m = cv2.getRotationMatrix2D((float(ref[0]), float(ref[1])), angle, 1.0)
    centre = ref + offset * d
    m[:, 2] += side / 2 - centre
    return cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--fit", type=int, default=6000, help="Training faces the geometry is fitted on")
    ap.add_argument("--candidates", nargs="+", default=["margin 0", "lm", "lm-rot"])
    ap.add_argument("--no-gate", action="store_true", help="score even if the gate fails")
    ap.add_argument("--json")
    args = ap.parse_args()

    data = load_fer2013(args.data)
    det = YuNetDetector()
    t0 = time.time()
    train = [f for f in detect_rows(det, data["train"].images[:args.fit], args.scale) if f is not None]
    g = geometry(train)
    report = {"fit": {"train_faces": args.fit, "found": len(train)}}
    for k in ("box", "lm"):
        s, o = g[f"{k}_scale"], g[f"{k}_offset"]
        report["fit"][k] = {"scale_median": float(np.median(s)), "scale_spread": spread(s),
                            "offset_median": np.median(o, 0).tolist(),
                            "offset_iqr": (np.percentile(o, 75, 0) - np.percentile(o, 25, 0)).tolist()}
        print(f"{k:>4}: scale median {np.median(s):.3f}, relative spread (IQR / median) {spread(s):.3f}; "
              f"offset median {np.median(o, 0).round(3).tolist()}, IQR "
              f"{(np.percentile(o, 75, 0) - np.percentile(o, 25, 0)).round(3).tolist()}")
    ratio = report["fit"]["lm"]["scale_spread"] / report["fit"]["box"]["scale_spread"]
    gate = ratio <= 0.9
    report["fit"]["spread_ratio"], report["fit"]["gate"] = ratio, gate
    print(f"fitted on {len(train)} of {args.fit} train faces ({time.time() - t0:.0f} s); landmark / box "
          f"spread {ratio:.2f}: gate {'passed' if gate else 'failed'} (<= 0.9)", flush=True)
    if gate or args.no_gate:
        split = data[args.split]
        clf = OnnxClassifier(args.model)
        found = detect_rows(det, split.images, args.scale)
        hits = [f for f in found if f is not None]
        y = split.targets[[f is not None for f in found]]
        lm_scale = report["fit"]["lm"]["scale_median"]
        lm_offset = np.array(report["fit"]["lm"]["offset_median"])
        report[args.split] = {"found": len(hits)}
        print(f"{args.split}: YuNet found {len(hits)} of {len(split)} faces")
        for name in args.candidates:
            if name == "margin 0":
                crops = [square_crop(c, box, 0.0) for c, _, box, _ in hits]
            else:
                crops = [landmark_crop(c, lm, lm_scale, lm_offset, name == "lm-rot") for c, _, _, lm in hits]
            acc = float((clf.predict_probs(crops).argmax(1) == y).mean())
            report[args.split][name] = acc
            print(f"  {name:>8}: {acc:.2%}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

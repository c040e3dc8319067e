"""How should a detector's face box be cropped so that the bundled model sees a face framed
as FER2013 frames it? Val (PublicTest) accuracy of the whole recognition pipeline at
several crop margins, per detector; ``--split test`` reads PrivateTest (run it once, after
the choice is made on val).

Each FER2013 face (48 x 48) stands in for a face in a photo: it is upscaled ``--scale``
times (``INTER_CUBIC``; 4 -> 192 px) and put in the middle of a canvas twice its side,
borders replicated (``cv2.BORDER_REPLICATE``). The detector runs on the canvas through
:meth:`ferkit.Recognizer.detect`, as for any photo. The face's detection is the box with
the highest IoU with the true frame (at least ``--min-iou``); other faces are "not
found". Each found face is cropped with :func:`ferkit.recognize.square_crop` at every
margin and classified by the model (:meth:`OnnxClassifier.predict_probs`, with the model's
own test-time augmentation); the reference is the model on the same faces' own 48 x 48
crops. The set of found faces does not depend on the margin, so every margin is scored on
the same faces.

It also prints the geometry of the detector's box against the true frame: the frame's
side in units of the box's square side (``max(w, h)``; the margin that reproduces the
frame is ``(factor - 1) / 2``) and the frame's centre offset from the box's, in box sides
(positive: the frame's centre lies right of / below the box's), as medians and quartiles.
``--fit N`` measures that geometry on the first N Training faces only (no val or test
face) and scores the crop it implies beside the margins: ``fit``, that side centred on
the box shifted by the median offset, or, when the offset is under ``MIN_OFFSET``, the
margin ``(factor - 1) / 2`` rounded to 0.01.

    python benchmarks/crop_margin.py [--data ../shared/datasets/fer2013] [--split val]
        [--detectors yunet haar] [--model default] [--fit 6000] [--routed] [--json out.json]

``--routed`` adds each candidate's accuracy as :meth:`Recognizer.classify_faces` gives it,
crops under 48 px going to the bundled ``small-faces`` network (session 38).

Session 37 (2-core Intel Xeon; docs/accuracy.md, "Faces from a detector: how the box is
cropped"): both detectors' boxes frame a face as FER2013 does (fitted margins 0.005 and
0.008). Val chose margin 0 from the grid for both: 71.13% (YuNet) and 71.45% (Haar),
against 69.73% and 69.87% at 0.1. Test, read once: 72.63% against 69.67%, and 73.54%
against 71.35%. A check at 48 and 96 px faces (``--scale 1 2``) found YuNet's box tighter
on smaller faces, and its margin became 0.05, the best mean over the three sizes
(``YuNetDetector.margin``; Haar's stays 0).
Caveat: beyond the 192 px frame the canvas holds replicated edge pixels, not the hair,
neck and background of a real photo, so margins that reach past FER2013's own frame see a
smear where a photo has context.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ferkit import Recognizer
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.recognize import square_crop

MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
#: Below this median offset (in box sides, x and y) the fitted crop is centred on the box,
#: so it is just one more margin, ``(factor - 1) / 2`` rounded to 0.01.
MIN_OFFSET = 0.03


def canvas_of(face: np.ndarray, scale: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The uint8 canvas of one (48, 48) face resized to S = round(48 * scale) pixels
    (``INTER_CUBIC`` to enlarge, ``INTER_AREA`` to shrink) with max(S / 2, 48) replicated
    pixels on each side, and the face's true frame (x, y, w, h) in it."""
    side = int(round(face.shape[0] * scale))
    interp = cv2.INTER_CUBIC if side > face.shape[0] else cv2.INTER_AREA
    up = cv2.resize(face, (side, side), interpolation=interp)
    pad = max(side // 2, 48)
    return cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_REPLICATE), (pad, pad, side, side)


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def find_boxes(rec: Recognizer, faces: np.ndarray, scale: float, min_iou: float, workers: int = 2):
    """The detector's box of each face (``None`` when not found), its canvas and frame."""
    def one(face):
        canvas, frame = canvas_of(face, scale)
        boxes = [d.box for d in rec.detect(canvas)]
        best = max(boxes, key=lambda b: iou(b, frame), default=None)
        return canvas, frame, (best if best is not None and iou(best, frame) >= min_iou else None)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, faces, chunksize=64))


def geometry(found) -> np.ndarray:
    """(N, 3) float: the frame's side / the box's square side, and the frame's centre
    offset (x, y) from the box's in box sides, per found face."""
    rows = []
    for _, frame, box in found:
        side = max(box[2], box[3])
        rows.append((frame[2] / side,
                     (frame[0] + frame[2] / 2 - (box[0] + box[2] / 2)) / side,
                     (frame[1] + frame[3] / 2 - (box[1] + box[3] / 2)) / side))
    return np.array(rows)


def shifted_crop(gray: np.ndarray, box, factor: float, dx: float, dy: float) -> np.ndarray:
    """A square crop of side ``factor * max(w, h)`` centred ``(dx, dy)`` box sides from the
    box's centre (``square_crop`` with ``margin = (factor - 1) / 2`` when dx = dy = 0)."""
    x, y, w, h = box
    side = max(w, h)
    moved = (x + dx * side, y + dy * side, w, h)
    return square_crop(gray, tuple(int(round(v)) for v in moved), (factor - 1) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--detectors", nargs="+", default=["yunet", "haar"])
    ap.add_argument("--model", default="default")
    ap.add_argument("--margins", type=float, nargs="+", default=list(MARGINS))
    ap.add_argument("--scale", type=float, nargs="+", default=[4.0],
                    help="resizing of the 48 px faces (4: 192 px); several: each in turn")
    ap.add_argument("--min-iou", type=float, default=0.3)
    ap.add_argument("--fit", type=int, default=0, metavar="N",
                    help="fit the box-to-frame geometry on the first N Training faces and score it")
    ap.add_argument("--limit", type=int, default=0, help="only the split's first N faces (a smoke test)")
    ap.add_argument("--routed", action="store_true",
                    help="also classify each candidate's crops as Recognizer does, small ones by its "
                         "small-face network (the bundled default's: faces under 48 px, session 38)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    data = load_fer2013(args.data)
    split = data[args.split]
    if args.limit:
        split = type(split)(split.images[:args.limit], split.targets[:args.limit], split.sources[:args.limit])
    clf = OnnxClassifier(args.model)
    t0 = time.time()
    ref = clf.predict_probs(split.images).argmax(1)
    print(f"{args.model} on the {len(split)} {args.split} faces' own crops: "
          f"{(ref == split.targets).mean():.2%} ({time.time() - t0:.0f} s)", flush=True)
    report = {"split": args.split, "model": args.model, "scale": args.scale, "faces": len(split),
              "own_crops": float((ref == split.targets).mean()), "detectors": {}}
    for scale, name in [(sc, n) for sc in args.scale for n in args.detectors]:
        rec = Recognizer(clf, detector=name)
        key = name if len(args.scale) == 1 else f"{name} x{scale:g}"
        out = report["detectors"][key] = {"scale": scale}
        candidates = {f"margin {m:g}": (1 + 2 * m, 0.0, 0.0) for m in args.margins}
        if args.fit:
            t0 = time.time()
            fitted = [f for f in find_boxes(rec, data["train"].images[:args.fit], scale, args.min_iou)
                      if f[2] is not None]
            g = geometry(fitted)
            med = np.median(g, axis=0)
            out["fit"] = {"train_faces": args.fit, "found": len(fitted), "factor": float(med[0]),
                          "dx": float(med[1]), "dy": float(med[2]), "margin": float((med[0] - 1) / 2)}
            if max(abs(med[1]), abs(med[2])) >= MIN_OFFSET:  # an offset worth a crop of its own
                candidates["fit"] = tuple(float(v) for v in med)
            else:  # a centred crop: one more margin
                m = round(float(med[0] - 1) / 2, 2)
                candidates.setdefault(f"margin {m:g}", (1 + 2 * m, 0.0, 0.0))
                out["fit"]["as_margin"] = m
            print(f"{key}: fitted on {len(fitted)} of {args.fit} train faces ({time.time() - t0:.0f} s): "
                  f"factor {med[0]:.3f} (margin {(med[0] - 1) / 2:.3f}), offset x {med[1]:+.3f}, "
                  f"y {med[2]:+.3f} box sides", flush=True)
        t0 = time.time()
        found = find_boxes(rec, split.images, scale, args.min_iou)
        keep = np.array([f[2] is not None for f in found])
        hits = [f for f in found if f[2] is not None]
        y = split.targets[keep]
        if not hits:
            out.update(found=0)
            print(f"{key}: found none of the {len(split)} {args.split} faces", flush=True)
            continue
        g = geometry(hits)
        q = np.percentile(g, [25, 50, 75], axis=0)
        out.update(found=int(keep.sum()), own_crops_found=float((ref[keep] == y).mean()),
                   geometry={"factor": q[:, 0].tolist(), "dx": q[:, 1].tolist(), "dy": q[:, 2].tolist()})
        print(f"{key}: found {keep.sum()} of {len(split)} {args.split} faces ({keep.mean():.1%}, "
              f"{time.time() - t0:.0f} s); frame side / box side quartiles {q[0, 0]:.3f} {q[1, 0]:.3f} "
              f"{q[2, 0]:.3f}; centre offset x {q[1, 1]:+.3f}, y {q[1, 2]:+.3f} box sides (medians)")
        print(f"  own crops of those faces: {out['own_crops_found']:.2%}", flush=True)
        out["accuracy"] = {}
        for label, (factor, dx, dy) in candidates.items():
            t0 = time.time()
            crops = [shifted_crop(canvas, box, factor, dx, dy) for canvas, _, box in hits]
            pred = clf.predict_probs(crops).argmax(1)
            acc = float((pred == y).mean())
            out["accuracy"][label] = acc
            print(f"  {label:>12}: {acc:.2%} ({int((pred == y).sum())} of {len(y)}; "
                  f"{time.time() - t0:.0f} s)", flush=True)
            if args.routed and rec.small_classifier is not None:
                pred = rec.classify_faces(crops).argmax(1)
                small = int(sum(max(c.shape) < rec.small_below for c in crops))
                out["accuracy"][label + " routed"] = float((pred == y).mean())
                print(f"  {label:>12}, routed: {(pred == y).mean():.2%} ({small} of {len(y)} crops under "
                      f"{rec.small_below} px to {rec.small_classifier.path.stem})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

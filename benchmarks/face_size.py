"""How small can a face be? Accuracy of bundled models on FER2013 faces shrunk to S
pixels, as a face S pixels wide in a photo reaches the classifier.

Each 48 x 48 face is shrunk to S x S (``INTER_AREA``, as a camera's lower resolution
would give it) and handed to :meth:`OnnxClassifier.predict_probs` as it is, so the model's
own preprocessing enlarges it back to its input size (``fit_face``: ``INTER_LANCZOS4``
since session 37, ``INTER_LINEAR`` before), exactly as ``Recognizer`` does with a small
crop. No detector is involved: this is the classifier's
part of the answer. Whether a detector finds faces that small is measured on real
photos by ``benchmarks/detectors.py``.

    python benchmarks/face_size.py [--models default int8] [--sizes 12 16 20 24 32 40 48]
        [--enlarge model linear cubic lanczos] [--routed default] [--split val] [--data ../shared/datasets/fer2013]

``--routed MODEL...`` adds, for each, the row of ``Recognizer(MODEL)``'s own choice of network
(:meth:`Recognizer.classify_faces`): since session 38 the bundled ``default`` hands faces
under 48 px to the bundled ``small-faces`` network.

Val (PublicTest) by default; the figures choose nothing.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import cv2
import numpy as np

from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.recognize import Recognizer


#: Interpolations ``--enlarge`` can compare.
ENLARGE = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4,
           "area": cv2.INTER_AREA}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--models", nargs="+", default=["default", "int8"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 24, 32, 40, 48])
    ap.add_argument("--enlarge", nargs="+", default=["model"], choices=["model", *ENLARGE],
                    help="how a shrunk face is enlarged back to 48 px: model = the model's own "
                         "preprocessing (INTER_LANCZOS4 since session 37); or an OpenCV interpolation, applied here first")
    ap.add_argument("--routed", nargs="+", default=[], metavar="MODEL",
                    help="also these models as Recognizer routes faces: small ones to the small-face network")
    args = ap.parse_args()

    split = load_fer2013(args.data)[args.split]
    print(f"{args.split}: {len(split)} faces; accuracy by face side in pixels")
    print("| model | " + " | ".join(f"{s} px" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    full = split.images.shape[1]
    runs = [(m, e) for m in args.models for e in args.enlarge] + [(m, "routed") for m in args.routed]
    for name, enlarge in runs:
        if enlarge == "routed":  # Recognizer's classification of a crop, whatever its size
            rec = Recognizer(name, detector="haar")
            clf = SimpleNamespace(predict_probs=lambda faces, rec=rec: rec.classify_faces(list(faces)))
            enlarge = "model"
            label = f"`{name}` routed" + ("" if rec.small_classifier is None else
                                          f" (under {rec.small_below} px: `{rec.small_classifier.path.stem}`)")
        else:
            clf = OnnxClassifier(name)
            label = f"`{name}`" + ("" if enlarge == "model" else f", {enlarge}")
        row, t0 = [], time.time()
        for side in args.sizes:
            faces = split.images if side == full else np.stack(
                [cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in split.images])
            if enlarge != "model" and side < full:
                faces = np.stack([cv2.resize(f, (full, full), interpolation=ENLARGE[enlarge]) for f in faces])
            acc = float((clf.predict_probs(faces).argmax(1) == split.targets).mean())
            row.append(f"{acc:.2%}")
        print(f"| {label} | " + " | ".join(row) + f" |  ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

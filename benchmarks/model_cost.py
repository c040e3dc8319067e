"""Cost per face of ONNX models: median milliseconds per face of ``predict_logits``
(preprocessing included) at batch 1 and batch 64, on PublicTest (val) faces, each figure
over about ``--seconds`` of repeated calls (:func:`benchlib.ms_per_face`), every model
in each of ``--rounds`` rounds so that a disturbed round shows. Reads no labels.

    python benchmarks/model_cost.py default ensemble int8 runs/old/default.onnx \
        --data ../shared/datasets/fer2013 [--rounds 2] [--seconds 2] [--faces 1024]
"""

from __future__ import annotations

import argparse

from benchlib import ms_per_face
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=".onnx models (with .json) or bundled names")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per figure (default 2 s)")
    ap.add_argument("--faces", type=int, default=1024, help="val faces to cycle through (default 1024)")
    args = ap.parse_args()
    faces = load_fer2013(args.data)["val"].images[:args.faces]
    print(f"{'round':<6}{'model':<40}{'ms/face b1':>11}{'ms/face b64':>12}")
    for rnd in range(1, args.rounds + 1):
        for name in args.models:
            clf = OnnxClassifier(name)
            b1, b64 = (ms_per_face(clf, faces, b, seconds=args.seconds) for b in (1, 64))
            print(f"{rnd:<6}{name:<40}{b1:>11.2f}{b64:>12.2f}", flush=True)


if __name__ == "__main__":
    main()

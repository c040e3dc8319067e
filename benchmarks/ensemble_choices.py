"""Choose the members of an ensemble on val (PublicTest) only: prints val accuracy, macro
F1 and the summed cost per face of every subset of the given ONNX models, each subset
averaged with equal weights as :func:`ferkit.ensemble.build_ensemble` does (mean of the
members' calibrated probabilities). Nothing here reads the test split.

    python benchmarks/ensemble_choices.py default runs/restart-flip.onnx runs/stage1-flip.onnx \
        --data ../shared/datasets/fer2013 [--top 15]

Build the chosen one with ``ferkit ensemble A.onnx B.onnx --out E.onnx``, calibrate it
(``ferkit calibrate``) and only then evaluate it on test.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=".onnx models (with .json) or bundled names")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--top", type=int, default=20, help="print the best N subsets (default 20)")
    args = ap.parse_args()
    val = load_fer2013(args.data)["val"]
    probs, cost, names = [], [], []
    for name in args.models:
        clf = OnnxClassifier(name)
        class_names = clf.class_names
        start = time.perf_counter()
        probs.append(clf.predict_probs(val.images, batch_size=256))
        cost.append(1000 * (time.perf_counter() - start) / len(val.images))
        names.append(clf.path.name if name not in ("default", "int8") else name)
    rows = []
    for k in range(1, len(probs) + 1):
        for subset in itertools.combinations(range(len(probs)), k):
            p = np.mean([probs[i] for i in subset], axis=0)
            m = compute_metrics(val.targets, p, class_names)
            rows.append((m["accuracy"], m["macro_f1"], sum(cost[i] for i in subset), " + ".join(names[i] for i in subset)))
    print(f"{'val acc':>8}{'macro F1':>10}{'ms/face':>9}  members")
    for acc, f1, ms, members in sorted(rows, reverse=True)[:args.top]:
        print(f"{acc:>8.4f}{f1:>10.4f}{ms:>9.2f}  {members}")


if __name__ == "__main__":
    main()

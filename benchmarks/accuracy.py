"""Evaluate every bundled ONNX model on FER2013 val (PublicTest) and test (PrivateTest) and
print the README's tables: accuracy with its 95% bootstrap interval, macro F1, top-2
accuracy, per-class test recall, and the classifier's cost per face.

    python benchmarks/accuracy.py --data ../shared/datasets/fer2013     # or: make benchmark

Each model's measured test accuracy is checked against the figure recorded in its ``.json``
when it was bundled; a difference is printed as ``MISMATCH`` and makes the script exit with
status 1. Costs are wall-clock milliseconds per face of ONNX Runtime on this machine's
CPU: batch 1 (the mean over the first 200 test faces, one call each) and batch 256 (the
whole test split). Run it with nothing else running, or the costs mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ferkit.classifier import OnnxClassifier, bundled_models
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics
from ferkit.preprocess import softmax
from ferkit.report import bootstrap_ci


def measure(clf: OnnxClassifier, images: np.ndarray, targets: np.ndarray, class_names) -> dict:
    """Metrics of one split plus the cost per face (ms at batch 1 and at batch 256)."""
    t0 = time.perf_counter()
    probs = softmax(clf.predict_logits(images, batch_size=256))
    ms_batch = (time.perf_counter() - t0) / len(images) * 1e3
    t0 = time.perf_counter()
    for face in images[:200]:
        clf.predict_logits(face[None])
    ms_one = (time.perf_counter() - t0) / min(200, len(images)) * 1e3
    m = compute_metrics(targets, probs, class_names)
    m["ms_one"], m["ms_batch"], m["probs"] = ms_one, ms_batch, probs
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--models", nargs="+", default=None,
                    help="bundled names or .onnx files (default: every bundled model)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the test interval")
    args = ap.parse_args()
    datasets: dict[tuple, object] = {}
    rows, recalls, mismatches = [], [], []
    for name in args.models or bundled_models():
        clf = OnnxClassifier(name)
        key = tuple(clf.class_names)
        if key not in datasets:
            datasets[key] = load_fer2013(args.data, ",".join(clf.class_names))
        data = datasets[key]
        val = measure(clf, data["val"].images, data["val"].targets, data.class_names)
        test = measure(clf, data["test"].images, data["test"].targets, data.class_names)
        lo, hi = bootstrap_ci(data["test"].targets, test["probs"], n_boot=args.bootstrap)["accuracy"]
        recorded = (clf.meta.get("metrics") or {}).get("test", {}).get("accuracy")
        check = "not recorded"
        if recorded is not None:
            same = abs(recorded - test["accuracy"]) < 0.5 / len(data["test"])  # the same faces right
            check = "matches" if same else f"MISMATCH (recorded {100 * recorded:.2f}%)"
            if not same:
                mismatches.append(clf.path.stem)
        tta = clf.meta.get("tta", "none")
        params = clf.meta.get("parameters")
        params = f"{params / 1e6:.2f} M" if params else "-"
        rows.append(f"| `{clf.path.stem}` | {tta} | {params} | {100 * val['accuracy']:.2f}% | "
                    f"**{100 * test['accuracy']:.2f}%** [{100 * lo:.1f}, {100 * hi:.1f}] | "
                    f"{test['macro_f1']:.3f} | {100 * test.get('top2_accuracy', float('nan')):.2f}% | "
                    f"{test['ms_one']:.2f} / {test['ms_batch']:.2f} | {check} |")
        recalls.append(f"| `{clf.path.stem}` | " + " | ".join(
            f"{100 * test['per_class'][c]['recall']:.1f}%" for c in data.class_names) + " |")
        print(f"measured {clf.path.stem}", file=sys.stderr, flush=True)
    print("| model | TTA | parameters | val accuracy | test accuracy [95% CI] | test macro F1 | "
          "test top-2 | ms per face, batch 1 / 256 | against its .json |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("| test recall | " + " | ".join(next(iter(datasets.values())).class_names) + " |")
    print("|---" * (1 + len(next(iter(datasets.values())).class_names)) + "|")
    print("\n".join(recalls))
    if mismatches:
        print(f"\nMISMATCH: {', '.join(mismatches)} no longer score(s) the test accuracy recorded "
              "when bundled", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate every bundled ONNX model on FER2013 val (PublicTest) and test (PrivateTest)
and print a table with accuracy, macro F1, top-2 accuracy and the classifier's cost.

    python benchmarks/accuracy.py --data ../shared/datasets/fer2013
"""

from __future__ import annotations

import argparse
import time


from ferkit.classifier import OnnxClassifier, default_model_path
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics
from ferkit.preprocess import softmax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    args = ap.parse_args()
    models = sorted(default_model_path().parent.glob("*.onnx"))
    print(f"{'model':<16}{'split':<6}{'acc':>8}{'macroF1':>9}{'top-2':>8}{'ms/face b1':>12}{'ms/face b256':>14}")
    for path in models:
        clf = OnnxClassifier(path)
        data = load_fer2013(args.data, ",".join(clf.class_names))
        for split in ("val", "test"):
            s = data[split]
            t0 = time.perf_counter()
            probs = softmax(clf.predict_logits(s.images, batch_size=256))
            ms_batch = (time.perf_counter() - t0) / len(s) * 1e3
            t0 = time.perf_counter()
            for face in s.images[:200]:
                clf.predict_logits(face[None])
            ms_one = (time.perf_counter() - t0) / 200 * 1e3
            m = compute_metrics(s.targets, probs, data.class_names)
            print(f"{path.stem:<16}{split:<6}{m['accuracy']:>8.4f}{m['macro_f1']:>9.4f}"
                  f"{m.get('top2_accuracy', float('nan')):>8.4f}{ms_one:>12.3f}{ms_batch:>14.3f}")


if __name__ == "__main__":
    main()

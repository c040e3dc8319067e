"""Choose the int8 model's settings on val (PublicTest) only: quantizes a checkpoint's
ONNX export (with and without flip TTA) with each calibration setting, calibrated on
training faces, and prints val accuracy, macro F1, agreement with the float model,
file size and ms per face at batch 1 and 64. Nothing here reads the test split.

Found here: int8 weights without ``reduce_range`` lose 8-22 points of val accuracy on
this AVX2 CPU (no VNNI: ONNX Runtime's u8s8 kernels saturate); the calibration method
(minmax, percentile, entropy) made no difference, so minmax is the one tried below.

    python benchmarks/quant_choices.py /work/main/runs/default-ft/best.pt \
        --data ../shared/datasets/fer2013
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics
from ferkit.export import export_onnx
from ferkit.preprocess import softmax
from ferkit.quantize import quantize_model
from benchlib import ms_per_face


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--calibration", type=int, default=1000, help="training faces used to calibrate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = load_fer2013(args.data)
    train, val = data["train"], data["val"]
    pick = np.random.default_rng(args.seed).choice(len(train), args.calibration, replace=False)
    calib = train.images[np.sort(pick)]
    print(f"{'tta':<6}{'weights':<10}{'scales':<13}{'val acc':>9}{'macro F1':>10}{'agree':>8}"
          f"{'MB':>6}{'ms b1':>8}{'ms b64':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for tta in ("none", "flip"):
            float_path = Path(tmp) / f"float_{tta}.onnx"
            export_onnx(args.checkpoint, float_path, tta=tta)
            ref = OnnxClassifier(float_path)
            ref_probs = softmax(ref.predict_logits(val.images))
            rows = [("float", "-", float_path, ref)]
            for weights, reduce_range in (("uint8", False), ("int8", True)):
                for per_channel in (False, True):
                    q = Path(tmp) / f"q_{tta}_{weights}_{per_channel}.onnx"
                    quantize_model(float_path, q, calib, per_channel=per_channel, weights=weights,
                                   reduce_range=reduce_range)
                    rows.append((weights + ("/7b" if reduce_range else ""),
                                 "per-channel" if per_channel else "per-tensor", q, OnnxClassifier(q)))
            for weights, scales, path, clf in rows:
                probs = softmax(clf.predict_logits(val.images))
                m = compute_metrics(val.targets, probs, clf.class_names)
                agree = float((probs.argmax(1) == ref_probs.argmax(1)).mean())
                print(f"{tta:<6}{weights:<10}{scales:<13}{m['accuracy']:>9.4f}"
                      f"{m['macro_f1']:>10.4f}{agree:>8.4f}{path.stat().st_size / 2**20:>6.2f}"
                      f"{ms_per_face(clf, val.images, 1):>8.3f}{ms_per_face(clf, val.images, 64):>8.3f}",
                      flush=True)


if __name__ == "__main__":
    main()

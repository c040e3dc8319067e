"""Choose a checkpoint's inference options on val (PublicTest) only: prints val accuracy
and macro F1 with and without histogram equalisation and horizontal-flip TTA, for each
checkpoint given. Nothing here reads the test split.

    python benchmarks/val_choices.py runs/default/best.pt runs/default-ft/best.pt \
        --data ../shared/datasets/fer2013
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics
from ferkit.export import export_onnx
from ferkit.preprocess import softmax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    args = ap.parse_args()
    val = load_fer2013(args.data)["val"]
    print(f"{'checkpoint':<28}{'equalize':>9}{'tta':>6}{'val acc':>9}{'macro F1':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints:
            for tta in (False, True):
                for eq in (False, True):
                    onnx_path = Path(tmp) / "m.onnx"
                    export_onnx(ckpt, onnx_path, equalize=eq, flip_tta=tta)
                    clf = OnnxClassifier(onnx_path)
                    m = compute_metrics(val.targets, softmax(clf.predict_logits(val.images)), clf.class_names)
                    print(f"{ckpt:<28}{str(eq):>9}{'flip' if tta else 'none':>6}"
                          f"{m['accuracy']:>9.4f}{m['macro_f1']:>10.4f}", flush=True)


if __name__ == "__main__":
    main()

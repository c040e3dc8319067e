"""Choose a checkpoint's inference options on val (PublicTest) only: prints val accuracy,
macro F1 and the classifier's cost per face for each test-time augmentation (none, flip,
crops, scales, scales5; see :func:`ferkit.export.export_onnx`), with and without histogram
equalisation, for each checkpoint given. Nothing here reads the test split. With ``--out``,
val's choice (the highest val accuracy, then macro F1, then the lowest measured cost per
face) is exported there, ready for one ``ferkit evaluate --split test``.

A model given as an ``.onnx`` file or a bundled name (``default``) is re-exported from its
graph's weights (:func:`ferkit.export.export_onnx`): its network with each TTA, without
the graph's calibration and logit adjustment (which change probabilities, and accuracy
only through the adjustment).

    python benchmarks/val_choices.py runs/default/best.pt runs/default-ft/best.pt default \
        --data ../shared/datasets/fer2013 [--equalize]
    python benchmarks/val_choices.py runs/fast-bf16/best.pt runs/fast-bf16/last.pt \
        --out runs/fast-bf16/chosen.onnx     # choose the checkpoint and the TTA on val
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.evaluate import compute_metrics
from ferkit.export import TTA_MODES, export_onnx
from ferkit.preprocess import softmax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--equalize", action="store_true", help="also try histogram equalisation")
    ap.add_argument("--tta", nargs="+", choices=list(TTA_MODES), default=list(TTA_MODES),
                    help="the test-time augmentations to measure (default: all)")
    ap.add_argument("--out", type=Path, default=None,
                    help="export val's choice (highest val accuracy, then macro F1, then lowest ms per face) here")
    args = ap.parse_args()
    val = load_fer2013(args.data)["val"]
    rows = []
    print(f"{'checkpoint':<28}{'equalize':>9}{'tta':>8}{'val acc':>9}{'macro F1':>10}{'ms/face':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints:
            for tta in args.tta:
                for eq in (False, True) if args.equalize else (False,):
                    onnx_path = Path(tmp) / "m.onnx"
                    export_onnx(ckpt, onnx_path, equalize=eq, tta=tta)
                    clf = OnnxClassifier(onnx_path)
                    start = time.perf_counter()
                    logits = clf.predict_logits(val.images, batch_size=256)
                    ms = 1000 * (time.perf_counter() - start) / len(val.images)
                    m = compute_metrics(val.targets, softmax(logits), clf.class_names)
                    print(f"{ckpt:<28}{str(eq):>9}{tta:>8}{m['accuracy']:>9.4f}{m['macro_f1']:>10.4f}{ms:>9.2f}",
                          flush=True)
                    rows.append((m["accuracy"], m["macro_f1"], -ms, ckpt, eq, tta))
    if args.out is not None:
        acc, f1, _, ckpt, eq, tta = max(rows, key=lambda r: r[:3])
        choice = {"checkpoint": ckpt, "tta": tta, "equalize": eq, "split": "val", "n": int(len(val.targets)),
                  "accuracy": acc, "macro_f1": f1,
                  "candidates": [{"checkpoint": r[3], "equalize": r[4], "tta": r[5], "accuracy": r[0],
                                  "macro_f1": r[1], "ms_per_face": -r[2]} for r in rows]}
        export_onnx(ckpt, args.out, equalize=eq, tta=tta, extra_meta={"val_choice": choice})
        print(f"val's choice: {ckpt}, tta {tta}, equalize {eq} (val accuracy {acc:.4f}, macro F1 {f1:.4f}) "
              f"-> {args.out}")


if __name__ == "__main__":
    main()

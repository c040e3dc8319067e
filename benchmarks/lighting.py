"""Val (PublicTest) accuracy of ONNX models when the faces' lighting changes: gamma,
contrast about each face's mean, and brightness, applied to the 48 px uint8 faces before
the model's own preprocessing. A model that is to serve faces from photos and webcams
should lose little here; FER2013's crops are already of mixed lighting.

Session 17 (val, one pass; the 30-minute `configs/fast.yaml` run, seed 0, with and
without `--brightness 0.3 --contrast 0.3`; then the bundled `default`, flip TTA):

| model | none | gamma 0.6 | gamma 1.6 | contrast 0.6 | contrast 1.4 | brightness 0.7 | brightness 1.3 |
|---|---|---|---|---|---|---|---|
| fast.yaml | 63.67 | 62.64 | 61.49 | 60.32 | 60.71 | 61.86 | 61.49 |
| fast.yaml + jitter 0.3 | 63.22 | 63.00 | 62.13 | 62.89 | 62.39 | 63.44 | 62.86 |
| fast.yaml + jitter 0.15 (session 18) | 62.94 | 62.80 | 60.52 | 62.08 | 61.35 | 62.22 | 61.44 |
| fast.yaml + `--equalize` (session 19) | 62.78 | 62.69 | 62.69 | 62.50 | 60.71 | 62.66 | 60.32 |
| bundled `default` | 68.68 | 67.79 | 66.87 | 65.95 | 65.92 | 67.40 | 66.56 |
| bundled `int8` | 68.54 | 66.98 | 65.87 | 64.75 | 66.01 | 66.09 | 64.95 |

Means over the six shifts: 61.42, 62.78, 61.73, 61.93, 66.75 and 65.78%. The bundled `ensemble` (29
network passes a face) did not finish within 15 minutes on that machine and was left out.

    python benchmarks/lighting.py                      # the bundled models
    python benchmarks/lighting.py runs/x/m.onnx ...    # any exports
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ferkit.classifier import OnnxClassifier, default_model_path
from ferkit.data import load_fer2013


def lighting_shifts(faces: np.ndarray) -> dict[str, np.ndarray]:
    """(N, H, W) uint8 faces under each lighting shift: name -> (N, H, W) uint8, values
    clipped to 0-255 ("none" is the faces themselves)."""
    x = faces.astype(np.float32) / 255.0
    mean = x.mean(axis=(1, 2), keepdims=True)
    shifted = {"gamma 0.6": x ** 0.6, "gamma 1.6": x ** 1.6,
               "contrast 0.6": mean + 0.6 * (x - mean), "contrast 1.4": mean + 1.4 * (x - mean),
               "brightness 0.7": x * 0.7, "brightness 1.3": x * 1.3}
    return {"none": faces, **{k: (np.clip(v, 0.0, 1.0) * 255.0).round().astype(np.uint8)
                              for k, v in shifted.items()}}


def shift_table(models: list[str], data: str, shifts_of) -> dict[str, dict[str, float]]:
    """Print a markdown table of each model's val accuracy (%) on ``shifts_of(val faces)``
    (name -> (N, H, W) uint8 faces, ``"none"`` first); returns ``{model: {shift: %}}``."""
    shifts, table = None, {}
    for path in models:
        clf = OnnxClassifier(path)
        val = load_fer2013(data, ",".join(clf.class_names))["val"]
        if shifts is None:
            shifts = shifts_of(val.images)
            print("| model | " + " | ".join(shifts) + " | mean of the shifts |")
            print("|---" * (len(shifts) + 2) + "|")
        acc = {k: 100.0 * float((clf.predict_logits(v).argmax(1) == val.targets).mean())
               for k, v in shifts.items()}
        shifted = np.mean([a for k, a in acc.items() if k != "none"])
        print(f"| {path} | " + " | ".join(f"{a:.2f}" for a in acc.values()) + f" | {shifted:.2f} |",
              flush=True)
        table[path] = acc
    return table


def bundled_or(models: list[str], data: str) -> list[str]:
    """``models``, or every bundled model when empty; exits when ``data`` is missing."""
    if not Path(data).exists():
        sys.exit(f"no FER2013 at {data}: pass --data")
    return models or sorted(str(p) for p in default_model_path().parent.glob("*.onnx"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=".onnx models (default: every bundled model)")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    args = ap.parse_args()
    shift_table(bundled_or(args.models, args.data), args.data, lighting_shifts)


if __name__ == "__main__":
    main()

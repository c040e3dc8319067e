"""Blurred faces: would routing the blurriest crops to the ``small-faces`` network (trained
on faces shrunk and enlarged back, which are blurred) serve them better than ``default``?
Val (PublicTest) only, unless ``--split test``.

Sharpness of a crop: :func:`ferkit.recognize.sharpness`, ``var(Laplacian(x)) / var(x)``,
``x`` the crop shrunk to 48 x 48 (``INTER_AREA``) as float, the Laplacian OpenCV's 3 x 3
one: the variance-of-Laplacian focus measure (Pech-Pacheco et al., ICPR 2000), divided by
the crop's own variance so that a low-contrast face is not taken for a blurred one. A crop under the threshold T goes to
``small-faces``, the others to ``default``. The faces are those of ``benchmarks/camera.py``:
FER2013 faces enlarged to 96 px, clean and blurred by 1, 2 and 3 px; and the 48 px faces
themselves. T is tried at quantiles of the clean 96 px faces' sharpness.

The rule, written before the figures (session 40): the T with the best mean over the three
blurs among those that lose at most 0.10 points on the clean 96 px faces and at most 0.10
on the 48 px faces; none passing: no routing. ``--split test --quantiles Q`` reads test
once for the chosen quantile of val's sharpness.

Session 40 (2-core Xeon, 4 minutes a run): val chose the 5% quantile, T 0.279 (1% and 5%
passed); test, read once: blur mean 65.77% against the default's 54.81%, 48 px 73.36%
against 73.42%. ``ferkit.recognize.SMALL_FACES`` carries T (docs/accuracy.md, "Blur, JPEG
and noise").

    python benchmarks/sharpness.py [--split val] [--quantiles 1 2 5 10 20 30] [--model default]
        [--data ../shared/datasets/fer2013]
"""

from __future__ import annotations

import argparse

import numpy as np

from camera import camera_shifts
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.recognize import sharpness

CONDITIONS = ("48 px", "none", "blur 1", "blur 2", "blur 3")
#: Reported beside the rule's conditions, never used by it (added after the choice).
REPORTED = ("motion 5", "motion 9", "motion 15")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--model", default="default", help="the base network (bundled name or .onnx)")
    ap.add_argument("--quantiles", type=float, nargs="+", default=[1, 2, 5, 10, 20, 30],
                    help="percent of val's clean 96 px faces under the threshold")
    args = ap.parse_args()
    data = load_fer2013(args.data)
    base, small = OnnxClassifier(args.model), OnnxClassifier("small-faces")
    val_clean = camera_shifts(data["val"].images)["none"]
    thresholds = np.percentile([sharpness(c) for c in val_clean], args.quantiles)
    split = data[args.split]
    shifted = camera_shifts(split.images)
    faces = {"48 px": split.images, **{k: shifted[k] for k in CONDITIONS[1:] + REPORTED}}
    acc = {}
    for name, crops in faces.items():
        s = np.array([sharpness(c) for c in crops])
        p_base, p_small = base.predict_probs(crops).argmax(1), small.predict_probs(crops).argmax(1)
        acc[name] = {"base": float((p_base == split.targets).mean()),
                     "small-faces": float((p_small == split.targets).mean())}
        for q, t in zip(args.quantiles, thresholds):
            acc[name][q] = float((np.where(s < t, p_small, p_base) == split.targets).mean())
            acc[name][f"routed {q}"] = float((s < t).mean())
        print(f"{name}: {args.model} {acc[name]['base']:.2%}, small-faces {acc[name]['small-faces']:.2%}; sharpness "
              f"median {np.median(s):.3f}", flush=True)
    print(f"\n| {args.split} | " + " | ".join(CONDITIONS) + " | blur mean | " + " | ".join(REPORTED) + " |")
    print("|---" * (len(CONDITIONS) + len(REPORTED) + 2) + "|")
    rows = ["base", "small-faces", *args.quantiles]
    for r in rows:
        label = f"{args.model} alone" if r == "base" else r if isinstance(r, str) else f"routed under the {r:g}% quantile (T {thresholds[args.quantiles.index(r)]:.3f})"
        blur = np.mean([acc[c][r] for c in CONDITIONS[2:]])
        cells = [f"{100 * acc[c][r]:.2f}" + ("" if isinstance(r, str) else f" ({100 * acc[c][f'routed {r}']:.0f}%)")
                 for c in CONDITIONS + REPORTED]
        print(f"| {label} | " + " | ".join(cells[:len(CONDITIONS)]) + f" | {100 * blur:.2f} | "
              + " | ".join(cells[len(CONDITIONS):]) + " |")
    if args.split == "val":
        ok = [q for q in args.quantiles if acc["none"][q] >= acc["none"]["base"] - 0.001
              and acc["48 px"][q] >= acc["48 px"]["base"] - 0.001]
        best = max(ok, key=lambda q: np.mean([acc[c][q] for c in CONDITIONS[2:]]), default=None)
        print(f"\nrule: passing quantiles {ok or 'none'}; chosen {best if best is not None else 'no routing'}")


if __name__ == "__main__":
    main()

"""Blurred faces: would routing the blurriest crops to the ``small-faces`` network (trained
on faces shrunk and enlarged back, which are blurred) serve them better than ``default``?
Val (PublicTest) only, unless ``--split test``.

A sharpness measure (``--measures``, :data:`MEASURES`) is taken on each crop, and a crop under
the threshold T goes to ``small-faces``, the others to ``default``. ``laplacian`` is the
variance-of-Laplacian focus measure (Pech-Pacheco et al., ICPR 2000) on the crop shrunk to
48 x 48 (``INTER_AREA``), divided by the crop's own variance so that a low-contrast face is
not taken for a blurred one (session 40's). ``median`` takes it after a 3 x 3 median filter,
so that sensor noise is not taken for detail (:func:`ferkit.recognize.sharpness` since
session 41); ``log`` after a Gaussian of 1 px, ``laplacian32`` at 32 px. The faces are those
of ``benchmarks/camera.py``: FER2013 faces enlarged to 96 px, clean and blurred by 1, 2 and
3 px, and with ``--mixtures`` blurred, then noised, then JPEG-encoded
(``camera.camera_mixtures``); and the 48 px faces themselves. T is tried at quantiles of
the measure on the clean 96 px val faces. ``--cache FILE.npz`` keeps the networks'
predictions, so a second run on other measures or quantiles costs seconds.

The rules, written before the figures. Session 40: the T with the best mean over the three
blurs among those that lose at most 0.10 points on the clean 96 px faces and at most 0.10
on the 48 px faces; none passing: no routing. Session 41 (``--mixtures``): the same
constraints, the best mean over the 12 blurred conditions (3 blurs, 9 mixtures), adopted only
0.5 points or more above session 40's measure at its T. ``--split test --measures M
--quantiles Q`` reads test once for the chosen measure and quantile of val's values.

Session 40 (2-core Xeon, 4 minutes a run): val chose ``laplacian`` at the 5% quantile, T
0.279; test, read once: blur mean 65.77% against the default's 54.81%, 48 px 73.36% against
73.42%. Session 41 (the same kind of machine, 20 minutes a run with the mixtures): under
noise of 16 grey levels that measure routed only 2-23% of the blurred faces; val chose
``median`` at the 10% quantile, T 0.173: 63.19% against 61.73% on the 12 blurred conditions'
mean. ``ferkit.recognize.SMALL_FACES`` carries T (docs/accuracy.md, "Blur, JPEG and noise").

    python benchmarks/sharpness.py [--split val] [--quantiles 1 2 5 10 20 30] [--model default]
        [--measures median] [--mixtures] [--cache FILE.npz] [--data ../shared/datasets/fer2013]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from camera import camera_mixtures, camera_shifts
from ferkit.classifier import OnnxClassifier
from ferkit.data import load_fer2013
from ferkit.recognize import laplacian_ratio, sharpness


#: Session 41's candidate measures (plan 2 in its note: a measure that noise does not fool),
#: each a float >= 0 for an (H, W) uint8 crop. ``laplacian`` is session 40's measure,
#: ``median`` the one val chose and :func:`ferkit.recognize.sharpness` computes since.
MEASURES = {
    "laplacian": laplacian_ratio,
    # a Laplacian of Gaussian: the 48 px crop smoothed (sigma 1 px, in float32) before the Laplacian
    "log": lambda c: laplacian_ratio(c, prefilter=lambda x: cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0)),
    # the 48 px crop median-filtered (3 x 3) before the Laplacian
    "median": sharpness,
    # session 40's measure at 32 px, where INTER_AREA averages more of the noise
    "laplacian32": lambda c: laplacian_ratio(c, 32),
}

CONDITIONS = ("48 px", "none", "blur 1", "blur 2", "blur 3")
#: Reported beside the rule's conditions, never used by it (added after the choice).
REPORTED = ("motion 5", "motion 9", "motion 15")


def _label(r, model: str) -> str:
    if r == "base":
        return f"{model} alone"
    if isinstance(r, str):
        return r
    return f"{r[0]}, routed under the {r[1]:g}% quantile (T {r[2]:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--model", default="default", help="the base network (bundled name or .onnx)")
    ap.add_argument("--quantiles", type=float, nargs="+", default=[1, 2, 5, 10, 20, 30],
                    help="percent of val's clean 96 px faces under the threshold")
    ap.add_argument("--measures", nargs="+", default=["median"], choices=list(MEASURES),
                    help="sharpness measures to route by (session 41's candidates; median is the shipped one, "
                         "laplacian session 40's)")
    ap.add_argument("--mixtures", action="store_true",
                    help="also report blur chained with noise and JPEG (camera.camera_mixtures; session 41)")
    ap.add_argument("--cache", help="an .npz file of the networks' predictions, keyed by split, model name and "
                         "condition, reused when present (delete it when a model file changes)")
    args = ap.parse_args()
    data = load_fer2013(args.data)
    val_clean = camera_shifts(data["val"].images)["none"]
    routes = [(m, q, float(t)) for m in args.measures
              for q, t in zip(args.quantiles, np.percentile([MEASURES[m](c) for c in val_clean], args.quantiles))]
    split = data[args.split]
    shifted = camera_shifts(split.images)
    faces = {"48 px": split.images, **{k: shifted[k] for k in CONDITIONS[1:] + REPORTED}}
    mixtures = camera_mixtures(split.images) if args.mixtures else {}
    faces.update(mixtures)
    cache = dict(np.load(args.cache)) if args.cache and Path(args.cache).exists() else {}
    nets = {}
    acc = {}
    for name, crops in faces.items():
        for net in (args.model, "small-faces"):
            key = f"{args.split}|{net}|{name}"
            if key not in cache:
                nets.setdefault(net, OnnxClassifier(net))
                cache[key] = nets[net].predict_probs(crops).argmax(1)
        p_base, p_small = cache[f"{args.split}|{args.model}|{name}"], cache[f"{args.split}|small-faces|{name}"]
        acc[name] = {"base": float((p_base == split.targets).mean()),
                     "small-faces": float((p_small == split.targets).mean())}
        values = {m: np.array([MEASURES[m](c) for c in crops]) for m in args.measures}
        for r in routes:
            routed = values[r[0]] < r[2]
            acc[name][r] = float((np.where(routed, p_small, p_base) == split.targets).mean())
            acc[name][("routed",) + r] = float(routed.mean())
        print(f"{name}: {args.model} {acc[name]['base']:.2%}, small-faces {acc[name]['small-faces']:.2%}; sharpness "
              f"median {np.median(values[args.measures[0]]):.3f}", flush=True)
    if args.cache:
        Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.cache, **cache)
    rows = ["base", "small-faces", *routes]

    def table(columns, means: dict[str, tuple]) -> None:
        print(f"\n| {args.split} | " + " | ".join(columns) + "".join(f" | {m}" for m in means) + " |")
        print("|---" * (len(columns) + len(means) + 1) + "|")
        for r in rows:
            cells = [f"{100 * acc[c][r]:.2f}" + ("" if isinstance(r, str) else f" ({100 * acc[c][('routed',) + r]:.0f}%)")
                     for c in columns]
            cells += [f"{100 * np.mean([acc[c][r] for c in cs]):.2f}" for cs in means.values()]
            print(f"| {_label(r, args.model)} | " + " | ".join(cells) + " |")

    table(CONDITIONS + REPORTED, {"blur mean": CONDITIONS[2:]})
    blurred = list(CONDITIONS[2:]) + list(mixtures)
    if mixtures:
        table(list(mixtures), {"mixture mean": list(mixtures), "mean of the 12 blurred": blurred})
    if args.split == "val":
        ok = [r for r in routes if acc["none"][r] >= acc["none"]["base"] - 0.001
              and acc["48 px"][r] >= acc["48 px"]["base"] - 0.001]
        scored = blurred if mixtures else CONDITIONS[2:]
        best = max(ok, key=lambda r: np.mean([acc[c][r] for c in scored]), default=None)
        print(f"\nrule: passing {[_label(r, '') for r in ok] or 'none'}; best on the mean of {len(scored)} blurred "
              f"conditions: {_label(best, '') if best else 'no routing'}")


if __name__ == "__main__":
    main()

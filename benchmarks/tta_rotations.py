"""Does test-time rotation help? Val (PublicTest) accuracy of each network under the
existing multi-scale TTAs and under two candidates that add rotated views. Nothing here
reads the test split.

Per network and val face it computes the logits of 18 views: the 10 of ``scales5``
(:func:`ferkit.export.tta_views`: the face, zoomed 7/8, 15/16, 17/16 and 9/8, each with
its mirror image) and the face rotated by +5, -5, +10 and -10 degrees about its centre
(bilinear, border replicated, as :func:`ferkit.train.augment` rotates in training), each
with its mirror image. It then prints the val accuracy of the mean logits over

- ``none`` (1 view), ``scales`` (6), ``scales5`` (10): the modes ferkit exports;
- ``rot5``: ``scales`` + the +-5 degree rotations and their mirrors (10 views);
- ``rot10``: ``scales`` + the +-10 degree rotations and their mirrors (10 views),

and each candidate's gain over ``scales5``, the existing mode of the same cost. Session 36
measured it on 13 networks (docs/accuracy.md): neither candidate was adopted.

    python benchmarks/tta_rotations.py default ensemble:1 runs/s35/fastA/chosen.onnx \
        runs/s33/wide42/best.pt [--data ../shared/datasets/fer2013] [--cache DIR]

A model is a ``.pt`` checkpoint, a ferkit ``.onnx`` file or bundled name (its network is
rebuilt from the graph's weights, without the graph's TTA, calibration or logit
adjustment), or ``NAME:I`` for member I of an ensemble.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.data import load_fer2013
from ferkit.export import _load_source, tta_views
from ferkit.preprocess import Preprocessing, prepare_faces

#: Rotations in degrees, in the order of views 10-17 (each followed by its mirror image).
ANGLES = (5, -5, 10, -10)

#: Which of the 18 views each TTA averages (0-9: scales5's views, 10-17: the rotations).
VIEW_SETS = {"none": [0], "scales": [0, 1, 2, 3, 8, 9], "scales5": list(range(10)),
             "rot5": [0, 1, 2, 3, 8, 9, 10, 11, 12, 13], "rot10": [0, 1, 2, 3, 8, 9, 14, 15, 16, 17]}


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """(B, C, S, S) faces rotated by ``degrees`` about their centre, as ``augment`` does."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def view_logits(source: str, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 18, C) float32 logits of the 18 views of each (N, 48, 48) uint8 face."""
    name, _, member = source.rpartition(":") if ":" in source else (source, "", "")
    model, ckpt = _load_source(name, int(member) if member else None)
    model.eval()
    x_all = torch.from_numpy(prepare_faces(images, Preprocessing.from_dict(ckpt["preprocessing"]))).float()
    crop = getattr(model, "crop", 0)
    out = []
    with torch.no_grad():
        for i in range(0, len(x_all), batch_size):
            x = x_all[i:i + batch_size]
            views = [v for v, _ in tta_views(x, "scales5", crop)]
            for d in ANGLES:
                r = rotate(x, d)
                views += [r, torch.flip(r, dims=[3])]
            out.append(torch.stack([model(v).float() for v in views], 1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help=".pt, .onnx, bundled names, or NAME:I for an ensemble's member I")
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--cache", type=Path, default=None, help="keep each model's view logits here (.npy)")
    args = ap.parse_args()
    val = load_fer2013(args.data)["val"]
    y = np.asarray(val.targets)
    print(f"{'model':<32}" + "".join(f"{k:>9}" for k in VIEW_SETS) + f"{'rot5-s5':>9}{'rot10-s5':>9}")
    gains: dict[str, list[float]] = {"rot5": [], "rot10": []}
    for src in args.models:
        cached = args.cache / (src.replace("/", "_").replace(":", "_") + ".npy") if args.cache else None
        start = time.perf_counter()
        if cached is not None and cached.exists():
            logits = np.load(cached)
        else:
            logits = view_logits(src, val.images)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, logits)
        acc = {k: float((logits[:, v].mean(1).argmax(1) == y).mean()) for k, v in VIEW_SETS.items()}
        for k in gains:
            gains[k].append(acc[k] - acc["scales5"])
        print(f"{src:<32}" + "".join(f"{100 * acc[k]:>9.2f}" for k in VIEW_SETS)
              + "".join(f"{100 * gains[k][-1]:>+9.2f}" for k in gains)
              + f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    for k, g in gains.items():
        g_arr = np.asarray(g)
        print(f"{k}: mean gain over scales5 {100 * g_arr.mean():+.3f} points on val; "
              f"beats scales5 on {(g_arr > 0).sum()} of {len(g_arr)} models")


if __name__ == "__main__":
    main()

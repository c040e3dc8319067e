"""Average the weights of ferkit checkpoints of one network ("model soup", Wortsman et al.
2022, arXiv:2203.05482; stochastic weight averaging, Izmailov et al. 2018,
arXiv:1803.05407) and write the result as a new ``.pt`` checkpoint that ``ferkit export``,
``ferkit evaluate`` and ``benchmarks/val_choices.py`` accept.

Averaging only makes sense for checkpoints in one basin of the loss: snapshots of one
training run, or a network and a low-learning-rate fine-tune of it. Independently trained
networks average to a broken one; ensemble those instead (``ferkit ensemble``).

Floating-point tensors (weights and BatchNorm running statistics) are averaged with the
given weights; integer buffers (BatchNorm's ``num_batches_tracked``) are taken from the
first checkpoint. The other fields (model, class names, preprocessing, config) come from
the first checkpoint; ``epoch`` becomes -1 and ``val_acc`` 0.0, since the average was never
trained or measured, and ``averaged_from`` names the sources.

    python benchmarks/average_checkpoints.py runs/gpu/wide6/best.pt runs/s30/ft/last.pt \
        --out runs/s30/soup.pt [--weights 0.5 0.5]

Checkpoints are read with :func:`ferkit.checkpoint.load_checkpoint` and written with
:func:`ferkit.checkpoint.save_checkpoint`. A missing or foreign file, checkpoints of
different models, arguments or classes, or weights that are not positive end the script
with a one-line error and nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ferkit.checkpoint import load_checkpoint, save_checkpoint
from ferkit.errors import ModelError


def average_checkpoints(paths: list[str | Path], weights: list[float] | None = None):
    """Return ``(model, meta)``: the network of ``paths[0]`` holding the weighted mean of the
    checkpoints' tensors, and the metadata to save it with (``paths[0]``'s, less its
    ``state_dict``, ``epoch`` and ``val_acc``, plus ``averaged_from`` and the normalised
    ``average_weights``).

    Args:
        paths: two or more ferkit ``.pt`` checkpoints of the same model, ``model_args`` and
            class names (read with :func:`ferkit.checkpoint.load_checkpoint`).
        weights: one positive weight per checkpoint (normalised to sum to 1); None: uniform.

    Raises:
        ValueError: fewer than two paths, a weight count or sign that does not fit, or
            checkpoints that differ in model, arguments or classes.
        ModelError: a file that is missing or not a ferkit checkpoint.
    """
    if len(paths) < 2:
        raise ValueError(f"need two or more checkpoints to average, got {len(paths)}")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or min(weights) <= 0:
        raise ValueError(f"need one positive weight per checkpoint, got {weights} for {len(paths)}")
    weights = [w / sum(weights) for w in weights]
    model, first = load_checkpoint(paths[0])
    states = [first["state_dict"]]
    for path in paths[1:]:
        _, ck = load_checkpoint(path)
        for key in ("model", "model_args", "class_names"):
            if ck.get(key) != first.get(key):
                raise ValueError(f"{path}: {key} {ck.get(key)!r} differs from {paths[0]}'s {first.get(key)!r}")
        states.append(ck["state_dict"])
    mean = {name: (sum(w * st[name].float() for w, st in zip(weights, states)).to(t.dtype)
                   if t.is_floating_point() else t)
            for name, t in first["state_dict"].items()}
    model.load_state_dict(mean)
    meta = {k: v for k, v in first.items() if k not in ("state_dict", "epoch", "val_acc")}
    return model, {**meta, "averaged_from": [str(p) for p in paths], "average_weights": weights}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--weights", type=float, nargs="+", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        model, meta = average_checkpoints(args.checkpoints, args.weights)
    except (ValueError, ModelError) as exc:  # a clear message, no traceback, nothing written
        sys.exit(f"average_checkpoints: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, meta, model, epoch=-1, val_acc=0.0)
    print(f"wrote {args.out}: the mean of {len(args.checkpoints)} checkpoints, weights {meta['average_weights']}")


if __name__ == "__main__":
    main()

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

Raises ``ValueError`` when the checkpoints are of different models, classes or shapes, or
when the weights are not positive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def average_checkpoints(paths: list[str | Path], weights: list[float] | None = None) -> dict:
    """Return a checkpoint dict whose state_dict is the weighted mean of those in ``paths``.

    Args:
        paths: two or more ferkit ``.pt`` checkpoints of the same model, ``model_args`` and
            class names.
        weights: one positive weight per checkpoint (normalised to sum to 1); None: uniform.

    Raises:
        ValueError: fewer than two paths, a weight count or sign that does not fit, or
            checkpoints that differ in model, arguments, classes or tensor shapes.
    """
    if len(paths) < 2:
        raise ValueError(f"need two or more checkpoints to average, got {len(paths)}")
    weights = [1.0] * len(paths) if weights is None else list(weights)
    if len(weights) != len(paths) or min(weights) <= 0:
        raise ValueError(f"need one positive weight per checkpoint, got {weights} for {len(paths)}")
    total = sum(weights)
    weights = [w / total for w in weights]
    ckpts = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    first = ckpts[0]
    for path, ck in zip(paths[1:], ckpts[1:]):
        for key in ("model", "model_args", "class_names"):
            if ck.get(key) != first.get(key):
                raise ValueError(f"{path}: {key} {ck.get(key)!r} differs from {paths[0]}'s {first.get(key)!r}")
        if ck["state_dict"].keys() != first["state_dict"].keys():
            raise ValueError(f"{path}: its tensors differ in name from {paths[0]}'s")
    state = {}
    for name, tensor in first["state_dict"].items():
        if not tensor.is_floating_point():
            state[name] = tensor.clone()
            continue
        tensors = [ck["state_dict"][name] for ck in ckpts]
        if any(t.shape != tensor.shape for t in tensors):
            raise ValueError(f"tensor {name}: shapes {[tuple(t.shape) for t in tensors]} differ")
        state[name] = sum(w * t.float() for w, t in zip(weights, tensors)).to(tensor.dtype)
    out = {k: v for k, v in first.items() if k not in ("state_dict", "val_acc", "epoch")}
    out["state_dict"] = state
    out["epoch"] = -1
    out["val_acc"] = 0.0
    out["averaged_from"] = [str(p) for p in paths]
    out["average_weights"] = weights
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--weights", type=float, nargs="+", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        ck = average_checkpoints(args.checkpoints, args.weights)
    except (ValueError, OSError) as exc:  # a clear message, no traceback, nothing written
        sys.exit(f"average_checkpoints: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, args.out)
    print(f"wrote {args.out}: the mean of {len(args.checkpoints)} checkpoints, weights {ck['average_weights']}")


if __name__ == "__main__":
    main()

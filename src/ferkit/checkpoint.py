"""Checkpoints that rebuild themselves: weights plus model name, arguments, class names
and preprocessing (the habit of nanoGPT's ``model_args``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import ModelError
from .models import create_model
from .preprocess import Preprocessing

FORMAT = "ferkit-checkpoint-1"


def checkpoint_meta(model_name: str, model_args: dict, class_names, pre: Preprocessing,
                    in_chans: int = 1) -> dict:
    """The part of a checkpoint that says how to rebuild and feed the model."""
    return {
        "format": FORMAT,
        "model": model_name,
        "model_args": dict(model_args),
        "num_classes": len(class_names),
        "in_chans": in_chans,
        "class_names": list(class_names),
        "preprocessing": pre.to_dict(),
    }


def save_checkpoint(path: str | os.PathLike, meta: dict, model: nn.Module, **extra) -> None:
    """Write ``meta``, the model's weights and ``extra`` entries atomically to ``path``.
    The weights are written as CPU tensors, so a checkpoint of a GPU run loads anywhere."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({**meta, "state_dict": state, **extra}, tmp)
    os.replace(tmp, path)


def build_model(meta: dict) -> nn.Module:
    """Create the (untrained) model a checkpoint's metadata describes."""
    return create_model(meta["model"], num_classes=meta["num_classes"], in_chans=meta["in_chans"],
                        input_size=meta["preprocessing"]["input_size"], **meta["model_args"])


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild a model from a ferkit checkpoint.

    Returns:
        ``(model, ckpt)``: the model in eval mode with its weights loaded, and the whole
        checkpoint dict (metadata, ``epoch``, ``val_acc``, training config, ...).

    Raises:
        ModelError: the file is missing or not a ferkit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(f"{path}: not a ferkit checkpoint (no '{FORMAT}' format tag)")
    model = build_model(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt

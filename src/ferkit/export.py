"""Export a ferkit checkpoint to ONNX and check it against PyTorch.

The exported graph takes ``images`` (B, 1, S, S) float32 (normalised as the metadata
says; B is dynamic) and returns ``logits`` and ``probs`` (B, C) float32. The metadata
JSON beside it carries class names, preprocessing and provenance. Like timm's
``onnx_export``, the export is verified by running both graphs on the same input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .classifier import ONNX_FORMAT
from .preprocess import Preprocessing


class _WithProbs(nn.Module):
    """Adds the ``probs`` output and, with ``flip_tta``, averages the logits of each face
    and its mirror image (horizontal-flip test-time augmentation)."""

    def __init__(self, model: nn.Module, flip_tta: bool = False):
        super().__init__()
        self.model = model
        self.flip_tta = flip_tta

    def forward(self, images: torch.Tensor):
        logits = self.model(images)  # (B, C)
        if self.flip_tta:
            logits = 0.5 * (logits + self.model(torch.flip(images, dims=[3])))
        return logits, torch.softmax(logits, dim=1)


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 18,
                extra_meta: dict | None = None, equalize: bool | None = None,
                flip_tta: bool = False) -> dict:
    """Export a checkpoint to ``out`` (``.onnx``) and write ``out`` with ``.json`` beside it.

    Args:
        checkpoint: a ferkit ``.pt`` checkpoint.
        out: path of the ``.onnx`` file to write.
        opset: ONNX opset version.
        extra_meta: more entries for the metadata JSON (e.g. measured metrics).
        equalize: override the checkpoint's ``preprocessing.equalize`` (a choice to make
            on val, e.g. for a model trained on already-equalised faces); None keeps it.
        flip_tta: bake horizontal-flip test-time augmentation into the graph (the
            logits of a face and of its mirror image are averaged; twice the cost).

    Returns:
        The metadata dict written, including ``parity``: the maximum absolute
        difference between ONNX Runtime and PyTorch probabilities and logits on 16 random
        inputs.

    Raises:
        ModelError: the checkpoint cannot be loaded.
        RuntimeError: ONNX Runtime and PyTorch disagree by 1e-4 or more in probability.
    """
    import onnxruntime as ort

    model, ckpt = load_checkpoint(checkpoint)
    s, c = ckpt["preprocessing"]["input_size"], ckpt["in_chans"]
    wrapped = _WithProbs(model, flip_tta).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(4, c, s, s)
    batch = torch.export.Dim("batch", min=1, max=4096)
    onnx_program = torch.onnx.export(
        wrapped, (example,), input_names=["images"], output_names=["logits", "probs"],
        dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True, external_data=False,
        verbose=False)
    onnx_program.save(str(out), external_data=False)

    x = torch.randn(16, c, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t_logits, t_probs = wrapped(x)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    o_logits, o_probs = sess.run(["logits", "probs"], {"images": x.numpy()})
    parity = {"max_abs_diff_probs": float(np.abs(o_probs - t_probs.numpy()).max()),
              "max_abs_diff_logits": float(np.abs(o_logits - t_logits.numpy()).max())}
    if parity["max_abs_diff_probs"] >= 1e-4:
        raise RuntimeError(f"ONNX export of {checkpoint} disagrees with PyTorch: {parity}")
    meta = {
        "format": ONNX_FORMAT,
        "model": ckpt["model"],
        "model_args": ckpt["model_args"],
        "num_classes": ckpt["num_classes"],
        "in_chans": c,
        "class_names": ckpt["class_names"],
        "preprocessing": {**Preprocessing.from_dict(ckpt["preprocessing"]).to_dict(),
                          **({} if equalize is None else {"equalize": bool(equalize)})},
        "inputs": {"images": ["batch", c, s, s]},
        "outputs": {"logits": ["batch", ckpt["num_classes"]], "probs": ["batch", ckpt["num_classes"]]},
        "tta": "flip" if flip_tta else "none",
        "opset": opset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained": {"epoch": ckpt.get("epoch"), "val_accuracy": ckpt.get("val_acc"),
                    "config": ckpt.get("config")},
        "parity": parity,
        **(extra_meta or {}),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta

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


#: Test-time augmentation modes of an exported graph: the views whose logits are averaged
#: (for a network that sees crops of its input, ``crops`` is the ten-crop: 10 views).
TTA_MODES = {"none": 1, "flip": 2, "crops": 7}

#: Side of the "crops" TTA's corner and centre crops, as a fraction of the input side
#: (44 of 48 px), each resized back to the input size: the zoom of about 1.09 that the
#: training augmentation draws from.
CROP_FRACTION = 11 / 12


class _WithProbs(nn.Module):
    """Adds the ``probs`` output and averages the logits of the test-time views.

    ``tta``: ``"none"``; ``"flip"``, the face and its mirror image; ``"crops"``, those two
    and the four corner and the centre crops of :data:`CROP_FRACTION` of the side, resized
    back (7 views; the multi-crop evaluation of Krizhevsky et al., 2012, as zooms); for a
    network trained on crops (``model.crop``, see :class:`ferkit.models.VGG`), the
    ten-crop of Krizhevsky et al. at the network's own crop size instead: the centre and
    the four corner crops and their mirror images (10 views, no resizing).
    """

    def __init__(self, model: nn.Module, tta: str = "none"):
        super().__init__()
        if tta not in TTA_MODES:
            raise ValueError(f"unknown TTA mode {tta!r}; expected one of {', '.join(TTA_MODES)}")
        self.model = model
        self.tta = tta

    def forward(self, images: torch.Tensor):
        views = tta_views(images, self.tta, getattr(self.model, "crop", 0))
        logits = self.model(views[0][0])  # (B, C)
        for view, _ in views[1:]:
            logits = logits + self.model(view)
        logits = logits / len(views)
        return logits, torch.softmax(logits, dim=1)


def tta_views(images: torch.Tensor, tta: str, crop: int = 0) -> list[tuple[torch.Tensor, tuple]]:
    """The test-time views of a batch, as the exported graph builds them.

    Args:
        images: (B, C, S, S) float32 model input.
        tta: ``"none"``, ``"flip"`` or ``"crops"`` (see :class:`_WithProbs`).
        crop: side of the square the network sees (its ``crop``), 0 = the whole input;
            with a crop, ``"crops"`` is the ten-crop.

    Returns:
        ``[(view, where), ...]``, each view (B, C, S, S), or (B, C, c, c) for a ten-crop
        corner; ``where`` says how to map a map over the view back onto the face: ``()``
        the face itself, ``("flip",)`` its mirror image, ``("crop", y, x, c)`` the c x c
        crop at row y, column x (resized to the view's side), ``("crop", y, x, c,
        "flip")`` that crop's mirror image.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; expected one of {', '.join(TTA_MODES)}")
    views: list[tuple[torch.Tensor, tuple]] = [(images, ())]
    if tta != "none":
        views.append((torch.flip(images, dims=[3]), ("flip",)))
    s = images.shape[-1]
    if tta == "crops" and 0 < crop < s:  # ten-crop: the centre crop is the network's own
        for y, x in ((0, 0), (0, s - crop), (s - crop, 0), (s - crop, s - crop)):
            corner = images[:, :, y:y + crop, x:x + crop]
            views += [(corner, ("crop", y, x, crop)), (torch.flip(corner, dims=[3]), ("crop", y, x, crop, "flip"))]
    elif tta == "crops":
        c = round(s * CROP_FRACTION)
        for y, x in ((0, 0), (0, s - c), (s - c, 0), (s - c, s - c), ((s - c) // 2, (s - c) // 2)):
            crop = images[:, :, y:y + c, x:x + c]
            views.append((nn.functional.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False),
                          ("crop", y, x, c)))
    return views


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 18,
                extra_meta: dict | None = None, equalize: bool | None = None,
                tta: str = "none") -> dict:
    """Export a checkpoint to ``out`` (``.onnx``) and write ``out`` with ``.json`` beside it.

    Args:
        checkpoint: a ferkit ``.pt`` checkpoint.
        out: path of the ``.onnx`` file to write.
        opset: ONNX opset version.
        extra_meta: more entries for the metadata JSON (e.g. measured metrics).
        equalize: override the checkpoint's ``preprocessing.equalize`` (a choice to make
            on val, e.g. for a model trained on already-equalised faces); None keeps it.
        tta: test-time augmentation baked into the graph (see :class:`_WithProbs`):
            ``"none"``, ``"flip"`` (face and mirror image, twice the cost) or ``"crops"``
            (flip plus five zoomed crops, 7 times the cost); choose it on val.

    Returns:
        The metadata dict written, including ``parity``: the maximum absolute
        difference between ONNX Runtime and PyTorch probabilities and logits on 16 random
        inputs.

    Raises:
        ModelError: the checkpoint cannot be loaded.
        ValueError: an unknown ``tta``.
        RuntimeError: ONNX Runtime and PyTorch disagree by 1e-4 or more in probability.
    """
    import onnxruntime as ort

    model, ckpt = load_checkpoint(checkpoint)
    s, c = ckpt["preprocessing"]["input_size"], ckpt["in_chans"]
    wrapped = _WithProbs(model, tta).eval()
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
        "tta": tta,
        "opset": opset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained": {"epoch": ckpt.get("epoch"), "val_accuracy": ckpt.get("val_acc"),
                    "config": ckpt.get("config")},
        "parity": parity,
        **(extra_meta or {}),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta

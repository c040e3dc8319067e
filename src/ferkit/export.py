"""Export a ferkit checkpoint to ONNX and check it against PyTorch.

The exported graph takes ``images`` (B, 1, S, S) float32 (normalised as the metadata
says; B is dynamic) and returns ``logits`` and ``probs`` (B, C) float32. The metadata
JSON beside it carries class names, preprocessing and provenance. Like timm's
``onnx_export``, the export is verified by running both graphs on the same input.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import checkpoint_meta, load_checkpoint
from .classifier import ONNX_FORMAT
from .errors import ModelError
from .preprocess import Preprocessing


#: Test-time augmentation modes of an exported graph: the views whose logits are averaged
#: (for a network that sees crops of its input, ``crops`` is the ten-crop: 10 views).
TTA_MODES = {"none": 1, "flip": 2, "crops": 7, "scales": 6, "scales5": 10}

#: Side of the "crops" TTA's corner and centre crops, as a fraction of the input side
#: (44 of 48 px), each resized back to the input size: the zoom of about 1.09 that the
#: training augmentation draws from.
CROP_FRACTION = 11 / 12

#: The zooms of the "scales" TTA besides the face itself: zoomed out to 7/8 (the face
#: resized to 42 of 48 px with an antialiased bilinear filter, its border replicated
#: around it) and in to 9/8 (the centre 43
#: of 48 px resized to 48), each with its mirror image. Chosen on val (session 20) over
#: 44-52 and 42-45-51-54 px.
SCALES = (7 / 8, 9 / 8)

#: The zooms of the "scales5" TTA besides the face itself: those of :data:`SCALES` and
#: the two between them and the face, 15/16 (resized to 45 px and its border replicated)
#: and 17/16 (the centre 45 px resized to 48), each with its mirror image: 10 views. Chosen
#: on val (session 27) over ``scales`` for the fast recipe: on five of its networks and
#: the bundled default's, val moved by 0 to +0.47 points, never down; at 10/6 of the cost.
SCALES5 = (7 / 8, 15 / 16, 17 / 16, 9 / 8)


class _WithProbs(nn.Module):
    """Adds the ``probs`` output and averages the logits of the test-time views.

    ``tta``: ``"none"``; ``"flip"``, the face and its mirror image; ``"crops"``, those two
    and the four corner and the centre crops of :data:`CROP_FRACTION` of the side, resized
    back (7 views; the multi-crop evaluation of Krizhevsky et al., 2012, as zooms); for a
    network trained on crops (``model.crop``, see :class:`ferkit.models.VGG`), the
    ten-crop of Krizhevsky et al. at the network's own crop size instead: the centre and
    the four corner crops and their mirror images (10 views, no resizing); ``"scales"``,
    the face zoomed out and in by :data:`SCALES` and as it is, each with its mirror image
    (6 views; multi-scale testing, as in Simonyan & Zisserman, 2015, "Very Deep
    Convolutional Networks", section 3.2, here about the face's centre); ``"scales5"``,
    the same at the five zooms of :data:`SCALES5` and the face (10 views). A network that
    sees crops takes the centre crop of each view.
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
        tta: ``"none"``, ``"flip"``, ``"crops"``, ``"scales"`` or ``"scales5"`` (see
            :class:`_WithProbs`).
        crop: side of the square the network sees (its ``crop``), 0 = the whole input;
            with a crop, ``"crops"`` is the ten-crop.

    Returns:
        ``[(view, where), ...]``, each view (B, C, S, S), or (B, C, c, c) for a ten-crop
        corner; ``where`` says how to map a map over the view back onto the face: ``()``
        the face itself, ``("flip",)`` its mirror image, ``("crop", y, x, c)`` the c x c
        crop at row y, column x (resized to the view's side), ``("crop", y, x, c,
        "flip")`` that crop's mirror image, ``("pad", o, n)`` the face resized to n x n
        at row and column o of the view (the rest replicates its border), ``("pad", o, n,
        "flip")`` its mirror image.
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
    elif tta in ("scales", "scales5"):
        for f in SCALES if tta == "scales" else SCALES5:
            if f < 1:  # zoomed out: the whole face, smaller, in the middle of the view
                n = round(s * f)
                o = (s - n) // 2
                small = nn.functional.interpolate(images, size=(n, n), mode="bilinear", align_corners=False,
                                                  antialias=True)  # as PIL's bilinear; ONNX Resize antialias
                view, where = nn.functional.pad(small, (o, s - n - o, o, s - n - o), mode="replicate"), ("pad", o, n)
            else:  # zoomed in: the face's centre, enlarged to the view
                c = round(s / f)
                o = (s - c) // 2
                view = nn.functional.interpolate(images[:, :, o:o + c, o:o + c], size=(s, s), mode="bilinear",
                                                 align_corners=False)
                where = ("crop", o, o, c)
            views += [(view, where), (torch.flip(view, dims=[3]), (*where, "flip"))]
    return views


def _load_source(source: str | os.PathLike, member: int | None = None) -> tuple[nn.Module, dict]:
    """``(model, checkpoint dict)`` of a ``.pt`` checkpoint, or of the network of a ferkit
    ONNX model or bundled name (or of an ensemble's ``member``) rebuilt from its graph's
    weights."""
    if str(source).endswith(".pt"):
        if member is not None:
            raise ModelError(f"{source}: a checkpoint holds one network; member applies to an ensemble")
        return load_checkpoint(source)
    from .classifier import read_metadata, resolve_model
    from .explain import torch_model_from_onnx

    path = resolve_model(str(source))
    meta, tm = read_metadata(path), torch_model_from_onnx(path, member)
    spec = meta if member is None else meta["members"][member]
    trained = spec.get("trained") or {}
    where = "its graph's weights" if member is None else f"member {member}, {spec.get('file')}: its graph's weights"
    ckpt = {**checkpoint_meta(spec["model"], spec["model_args"], tm.class_names, tm.preprocessing,
                              in_chans=meta.get("in_chans", 1)),
            "epoch": trained.get("epoch"), "val_acc": trained.get("val_accuracy"),
            "config": trained.get("config"), "rebuilt_from": f"{Path(path).name} ({where})"}
    return tm.model.eval(), ckpt


@contextlib.contextmanager
def _quiet_exporter():
    """Silence two messages of PyTorch's ONNX exporter that concern PyTorch, not the user.

    The exporter logs "torchvision is not installed. Skipping torchvision::nms" (and three
    more ops) on every export, though ferkit's graphs use no torchvision op and ferkit does
    not depend on torchvision; and ``torch.export`` raises a FutureWarning about its own
    internal ``LeafSpec`` use. Every other warning and error still comes through.
    """
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)",
                                    category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 18,
                extra_meta: dict | None = None, equalize: bool | None = None,
                tta: str = "none", member: int | None = None) -> dict:
    """Export a checkpoint to ``out`` (``.onnx``) and write ``out`` with ``.json`` beside it.

    Args:
        checkpoint: a ferkit ``.pt`` checkpoint; or a ferkit ``.onnx`` model or bundled
            name (``default``), whose network is rebuilt from the graph's own weights
            (:func:`ferkit.explain.torch_model_from_onnx`; its training record is kept,
            its calibration and logit adjustment are not: fit them again with ``ferkit
            calibrate``), to export it with another ``tta``. ``out`` may be that model.
        out: path of the ``.onnx`` file to write.
        opset: ONNX opset version.
        extra_meta: more entries for the metadata JSON (e.g. measured metrics).
        equalize: override the checkpoint's ``preprocessing.equalize`` (a choice to make
            on val, e.g. for a model trained on already-equalised faces); None keeps it.
        tta: test-time augmentation baked into the graph (see :class:`_WithProbs`):
            ``"none"``, ``"flip"`` (face and mirror image, twice the cost), ``"crops"``
            (flip plus five zoomed crops, 7 times the cost; the ten-crop, 10 times, for
            a network that sees crops), ``"scales"`` (the face at three zooms with
            their mirror images, 6 times) or ``"scales5"`` (five zooms, 10 times); choose
            it on val.
        member: for an ensemble ``checkpoint``, the index of the member network to
            export on its own (its ``members`` entry must give ``model_args``); None
            otherwise.

    Returns:
        The metadata dict written, including ``parity``: the maximum absolute
        difference between ONNX Runtime and PyTorch probabilities and logits on 16 random
        inputs.

    Raises:
        ModelError: the checkpoint cannot be loaded, or the ONNX model cannot be rebuilt
            (an ensemble without ``member``, a quantized graph or member, a bad index).
        ValueError: an unknown ``tta``.
        RuntimeError: ONNX Runtime and PyTorch disagree by 1e-4 or more in probability.
    """
    import onnxruntime as ort

    model, ckpt = _load_source(checkpoint, member)
    s, c = ckpt["preprocessing"]["input_size"], ckpt["in_chans"]
    wrapped = _WithProbs(model, tta).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(4, c, s, s)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet_exporter():
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
        **({"rebuilt_from": ckpt["rebuilt_from"]} if "rebuilt_from" in ckpt else {}),
        **(extra_meta or {}),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta

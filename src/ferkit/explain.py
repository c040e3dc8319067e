"""Explanations: Grad-CAM heat maps and the feature maps of each pooling stage (PyTorch).

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017): the activations A (B, K, h, w) of a late
convolutional layer are weighted by the spatial mean of the gradient of the class logit
with respect to them, summed over channels and passed through a ReLU; the map is then
upsampled to the input size. ferkit takes A at the input of the model's last max-pool
(the last convolutional stage's output). For a model with test-time augmentation the
logit is the mean over its views (:func:`ferkit.export.tta_views`), so every pass
contributes: each view's map is upsampled and mapped back onto the face (the mirror
image's flipped back, each crop's put back in its place; for a network that sees only
the centre crop of its input, onto that centre) before the ReLU.

Needs PyTorch (``pip install 'ferkit[train]'``); the ONNX models are rebuilt as PyTorch
modules from their own weights by :func:`torch_model_from_onnx`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FerkitError, ModelError

TRAIN_EXTRA = "pip install 'ferkit[train]'"


def require_torch():
    """Import torch, or raise FerkitError saying which extra to install."""
    try:
        import torch
    except ImportError:
        raise FerkitError(f"Grad-CAM and feature maps need PyTorch: {TRAIN_EXTRA}") from None
    return torch


@dataclass
class TorchModel:
    """A PyTorch model with what is needed to feed it.

    Attributes:
        model: the ``nn.Module`` (eval mode), images (B, 1, S, S) float32 -> logits (B, C).
        class_names: the C class names.
        preprocessing: its :class:`~ferkit.preprocess.Preprocessing`.
        temperature: T of the calibrated probabilities ``softmax(logits / T)``.
        tta: the ONNX graph's test-time augmentation, whose views' logits are averaged
            (``"none"``, ``"flip"``, ``"crops"``, ``"scales"``, ``"scales5"``;
            :func:`ferkit.export.tta_views`).
        logit_bias: (C,) float32 array the ONNX graph's logits subtract (a logit
            adjustment, :func:`ferkit.calibrate.set_graph_logit_adjustment`), or None.
    """

    model: object
    class_names: tuple[str, ...]
    preprocessing: object
    temperature: float = 1.0
    tta: str = "none"
    logit_bias: object = None

    def views(self, images):
        """The test-time views of (B, 1, S, S) images: ``[(view, where), ...]`` as
        :func:`ferkit.export.tta_views` (the ONNX graph's own views)."""
        from .export import tta_views

        return tta_views(images, self.tta, getattr(self.model, "crop", 0))

    def logits(self, images):
        """(B, 1, S, S) float32 tensor -> (B, C) logits tensor: the mean over the
        model's test-time views, by the module the ONNX graph was exported from, less the
        graph's logit adjustment when it has one."""
        from .export import _WithProbs

        logits = _WithProbs(self.model, self.tta)(images)[0]
        if self.logit_bias is None:
            return logits
        return logits - require_torch().as_tensor(self.logit_bias, dtype=logits.dtype)


def torch_model_from_onnx(path: str | os.PathLike | None = None, member: int | None = None) -> TorchModel:
    """Rebuild a ferkit ONNX model as a PyTorch module from the graph's own weights.

    The graph's initializers are named like the model's ``state_dict`` with a ``model.``
    prefix (``model.features.0.weight``, ...); the ``.json`` gives the registered model
    name and arguments (:func:`ferkit.models.create_model`), preprocessing, test-time
    augmentation and temperature. In an ensemble (:func:`ferkit.ensemble.build_ensemble`)
    member ``i``'s initializers carry the prefix ``m{i}/model.`` and its ``.json`` entry
    in ``members`` gives its architecture, arguments, TTA and temperature.

    Args:
        path: ``.onnx`` file with its ``.json``; ``None`` for the bundled model.
        member: for an ensemble, the index (0-based, as its ``members`` list) of the
            member network to rebuild; must be ``None`` for a single model.

    Raises:
        ModelError: no ferkit model, an ensemble without ``member`` (or a single model
            with one), a member index out of range, a member whose entry lacks
            ``model_args`` (ensembles built before ferkit recorded them) or that is
            quantized, or weights that do not fit the named architecture.
        FerkitError: PyTorch or onnx missing (names the extra to install).
    """
    torch = require_torch()
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise FerkitError(f"rebuilding an ONNX model in PyTorch needs onnx: {TRAIN_EXTRA}") from None
    from .calibrate import graph_logit_adjustment
    from .classifier import default_model_path, read_metadata
    from .models import create_model
    from .preprocess import Preprocessing

    path = Path(path) if path is not None else default_model_path()
    if not path.is_file():
        raise ModelError(f"{path}: no such ONNX model file")
    meta = read_metadata(path)
    if "model" not in meta:
        raise ModelError(f"{path.with_suffix('.json')}: metadata lacks 'model' (the architecture name)")
    members = meta.get("members")
    if members is not None and member is None:
        names = ", ".join(f"{i} {m.get('file')}" for i, m in enumerate(members))
        raise ModelError(f"{path}: an ensemble of {len(members)} models ({names}); rebuild one member "
                         f"(member=i), or export it alone (ferkit export {path} --member i --out m.onnx)")
    if members is None and member is not None:
        raise ModelError(f"{path}: not an ensemble; it has no member {member}")
    prefix, spec = "", meta
    if members is not None:
        if not 0 <= member < len(members):
            raise ModelError(f"{path}: no member {member}; the ensemble has members 0-{len(members) - 1}")
        prefix, spec = f"m{member}/", members[member]
        if spec.get("model") == "ensemble":
            raise ModelError(f"{path}: member {member} ({spec.get('file')}) is itself an ensemble; rebuild "
                             "the networks of that file instead")
        if "quantization" in spec:
            raise ModelError(f"{path}: member {member} ({spec.get('file')}) is quantized; its float weights "
                             "are not in the graph")
        if "model_args" not in spec:
            raise ModelError(f"{path}: member {member} ({spec.get('file')}) has no 'model_args' in the .json "
                             "(an ensemble built before ferkit recorded them); add its architecture's "
                             "arguments there or rebuild the ensemble")
    pre = Preprocessing.from_dict(meta["preprocessing"])
    model = create_model(spec["model"], num_classes=len(meta["class_names"]), in_chans=meta.get("in_chans", 1),
                         input_size=pre.input_size, **spec.get("model_args", {}))
    graph = onnx.load(str(path)).graph
    head = prefix + "model."
    weights = {i.name[len(head):]: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in graph.initializer if i.name.startswith(head)}
    bias = graph_logit_adjustment(path, prefix)  # None for a graph without a logit adjustment
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    wrong = [k for k in state if k in weights and tuple(weights[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        hint = (" (an untrained network's equal tensors, e.g. fresh batch-norm statistics, are merged by the "
                "ONNX exporter and cannot be rebuilt)") if missing and not wrong else ""
        raise ModelError(f"{path}{f' member {member}' if prefix else ''}: weights do not fit {spec['model']} "
                         f"{spec.get('model_args', {})}: missing {missing[:5]}, wrong shape {wrong[:5]}{hint}")
    state.update({k: v for k, v in weights.items() if k in state})
    model.load_state_dict(state)
    return TorchModel(model.eval(), tuple(meta["class_names"]), pre,
                      temperature=float(spec.get("temperature", 1.0)), tta=spec.get("tta", "none"),
                      logit_bias=bias)


def load_torch_model(path: str | os.PathLike | None) -> TorchModel:
    """A :class:`TorchModel` from an ``.onnx`` model, a ``.pt`` checkpoint or ``None`` (bundled).

    Raises:
        ModelError: another file type or a bad file.
    """
    if path is None or str(path).endswith(".onnx"):
        return torch_model_from_onnx(path)
    if str(path).endswith(".pt"):
        require_torch()
        from .checkpoint import load_checkpoint
        from .preprocess import Preprocessing

        model, ckpt = load_checkpoint(path)
        return TorchModel(model, tuple(ckpt["class_names"]), Preprocessing.from_dict(ckpt["preprocessing"]),
                          temperature=float(ckpt.get("temperature", 1.0)))
    raise ModelError(f"{path}: expected an .onnx model or a .pt checkpoint")


def _last_pool(model):
    from torch import nn

    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    if not pools:
        raise ModelError(f"{type(model).__name__} has no pooling layer for Grad-CAM to hook")
    return pools[-1]


def grad_cam(tm: TorchModel, images: np.ndarray, targets: np.ndarray | None = None,
             batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM heat maps (Selvaraju et al., ICCV 2017) at the input of the last pooling layer.

    Args:
        tm: the model (:func:`load_torch_model`).
        images: (N, 1, S, S) float32 model input (``prepare_faces`` output).
        targets: (N,) int classes to explain; None: each image's predicted class.
        batch_size: images per forward/backward pass.

    Returns:
        ``(cams, logits)``: cams (N, S, S) float32 in [0, 1] (each map divided by its
        maximum; all zeros where nothing speaks for the class), logits (N, C) float32.
    """
    torch = require_torch()
    import torch.nn.functional as F

    pool = _last_pool(tm.model)
    acts: list = []
    handle = pool.register_forward_hook(lambda m, inp, out: acts.append(inp[0]))
    cams, all_logits = [], []
    try:
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size], dtype=np.float32))
            x.requires_grad_(True)  # activations get a gradient even with frozen weights
            acts.clear()
            with torch.enable_grad():
                logits = tm.logits(x)  # (B, C); acts: one (B, K, h, w) per pass
                cls = logits.argmax(1) if targets is None else torch.as_tensor(targets[i:i + batch_size])
                score = logits.gather(1, cls.long().view(-1, 1)).sum()
                grads = torch.autograd.grad(score, acts)
            s = x.shape[-1]
            crop = getattr(tm.model, "crop", 0)
            lin = torch.zeros(x.shape[0], 1, s, s)
            for (a, g), (view, where) in zip(zip(acts, grads), tm.views(x)):
                m = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True)  # (B, 1, h, w)
                v = view.shape[-1]
                seen = crop if 0 < crop < v else v  # a network with a crop sees the view's centre
                m = F.interpolate(m, size=(seen, seen), mode="bilinear", align_corners=False)
                o = (v - seen) // 2
                m = F.pad(m, (o, v - seen - o, o, v - seen - o))  # over the view
                if where == ("flip",):  # the mirror pass, mapped back onto the face
                    lin = lin + torch.flip(m, dims=[3])
                elif where and where[0] == "pad":  # the face shrunk into the view: taken out, enlarged
                    _, o, n = where[:3]
                    if where[3:] == ("flip",):
                        m = torch.flip(m, dims=[3])
                    lin = lin + F.interpolate(m[:, :, o:o + n, o:o + n], size=(s, s), mode="bilinear",
                                              align_corners=False)
                elif where:  # a crop (zoomed, or a ten-crop corner), put back onto its place
                    _, y0, x0, c = where[:4]
                    if where[4:] == ("flip",):
                        m = torch.flip(m, dims=[3])
                    m = F.interpolate(m, size=(c, c), mode="bilinear", align_corners=False)
                    lin = lin + F.pad(m, (x0, s - x0 - c, y0, s - y0 - c))
                else:
                    lin = lin + m
            cam = torch.relu(lin)[:, 0].detach()  # (B, S, S)
            peak = cam.flatten(1).max(1).values.clamp_min(1e-12).view(-1, 1, 1)
            cams.append((cam / peak).numpy())
            all_logits.append(logits.detach().numpy())
    finally:
        handle.remove()
    return np.concatenate(cams).astype(np.float32), np.concatenate(all_logits).astype(np.float32)


def feature_maps(tm: TorchModel, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The activations after each pooling stage for one face (forward hooks).

    Args:
        tm: the model.
        image: (1, S, S) float32 model input of one face.

    Returns:
        ``[(module name, (K, h, w) float32), ...]`` in forward order.
    """
    torch = require_torch()
    from torch import nn

    out: list[tuple[str, np.ndarray]] = []
    handles = [m.register_forward_hook(lambda m, i, o, name=name: out.append((name, o[0].detach().numpy())))
               for name, m in tm.model.named_modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    try:
        with torch.no_grad():
            tm.model(torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)))
    finally:
        for h in handles:
            h.remove()
    return out


def overlay(gray: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heat map over a face: (S, S) uint8 gray face, (S', S') cam in [0, 1] ->
    (S, S, 3) uint8 BGR (JET colour map: red = most important)."""
    cam = cv2.resize(cam.astype(np.float32), gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.uint8(255 * cam.clip(0, 1)), cv2.COLORMAP_JET)
    return cv2.addWeighted(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), 1 - alpha, heat, alpha, 0)


def explain_image(image: str | os.PathLike, out_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                  detector: str = "auto", margin: float | None = None) -> dict:
    """Grad-CAM of every face in a photo: writes ``out_dir/<stem>_gradcam.png`` (the photo
    with each face's heat map over its crop, boxes and labels drawn) and returns the
    faces as ``ferkit predict`` gives them, plus ``"gradcam"`` (the written path).
    ``margin`` as :class:`~ferkit.recognize.Recognizer`'s (``None``: its default). Every
    face is classified by ``model`` itself, small ones too (no routing to the bundled
    ``small-faces`` network), on the box's square crop as it lies (no levelling of rolled
    faces), so each heat map explains the label drawn beside it.

    Raises:
        ImageReadError: unreadable image.
        FerkitError: PyTorch missing.
    """
    from .detect import create_detector
    from .draw import draw_faces
    from .images import read_image
    from .preprocess import prepare_faces
    from .recognize import Recognizer, default_margin, square_crop

    tm = load_torch_model(model)
    det = create_detector(detector)
    margin = default_margin(det) if margin is None else margin
    bgr = read_image(image)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    detections = det.detect(bgr)
    if model is not None and str(model).endswith(".pt"):
        faces = _classify_torch(tm, gray, detections, margin)
    else:  # the same ONNX Runtime probabilities as `ferkit predict`
        faces = Recognizer(model, detector=det, margin=margin, small_faces=None,
                           align_above=None).classify(bgr, detections)
    canvas = bgr.copy()
    if detections:
        crops = [square_crop(gray, d.box, margin) for d in detections]
        cams, _ = grad_cam(tm, prepare_faces(crops, tm.preprocessing),
                           np.array([tm.class_names.index(f.label) for f in faces]))
        for det, crop, cam in zip(detections, crops, cams):
            _paste(canvas, overlay(crop, cam), det.box, margin)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{Path(image).stem}_gradcam.png"
    if not cv2.imwrite(str(path), draw_faces(canvas, faces, landmarks=False)):  # the heat maps, unmarked
        raise OSError(f"could not write {path}")
    return {"image": str(image), "faces": [f.to_dict() for f in faces], "gradcam": str(path),
            **({} if faces else {"message": "no face found"})}


def _classify_torch(tm: TorchModel, gray, detections, margin):
    torch = require_torch()
    from .preprocess import prepare_faces, softmax
    from .recognize import Face, square_crop

    if not detections:
        return []
    x = torch.from_numpy(prepare_faces([square_crop(gray, d.box, margin) for d in detections], tm.preprocessing))
    with torch.no_grad():
        probs = softmax(tm.logits(x).numpy() / tm.temperature)
    faces = []
    for det, p in zip(detections, probs):
        k = int(p.argmax())
        faces.append(Face(det.box, {n: float(v) for n, v in zip(tm.class_names, p)}, tm.class_names[k],
                          float(p[k]), det.confidence))
    return faces


def _paste(canvas: np.ndarray, tile: np.ndarray, box, margin: float) -> None:
    """Put a square crop's overlay back where :func:`~ferkit.recognize.square_crop` took it."""
    from .recognize import _square

    x0, y0, side = _square(box, margin)
    H, W = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
    if cx1 > cx0 and cy1 > cy0:
        canvas[cy0:cy1, cx0:cx1] = tile[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]

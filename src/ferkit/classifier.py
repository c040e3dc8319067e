"""Emotion classification of face crops with ONNX Runtime (no PyTorch needed).

A ferkit ONNX model is two files side by side: ``NAME.onnx`` (input ``images``
(B, 1, S, S) float32 with a dynamic batch axis; outputs ``logits`` and ``probs``, both
(B, C) float32) and ``NAME.json`` (class names, preprocessing, provenance, recorded
metrics and ``temperature``). The bundled default model lives in ``ferkit/weights/``.

Probabilities are calibrated: ``softmax(logits / T)`` with the ``temperature`` T of the
metadata (fitted on val by ``ferkit calibrate``, :mod:`ferkit.calibrate`; T = 1 when
absent), so "0.9 happy" is right about 9 times in 10 on FER2013-like faces. A model
calibrated with ``ferkit calibrate --logit-adjust`` (the bundled ``default`` and
``ensemble``) has the logit adjustment in its graph: its ``logits`` output is already the
network's logits minus ``tau * log(prior)`` (``logit_adjustment`` in the metadata).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ModelError
from .preprocess import Preprocessing, prepare_faces, softmax

ONNX_FORMAT = "ferkit-onnx-1"


def default_model_path() -> Path:
    """Path of the bundled default ONNX model inside the installed package."""
    return Path(str(resources.files("ferkit") / "weights" / "default.onnx"))


def bundled_models() -> list[str]:
    """Names of the models shipped in ``ferkit/weights/`` (``default``, ``int8``, ...)."""
    return sorted(p.stem for p in default_model_path().parent.glob("*.onnx"))


def resolve_model(model: str | os.PathLike | None) -> Path:
    """The ``.onnx`` path of a model given by path, by bundled name, or ``None`` (default).

    A string naming a bundled model (see :func:`bundled_models`) that is not also an
    existing file resolves to ``ferkit/weights/NAME.onnx``; anything else is a path.
    """
    if model is None:
        return default_model_path()
    if isinstance(model, str) and not Path(model).exists() and model in bundled_models():
        return default_model_path().parent / f"{model}.onnx"
    return Path(model)


def read_metadata(onnx_path: str | os.PathLike) -> dict:
    """Read the ``.json`` metadata beside an ``.onnx`` model.

    Raises:
        ModelError: the JSON is missing, unreadable, or lacks class names or preprocessing.
    """
    meta_path = Path(onnx_path).with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: metadata file missing (expected beside {onnx_path})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{meta_path}: unreadable metadata ({exc})") from None
    for key in ("class_names", "preprocessing"):
        if key not in meta:
            raise ModelError(f"{meta_path}: metadata lacks {key!r}")
    return meta


class OnnxClassifier:
    """Classify grayscale face crops into emotion probabilities with ONNX Runtime.

    Args:
        path: ``.onnx`` file with its ``.json`` beside it, the name of a bundled model
            (``"default"``, ``"int8"``), or ``None`` for the bundled default model.
        threads: intra-op threads for ONNX Runtime; 0 lets it choose (all cores).

    Attributes:
        class_names: the C class names in output order.
        preprocessing: the model's :class:`~ferkit.preprocess.Preprocessing`.
        meta: the whole metadata dict.
        temperature: T of the metadata's ``temperature`` (1.0 when absent).

    Raises:
        ModelError: missing or invalid model or metadata.
    """

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 0):
        import onnxruntime as ort

        self.path = resolve_model(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX model file (bundled models: "
                             f"{', '.join(bundled_models())})")
        self.meta = read_metadata(self.path)
        self.class_names = tuple(self.meta["class_names"])
        self.preprocessing = Preprocessing.from_dict(self.meta["preprocessing"])
        self.temperature = float(self.meta.get("temperature", 1.0))
        if not self.temperature > 0:
            raise ModelError(f"{self.path}: temperature must be > 0, got {self.temperature}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        # No spin-waiting of idle worker threads after a call: in a pipeline they would take
        # the cores from the detector and the decoder (end to end was 2x slower here).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it ({exc})") from None
        self._input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self._logits = "logits" if "logits" in outputs else outputs[0]

    def predict_logits(self, faces, batch_size: int = 256) -> np.ndarray:
        """Logits for grayscale faces.

        Args:
            faces: (N, H, W) uint8 array or a list of (H_i, W_i) uint8 gray crops;
                each is resized to the model's input size.
            batch_size: faces per ONNX Runtime call.

        Returns:
            (N, C) float32 logits; (0, C) for no faces.
        """
        n = len(faces)
        if n == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        out = []
        for i in range(0, n, batch_size):
            images = prepare_faces(faces[i:i + batch_size], self.preprocessing)
            out.append(self.session.run([self._logits], {self._input: images})[0])
        return np.concatenate(out).astype(np.float32)

    def predict_probs(self, faces, batch_size: int = 256) -> np.ndarray:
        """Calibrated probabilities for grayscale faces: ``softmax(logits / temperature)``,
        (N, C) float32 in [0, 1], rows summing to 1."""
        return softmax(self.predict_logits(faces, batch_size) / self.temperature)

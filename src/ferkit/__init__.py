"""ferkit: facial expression recognition, from FER2013 to the emotions of every face in a photo.

Runtime API (NumPy, OpenCV, ONNX Runtime only)::

    from ferkit import Recognizer
    faces = Recognizer().predict("photo.jpg")   # [Face(box=(x, y, w, h), probs={...}, label, score)]

Research API (``pip install ferkit[train]``): :func:`ferkit.data.load_fer2013`,
:func:`ferkit.models.create_model`, :mod:`ferkit.train`, :mod:`ferkit.evaluate`,
:mod:`ferkit.export`.
"""

from .classifier import OnnxClassifier
from .data import FERDataset, Split, load_fer2013
from .detect import Detection, Detector, HaarDetector, create_detector, register_detector
from .errors import DataError, FerkitError, ImageReadError, ModelError
from .labels import EMOTIONS, resolve_classes
from .recognize import Face, ImageResult, Recognizer

__version__ = "0.1.0"


def __getattr__(name):
    # PyTorch-dependent parts load on first use, so the runtime never imports torch.
    if name in ("create_model", "list_models", "register_model"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")


__all__ = [
    "EMOTIONS", "DataError", "Detection", "Detector", "FERDataset", "Face", "FerkitError",
    "HaarDetector", "ImageReadError", "ImageResult", "ModelError", "OnnxClassifier", "Recognizer",
    "Split", "create_detector", "create_model", "list_models", "load_fer2013", "register_detector",
    "register_model", "resolve_classes",
]

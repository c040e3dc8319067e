"""Evaluating a model on one split: metrics with scikit-learn, figures with matplotlib.

Metrics: accuracy, macro F1, per-class precision/recall/F1 (``classification_report``),
top-2 and top-3 accuracy, confusion matrix (counts and row-normalised), one-vs-rest ROC
curves with AUC. Report PrivateTest (``test``) figures; choose anything on ``val``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .data import load_fer2013
from .errors import DataError, ModelError


def load_classifier(path: str | os.PathLike | None):
    """Load a model for evaluation: an ``.onnx`` file (with its ``.json`` metadata), a
    ferkit ``.pt`` checkpoint, a bundled model's name (``default``, ``int8``,
    ``ensemble``), or ``None`` for the bundled default model.

    Returns:
        An object with ``class_names``, ``preprocessing``, ``temperature``,
        ``predict_logits(faces)`` taking (N, S, S) uint8 faces and returning (N, C)
        float32 logits, and ``predict_probs(faces)`` returning ``softmax(logits / T)``.

    Raises:
        ModelError: unknown file type, or a file that is not a ferkit model.
    """
    from .classifier import OnnxClassifier, resolve_model

    if path is not None and not str(path).endswith(".pt"):
        path = resolve_model(path)
    if path is None or str(path).endswith(".onnx"):
        return OnnxClassifier(path)
    if str(path).endswith(".pt"):
        return TorchClassifier(path)
    raise ModelError(f"{path}: expected an .onnx model or a .pt checkpoint")


class TorchClassifier:
    """A ferkit PyTorch checkpoint behind the same interface as :class:`OnnxClassifier`."""

    def __init__(self, path: str | os.PathLike):
        from .checkpoint import load_checkpoint
        from .preprocess import Preprocessing

        self.model, self.meta = load_checkpoint(path)
        self.class_names = tuple(self.meta["class_names"])
        self.preprocessing = Preprocessing.from_dict(self.meta["preprocessing"])
        self.temperature = float(self.meta.get("temperature", 1.0))

    def predict_logits(self, faces: np.ndarray) -> np.ndarray:
        from .train import predict_logits

        return predict_logits(self.model, faces, self.preprocessing)

    def predict_probs(self, faces: np.ndarray) -> np.ndarray:
        """``softmax(logits / temperature)``: (N, C) float32 (T = 1 unless the checkpoint has one)."""
        from .preprocess import softmax

        return softmax(self.predict_logits(faces) / self.temperature)


def data_classes(class_names) -> str:
    """The ``classes`` argument of :func:`~ferkit.data.load_fer2013` that gives a model's
    classes: ``"6"`` for the merged six-class set (disgust counted as angry), else the
    comma-joined class names."""
    if tuple(class_names) == ("angry", "fear", "happy", "sad", "surprise", "neutral"):
        return "6"  # the merged set: disgust faces count as angry
    return ",".join(class_names)


def compute_metrics(targets: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """All evaluation figures for one split.

    Args:
        targets: (N,) int64 true class indices in [0, C).
        probs: (N, C) float32 probabilities, rows summing to 1.
        class_names: the C class names.

    Returns:
        A JSON-ready dict: ``n``, ``accuracy``, ``macro_f1``, ``top2_accuracy``,
        ``top3_accuracy``, ``per_class`` (precision, recall, f1, support, roc_auc),
        ``confusion_matrix`` (counts, rows = true class), ``confusion_matrix_normalized``
        (rows sum to 1), ``roc`` (per class fpr/tpr/auc). Accuracies are fractions in
        [0, 1].
    """
    from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix, f1_score,
                                 roc_auc_score, roc_curve, top_k_accuracy_score)

    labels = np.arange(len(class_names))
    preds = probs.argmax(1)
    report = classification_report(targets, preds, labels=labels, target_names=list(class_names),
                                    output_dict=True, zero_division=0)
    cm = confusion_matrix(targets, preds, labels=labels)
    cm_norm = confusion_matrix(targets, preds, labels=labels, normalize="true")
    roc, per_class = {}, {}
    for i, name in enumerate(class_names):
        positives = targets == i
        auc = None
        if positives.any() and not positives.all():
            fpr, tpr, _ = roc_curve(positives, probs[:, i])
            auc = float(roc_auc_score(positives, probs[:, i]))
            roc[name] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist(), "auc": auc}
        r = report[name]
        per_class[name] = {"precision": r["precision"], "recall": r["recall"], "f1": r["f1-score"],
                           "support": int(r["support"]), "roc_auc": auc}
    metrics = {
        "n": int(len(targets)),
        "accuracy": float(accuracy_score(targets, preds)),
        "macro_f1": float(f1_score(targets, preds, labels=labels, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": np.nan_to_num(cm_norm).round(4).tolist(),
        "roc": roc,
    }
    for k in (2, 3):
        if len(class_names) > k:
            metrics[f"top{k}_accuracy"] = float(top_k_accuracy_score(targets, probs, k=k, labels=labels))
    return metrics


def evaluate(model_path: str | os.PathLike | None, data: str | os.PathLike, split: str = "test",
             out: str | os.PathLike | None = None, classes: str | None = None,
             equalize: bool | None = None) -> dict:
    """Evaluate a model on one split of a dataset and write the figures.

    Args:
        model_path: ``.onnx`` / ``.pt`` file, or ``None`` for the bundled model.
        data: FER2013 CSV file, image-folder root or ``ferkit pack`` file.
        split: ``train``, ``val`` or ``test``.
        out: folder for ``metrics.json``, ``confusion_matrix.png``,
            ``confusion_matrix_normalized.png`` and ``roc.png``; nothing written if None.
        classes: class set of the data; default: the model's classes (``all`` for
            seven classes, ``6`` for the six-class set, else the model's class names).
        equalize: override the model's histogram-equalisation setting (to compare both
            on val before exporting with ``ferkit export --equalize``); None keeps it.

    Returns:
        The metrics dict of :func:`compute_metrics` (on the model's calibrated probs,
        ``softmax(logits / T)``), plus ``model``, ``data``, ``split``, ``temperature``
        and ``class_names``.

    Raises:
        DataError: the data cannot be read, or ``split`` has no faces (a pack written
            without it).
        ModelError: the model cannot be loaded, or classifies other classes.
    """
    clf = load_classifier(model_path)
    if equalize is not None:
        clf.preprocessing = dataclasses.replace(clf.preprocessing, equalize=equalize)
    if classes is None:
        classes = data_classes(clf.class_names)
    dataset = load_fer2013(data, classes, image_size=clf.preprocessing.input_size)
    if tuple(dataset.class_names) != tuple(clf.class_names):
        raise ModelError(f"model classes {clf.class_names} differ from data classes {dataset.class_names}")
    s = dataset[split]
    if len(s) == 0:  # e.g. a `ferkit pack` of train and val only
        raise DataError(f"{data}: the {split} split is empty: there is nothing to evaluate")
    probs = clf.predict_probs(s.images)  # calibrated: softmax(logits / T)
    metrics = compute_metrics(s.targets, probs, dataset.class_names)
    metrics = {"model": str(model_path or "bundled default"), "data": str(data), "split": split,
               "preprocessing": clf.preprocessing.to_dict(), "temperature": clf.temperature,
               "class_names": list(dataset.class_names), **metrics}
    if out is not None:
        write_report(metrics, Path(out))
    return metrics


def write_report(metrics: dict, out: Path) -> None:
    """Write ``metrics.json`` and the confusion-matrix and ROC PNGs into ``out``."""
    from .plots import plot_confusion, plot_roc

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    names, split = metrics["class_names"], metrics["split"]
    plot_confusion(np.array(metrics["confusion_matrix"]), names, out / "confusion_matrix.png",
                   normalized=False, title=f"confusion matrix ({split}, counts)")
    plot_confusion(np.array(metrics["confusion_matrix_normalized"]), names,
                   out / "confusion_matrix_normalized.png", normalized=True,
                   title=f"confusion matrix ({split}, row-normalised)")
    plot_roc(metrics["roc"], out / "roc.png", title=f"one-vs-rest ROC ({split})")


def format_summary(m: dict) -> str:
    """A short text table of the headline figures and per-class scores."""
    lines = [f"{m['model']} on {m['split']} ({m['n']} faces): accuracy {m['accuracy']:.4f}, "
             f"macro F1 {m['macro_f1']:.4f}"
             + "".join(f", top-{k} {m[f'top{k}_accuracy']:.4f}" for k in (2, 3) if f"top{k}_accuracy" in m),
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'auc':>8}{'support':>9}"]
    for name, r in m["per_class"].items():
        auc = f"{r['roc_auc']:.3f}" if r["roc_auc"] is not None else "-"
        lines.append(f"{name:<10}{r['precision']:>10.3f}{r['recall']:>10.3f}{r['f1']:>10.3f}"
                     f"{auc:>8}{r['support']:>9}")
    return "\n".join(lines)


def record_metrics(model_path: str | os.PathLike | None, metrics: dict) -> Path:
    """Store the headline figures of ``metrics`` under ``metrics.<split>`` in the
    ``.json`` metadata of an ONNX model (``None``: the bundled model); returns its path.

    Raises:
        ModelError: the model is not an ``.onnx`` file, or the figures were measured
            with other preprocessing than the model's.
    """
    from .classifier import default_model_path, read_metadata
    from .preprocess import Preprocessing

    onnx_path = Path(model_path) if model_path is not None else default_model_path()
    if onnx_path.suffix != ".onnx":
        raise ModelError(f"{onnx_path}: figures can be recorded for .onnx models only")
    meta = read_metadata(onnx_path)
    model_pre = Preprocessing.from_dict(meta["preprocessing"]).to_dict()
    if metrics.get("preprocessing", model_pre) != model_pre:
        raise ModelError(f"{onnx_path}: these figures were measured with other preprocessing "
                         f"({metrics['preprocessing']}) than the model's ({meta['preprocessing']})")
    keys = ("n", "accuracy", "macro_f1", "top2_accuracy", "top3_accuracy")
    entry = {k: metrics[k] for k in keys if k in metrics}
    entry["recall"] = {c: round(r["recall"], 4) for c, r in metrics["per_class"].items()}
    entry["data"] = Path(metrics["data"]).name
    meta.setdefault("metrics", {})[metrics["split"]] = entry
    json_path = onnx_path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1))
    return json_path

"""Calibration: expected calibration error, reliability diagrams and temperature scaling.

Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
Networks", ICML 2017) divides a model's logits by one scalar T > 0 fitted on val by
minimising the negative log-likelihood; it changes no prediction (argmax and top-k stay
the same), only how confident the probabilities are. ferkit stores T as ``temperature``
in a model's ``.json`` metadata; :class:`~ferkit.classifier.OnnxClassifier` then returns
``softmax(logits / T)`` (T = 1 when absent), and :func:`calibrate_model` also bakes T
into the ONNX graph's ``probs`` output, so users of the bare ``.onnx`` get the same
calibrated probabilities.

The expected calibration error (ECE, Naeini et al., AAAI 2015; Guo et al. 2017) uses 15
equal-width bins of confidence (the top probability) over [0, 1], binned as
``sklearn.calibration.calibration_curve`` bins.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import FerkitError, ModelError

N_BINS = 15
TEMPERATURE_INIT = "ferkit_temperature"  # name of T's initializer in a calibrated ONNX graph


def _check(probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, targets = np.asarray(probs), np.asarray(targets)
    if probs.ndim != 2 or targets.ndim != 1 or len(probs) != len(targets):
        raise FerkitError(f"expected probs (N, C) and targets (N,), got {probs.shape} and {targets.shape}")
    if len(targets) == 0:
        raise FerkitError("calibration needs at least one sample, got none")
    return probs, targets


def reliability(probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Per-bin accuracy and mean confidence of the top prediction.

    Args:
        probs: (N, C) float probabilities in [0, 1], rows summing to 1.
        targets: (N,) int true class indices in [0, C).
        n_bins: equal-width confidence bins over [0, 1].

    Returns:
        ``{"accuracy": (B,), "confidence": (B,), "count": (B,) int, "edges": (n_bins + 1,)}``
        for the B non-empty bins (accuracy and confidence as fractions in [0, 1]),
        accuracy and confidence from ``sklearn.calibration.calibration_curve``.

    Raises:
        FerkitError: mismatched shapes or no samples.
    """
    from sklearn.calibration import calibration_curve

    probs, targets = _check(probs, targets)
    confidence = probs.max(1).astype(np.float64).clip(0.0, 1.0)
    correct = (probs.argmax(1) == targets).astype(int)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    accuracy, mean_conf = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
    # Same bin assignment as calibration_curve (searchsorted on the inner edges), so the
    # counts line up with its non-empty bins.
    count = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins)
    return {"accuracy": accuracy, "confidence": mean_conf, "count": count[count > 0], "edges": edges}


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.

    Args:
        probs: (N, C) probabilities; targets: (N,) int class indices.
        n_bins: equal-width confidence bins (15, as in Guo et al. 2017).

    Returns:
        The ECE as a fraction in [0, 1] (0: perfectly calibrated).
    """
    r = reliability(probs, targets, n_bins)
    return float(np.sum(r["count"] / r["count"].sum() * np.abs(r["accuracy"] - r["confidence"])))


def apply_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)``: (N, C) logits -> (N, C) float32 probs, rows summing to 1."""
    from .preprocess import softmax

    if not temperature > 0:
        raise FerkitError(f"temperature must be > 0, got {temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T minimising the mean negative log-likelihood of ``softmax(logits / T)``.

    Args:
        logits: (N, C) float logits of the val split (never the test split).
        targets: (N,) int true class indices in [0, C).

    Returns:
        T in [0.05, 20] (T > 1 softens over-confident probabilities, T < 1 sharpens).

    Raises:
        FerkitError: mismatched shapes or no samples.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits, targets = _check(np.asarray(logits, dtype=np.float64), targets)
    rows = np.arange(len(targets))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, targets].mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def set_graph_temperature(onnx_path: str | os.PathLike, temperature: float) -> None:
    """Make the ONNX graph's ``probs`` output ``softmax(logits / T)``: insert (or update) a
    division by the scalar initializer ``ferkit_temperature`` before its softmax.
    ``logits`` stay untouched.

    Raises:
        ModelError: the graph has no ``probs`` output made by a Softmax node.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = Path(onnx_path)
    model = onnx.load(str(path))
    graph = model.graph
    value = numpy_helper.from_array(np.array(temperature, dtype=np.float32), TEMPERATURE_INIT)
    for i, init in enumerate(graph.initializer):
        if init.name == TEMPERATURE_INIT:  # already calibrated: update T
            graph.initializer[i].CopyFrom(value)
            break
    else:
        softmax = [n for n in graph.node if "probs" in n.output and n.op_type == "Softmax"]
        if not softmax:
            raise ModelError(f"{path}: no Softmax node makes the 'probs' output; cannot set a temperature")
        node = softmax[0]
        scaled = "ferkit_scaled_logits"
        div = helper.make_node("Div", [node.input[0], TEMPERATURE_INIT], [scaled], name="ferkit_temperature_div")
        node.input[0] = scaled
        graph.initializer.append(value)
        graph.node.insert(list(graph.node).index(node), div)
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def calibrate_model(model_path: str | os.PathLike | None, data: str | os.PathLike,
                    graph: bool = True) -> dict:
    """Fit the temperature of an ONNX model on the val split and store it.

    Writes ``temperature`` and ``calibration`` (T, the val split's size, its NLL and ECE
    before and after) into the model's ``.json``; with ``graph``, also bakes T into the
    ONNX graph's ``probs`` output (:func:`set_graph_temperature`) and checks ONNX
    Runtime's ``probs`` against ``softmax(logits / T)``.

    Args:
        model_path: ``.onnx`` model (``.json`` beside it), or ``None`` for the bundled one.
        data: FER2013 CSV or image-folder root (its ``val`` split is used).
        graph: also change the ONNX graph.

    Returns:
        The ``calibration`` dict written.

    Raises:
        ModelError: not an ``.onnx`` model, or the calibrated graph disagrees.
        DataError: unreadable data.
    """
    from sklearn.metrics import log_loss

    from .classifier import OnnxClassifier, default_model_path, read_metadata
    from .data import load_fer2013
    from .evaluate import data_classes

    onnx_path = Path(model_path) if model_path is not None else default_model_path()
    if onnx_path.suffix != ".onnx":
        raise ModelError(f"{onnx_path}: only .onnx models can be calibrated (export the checkpoint first)")
    clf = OnnxClassifier(onnx_path)
    dataset = load_fer2013(data, data_classes(clf.class_names), image_size=clf.preprocessing.input_size)
    val = dataset["val"]
    if len(val.targets) == 0:
        raise FerkitError(f"{data}: the val split is empty; the temperature is fitted on val")
    logits = clf.predict_logits(val.images)
    t = fit_temperature(logits, val.targets)
    labels = np.arange(len(clf.class_names))
    before, after = apply_temperature(logits, 1.0), apply_temperature(logits, t)
    calibration = {
        "method": "temperature scaling (Guo et al., ICML 2017), fitted on val by NLL",
        "temperature": round(t, 5), "split": "val", "n": int(len(val.targets)), "data": Path(data).name,
        "nll_before": float(log_loss(val.targets, before, labels=labels)),
        "nll_after": float(log_loss(val.targets, after, labels=labels)),
        "ece_before": expected_calibration_error(before, val.targets),
        "ece_after": expected_calibration_error(after, val.targets),
        "ece_bins": N_BINS,
        "graph_probs_calibrated": bool(graph),
    }
    if graph:
        set_graph_temperature(onnx_path, calibration["temperature"])
        check = OnnxClassifier(onnx_path)
        x = val.images[:64]
        out_logits, out_probs = check.session.run(["logits", "probs"], {check._input: _prepared(check, x)})
        diff = float(np.abs(out_probs - apply_temperature(out_logits, calibration["temperature"])).max())
        if diff >= 1e-5:
            raise ModelError(f"{onnx_path}: calibrated graph's probs differ from softmax(logits / T) by {diff}")
    meta = read_metadata(onnx_path)
    meta["temperature"] = calibration["temperature"]
    meta["calibration"] = calibration
    if "probs" in meta.get("outputs", {}):
        meta["outputs_note"] = ("probs = softmax(logits / temperature)" if graph
                                else "probs in the graph are uncalibrated: softmax(logits)")
    json_path = onnx_path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1))
    return calibration


def _prepared(clf, faces: np.ndarray) -> np.ndarray:
    from .preprocess import prepare_faces

    return prepare_faces(faces, clf.preprocessing)


def format_calibration(c: dict) -> str:
    """One line: T and the NLL / ECE before and after on the fitted split."""
    return (f"temperature {c['temperature']:.4f} (fitted on {c['split']}, {c['n']} faces): "
            f"NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, "
            f"ECE {100 * c['ece_before']:.2f}% -> {100 * c['ece_after']:.2f}%")

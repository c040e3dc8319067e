"""Calibration: expected calibration error, reliability diagrams and temperature scaling.

Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
Networks", ICML 2017) divides a model's logits by one scalar T > 0 fitted on val by
minimising the negative log-likelihood; it changes no prediction (argmax and top-k stay
the same), only how confident the probabilities are. ferkit stores T as ``temperature``
in a model's ``.json`` metadata; :class:`~ferkit.classifier.OnnxClassifier` then returns
``softmax(logits / T)`` (T = 1 when absent), and :func:`calibrate_model` also bakes T
into the ONNX graph's ``probs`` output, so users of the bare ``.onnx`` get the same
calibrated probabilities.

Logit adjustment (Menon, Jayasumana, Rawat, Jain, Veit & Kumar, "Long-tail learning via
logit adjustment", ICLR 2021; its post-hoc form) subtracts ``tau * log(prior)`` from the
logits, ``prior`` being the train split's class frequencies: rare classes (disgust is 1.5%
of FER2013 Training) are predicted more often, at the cost of common ones. ``ferkit
calibrate --logit-adjust`` chooses ``tau`` on val (:func:`fit_logit_adjustment`), bakes the
subtraction into the graph's ``logits`` output (:func:`set_graph_logit_adjustment`; every
user of the model, its probabilities and labels, then gets it) and fits the temperature
on the adjusted logits. Unlike temperature scaling it changes predictions.

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
ADJUSTMENT_INIT = "ferkit_logit_adjustment"  # the (1, C) tau * log(prior) a graph's logits subtract
RAW_LOGITS = "ferkit_raw_logits"  # the network's own logits in an adjusted graph
TAUS = tuple(round(0.05 * i, 2) for i in range(21))  # the tau grid: 0, 0.05, ..., 1


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


def fit_logit_adjustment(logits: np.ndarray, targets: np.ndarray, prior: np.ndarray,
                         taus=TAUS) -> tuple[float, list[dict]]:
    """Choose tau of the post-hoc logit adjustment ``logits - tau * log(prior)`` (Menon et
    al., ICLR 2021) on val: the tau with the highest macro F1 among those whose accuracy is
    at least the unadjusted one (tau = 0), the smallest such tau on ties; 0 when no tau
    beats tau = 0's macro F1.

    Args:
        logits: (N, C) float logits of the val split (never the test split), unadjusted.
        targets: (N,) int true class indices in [0, C).
        prior: (C,) class frequencies of the train split, each > 0 (they need not sum to 1).
        taus: the grid of tau values tried (>= 0; 0 is always included).

    Returns:
        ``(tau, table)``: the chosen tau, and per tau tried a dict ``tau``, ``accuracy``,
        ``macro_f1`` (fractions in [0, 1]) and ``recall`` ((C,) list of fractions), the
        metrics from scikit-learn.

    Raises:
        FerkitError: mismatched shapes, no samples, or a prior that is not positive.
    """
    from sklearn.metrics import f1_score, recall_score

    logits, targets = _check(np.asarray(logits, dtype=np.float64), targets)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (logits.shape[1],) or not (prior > 0).all():
        raise FerkitError(f"prior must hold {logits.shape[1]} positive class frequencies, got {prior}")
    labels = np.arange(logits.shape[1])
    table = []
    for tau in sorted({0.0, *map(float, taus)}):
        pred = (logits - tau * np.log(prior)).argmax(1)
        table.append({"tau": tau, "accuracy": float(np.mean(pred == targets)),
                      "macro_f1": float(f1_score(targets, pred, labels=labels, average="macro", zero_division=0)),
                      "recall": recall_score(targets, pred, labels=labels, average=None, zero_division=0).tolist()})
    base = table[0]
    allowed = [r for r in table if r["accuracy"] >= base["accuracy"] and r["macro_f1"] > base["macro_f1"]]
    best = max(allowed, key=lambda r: (r["macro_f1"], -r["tau"])) if allowed else base
    return best["tau"], table


def _save_graph(model, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def set_graph_logit_adjustment(onnx_path: str | os.PathLike, bias: np.ndarray) -> None:
    """Make the ONNX graph's ``logits`` output ``raw logits - bias``: the node that made
    ``logits`` now makes ``ferkit_raw_logits``, and a subtraction of the (1, C) initializer
    ``ferkit_logit_adjustment`` makes ``logits``, so everything computed from them (the
    calibrated ``probs``) follows. A graph already adjusted gets its bias replaced.

    Args:
        onnx_path: the ``.onnx`` file, changed in place.
        bias: (C,) float, e.g. ``tau * log(prior)``; zeros undo an adjustment.

    Raises:
        ModelError: the graph has no ``logits`` output, or ``bias`` does not fit it.
    """
    import onnx
    from onnx import helper, numpy_helper

    path = Path(onnx_path)
    model = onnx.load(str(path))
    graph = model.graph
    bias = np.asarray(bias, dtype=np.float32).reshape(1, -1)
    out = [o for o in graph.output if o.name == "logits"]
    dims = out[0].type.tensor_type.shape.dim if out else []
    if not out or len(dims) != 2 or (dims[1].HasField("dim_value") and dims[1].dim_value != bias.shape[1]):
        raise ModelError(f"{path}: no (batch, {bias.shape[1]}) 'logits' output to adjust")
    value = numpy_helper.from_array(bias, ADJUSTMENT_INIT)
    for i, init in enumerate(graph.initializer):
        if init.name == ADJUSTMENT_INIT:  # already adjusted: replace the bias
            graph.initializer[i].CopyFrom(value)
            break
    else:
        producer = next((n for n in graph.node if "logits" in n.output), None)
        if producer is None:
            raise ModelError(f"{path}: no node makes the 'logits' output; cannot adjust it")
        producer.output[list(producer.output).index("logits")] = RAW_LOGITS
        sub = helper.make_node("Sub", [RAW_LOGITS, ADJUSTMENT_INIT], ["logits"], name="ferkit_logit_adjustment_sub")
        graph.node.insert(list(graph.node).index(producer) + 1, sub)
        graph.initializer.append(value)
    _save_graph(model, path)


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
    _save_graph(model, path)


def graph_logit_adjustment(onnx_path: str | os.PathLike, prefix: str = "") -> np.ndarray | None:
    """The (C,) float32 bias an ONNX graph's ``logits`` subtract
    (:func:`set_graph_logit_adjustment`), or None for a graph without one; ``prefix``
    (``"m1/"``) reads that ensemble member's own bias instead."""
    import onnx
    from onnx import numpy_helper

    for init in onnx.load(str(onnx_path)).graph.initializer:
        if init.name == prefix + ADJUSTMENT_INIT:
            return numpy_helper.to_array(init).reshape(-1).astype(np.float32)
    return None


def calibrate_model(model_path: str | os.PathLike | None, data: str | os.PathLike,
                    graph: bool = True, logit_adjust: bool = False) -> dict:
    """Fit the temperature of an ONNX model on the val split and store it; optionally
    fit a logit adjustment on val first.

    Writes ``temperature`` and ``calibration`` (T, the val split's size, its NLL and ECE
    before and after) into the model's ``.json``; with ``graph``, also bakes T into the
    ONNX graph's ``probs`` output (:func:`set_graph_temperature`) and checks ONNX
    Runtime's ``probs`` against ``softmax(logits / T)``.

    With ``logit_adjust``, first chooses tau on val (:func:`fit_logit_adjustment`, the
    prior from the train split's class counts), bakes ``tau * log(prior)`` into the
    graph's ``logits`` (:func:`set_graph_logit_adjustment`; tau = 0 when it does not help
    on val: the graph is then left alone, or an earlier adjustment zeroed) and writes ``logit_adjustment`` (tau,
    prior, bias, the val accuracy, macro F1 and per-class recall without and with it) into
    the ``.json``; T is then fitted on the adjusted logits. A graph adjusted before is
    refitted from its raw logits.

    Args:
        model_path: ``.onnx`` model (``.json`` beside it), or ``None`` for the bundled one.
        data: FER2013 CSV or image-folder root (its ``val`` split is used, and with
            ``logit_adjust`` its ``train`` split's class counts).
        graph: also change the ONNX graph.
        logit_adjust: fit and bake in the logit adjustment (needs ``graph``).

    Returns:
        The ``calibration`` dict written (with ``logit_adjustment`` in it when fitted).

    Raises:
        ModelError: not an ``.onnx`` model, or the calibrated graph disagrees.
        DataError: unreadable data.
        FerkitError: an empty val split, ``logit_adjust`` without ``graph``, or a class
            missing from the train split (no prior).
    """
    from sklearn.metrics import log_loss

    from .classifier import OnnxClassifier, default_model_path, read_metadata
    from .data import load_fer2013
    from .evaluate import data_classes

    onnx_path = Path(model_path) if model_path is not None else default_model_path()
    if onnx_path.suffix != ".onnx":
        raise ModelError(f"{onnx_path}: only .onnx models can be calibrated (export the checkpoint first)")
    if logit_adjust and not graph:
        raise FerkitError("the logit adjustment lives in the graph's logits: it cannot be stored in the .json only")
    clf = OnnxClassifier(onnx_path)
    dataset = load_fer2013(data, data_classes(clf.class_names), image_size=clf.preprocessing.input_size)
    val = dataset["val"]
    if len(val.targets) == 0:
        raise FerkitError(f"{data}: the val split is empty; the temperature is fitted on val")
    logits = clf.predict_logits(val.images)
    adjustment = None
    if logit_adjust:
        old = graph_logit_adjustment(onnx_path)
        raw = logits + (0.0 if old is None else old)  # the network's own logits
        counts = np.bincount(dataset["train"].targets, minlength=len(clf.class_names))
        if (counts == 0).any():
            missing = [n for n, c in zip(clf.class_names, counts) if c == 0]
            raise FerkitError(f"{data}: the train split has no {', '.join(missing)} face; the prior needs every class")
        prior = counts / counts.sum()
        tau, table = fit_logit_adjustment(raw, val.targets, prior)
        bias = (tau * np.log(prior)).astype(np.float32)
        logits = raw - bias
        if tau > 0 or old is not None:  # a graph that needs no adjustment is left as it is
            set_graph_logit_adjustment(onnx_path, bias)
            clf = OnnxClassifier(onnx_path)
            diff = float(np.abs(clf.predict_logits(val.images[:64]) - logits[:64]).max())
            if diff >= 1e-4:
                raise ModelError(f"{onnx_path}: adjusted graph's logits differ from raw - tau * log(prior) by {diff}")
        chosen = next(r for r in table if r["tau"] == tau)
        adjustment = {
            "method": "post-hoc logit adjustment (Menon et al., ICLR 2021): logits - tau * log(prior)",
            "criterion": "the highest val macro F1 among the taus whose val accuracy is at least tau = 0's",
            "tau": tau, "taus": [r["tau"] for r in table], "split": "val", "n": int(len(val.targets)),
            "data": Path(data).name, "prior": [round(float(p), 6) for p in prior], "prior_split": "train",
            "bias": [round(float(b), 6) for b in bias],
            "val_before": {k: table[0][k] for k in ("accuracy", "macro_f1", "recall")},
            "val_after": {k: chosen[k] for k in ("accuracy", "macro_f1", "recall")},
        }
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
    if adjustment is not None:
        meta["logit_adjustment"] = adjustment
    adjusted = "logit_adjustment" in meta and meta["logit_adjustment"]["tau"] > 0
    if "probs" in meta.get("outputs", {}):
        meta["outputs_note"] = (("logits = raw logits - tau * log(prior) (logit_adjustment); " if adjusted else "")
                                + ("probs = softmax(logits / temperature)" if graph
                                   else "probs in the graph are uncalibrated: softmax(logits)"))
    json_path = onnx_path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=1))
    return {**calibration, **({"logit_adjustment": adjustment} if adjustment is not None else {})}


def _prepared(clf, faces: np.ndarray) -> np.ndarray:
    from .preprocess import prepare_faces

    return prepare_faces(faces, clf.preprocessing)


def format_calibration(c: dict) -> str:
    """One line: T and the NLL / ECE before and after on the fitted split; with a logit
    adjustment, a first line with tau and the val accuracy, macro F1 and rarest class's
    recall without and with it."""
    line = (f"temperature {c['temperature']:.4f} (fitted on {c['split']}, {c['n']} faces): "
            f"NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, "
            f"ECE {100 * c['ece_before']:.2f}% -> {100 * c['ece_after']:.2f}%")
    a = c.get("logit_adjustment")
    if not a:
        return line
    rare = int(np.argmin(a["prior"]))
    b, f = a["val_before"], a["val_after"]
    return (f"logit adjustment tau {a['tau']:.2f} (chosen on {a['split']}, {a['n']} faces): accuracy "
            f"{100 * b['accuracy']:.2f}% -> {100 * f['accuracy']:.2f}%, macro F1 {b['macro_f1']:.4f} -> "
            f"{f['macro_f1']:.4f}, recall of the rarest class ({100 * a['prior'][rare]:.1f}% of train) "
            f"{100 * b['recall'][rare]:.1f}% -> {100 * f['recall'][rare]:.1f}%\n" + line)

"""``ferkit report``: one self-contained HTML file about a model or a training run.

What it holds, all on the test split (PrivateTest) unless said otherwise: accuracy, macro
F1, top-2/top-3 accuracy and per-class precision/recall/F1 with 95% bootstrap confidence
intervals; confusion matrices (counts and row-normalised); one-vs-rest ROC and
precision-recall curves; training curves (for a run); the misclassified faces of each
class with their top-3 guesses and how often the true class is the second or third
guess; calibration (reliability diagrams and ECE before and after temperature scaling
fitted on val, :mod:`ferkit.calibrate`); Grad-CAM heat maps and the feature maps of each
pooling stage (:mod:`ferkit.explain`, when PyTorch is installed); and, with a second
model, a side-by-side comparison. Figures are PNGs embedded as base64 data URIs, the CSS
is inline and there is no script, so the file opens offline in any browser.

Metrics come from scikit-learn (:func:`ferkit.evaluate.compute_metrics`), figures from
matplotlib (:mod:`ferkit.plots`).
"""

from __future__ import annotations

import base64
import csv
import html
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FerkitError, ModelError


@dataclass
class Subject:
    """A model to report on: its classifier, name and (for a run folder) its training history."""

    name: str
    model_path: Path | None
    clf: object
    history: list[dict] = field(default_factory=list)


def resolve_subject(path: str | os.PathLike | None) -> Subject:
    """A run folder (uses ``best.pt`` and ``history.csv``), an ``.onnx`` / ``.pt`` file, or
    ``None`` for the bundled model.

    Raises:
        ModelError: a folder without ``best.pt``, or an unknown file type.
    """
    from .evaluate import load_classifier

    if path is None:
        return Subject("bundled default model", None, load_classifier(None))
    p = Path(path)
    if p.is_dir():
        best = p / "best.pt"
        if not best.is_file():
            raise ModelError(f"{p}: a run folder must hold best.pt (the checkpoint to report on)")
        history = read_history(p / "history.csv") if (p / "history.csv").is_file() else []
        return Subject(f"run {p.name}/best.pt", best, load_classifier(best), history)
    if not p.exists():
        raise ModelError(f"{p}: no such run folder or model file")
    return Subject(p.name, p, load_classifier(p))


def read_history(path: Path) -> list[dict]:
    """``history.csv`` of a training run as a list of ``{column: float}`` rows (epoch int)."""
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    for r in rows:
        r["epoch"] = int(r["epoch"])
    return rows


def true_class_rank(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N,) int: 0 when the true class is the top guess, 1 when it is the second, ...
    (ties counted in the model's favour)."""
    true_p = probs[np.arange(len(targets)), targets]
    return (probs > true_p[:, None]).sum(1)


def bootstrap_ci(targets: np.ndarray, probs: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Percentile bootstrap confidence intervals (Efron & Tibshirani, 1993) of the test metrics.

    The test faces are resampled with replacement ``n_boot`` times (seeded); on each
    resample the confusion matrix is counted, vectorised over all resamples at once with
    one ``np.bincount``, and accuracy, per-class precision/recall/F1 (scikit-learn's
    definitions with ``zero_division=0``), macro F1 and top-2/top-3 accuracy follow from
    it. (One scikit-learn call per resample would take seconds; the tests check every
    resample's figures against scikit-learn.)

    Args:
        targets: (N,) int true classes in [0, C); probs: (N, C) probabilities.
        n_boot: resamples.
        seed: NumPy generator seed.
        level: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).

    Returns:
        ``{"n_boot", "level", "accuracy": (lo, hi), "macro_f1": (lo, hi), "top2_accuracy",
        "top3_accuracy", "per_class": {"precision"|"recall"|"f1": [(lo, hi)] * C}}``,
        fractions in [0, 1].
    """
    values = bootstrap_values(targets, probs, n_boot, seed)
    q = 100 * (1 - level) / 2

    def ci(v):
        lo, hi = np.percentile(v, [q, 100 - q], axis=0)
        return (float(lo), float(hi)) if np.ndim(lo) == 0 else list(zip(lo.tolist(), hi.tolist()))

    out = {"n_boot": n_boot, "level": level, "per_class": {}}
    for key, v in values.items():
        if key in ("precision", "recall", "f1"):
            out["per_class"][key] = ci(v)
        else:
            out[key] = ci(v)
    return out


def bootstrap_values(targets: np.ndarray, probs: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """The metrics on each bootstrap resample (see :func:`bootstrap_ci`).

    Returns:
        ``{"accuracy": (n_boot,), "macro_f1": (n_boot,), "top2_accuracy": (n_boot,),
        "top3_accuracy": (n_boot,), "precision"|"recall"|"f1": (n_boot, C)}``; the
        resample indices are ``np.random.default_rng(seed).integers(0, N, (n_boot, N))``.
    """
    targets = np.asarray(targets)
    n, c = probs.shape
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # (B, N)
    preds = probs.argmax(1)
    codes = np.arange(n_boot)[:, None] * (c * c) + targets[idx] * c + preds[idx]
    cm = np.bincount(codes.ravel(), minlength=n_boot * c * c).reshape(n_boot, c, c)  # (B, true, pred)
    tp = np.einsum("bii->bi", cm).astype(np.float64)
    support, predicted = cm.sum(2), cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    values = {"accuracy": tp.sum(1) / n, "macro_f1": f1.mean(1),
              "precision": precision, "recall": recall, "f1": f1}
    rank = true_class_rank(targets, probs)
    for k in (2, 3):
        if c > k:
            values[f"top{k}_accuracy"] = (rank < k)[idx].mean(1)
    return values


def precision_recall(targets: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """One-vs-rest precision-recall curves and average precision (scikit-learn) per class
    that has positives: ``{name: {"precision", "recall", "ap", "prevalence"}}``."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    out = {}
    for i, name in enumerate(class_names):
        pos = targets == i
        if pos.any():
            p, r, _ = precision_recall_curve(pos, probs[:, i])
            out[name] = {"precision": p.round(5).tolist(), "recall": r.round(5).tolist(),
                         "ap": float(average_precision_score(pos, probs[:, i])),
                         "prevalence": float(pos.mean())}
    return out


def guess_ranks(targets: np.ndarray, probs: np.ndarray, class_names) -> dict:
    """Where the true class stands among the guesses of the misclassified faces.

    Returns:
        ``{name: {"errors": int, "second": fraction, "third": fraction}}`` per true class,
        plus ``"all"``; fractions of that class's misclassified faces whose true class is
        the model's second / third guess.
    """
    rank = true_class_rank(targets, probs)
    wrong = probs.argmax(1) != targets
    out = {}
    for i, name in [*enumerate(class_names), (None, "all")]:
        sel = wrong & (targets == i) if i is not None else wrong
        k = int(sel.sum())
        out[name] = {"errors": k, "second": float((rank[sel] == 1).mean()) if k else 0.0,
                     "third": float((rank[sel] == 2).mean()) if k else 0.0}
    return out


@dataclass
class Evaluation:
    subject: Subject
    class_names: tuple[str, ...]
    metrics: dict
    ci: dict
    pr: dict
    ranks: dict
    calibration: dict
    test_images: np.ndarray
    test_targets: np.ndarray
    test_probs: np.ndarray
    seconds: float
    inference_seconds: float


def evaluate_subject(subject: Subject, data, n_boot: int = 1000, seed: int = 0, _cache: dict | None = None
                     ) -> Evaluation:
    """Everything the report needs about one model: test metrics with bootstrap CIs,
    PR curves, guess ranks, and calibration (T fitted on val, ECE on test)."""
    from .calibrate import apply_temperature, expected_calibration_error, fit_temperature, reliability
    from .data import load_fer2013
    from .evaluate import compute_metrics, data_classes

    start = time.perf_counter()
    clf = subject.clf
    classes = data_classes(clf.class_names)
    key = (str(data), classes, clf.preprocessing.input_size)
    cache = _cache if _cache is not None else {}
    if key not in cache:
        cache[key] = load_fer2013(data, classes, image_size=clf.preprocessing.input_size)
    dataset = cache[key]
    if tuple(dataset.class_names) != tuple(clf.class_names):
        raise ModelError(f"model classes {clf.class_names} differ from data classes {dataset.class_names}")
    val, test = dataset["val"], dataset["test"]
    if len(test.targets) == 0 or len(val.targets) == 0:
        raise FerkitError(f"{data}: the report needs a val and a test split; val has {len(val.targets)} "
                          f"faces, test {len(test.targets)}")
    t0 = time.perf_counter()
    val_logits, test_logits = clf.predict_logits(val.images), clf.predict_logits(test.images)
    inference = time.perf_counter() - t0
    model_t = float(getattr(clf, "temperature", 1.0))
    probs = apply_temperature(test_logits, model_t)  # what the model gives its users
    names = tuple(dataset.class_names)
    metrics = compute_metrics(test.targets, probs, names)
    t_fit = fit_temperature(val_logits, val.targets)
    raw, scaled = apply_temperature(test_logits, 1.0), apply_temperature(test_logits, t_fit)
    calibration = {"model_temperature": model_t, "fitted_temperature": t_fit,
                   "ece_val_before": expected_calibration_error(apply_temperature(val_logits, 1.0), val.targets),
                   "ece_val_after": expected_calibration_error(apply_temperature(val_logits, t_fit), val.targets),
                   "curves": {}}
    for label, p in (("test, T = 1 (uncalibrated softmax)", raw), (f"test, T = {t_fit:.3f} (fitted on val)", scaled)):
        r = reliability(p, test.targets)
        r["ece"] = expected_calibration_error(p, test.targets)
        calibration["curves"][label] = r
    calibration["ece_test_before"], calibration["ece_test_after"] = [r["ece"] for r in calibration["curves"].values()]
    return Evaluation(subject, names, metrics, bootstrap_ci(test.targets, probs, n_boot, seed),
                      precision_recall(test.targets, probs, names), guess_ranks(test.targets, probs, names),
                      calibration, test.images, test.targets, probs, time.perf_counter() - start, inference)


class _Figures:
    """Renders figures into a temporary folder (and ``keep`` when given) and embeds them."""

    def __init__(self, keep: Path | None):
        self.tmp = tempfile.TemporaryDirectory(prefix="ferkit-report-")
        self.keep = keep
        if keep:
            keep.mkdir(parents=True, exist_ok=True)

    def img(self, fn, name: str, alt: str, *args, **kwargs) -> str:
        path = fn(*args, path=Path(self.tmp.name) / name, **kwargs)
        data = Path(path).read_bytes()
        if self.keep:
            (self.keep / name).write_bytes(data)
        b64 = base64.b64encode(data).decode("ascii")
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"></figure>'


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _ci(c) -> str:
    return f"[{100 * c[0]:.1f}, {100 * c[1]:.1f}]"


def _ci3(c) -> str:
    return f"[{c[0]:.3f}, {c[1]:.3f}]"


def _metrics_table(ev: Evaluation) -> str:
    m, ci = ev.metrics, ev.ci
    rows = [("accuracy", _pct(m["accuracy"]), _ci(ci["accuracy"])),
            ("macro F1", f"{m['macro_f1']:.3f}", _ci3(ci["macro_f1"]))]
    rows += [(f"top-{k} accuracy", _pct(m[f"top{k}_accuracy"]), _ci(ci[f"top{k}_accuracy"]))
             for k in (2, 3) if f"top{k}_accuracy" in m]
    head = (f"<table class=metrics><tr><th>metric (test, {m['n']} faces)</th><th>value</th>"
            f"<th>{int(100 * ci['level'])}% CI (bootstrap, {ci['n_boot']} resamples)</th></tr>")
    body = "".join(f"<tr><td>{k}</td><td>{v}</td><td>{c}</td></tr>" for k, v, c in rows)
    per = ("<table class=per-class><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
           "<th>ROC AUC</th><th>AP</th><th>support</th></tr>")
    for i, name in enumerate(ev.class_names):
        r = m["per_class"][name]
        cells = "".join(f"<td>{r[k]:.3f} <small>{_ci3(ev.ci['per_class'][k][i])}</small></td>"
                        for k in ("precision", "recall", "f1"))
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
        ap = f"{ev.pr[name]['ap']:.3f}" if name in ev.pr else "-"
        per += f"<tr><td>{html.escape(name)}</td>{cells}<td>{auc}</td><td>{ap}</td><td>{r['support']}</td></tr>"
    return head + body + "</table>" + per + "</table>"


def _gallery_rows(ev: Evaluation, per_class: int) -> list:
    rows = []
    names = ev.class_names
    preds = ev.test_probs.argmax(1)
    for i, name in enumerate(names):
        wrong = np.flatnonzero((ev.test_targets == i) & (preds != i))
        wrong = wrong[np.argsort(-ev.test_probs[wrong].max(1), kind="stable")][:per_class]  # most confident first
        items = []
        for j in wrong:
            top = np.argsort(-ev.test_probs[j])[:3]
            caption = "\n".join(f"{'*' if k == i else ''}{names[k]} {ev.test_probs[j, k]:.2f}" for k in top)
            items.append((ev.test_images[j], caption))
        rows.append((f"true: {name}", items))
    return rows


def _explanations(ev: Evaluation, figs: _Figures, per_class: int, seed: int) -> str:
    """Grad-CAM grid and feature maps; a note naming the extra when PyTorch is missing."""
    from .explain import feature_maps, grad_cam, load_torch_model, overlay
    from .plots import plot_face_grid, plot_feature_maps
    from .preprocess import prepare_faces

    try:
        tm = load_torch_model(ev.subject.model_path)
    except FerkitError as exc:
        return f"<p class=note>{html.escape(str(exc))}</p>"
    rng = np.random.default_rng(seed)
    names = ev.class_names
    picks = [rng.permutation(np.flatnonzero(ev.test_targets == i))[:per_class] for i in range(len(names))]
    flat = np.concatenate(picks).astype(int)
    cams, logits = grad_cam(tm, prepare_faces(ev.test_images[flat], tm.preprocessing))
    rows, k = [], 0
    for i, name in enumerate(names):
        items = []
        for j in picks[i]:
            face = ev.test_images[j]
            pred = names[int(logits[k].argmax())]
            items += [(face, f"true {name}"), (overlay(cv2_resize(face, 96), cams[k]), f"-> {pred}")]
            k += 1
        rows.append((name, items))
    out = figs.img(plot_face_grid, "gradcam.png", "Grad-CAM heat maps per class", rows,
                   title="Grad-CAM (Selvaraju et al. 2017) for the predicted class: red = regions that raised its logit")
    face_idx = int(picks[names.index("happy")][0]) if "happy" in names and len(picks[names.index("happy")]) \
        else int(flat[0])
    face = ev.test_images[face_idx]
    maps = feature_maps(tm, prepare_faces(face[None], tm.preprocessing)[0])
    out += figs.img(plot_feature_maps, "feature_maps.png", "feature maps after each pooling stage", face, maps,
                    title=f"feature maps after each pooling stage (one {names[ev.test_targets[face_idx]]} test face; "
                          "the 8 most active channels)")
    return out


def cv2_resize(face: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}small{color:#666}
figure{display:inline-block;margin:.4em}img{max-width:100%;height:auto}
.side{display:flex;gap:1em;flex-wrap:wrap}.side>div{flex:1;min-width:420px}.note{color:#555}
"""


def build_report(model: str | os.PathLike | None, data: str | os.PathLike, out: str | os.PathLike,
                 compare: str | os.PathLike | None = None, n_boot: int = 1000, seed: int = 0,
                 gallery_per_class: int = 8, cam_per_class: int = 4, figures: str | os.PathLike | None = None
                 ) -> dict:
    """Write the HTML report of a model or run (and optionally a comparison with another).

    Args:
        model: run folder (``best.pt`` + ``history.csv``), ``.onnx`` / ``.pt`` file, or
            ``None`` for the bundled model.
        data: FER2013 CSV or image-folder root; the test split is reported, the val split
            fits the temperature.
        out: the ``.html`` file to write.
        compare: a second run folder or model, shown side by side.
        n_boot: bootstrap resamples for the confidence intervals.
        seed: seed of the bootstrap and of the faces shown.
        gallery_per_class: misclassified faces shown per true class.
        cam_per_class: Grad-CAM sample faces per class.
        figures: also write each figure as a PNG into this folder.

    Returns:
        A summary: ``out``, ``seconds``, ``metrics`` (the test metrics), ``ci``,
        ``calibration`` (temperatures and ECEs, no curves), ``ranks``, and
        ``compare`` (the second model's metrics) when given.

    Raises:
        ModelError, DataError, FerkitError: bad model, data or arguments.
    """
    from .plots import plot_confusion, plot_curves, plot_face_grid, plot_pr, plot_reliability, plot_roc

    start = time.perf_counter()
    out = Path(out)
    cache: dict = {}
    main = evaluate_subject(resolve_subject(model), data, n_boot, seed, cache)
    other = evaluate_subject(resolve_subject(compare), data, n_boot, seed, cache) if compare is not None else None
    figs = _Figures(Path(figures) if figures else None)
    m, names = main.metrics, main.class_names
    cal = main.calibration
    sections = []

    sections.append(("metrics", "Test metrics", f"<p>Model: <b>{html.escape(main.subject.name)}</b>; data "
                     f"{html.escape(str(data))}; split <b>test</b> (PrivateTest), {m['n']} faces. Probabilities "
                     f"are the model's own (T = {cal['model_temperature']:.3f}).</p>" + _metrics_table(main)))
    sections.append(("confusion", "Confusion matrices", '<div class=side>' + figs.img(
        plot_confusion, "confusion_matrix.png", "confusion matrix (counts)", np.array(m["confusion_matrix"]), names,
        normalized=False, title="confusion matrix (test, counts)") + figs.img(
        plot_confusion, "confusion_matrix_normalized.png", "confusion matrix (row-normalised)",
        np.array(m["confusion_matrix_normalized"]), names, normalized=True,
        title="confusion matrix (test, row-normalised: recall on the diagonal)") + "</div>"))
    sections.append(("curves", "ROC and precision-recall curves (one-vs-rest)", figs.img(
        plot_roc, "roc.png", "ROC curves", m["roc"], title="one-vs-rest ROC (test)") + figs.img(
        plot_pr, "precision_recall.png", "precision-recall curves", main.pr,
        title="one-vs-rest precision-recall (test)")))
    if main.subject.history:
        h = main.subject.history
        best = max(h, key=lambda r: r.get("val_acc", 0))
        sections.append(("training", "Training curves", f"<p>{len(h)} epochs; best val accuracy "
                         f"{_pct(best['val_acc'])} at epoch {best['epoch']}.</p>"
                         + figs.img(plot_curves, "training_curves.png", "training curves", h)))
    r = main.ranks
    rank_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['errors']}</td><td>{_pct(v['second'])}</td>"
                        f"<td>{_pct(v['third'])}</td></tr>" for k, v in r.items())
    sections.append(("gallery", "Misclassified faces", f"<p>Of the {r['all']['errors']} misclassified test "
                     f"faces, the true class is the second guess for {_pct(r['all']['second'])} and the third "
                     f"for {_pct(r['all']['third'])}.</p><table><tr><th>true class</th><th>errors</th>"
                     f"<th>true = 2nd guess</th><th>true = 3rd guess</th></tr>{rank_rows}</table>"
                     + figs.img(plot_face_grid, "misclassified.png", "misclassified faces per true class",
                                _gallery_rows(main, gallery_per_class),
                                title="the most confident mistakes per true class: top-3 guesses, * = true class")))
    sections.append(("calibration", "Calibration", f"<p>Expected calibration error (ECE, 15 equal-width "
                     f"confidence bins) on test: <b>{_pct(cal['ece_test_before'])}</b> with the plain softmax "
                     f"(T = 1), <b>{_pct(cal['ece_test_after'])}</b> after temperature scaling (Guo et al. 2017) "
                     f"with T = {cal['fitted_temperature']:.3f} fitted on val (val ECE "
                     f"{_pct(cal['ece_val_before'])} -> {_pct(cal['ece_val_after'])}). The model's stored "
                     f"temperature: {cal['model_temperature']:.3f}"
                     f"{' (uncalibrated: run ferkit calibrate)' if cal['model_temperature'] == 1.0 else ''}.</p>"
                     + figs.img(plot_reliability, "reliability.png", "reliability diagrams", cal["curves"],
                                title="reliability diagram (test); bars: share of faces per bin")))
    sections.append(("explanations", "Explanations", _explanations(main, figs, cam_per_class, seed)))
    if other is not None:
        om = other.metrics
        keys = [("accuracy", "accuracy"), ("macro F1", "macro_f1"), ("top-2 accuracy", "top2_accuracy"),
                ("top-3 accuracy", "top3_accuracy")]
        def cell(ev, k):
            if k == "macro_f1":
                return f"{ev.metrics[k]:.3f} <small>{_ci3(ev.ci[k])}</small>"
            return f"{_pct(ev.metrics[k])} <small>{_ci(ev.ci[k])}</small>"

        rows = "".join(f"<tr><td>{label}</td><td>{cell(main, k)}</td><td>{cell(other, k)}</td></tr>"
                       for label, k in keys if k in m and k in om)
        rows += "".join(f"<tr><td>recall {html.escape(n)}</td><td>{m['per_class'][n]['recall']:.3f}</td>"
                        f"<td>{om['per_class'][n]['recall']:.3f}</td></tr>"
                        for n in names if n in om["per_class"])
        rows += (f"<tr><td>ECE test (model's T)</td><td>{_pct(_ece(main))}</td><td>{_pct(_ece(other))}</td></tr>")
        table = (f"<table><tr><th>test</th><th>{html.escape(main.subject.name)}</th>"
                 f"<th>{html.escape(other.subject.name)}</th></tr>{rows}</table>")
        cms = '<div class=side>' + "".join(
            "<div>" + figs.img(plot_confusion, f"compare_confusion_{k}.png", f"confusion matrix of {ev.subject.name}",
                               np.array(ev.metrics["confusion_matrix_normalized"]), ev.class_names,
                               normalized=True, title=f"{ev.subject.name} (test, row-normalised)") + "</div>"
            for k, ev in enumerate((main, other))) + "</div>"
        sections.append(("comparison", "Comparison", table + cms))

    toc = "".join(f'<li><a href="#{sid}">{html.escape(title)}</a></li>' for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    seconds = time.perf_counter() - start
    doc = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>ferkit report: "
           f"{html.escape(main.subject.name)}</title><style>{CSS}</style></head><body>"
           f"<h1>ferkit report: {html.escape(main.subject.name)}</h1><ul>{toc}</ul>{body}"
           f"<p class=note>Made by ferkit in {seconds:.1f} s.</p></body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)
    figs.tmp.cleanup()
    summary = {"out": str(out), "seconds": seconds,
               "inference_seconds": main.inference_seconds + (other.inference_seconds if other else 0.0), "metrics": _headline(m), "ci": main.ci,
               "calibration": {k: v for k, v in cal.items() if k != "curves"}, "ranks": main.ranks,
               "sections": [s[0] for s in sections]}
    if other is not None:
        summary["compare"] = {"model": other.subject.name, "metrics": _headline(other.metrics)}
    return summary


def _ece(ev: Evaluation) -> float:
    from .calibrate import expected_calibration_error

    return expected_calibration_error(ev.test_probs, ev.test_targets)


def _headline(m: dict) -> dict:
    return {k: m[k] for k in ("n", "accuracy", "macro_f1", "top2_accuracy", "top3_accuracy") if k in m}


def format_summary(s: dict) -> str:
    """A few lines: headline test figures with CIs, ECE before/after, where the file is."""
    m, ci, c = s["metrics"], s["ci"], s["calibration"]
    lines = [f"test ({m['n']} faces): accuracy {_pct(m['accuracy'])} {_ci(ci['accuracy'])}, macro F1 "
             f"{m['macro_f1']:.4f} {_ci3(ci['macro_f1'])}"
             + "".join(f", top-{k} {_pct(m[f'top{k}_accuracy'])}" for k in (2, 3) if f"top{k}_accuracy" in m),
             f"calibration: T fitted on val {c['fitted_temperature']:.4f} (model's T {c['model_temperature']:.4f}); "
             f"ECE on test {_pct(c['ece_test_before'])} (T = 1) -> {_pct(c['ece_test_after'])}",
             f"true class is the 2nd guess for {_pct(s['ranks']['all']['second'])} and the 3rd for "
             f"{_pct(s['ranks']['all']['third'])} of the {s['ranks']['all']['errors']} errors"]
    if "compare" in s:
        o = s["compare"]["metrics"]
        lines.append(f"compared with {s['compare']['model']}: accuracy {_pct(o['accuracy'])}, "
                     f"macro F1 {o['macro_f1']:.4f}")
    lines.append(f"wrote {s['out']} in {s['seconds']:.1f} s (of which {s['inference_seconds']:.1f} s classifying "
                 f"the val and test faces)")
    return "\n".join(lines)

"""`ferkit report`: bootstrap figures against scikit-learn on every resample, guess ranks by
hand, and the HTML report of a tiny run checked in a real headless Chromium."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, top_k_accuracy_score

from browser import chromium, open_page
from conftest import USAGES, tiny_faces
from ferkit.checkpoint import checkpoint_meta, save_checkpoint
from ferkit.data import load_fer2013
from ferkit.evaluate import TorchClassifier
from ferkit.export import export_onnx
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocess import Preprocessing, softmax
from ferkit.report import bootstrap_ci, bootstrap_values, build_report, guess_ranks, true_class_rank
from ferkit.train import write_history

FERKIT = [sys.executable, "-m", "ferkit.cli"]
FIGURES = sorted(["confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png", "precision_recall.png",
                  "training_curves.png", "misclassified.png", "reliability.png", "gradcam.png", "feature_maps.png",
                  "compare_confusion_0.png", "compare_confusion_1.png"])
SECTIONS = ["metrics", "confusion", "curves", "training", "gallery", "calibration", "explanations", "comparison"]


def _random_case(n=90, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 7, n)
    logits = rng.normal(0, 1.5, (n, 7))
    logits[np.arange(n), targets] += 1.0  # better than chance
    return targets, softmax(logits)


def test_bootstrap_matches_sklearn_on_every_resample():
    targets, probs = _random_case()
    n_boot, labels = 40, np.arange(7)
    v = bootstrap_values(targets, probs, n_boot=n_boot, seed=3)
    idx = np.random.default_rng(3).integers(0, len(targets), (n_boot, len(targets)))
    for b in range(n_boot):
        t, p = targets[idx[b]], probs[idx[b]]
        pred = p.argmax(1)
        assert v["accuracy"][b] == pytest.approx(accuracy_score(t, pred))
        assert v["macro_f1"][b] == pytest.approx(f1_score(t, pred, labels=labels, average="macro", zero_division=0))
        prec, rec, f1, _ = precision_recall_fscore_support(t, pred, labels=labels, zero_division=0)
        assert np.allclose(v["precision"][b], prec) and np.allclose(v["recall"][b], rec)
        assert np.allclose(v["f1"][b], f1)
        for k in (2, 3):
            assert v[f"top{k}_accuracy"][b] == pytest.approx(top_k_accuracy_score(t, p, k=k, labels=labels))


def test_bootstrap_ci_is_the_percentile_interval():
    targets, probs = _random_case(seed=1)
    ci = bootstrap_ci(targets, probs, n_boot=200, seed=0)
    idx = np.random.default_rng(0).integers(0, len(targets), (200, len(targets)))
    accs = [accuracy_score(targets[i], probs[i].argmax(1)) for i in idx]
    assert ci["accuracy"] == pytest.approx(tuple(np.percentile(accs, [2.5, 97.5])))
    point = accuracy_score(targets, probs.argmax(1))
    assert ci["accuracy"][0] < point < ci["accuracy"][1]
    assert len(ci["per_class"]["recall"]) == 7 and ci["n_boot"] == 200


def test_guess_ranks_hand_case():
    probs = np.array([[0.6, 0.3, 0.1],   # true 0: top guess
                      [0.6, 0.3, 0.1],   # true 1: second guess
                      [0.6, 0.3, 0.1],   # true 2: third guess
                      [0.2, 0.5, 0.3],   # true 0: third guess
                      [0.1, 0.5, 0.4]])  # true 2: second guess
    targets = np.array([0, 1, 2, 0, 2])
    assert true_class_rank(targets, probs).tolist() == [0, 1, 2, 2, 1]
    r = guess_ranks(targets, probs, ("a", "b", "c"))
    assert r["all"] == {"errors": 4, "second": 0.5, "third": 0.5}
    assert r["a"] == {"errors": 1, "second": 0.0, "third": 1.0}
    assert r["c"] == {"errors": 2, "second": 0.5, "third": 0.5}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """A tiny CSV dataset, a run folder (untrained vgg_s checkpoint + 3-epoch history) and an
    ONNX export of another model; the report of the run compared with the ONNX model."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERKIT_CACHE_DIR", str(root / "cache"))
        lines = ["emotion,pixels,Usage"]
        for usage, n, seed in zip(USAGES, (28, 21, 28), (0, 1, 2)):
            images, labels = tiny_faces(n, seed)
            lines += [f"{y},{' '.join(map(str, img.ravel()))},{usage}" for img, y in zip(images, labels)]
        data = root / "fer2013.csv"
        data.write_text("\n".join(lines) + "\n")
        run = root / "run"
        run.mkdir()
        for seed, path in ((0, run / "best.pt"), (1, root / "other.pt")):
            torch.manual_seed(seed)
            save_checkpoint(path, checkpoint_meta("vgg_s", {}, EMOTIONS, Preprocessing()), create_model("vgg_s").eval())
        write_history(run, [{"epoch": e, "lr": 0.01 / e, "train_loss": 2 - 0.1 * e, "train_acc": 0.2 + 0.05 * e,
                             "val_loss": 2.1 - 0.1 * e, "val_acc": 0.15 + 0.05 * e, "seconds": 1.0}
                            for e in (1, 2, 3)])
        export_onnx(root / "other.pt", root / "other.onnx", tta="flip")
        out = root / "report.html"
        summary = build_report(run, data, out, compare=root / "other.onnx", n_boot=50,
                               gallery_per_class=3, cam_per_class=2, figures=root / "figs")
        dataset = load_fer2013(data, "all")
    return summary, out, root, dataset


def test_report_figures_match_sklearn(tiny_report):
    summary, out, root, dataset = tiny_report
    test = dataset["test"]
    logits = TorchClassifier(root / "run" / "best.pt").predict_logits(test.images)
    pred = logits.argmax(1)
    m = summary["metrics"]
    assert m["n"] == 28
    assert m["accuracy"] == pytest.approx(accuracy_score(test.targets, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(test.targets, pred, average="macro", labels=range(7),
                                                   zero_division=0))
    assert m["top3_accuracy"] == pytest.approx(top_k_accuracy_score(test.targets, softmax(logits), k=3,
                                                                    labels=range(7)))
    assert summary["sections"] == SECTIONS
    assert summary["compare"]["model"] == "other.onnx"
    assert summary["calibration"]["model_temperature"] == 1.0 and summary["calibration"]["fitted_temperature"] > 0


def test_report_is_self_contained(tiny_report):
    _, out, root, _ = tiny_report
    doc = out.read_text()
    srcs = re.findall(r'src="([^"]*)"', doc)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href|src)=\"(https?:|//)", doc) and "<script" not in doc
    figs = sorted(p.name for p in (root / "figs").iterdir())
    assert figs == FIGURES and len(srcs) == len(FIGURES)


def test_report_in_headless_chromium(tiny_report):
    _, out, root, _ = tiny_report
    with chromium() as browser:
        page, errors = open_page(browser, out.resolve().as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        ids = page.eval_on_selector_all("section", "s => s.map(e => e.id)")
        page.screenshot(path=str(root / "screenshot.png"), full_page=False)
    assert errors == []
    assert len(widths) == len(FIGURES) and min(widths) > 0
    assert ids == SECTIONS


def test_cli_report_and_explain_with_a_checkpoint(tmp_path, tiny_csv):
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, checkpoint_meta("vgg_s", {}, EMOTIONS, Preprocessing()), create_model("vgg_s").eval())
    out = tmp_path / "r" / "report.html"
    r = subprocess.run([*FERKIT, "report", str(ckpt), "--data", str(tiny_csv), "--out", str(out),
                        "--bootstrap", "20"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and f"wrote {out}" in r.stdout and "test (14 faces)" in r.stdout
    assert '<section id="training">' not in out.read_text()  # a bare checkpoint has no history
    from ferkit.recognize import demo_image_path

    r = subprocess.run([*FERKIT, "explain", str(demo_image_path()), "--model", str(ckpt), "--out",
                        str(tmp_path / "x"), "--compact"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert len(result["faces"]) == 1 and (tmp_path / "x" / "grace_hopper_gradcam.png").is_file()
    assert abs(sum(result["faces"][0]["probs"].values()) - 1) < 1e-4


def test_cli_report_errors(tmp_path, tiny_csv):
    r = subprocess.run([*FERKIT, "report", str(tmp_path / "nope"), "--data", str(tiny_csv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no such run folder or model file" in r.stderr
    (tmp_path / "empty_run").mkdir()
    r = subprocess.run([*FERKIT, "report", str(tmp_path / "empty_run"), "--data", str(tiny_csv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "best.pt" in r.stderr

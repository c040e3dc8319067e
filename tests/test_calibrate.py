"""Calibration: ECE against a hand-computed case and scikit-learn, temperature scaling on a
miscalibrated toy model, and the temperature travelling with an ONNX model."""

import json

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss

from ferkit.calibrate import (apply_temperature, calibrate_model, expected_calibration_error,
                              fit_logit_adjustment, fit_temperature, format_calibration,
                              graph_logit_adjustment, reliability, set_graph_logit_adjustment,
                              set_graph_temperature)
from ferkit.checkpoint import checkpoint_meta, save_checkpoint
from ferkit.classifier import OnnxClassifier
from ferkit.errors import FerkitError, ModelError
from ferkit.export import export_onnx
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocess import Preprocessing, softmax


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    targets = np.array([0, 0, 0, 1])
    # bin (0.867, 0.933]: 2 faces, accuracy 1/2, confidence 0.9 -> |0.5 - 0.9| * 2/4 = 0.2
    # bin (0.467, 0.533]: 2 faces, accuracy 2/2, confidence 0.5 -> |1.0 - 0.5| * 2/4 = 0.25
    assert expected_calibration_error(probs, targets) == pytest.approx(0.45)
    r = reliability(probs, targets)
    assert r["count"].tolist() == [2, 2]
    assert r["accuracy"].tolist() == pytest.approx([1.0, 0.5])
    assert r["confidence"].tolist() == pytest.approx([0.5, 0.9])


def test_reliability_matches_sklearn_bins():
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(0, 2, (500, 7)))
    targets = rng.integers(0, 7, 500)
    r = reliability(probs, targets)
    acc, conf = calibration_curve(probs.argmax(1) == targets, probs.max(1), n_bins=15)
    assert np.allclose(r["accuracy"], acc) and np.allclose(r["confidence"], conf)
    assert r["count"].sum() == 500 and len(r["count"]) == len(acc)
    # the counts are the per-bin sizes: the count-weighted mean confidence is the overall mean
    assert np.sum(r["count"] * r["confidence"]) / 500 == pytest.approx(probs.max(1).mean())


def _toy(n, true_t, seed):
    """Labels drawn from softmax(z / true_t): a model that outputs z is miscalibrated."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, 7))
    p = softmax(z / true_t)
    y = (rng.random((n, 1)) > np.cumsum(p, 1)).sum(1).clip(0, 6)
    return z, y


@pytest.mark.parametrize("true_t", [2.5, 0.6])
def test_temperature_scaling_recovers_t_and_lowers_ece(true_t):
    z_val, y_val = _toy(20000, true_t, 0)
    z_test, y_test = _toy(20000, true_t, 1)
    t = fit_temperature(z_val, y_val)
    assert t == pytest.approx(true_t, rel=0.08)
    before, after = apply_temperature(z_test, 1.0), apply_temperature(z_test, t)
    assert np.array_equal(before.argmax(1), after.argmax(1))  # predictions unchanged
    assert expected_calibration_error(after, y_test) < 0.5 * expected_calibration_error(before, y_test)
    assert log_loss(y_test, after, labels=range(7)) < log_loss(y_test, before, labels=range(7))


def test_bad_inputs():
    with pytest.raises(FerkitError, match="temperature must be > 0"):
        apply_temperature(np.zeros((2, 3)), 0.0)
    with pytest.raises(FerkitError, match="expected probs"):
        expected_calibration_error(np.ones((3, 2)) / 2, np.array([0, 1]))
    with pytest.raises(FerkitError, match="at least one"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, int))


@pytest.fixture
def tiny_onnx(tmp_path):
    torch.manual_seed(0)
    model = create_model("vgg_s").eval()
    meta = checkpoint_meta("vgg_s", {}, EMOTIONS, Preprocessing())
    save_checkpoint(tmp_path / "m.pt", meta, model)
    out = tmp_path / "m.onnx"
    export_onnx(tmp_path / "m.pt", out, tta="flip")
    return out


def test_calibrate_model_writes_t_and_bakes_it_into_the_graph(tiny_onnx, tiny_csv):
    assert OnnxClassifier(tiny_onnx).temperature == 1.0  # absent: T = 1
    c = calibrate_model(tiny_onnx, tiny_csv)
    meta = json.loads(tiny_onnx.with_suffix(".json").read_text())
    assert meta["temperature"] == c["temperature"] > 0 and c["n"] == 14 and c["split"] == "val"
    assert c["nll_after"] <= c["nll_before"] + 1e-9  # T minimises the val NLL, T = 1 included
    clf = OnnxClassifier(tiny_onnx)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    logits = clf.predict_logits(faces)
    expected = softmax(logits / c["temperature"])
    assert np.allclose(clf.predict_probs(faces), expected, atol=1e-6)
    from ferkit.preprocess import prepare_faces

    graph_probs = clf.session.run(["probs"], {"images": prepare_faces(faces, clf.preprocessing)})[0]
    assert np.allclose(graph_probs, expected, atol=1e-5)
    # a second calibration updates T in place (no second division)
    set_graph_temperature(tiny_onnx, 2.0)
    import onnx

    graph = onnx.load(str(tiny_onnx)).graph
    assert sum(n.op_type == "Div" and n.name == "ferkit_temperature_div" for n in graph.node) == 1
    graph_probs = OnnxClassifier(tiny_onnx).session.run(["probs"], {"images": prepare_faces(faces, clf.preprocessing)})[0]
    assert np.allclose(graph_probs, softmax(logits / 2.0), atol=1e-5)


def test_calibrate_rejects_checkpoints(tmp_path, tiny_csv):
    with pytest.raises(ModelError, match="only .onnx"):
        calibrate_model(tmp_path / "m.pt", tiny_csv)


def test_bundled_model_is_calibrated():
    clf = OnnxClassifier()
    assert clf.temperature != 1.0 and clf.meta["calibration"]["split"] == "val"
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    assert np.allclose(clf.predict_probs(faces), softmax(clf.predict_logits(faces) / clf.temperature), atol=1e-6)


def _over_prior_logits(n: int, gamma: float, seed: int):
    """Faces of 3 classes with prior (0.05, 0.45, 0.5), 1-D Gaussian features; the logits
    are the Bayes posterior's plus ``gamma * log(prior)``: a model that leans towards
    common classes more than the prior does (as networks trained on imbalanced data do)."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.05, 0.45, 0.5])
    y = rng.choice(3, n, p=prior)
    means = np.array([-1.0, 0.0, 1.0])
    x = rng.normal(means[y], 0.8)
    log_lik = -0.5 * ((x[:, None] - means[None]) / 0.8) ** 2
    return log_lik + (1 + gamma) * np.log(prior), y, prior


def test_logit_adjustment_undoes_a_lean_towards_common_classes():
    logits, y, prior = _over_prior_logits(20_000, gamma=0.6, seed=0)
    tau, table = fit_logit_adjustment(logits, y, prior)
    assert table[0]["tau"] == 0.0 and len(table) == 21
    chosen = next(r for r in table if r["tau"] == tau)
    assert 0.3 <= tau <= 1.0  # the excess lean (0.6) is taken back, or more for macro F1
    assert chosen["accuracy"] >= table[0]["accuracy"] and chosen["macro_f1"] > table[0]["macro_f1"]
    assert chosen["recall"][0] > table[0]["recall"][0] + 0.1  # the rare class gains
    # the Bayes posterior itself: accuracy can only fall, so an accuracy-keeping tau is small
    bayes, y2, _ = _over_prior_logits(20_000, gamma=0.0, seed=1)
    tau0, table0 = fit_logit_adjustment(bayes, y2, prior)
    assert tau0 <= 0.3
    assert next(r for r in table0 if r["tau"] == tau0)["accuracy"] >= table0[0]["accuracy"]
    with pytest.raises(FerkitError, match="prior"):
        fit_logit_adjustment(logits, y, np.array([0.5, 0.5, 0.0]))
    with pytest.raises(FerkitError, match="prior"):
        fit_logit_adjustment(logits, y, np.array([0.5, 0.5]))


def test_graph_logit_adjustment_reaches_logits_probs_and_the_rebuilt_network(tmp_path):
    import shutil

    from ferkit.classifier import default_model_path
    from ferkit.explain import torch_model_from_onnx
    from ferkit.preprocess import prepare_faces

    tiny_onnx = tmp_path / "default.onnx"  # the bundled network, which Grad-CAM rebuilds
    shutil.copy(default_model_path(), tiny_onnx)
    shutil.copy(default_model_path().with_suffix(".json"), tiny_onnx.with_suffix(".json"))
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    recorded = json.loads(tiny_onnx.with_suffix(".json").read_text())["logit_adjustment"]
    shipped = graph_logit_adjustment(tiny_onnx)  # the bundled model's own, recorded in its .json
    if recorded["tau"] == 0:  # val chose none (the default since session 31): the graph is untouched
        assert shipped is None
        shipped = np.zeros(7, dtype=np.float32)
    assert np.allclose(shipped, recorded["bias"])
    raw = OnnxClassifier(tiny_onnx).predict_logits(faces) + shipped
    t = OnnxClassifier(tiny_onnx).temperature
    bias = np.array([-0.5, -1.2, 0.0, 0.3, 0.1, -0.2, 0.4], dtype=np.float32)
    for b in (bias, 2 * bias):  # a second call replaces the bias; it does not stack
        set_graph_logit_adjustment(tiny_onnx, b)
        clf = OnnxClassifier(tiny_onnx)
        assert np.allclose(clf.predict_logits(faces), raw - b, atol=1e-5)
        graph_probs = clf.session.run(["probs"], {"images": prepare_faces(faces, clf.preprocessing)})[0]
        assert np.allclose(graph_probs, softmax((raw - b) / t), atol=1e-5)
        assert np.allclose(graph_logit_adjustment(tiny_onnx), b)
        tm = torch_model_from_onnx(tiny_onnx)  # Grad-CAM's network sees what the graph gives
        with torch.no_grad():
            torch_logits = tm.logits(torch.from_numpy(prepare_faces(faces, tm.preprocessing))).numpy()
        assert np.allclose(torch_logits, raw - b, atol=1e-4)
    import onnx

    assert sum(n.name == "ferkit_logit_adjustment_sub" for n in onnx.load(str(tiny_onnx)).graph.node) == 1
    with pytest.raises(ModelError, match="logits"):
        set_graph_logit_adjustment(tiny_onnx, np.zeros(3))


def test_calibrate_with_logit_adjustment_records_it_and_refits_from_raw_logits(tiny_onnx, tiny_csv):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    raw = OnnxClassifier(tiny_onnx).predict_logits(faces)
    assert graph_logit_adjustment(tiny_onnx) is None  # a fresh export has none
    set_graph_logit_adjustment(tiny_onnx, np.full(7, 3.0))  # a stale adjustment to be refitted
    c = calibrate_model(tiny_onnx, tiny_csv, logit_adjust=True)
    a = c["logit_adjustment"]
    meta = json.loads(tiny_onnx.with_suffix(".json").read_text())
    assert meta["logit_adjustment"] == a and a["split"] == "val" and a["n"] == 14
    # the tiny train split is balanced: log(prior) is the same for every class, so no tau
    # changes a prediction, none beats tau = 0, and the bias is 0 (the stale one is gone)
    assert a["prior"] == pytest.approx([1 / 7] * 7, abs=1e-6) and a["tau"] == 0.0
    assert a["val_after"] == a["val_before"]
    clf = OnnxClassifier(tiny_onnx)
    assert np.allclose(clf.predict_logits(faces), raw, atol=1e-5)
    assert np.allclose(clf.predict_probs(faces), softmax(raw / c["temperature"]), atol=1e-5)
    assert "logit adjustment tau 0.00" in format_calibration(c)
    with pytest.raises(FerkitError, match="graph"):
        calibrate_model(tiny_onnx, tiny_csv, graph=False, logit_adjust=True)

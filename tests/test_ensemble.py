"""Ensembles: several exported models combined into one ONNX graph that averages their
calibrated probabilities, used through the same classifier, CLI and calibration as any model."""

import json

import numpy as np
import onnx
import pytest
import torch

from ferkit.calibrate import calibrate_model, set_graph_temperature
from ferkit.checkpoint import checkpoint_meta, save_checkpoint
from ferkit.classifier import OnnxClassifier
from ferkit.cli import main
from ferkit.ensemble import build_ensemble
from ferkit.errors import ModelError
from ferkit.explain import torch_model_from_onnx
from ferkit.export import export_onnx
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocess import Preprocessing
from ferkit.recognize import Recognizer, demo_image_path


def _exported(tmp_path, name, seed, arch="vgg_s", classes=EMOTIONS, tta="none", input_size=48):
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=len(classes), input_size=input_size).eval()
    meta = checkpoint_meta(arch, {}, classes, Preprocessing(input_size=input_size))
    save_checkpoint(tmp_path / f"{name}.pt", meta, model)
    out = tmp_path / f"{name}.onnx"
    export_onnx(tmp_path / f"{name}.pt", out, tta=tta)
    return out


def _set_temperature(path, t):
    set_graph_temperature(path, t)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["temperature"] = t
    path.with_suffix(".json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("members")
    a = _exported(tmp, "a", 0, tta="flip")
    b = _exported(tmp, "b", 1, arch="dcnn")
    _set_temperature(b, 0.5)  # sharper, so a bug that ignores T shows
    return a, b


@pytest.fixture
def faces():
    return np.random.default_rng(3).integers(0, 256, (9, 60, 52), dtype=np.uint8)


def test_ensemble_averages_the_calibrated_member_probs(members, faces, tmp_path):
    a, b = members
    meta = build_ensemble([a, b], tmp_path / "e.onnx", weights=[3, 1])
    ens = OnnxClassifier(tmp_path / "e.onnx")
    pa, pb = OnnxClassifier(a).predict_probs(faces), OnnxClassifier(b).predict_probs(faces)
    expected = 0.75 * pa + 0.25 * pb
    probs = ens.predict_probs(faces)
    assert probs.shape == (9, 7) and np.allclose(probs, expected, atol=1e-5)
    assert not np.allclose(pa, pb, atol=1e-2)  # the members really differ
    # logits are log(mean probs): the graph's probs output and softmax(logits) agree
    assert np.allclose(np.exp(ens.predict_logits(faces)), expected, atol=1e-5)
    assert [m["weight"] for m in meta["members"]] == [0.75, 0.25]
    assert [(m["model"], m["tta"], m["temperature"]) for m in meta["members"]] == [
        ("vgg_s", "flip", 1.0), ("dcnn", "none", 0.5)]
    assert meta["parameters"] == sum(json.loads(p.with_suffix(".json").read_text())["parameters"] for p in (a, b))
    graph = onnx.load(str(tmp_path / "e.onnx")).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["logits", "probs"]
    # the members' own probs branches are pruned: one Softmax per member plus the output's
    assert sum(n.op_type == "Softmax" for n in graph.node) == 3


def test_equal_weights_by_default_and_the_cli(members, faces, tmp_path, capsys):
    a, b = members
    out = tmp_path / "e.onnx"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    assert "2 members" in capsys.readouterr().out
    expected = (OnnxClassifier(a).predict_probs(faces) + OnnxClassifier(b).predict_probs(faces)) / 2
    assert np.allclose(OnnxClassifier(out).predict_probs(faces), expected, atol=1e-5)
    # an ensemble of an ensemble and a model is still one model
    build_ensemble([out, a], tmp_path / "e2.onnx")
    assert np.allclose(OnnxClassifier(tmp_path / "e2.onnx").predict_probs(faces),
                       (expected + OnnxClassifier(a).predict_probs(faces)) / 2, atol=1e-5)


def test_ensemble_runs_on_a_photo_and_calibrates(members, tmp_path, tiny_csv):
    build_ensemble(list(members), tmp_path / "e.onnx")
    faces = Recognizer(tmp_path / "e.onnx").predict(demo_image_path())
    assert len(faces) == 1 and np.isclose(sum(faces[0].probs.values()), 1, atol=1e-5)
    c = calibrate_model(tmp_path / "e.onnx", tiny_csv)
    clf = OnnxClassifier(tmp_path / "e.onnx")
    assert clf.temperature == c["temperature"] > 0
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    from ferkit.preprocess import prepare_faces

    graph_probs = clf.session.run(["probs"], {"images": prepare_faces(x, clf.preprocessing)})[0]
    assert np.allclose(graph_probs, clf.predict_probs(x), atol=1e-5)


def test_ensemble_errors(members, tmp_path):
    a, b = members
    with pytest.raises(ValueError, match="at least two"):
        build_ensemble([a], tmp_path / "e.onnx")
    with pytest.raises(ValueError, match="weights"):
        build_ensemble([a, b], tmp_path / "e.onnx", weights=[1, -1])
    with pytest.raises(ValueError, match="weights"):
        build_ensemble([a, b], tmp_path / "e.onnx", weights=[1])
    with pytest.raises(ModelError, match="overwrite"):
        build_ensemble([a, b], a)
    with pytest.raises(ModelError, match="no such ONNX model"):
        build_ensemble([a, tmp_path / "missing.onnx"], tmp_path / "e.onnx")
    six = _exported(tmp_path, "six", 2, classes=EMOTIONS[:6])
    with pytest.raises(ValueError, match="classes"):
        build_ensemble([a, six], tmp_path / "e.onnx")
    small = _exported(tmp_path, "small", 3, input_size=32)
    with pytest.raises(ValueError, match="preprocessing"):
        build_ensemble([a, small], tmp_path / "e.onnx")
    assert not (tmp_path / "e.onnx").exists()


def test_explain_names_the_members_of_an_ensemble(members, tmp_path):
    build_ensemble(list(members), tmp_path / "e.onnx")
    with pytest.raises(ModelError, match="ensemble of 2 models.*a.onnx, b.onnx"):
        torch_model_from_onnx(tmp_path / "e.onnx")

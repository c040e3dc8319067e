"""Ensembles: several exported models combined into one ONNX graph that averages their
calibrated probabilities, used through the same classifier, CLI and calibration as any model."""

import json

import numpy as np
import onnx
import pytest
import torch

from ferkit.calibrate import calibrate_model, graph_logit_adjustment, set_graph_temperature
from ferkit.checkpoint import checkpoint_meta, save_checkpoint
from ferkit.classifier import OnnxClassifier, read_metadata, resolve_model
from ferkit.cli import main
from ferkit.ensemble import build_ensemble
from ferkit.errors import ModelError
from ferkit.explain import torch_model_from_onnx
from ferkit.export import export_onnx
from ferkit.labels import EMOTIONS
from ferkit.models import create_model
from ferkit.preprocess import Preprocessing, prepare_faces
from ferkit.recognize import Recognizer, demo_image_path


def _exported(tmp_path, name, seed, arch="vgg_s", classes=EMOTIONS, tta="none", input_size=48):
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=len(classes), input_size=input_size).eval()
    g = torch.Generator().manual_seed(seed)
    for t in model.state_dict().values():
        # as after training: a fresh network's constant tensors (zero biases, batch-norm
        # statistics) would be merged by the ONNX exporter, and could not be rebuilt from the graph
        if t.is_floating_point() and t.numel() > 1 and bool((t == t.flatten()[0]).all()):
            t.add_(torch.rand(t.shape, generator=g) * 0.2 - 0.1)
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
    with pytest.raises(ModelError, match="ensemble of 2 models.*0 a.onnx, 1 b.onnx"):
        torch_model_from_onnx(tmp_path / "e.onnx")


def _probs_from_rebuilt_members(path, faces):
    """An ensemble's probs recomputed in PyTorch from its members rebuilt out of its graph:
    sum_i w_i softmax(logits_i / T_i), its log less the ensemble's logit adjustment, over T."""
    meta = read_metadata(path)
    mean = 0
    for i, spec in enumerate(meta["members"]):
        tm = torch_model_from_onnx(path, member=i)
        assert (tm.tta, tm.temperature) == (spec["tta"], pytest.approx(spec["temperature"]))
        x = torch.from_numpy(prepare_faces(faces, tm.preprocessing))
        with torch.no_grad():
            mean = mean + spec["weight"] * torch.softmax(tm.logits(x) / tm.temperature, dim=1)
    logits = torch.log(mean.clamp_min(1e-30))
    bias = graph_logit_adjustment(path)
    if bias is not None:
        logits = logits - torch.from_numpy(bias)
    return torch.softmax(logits / float(meta.get("temperature", 1.0)), dim=1).numpy()


def test_members_rebuild_from_the_ensemble_graph_and_export_alone(members, faces, tmp_path, capsys):
    a, b = members
    ens = tmp_path / "e.onnx"
    build_ensemble([a, b], ens, weights=[3, 1])
    assert [m["model_args"] for m in read_metadata(ens)["members"]] == [{}, {}]
    assert np.allclose(_probs_from_rebuilt_members(ens, faces), OnnxClassifier(ens).predict_probs(faces),
                       atol=1e-5)
    # member 1 exported alone gives b's logits; with another TTA, through the CLI
    export_onnx(ens, tmp_path / "b1.onnx", member=1)
    assert np.allclose(OnnxClassifier(tmp_path / "b1.onnx").predict_logits(faces),
                       OnnxClassifier(b).predict_logits(faces), atol=1e-4)
    assert main(["export", str(ens), "--member", "0", "--tta", "scales", "--out", str(tmp_path / "a0.onnx")]) == 0
    meta = read_metadata(tmp_path / "a0.onnx")
    assert meta["tta"] == "scales" and meta["model"] == "vgg_s" and "member 0, a.onnx" in meta["rebuilt_from"]
    assert not np.allclose(OnnxClassifier(tmp_path / "a0.onnx").predict_logits(faces),
                           OnnxClassifier(a).predict_logits(faces), atol=1e-3)  # the TTA changed
    with pytest.raises(ModelError, match="no member 2; the ensemble has members 0-1"):
        torch_model_from_onnx(ens, member=2)
    with pytest.raises(ModelError, match="not an ensemble"):
        export_onnx(a, tmp_path / "x.onnx", member=0)
    build_ensemble([ens, a], tmp_path / "e2.onnx")
    with pytest.raises(ModelError, match="itself an ensemble"):
        torch_model_from_onnx(tmp_path / "e2.onnx", member=0)
    old = read_metadata(ens)  # an ensemble built before ferkit recorded the members' arguments
    del old["members"][1]["model_args"]
    ens.with_suffix(".json").write_text(json.dumps(old))
    with pytest.raises(ModelError, match="member 1 \\(b.onnx\\) has no 'model_args'"):
        torch_model_from_onnx(ens, member=1)


def test_fp16_weights_halve_the_file_keep_float32_compute_and_rebuild(members, faces, tmp_path):
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    build_ensemble(list(members), full, weights=[3, 1])
    assert main(["ensemble", *map(str, members), "--weights", "3", "1", "--fp16-weights", "--out", str(half)]) == 0
    meta = read_metadata(half)
    assert meta["weights_dtype"].startswith("float16") and read_metadata(full)["weights_dtype"] == "float32"
    assert half.stat().st_size < 0.6 * full.stat().st_size
    graph = onnx.load(str(half)).graph
    big = [i for i in graph.initializer if np.prod(i.dims) >= 1024]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer if np.prod(i.dims) < 1024)
    p_full, p_half = OnnxClassifier(full).predict_probs(faces), OnnxClassifier(half).predict_probs(faces)
    assert p_half.dtype == np.float32
    diff = np.abs(p_half - p_full).max()
    assert 0 < diff < 1e-3 and diff == pytest.approx(meta["parity"]["fp16_max_abs_diff_probs"], abs=1e-4)
    # ONNX Runtime folds the casts when it loads the graph: it then computes on float32 weights
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(half), so, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph
    assert not any(n.op_type == "Cast" for n in optimized.node)
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in optimized.initializer)
    # the members rebuild from the float16 graph and give its probabilities
    assert np.allclose(_probs_from_rebuilt_members(half, faces), p_half, atol=1e-5)
    # a temperature goes on top like on any model
    _set_temperature(half, 0.5)
    logits = OnnxClassifier(half).predict_logits(faces)
    assert np.allclose(OnnxClassifier(half).predict_probs(faces), torch.softmax(torch.from_numpy(logits) / 0.5, 1),
                       atol=1e-5)


def test_an_ensemble_with_fp16_weights_quantizes_to_int8(members, tmp_path):
    from ferkit.quantize import quantize_model

    half, int8 = tmp_path / "half.onnx", tmp_path / "half-int8.onnx"
    build_ensemble(list(members), half, fp16_weights=True)
    faces = np.random.default_rng(5).integers(0, 256, (100, 48, 48), dtype=np.uint8)
    meta = quantize_model(half, int8, faces)
    graph = onnx.load(str(int8)).graph
    big = [i for i in graph.initializer if np.prod(i.dims) >= 1024]
    assert big and all(i.data_type == onnx.TensorProto.INT8 for i in big)  # no float16 weight left
    assert read_metadata(int8)["weights_dtype"] == meta["weights_dtype"] == "int8 (7 bits, per tensor)"
    p_half, p_int8 = OnnxClassifier(half).predict_probs(faces), OnnxClassifier(int8).predict_probs(faces)
    assert (p_half.argmax(1) == p_int8.argmax(1)).mean() >= 0.8
    assert meta["quantization"]["agreement_with_float"] == (p_half.argmax(1) == p_int8.argmax(1)).mean()


def test_the_bundled_ensemble_is_its_members_rebuilt():
    """Each member of the bundled ensemble rebuilds from the graph with the architecture
    its .json names (so ``ferkit export ensemble --member i`` exports that network)."""
    faces = np.random.default_rng(5).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    path = resolve_model("ensemble")
    assert np.allclose(_probs_from_rebuilt_members(path, faces), OnnxClassifier(path).predict_probs(faces),
                       atol=1e-5)

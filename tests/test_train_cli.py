"""The real command line on tiny data: train one epoch, resume, evaluate, export."""

import csv
import json
import os
import subprocess
from pathlib import Path
import sys

import cv2
import numpy as np
import pytest
import torch

from ferkit.checkpoint import load_checkpoint

FERKIT = [sys.executable, "-m", "ferkit.cli"]


def run(*args, env=None):
    return subprocess.run([*FERKIT, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def train_tiny(data, out, *flags):
    """One epoch of `ferkit train` on the tiny data, batch 8, one thread, plus ``flags``."""
    return run("train", "--data", data, "--epochs", 1, "--batch-size", 8, "--out", out,
               "--no-progress", "--threads", 1, *flags)


@pytest.fixture
def trained_run(tiny_csv, tmp_path):
    out = tmp_path / "run"
    r = run("train", "--data", tiny_csv, "--model", "vgg_s", "--epochs", 1, "--batch-size", 8,
            "--out", out, "--no-progress", "--seed", 1, "--threads", 1)
    assert r.returncode == 0, r.stderr
    return out, tiny_csv


def test_train_one_epoch_writes_everything(trained_run):
    out, _ = trained_run
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "config.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["val_acc"]) <= 1.0
    model, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["model"] == "vgg_s" and ckpt["class_names"][3] == "happy"
    assert ckpt["preprocessing"]["input_size"] == 48 and 0 < ckpt["preprocessing"]["std"] < 1
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_no_progress_silences_the_progress_bar(tiny_csv, tmp_path):
    r = train_tiny(tiny_csv, tmp_path / "quiet")  # with --no-progress
    assert r.returncode == 0, r.stderr
    assert "batch/s" not in r.stderr and "epoch 1/1:" in r.stdout
    r = run("train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 8, "--out", tmp_path / "bar",
            "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "batch/s" in r.stderr  # tqdm's bar, on stderr even when it is not a terminal


def test_existing_run_needs_resume_and_resume_continues(trained_run):
    out, data = trained_run
    r = run("train", "--data", data, "--epochs", 2, "--batch-size", 8, "--out", out, "--no-progress")
    assert r.returncode == 2 and "--resume" in r.stderr
    r = run("train", "--data", data, "--model", "vgg_s", "--epochs", 2, "--batch-size", 8,
            "--out", out, "--no-progress", "--resume", "--seed", 1, "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_config_file_and_unknown_option(tiny_csv, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: vgg_s\nepochs: 1\nbatch_size: 8\nnot_an_option: 3\n")
    r = run("train", "--config", recipe, "--data", tiny_csv, "--out", tmp_path / "x", "--no-progress")
    assert r.returncode == 2 and "not_an_option" in r.stderr


def test_evaluate_writes_metrics_and_figures(trained_run, tmp_path):
    out, data = trained_run
    ev = tmp_path / "eval"
    r = run("evaluate", "--model", out / "best.pt", "--data", data, "--split", "test", "--out", ev)
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout and "macro F1" in r.stdout
    m = json.loads((ev / "metrics.json").read_text())
    assert m["split"] == "test" and m["n"] == 14
    for key in ("accuracy", "macro_f1", "top2_accuracy", "top3_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    assert m["top3_accuracy"] >= m["top2_accuracy"] >= m["accuracy"]
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == 14
    assert np.allclose(np.array(m["confusion_matrix_normalized"]).sum(1), 1.0, atol=1e-3)
    assert set(m["per_class"]["happy"]) >= {"precision", "recall", "f1", "support", "roc_auc"}
    for png in ("confusion_matrix.png", "confusion_matrix_normalized.png", "roc.png"):
        assert (ev / png).stat().st_size > 1000


def test_export_onnx_parity_and_dynamic_batch(trained_run, tmp_path):
    import onnxruntime as ort

    out, _ = trained_run
    onnx_path = tmp_path / "m.onnx"
    r = run("export", out / "best.pt", "--out", onnx_path)
    assert r.returncode == 0, r.stderr
    # PyTorch's exporter notes that torchvision is missing and warns of its own internals;
    # neither concerns a user of ferkit (which needs no torchvision), so neither is shown
    assert "torchvision" not in r.stderr and "LeafSpec" not in r.stderr, r.stderr
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["class_names"][0] == "angry" and meta["preprocessing"]["input_size"] == 48
    model, _ = load_checkpoint(out / "best.pt")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for batch in (1, 5, 67):
        x = torch.randn(batch, 1, 48, 48, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = torch.softmax(model(x), 1).numpy()
        logits, probs = sess.run(["logits", "probs"], {"images": x.numpy()})
        assert probs.shape == (batch, 7)
        assert np.abs(probs - expected).max() < 1e-4
        assert np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_models_command_lists_registry():
    r = run("models")
    assert r.returncode == 0 and {"dcnn", "vgg", "vgg_s"} <= set(r.stdout.split())


def test_checkpoint_and_its_onnx_export_evaluate_the_same(trained_run, tmp_path):
    out, data = trained_run
    onnx_path = tmp_path / "m.onnx"
    assert run("export", out / "best.pt", "--out", onnx_path, "--equalize").returncode == 0
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["preprocessing"]["equalize"] is True
    from ferkit.classifier import OnnxClassifier
    from ferkit.data import load_fer2013
    from ferkit.evaluate import TorchClassifier

    faces = load_fer2013(data)["test"].images
    torch_clf = TorchClassifier(out / "best.pt")
    onnx_clf = OnnxClassifier(onnx_path)
    assert onnx_clf.preprocessing.equalize and not torch_clf.preprocessing.equalize
    torch_clf.preprocessing = onnx_clf.preprocessing  # the same preprocessing on both paths
    assert np.abs(torch_clf.predict_logits(faces) - onnx_clf.predict_logits(faces)).max() < 1e-3


def test_equalize_training_records_it(tiny_csv, tmp_path):
    out = tmp_path / "eq"
    r = train_tiny(tiny_csv, out, "--equalize")
    assert r.returncode == 0, r.stderr
    _, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["preprocessing"]["equalize"] is True


def test_smaller_input_size_trains_exports_and_classifies_48px_faces(tiny_csv, tmp_path):
    out, onnx_path = tmp_path / "s32", tmp_path / "s32.onnx"
    r = train_tiny(tiny_csv, out, "--input-size", 32)
    assert r.returncode == 0, r.stderr
    model, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["preprocessing"]["input_size"] == 32
    assert run("export", out / "best.pt", "--out", onnx_path, "--tta", "flip").returncode == 0
    from ferkit.classifier import OnnxClassifier
    from ferkit.data import load_fer2013
    from ferkit.evaluate import TorchClassifier

    faces = load_fer2013(tiny_csv)["test"].images  # (N, 48, 48): resized to 32 on both paths
    assert faces.shape[1] == 48
    probs = OnnxClassifier(onnx_path).predict_probs(faces)
    assert probs.shape == (len(faces), 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert TorchClassifier(out / "best.pt").predict_logits(faces).shape == (len(faces), 7)
    bad = train_tiny(tiny_csv, tmp_path / "bad", "--input-size", 12)
    assert bad.returncode == 2 and "at least 16" in bad.stderr  # vgg_s pools four times


def test_augment_crop_is_a_shifted_window_of_the_face():
    from ferkit.train import TrainConfig, augment

    ramp = torch.arange(48, dtype=torch.float32).div(47).expand(1, 1, 48, 48).repeat(64, 1, 1, 1)  # value = column / 47
    still = TrainConfig(rotate=0, shift=0, scale=0, flip=False)
    out = augment(ramp, still, torch.Generator().manual_seed(0), crop=40)
    assert out.shape == (64, 1, 40, 40)
    cols = out[:, 0, 20] * 47  # the input column each output column came from
    steps = cols[:, 1:] - cols[:, :-1]
    assert torch.allclose(steps, torch.ones_like(steps), atol=1e-4)  # no zoom: one pixel per pixel
    first = cols[:, 0]
    assert first.min() >= 0 and first.max() <= 8 and first.max() - first.min() > 4  # anywhere in the face
    assert torch.allclose(augment(ramp, still, torch.Generator().manual_seed(0)), ramp, atol=1e-5)  # no crop: untouched


def test_crop_training_exports_the_ten_crop(tiny_csv, tmp_path):
    import onnxruntime as ort

    out, onnx_path = tmp_path / "c40", tmp_path / "c40.onnx"
    r = train_tiny(tiny_csv, out, "--crop", 40)
    assert r.returncode == 0, r.stderr
    model, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["model_args"]["crop"] == 40 and ckpt["preprocessing"]["input_size"] == 48
    assert run("export", out / "best.pt", "--out", onnx_path, "--tta", "crops").returncode == 0
    x = torch.randn(5, 1, 48, 48, generator=torch.Generator().manual_seed(4))
    crops = [x[:, :, 4:44, 4:44]] + [x[:, :, y:y + 40, c:c + 40] for y in (0, 8) for c in (0, 8)]
    with torch.no_grad():  # the centre and four corner crops, each with its mirror image
        expected = sum(model(v) + model(torch.flip(v, dims=[3])) for v in crops) / 10
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"images": x.numpy()})
    assert np.allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-4)
    bad = train_tiny(tiny_csv, tmp_path / "bad", "--crop", 60)
    assert bad.returncode == 2 and "crop 60" in bad.stderr


def test_export_with_flip_tta_averages_mirror_logits(trained_run, tmp_path):
    import onnxruntime as ort

    out, _ = trained_run
    onnx_path = tmp_path / "tta.onnx"
    assert run("export", out / "best.pt", "--out", onnx_path, "--flip-tta").returncode == 0
    assert json.loads(onnx_path.with_suffix(".json").read_text())["tta"] == "flip"
    model, _ = load_checkpoint(out / "best.pt")
    x = torch.randn(6, 1, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = 0.5 * (model(x) + model(torch.flip(x, dims=[3])))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"images": x.numpy()})
    # random inputs give large logits here: compare at float32 precision
    assert np.allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-4)


def test_init_from_checkpoint_and_mismatch(trained_run, tmp_path):
    out, data = trained_run
    r = run("train", "--data", data, "--model", "vgg_s", "--epochs", 1, "--batch-size", 8, "--lr", 0.001,
            "--init", out / "best.pt", "--out", tmp_path / "stage2", "--no-progress", "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "initialised from" in r.stdout
    r = run("train", "--data", data, "--model", "dcnn", "--epochs", 1, "--batch-size", 8,
            "--init", out / "best.pt", "--out", tmp_path / "bad", "--no-progress")
    assert r.returncode == 2 and "vgg_s checkpoint" in r.stderr


def test_init_from_an_onnx_model_rebuilds_its_weights(trained_run, tmp_path):
    """--init takes an exported .onnx (or a bundled name): the stage starts from the very
    weights of the checkpoint it was exported from."""
    from ferkit.train import TrainConfig, _init_from
    from ferkit.models import create_model

    out, data = trained_run
    onnx_path = tmp_path / "stage1.onnx"
    assert run("export", out / "best.pt", "--out", onnx_path, "--tta", "flip").returncode == 0
    source, ckpt = load_checkpoint(out / "best.pt")
    model = create_model("vgg_s")
    _init_from(model, TrainConfig(model="vgg_s", init=str(onnx_path)), ckpt["class_names"])
    for name, value in source.state_dict().items():
        if not name.endswith("num_batches_tracked"):  # a counter the graph does not keep
            assert torch.equal(model.state_dict()[name], value), name
    r = train_tiny(data, tmp_path / "stage2", "--model", "vgg_s", "--init", onnx_path, "--cutmix", 1.0)
    assert r.returncode == 0, r.stderr
    assert f"initialised from {onnx_path}" in r.stdout
    with pytest.raises(ValueError, match="vgg_s"):  # the architecture must match
        _init_from(create_model("dcnn"), TrainConfig(model="dcnn", init=str(onnx_path)), ckpt["class_names"])
    with pytest.raises(ValueError, match="do not fit"):  # and so must the widths
        _init_from(create_model("vgg_s", widths=(8, 16, 32, 64)), TrainConfig(model="vgg_s", init=str(onnx_path)),
                   ckpt["class_names"])


def test_mix_batch_mixup_and_cutmix(tiny_csv, tmp_path):
    from ferkit.train import mix_batch

    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 40, 40, generator=g)
    rng = np.random.default_rng(0)
    same, perm, lam = mix_batch(x, 0.0, 0.0, 1.0, rng)
    assert same is x and perm is None and lam == 1.0  # off
    same, perm, lam = mix_batch(x, 0.4, 1.0, 0.0, rng)
    assert same is x and perm is None  # mix_prob 0: never mixed
    for _ in range(5):
        mixed, perm, lam = mix_batch(x, 0.4, 0.0, 1.0, rng)
        assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(16))
        assert torch.allclose(mixed, lam * x + (1 - lam) * x[perm])
        mixed, perm, lam = mix_batch(x, 0.0, 1.0, 1.0, rng)
        from_x = (mixed == x).all(0).all(0)  # (H, W): pixels of the original faces
        from_perm = (mixed == x[perm]).all(0).all(0)
        assert bool((from_x | from_perm).all())  # every pixel is one face's or the other's
        pasted = ~from_x
        assert float(pasted.float().mean()) == pytest.approx(1 - lam, abs=1e-6)
        if pasted.any():  # the pasted region is one box
            rows, cols = pasted.any(1).nonzero().flatten(), pasted.any(0).nonzero().flatten()
            assert int(pasted.sum()) == len(rows) * len(cols)
    both = {mix_batch(x, 0.4, 1.0, 1.0, rng)[0].eq(x).any().item() for _ in range(40)}
    assert both == {True, False}  # CutMix keeps some original pixels, mixup none: both were drawn
    r = train_tiny(tiny_csv, tmp_path / "bad", "--mixup", -1)
    assert r.returncode == 2 and "mixup" in r.stderr


def test_distillation_loss_terms():
    from ferkit.train import distillation_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g)
    y = torch.tensor([0, 3, 6, 2, 1])
    teacher = torch.softmax(torch.randn(5, 7, generator=g) * 2, dim=1)
    hard = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    assert torch.allclose(distillation_loss(logits, y, teacher, 0.0, 3.0, 0.1), hard)
    # a student that matches the teacher has no distillation loss at any temperature
    for t in (1.0, 3.0):
        assert float(distillation_loss(torch.log(teacher), y, teacher, 1.0, t)) == pytest.approx(0.0, abs=1e-5)
    # the soft term pulls the student towards the teacher's favourite class
    student = torch.zeros(1, 7, requires_grad=True)
    favourite = torch.tensor([[0.02, 0.02, 0.02, 0.86, 0.04, 0.02, 0.02]])
    distillation_loss(student, torch.tensor([0]), favourite, 1.0, 3.0).backward()
    assert int(student.grad.argmin()) == 3  # gradient descent raises the favourite's logit
    mixed = distillation_loss(logits, y, teacher, 0.3, 2.0)
    soft = distillation_loss(logits, y, teacher, 1.0, 2.0)
    assert torch.allclose(mixed, 0.7 * torch.nn.functional.cross_entropy(logits, y) + 0.3 * soft)


def test_self_distillation_loss_blends_label_and_past_probs():
    from ferkit.train import self_distillation_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g)
    y = torch.tensor([0, 3, 6, 2, 1])
    past = torch.softmax(torch.randn(5, 7, generator=g) * 2, dim=1)
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(self_distillation_loss(logits, y, past, 0.0, 0.1), ce(logits, y, label_smoothing=0.1))
    # alpha 1: cross-entropy against the past probabilities alone, whatever the label
    soft = -(past * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(self_distillation_loss(logits, y, past, 1.0, 0.1), soft)
    # linear in alpha between the two
    assert torch.allclose(self_distillation_loss(logits, y, past, 0.3, 0.0), 0.7 * ce(logits, y) + 0.3 * soft)


def test_self_distillation_trains_keeps_each_faces_last_softmax_and_resumes(tiny_csv, tmp_path):
    out = tmp_path / "pskd"
    r = train_tiny(tiny_csv, out, "--epochs", 2, "--self-distill", 0.8)
    assert r.returncode == 0, r.stderr
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["config"]["self_distill"] == 0.8
    past = state["self_distill_probs"]
    from ferkit.data import load_fer2013

    targets = torch.from_numpy(load_fer2013(tiny_csv)["train"].targets)
    assert past.shape == (len(targets), 7) and torch.allclose(past.sum(1), torch.ones(len(targets)), atol=1e-4)
    labels = torch.nn.functional.one_hot(targets, 7).float()
    seen = ~(past == labels).all(1)  # faces whose row is a softmax, no longer their one-hot label
    assert bool(seen.all())  # 56 faces, 7 whole batches of 8: every face was seen
    # resuming picks the table up; a run without it cannot be resumed with it
    again = run("train", "--data", tiny_csv, "--epochs", 3, "--batch-size", 8, "--out", out,
                "--no-progress", "--threads", 1, "--self-distill", 0.8, "--resume")
    assert again.returncode == 0, again.stderr
    assert torch.load(out / "last.pt", weights_only=False)["epoch"] == 3
    plain = tmp_path / "plain"
    assert train_tiny(tiny_csv, plain).returncode == 0
    mixed = run("train", "--data", tiny_csv, "--epochs", 2, "--batch-size", 8, "--out", plain,
                "--no-progress", "--threads", 1, "--self-distill", 0.8, "--resume")
    assert mixed.returncode == 2 and "self_distill" in mixed.stderr
    bad = train_tiny(tiny_csv, tmp_path / "bad", "--self-distill", 0.5, "--teacher", out / "best.pt")
    assert bad.returncode == 2 and "self_distill" in bad.stderr


def test_distillation_from_a_teacher_checkpoint(trained_run, tmp_path):
    from ferkit.data import load_fer2013
    from ferkit.evaluate import load_classifier

    teacher, data = trained_run
    out = tmp_path / "student"
    r = train_tiny(data, out, "--teacher", teacher / "best.pt", "--distill-weight", 0.7,
                   "--distill-temperature", 2)
    assert r.returncode == 0, r.stderr
    probs = np.load(out / "teacher_probs.npy")
    train_faces = load_fer2013(data)["train"].images
    assert probs.shape == (len(train_faces), 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    expected = load_classifier(teacher / "best.pt").predict_probs(train_faces)
    assert np.allclose(probs, expected, atol=1e-5)  # the teacher's own view of every train face
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["teacher"].endswith("best.pt") and cfg["distill_weight"] == 0.7
    assert (out / "best.pt").is_file()
    six = train_tiny(data, tmp_path / "six", "--classes", "6", "--teacher", teacher / "best.pt")
    assert six.returncode == 2 and "teacher" in six.stderr
    bad = train_tiny(data, tmp_path / "bad", "--teacher", teacher / "best.pt", "--distill-weight", 1.5)
    assert bad.returncode == 2 and "distill_weight" in bad.stderr
    # the probabilities alone, carried without the teacher, train the same student
    again = train_tiny(data, tmp_path / "again", "--teacher", out / "teacher_probs.npy",
                       "--distill-weight", 0.7, "--distill-temperature", 2)
    assert again.returncode == 0, again.stderr
    first, second = (torch.load(d / "best.pt", weights_only=False)["state_dict"] for d in (out, tmp_path / "again"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    np.save(tmp_path / "short.npy", probs[:-1])
    short = train_tiny(data, tmp_path / "short", "--teacher", tmp_path / "short.npy")
    assert short.returncode == 2 and "train faces" in short.stderr


def _graph_logits_are_the_views_mean(onnx_path, model, x, views):
    """The exported graph's logits for ``x``, checked against the mean of ``model``'s
    logits over the independently rebuilt ``views``."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = torch.stack([model(torch.from_numpy(np.ascontiguousarray(v))) for v in views]).mean(0)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(["logits"], {"images": x})
    assert np.allclose(logits, expected.numpy(), rtol=1e-4, atol=2e-3)
    return logits


def _exported_with_tta(trained_run, tmp_path, tta, seed):
    """The run's best.pt exported by the CLI with ``tta``: (onnx path, the PyTorch model,
    (3, 1, 48, 48) float32 random input)."""
    out, _ = trained_run
    onnx_path = tmp_path / f"{tta}.onnx"
    r = run("export", out / "best.pt", "--out", onnx_path, "--tta", tta)
    assert r.returncode == 0, r.stderr
    assert json.loads(onnx_path.with_suffix(".json").read_text())["tta"] == tta
    model, _ = load_checkpoint(out / "best.pt")
    return onnx_path, model, np.random.default_rng(seed).normal(size=(3, 1, 48, 48)).astype(np.float32)


def test_export_with_crops_tta_averages_seven_views(trained_run, tmp_path):
    """The 7 views rebuilt independently: mirror image, and the four corner and the centre
    44-px crops resized to 48 px with OpenCV (bilinear, pixel centres as in PyTorch)."""
    onnx_path, model, x = _exported_with_tta(trained_run, tmp_path, "crops", seed=5)
    views = [x, x[..., ::-1]]
    for y0, x0 in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2)):
        views.append(np.stack([cv2.resize(face[0, y0:y0 + 44, x0:x0 + 44], (48, 48),
                                          interpolation=cv2.INTER_LINEAR)[None] for face in x]))
    logits = _graph_logits_are_the_views_mean(onnx_path, model, x, views)
    with torch.no_grad():
        plain = model(torch.from_numpy(x)).numpy()
    assert not np.allclose(logits, plain, atol=1e-2)  # the views do change the answer


def _average_is_what_val_measured(last: dict, key: str, data) -> dict:
    """The weight average a run's ``last.pt`` keeps under ``key`` (``ema_state`` or
    ``swa_state``), checked to differ from the raw weights and to give the last epoch's
    val accuracy."""
    from ferkit.checkpoint import build_model
    from ferkit.data import load_fer2013
    from ferkit.preprocess import Preprocessing
    from ferkit.train import predict_logits

    average = {k[len("module."):]: v for k, v in last[key].items() if k.startswith("module.")}
    assert set(average) == set(last["state_dict"])
    w = "features.0.weight"
    assert not torch.allclose(average[w], last["state_dict"][w])  # an average, not the raw weights
    model = build_model(last)
    model.load_state_dict(average)
    val = load_fer2013(data)["val"]
    acc = float((predict_logits(model, val.images, Preprocessing.from_dict(last["preprocessing"])).argmax(1)
                 == val.targets).mean())
    assert acc == pytest.approx(last["history"][-1]["val_acc"])
    return average


def test_weight_ema_is_what_val_measures_and_best_keeps(tiny_csv, tmp_path):
    out = tmp_path / "ema"
    args = ("train", "--data", tiny_csv, "--model", "vgg_s", "--batch-size", 8, "--out", out,
            "--no-progress", "--seed", 1, "--threads", 1, "--ema", 0.5, "--patience", 0)
    assert run(*args, "--epochs", 1).returncode == 0
    r = run(*args, "--epochs", 2, "--resume")  # the average survives a resume
    assert r.returncode == 0, r.stderr
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert int(last["ema_state"]["n_averaged"]) > 1
    ema = _average_is_what_val_measured(last, "ema_state", tiny_csv)
    w = "features.0.weight"
    assert 0 <= last["history"][-1]["val_acc_raw"] <= 1  # the raw weights' val accuracy, on record
    assert "val_acc_raw" in (out / "history.csv").read_text().splitlines()[0]
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    if best["epoch"] == 2:
        assert torch.equal(best["state_dict"][w], ema[w])
    assert run("train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 8, "--ema", 1.5,
               "--out", tmp_path / "bad", "--no-progress").returncode == 2


def test_swa_averages_the_runs_tail_at_its_constant_lr_and_val_measures_the_average(tiny_csv, tmp_path):
    out = tmp_path / "swa"
    args = ("train", "--data", tiny_csv, "--model", "vgg_s", "--batch-size", 8, "--out", out, "--no-progress",
            "--seed", 1, "--threads", 1, "--lr", 0.05, "--swa", 0.5, "--swa-lr", 0.004, "--patience", 0)
    r = run(*args, "--epochs", 4)
    assert r.returncode == 0, r.stderr
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    history = last["history"]
    # the first epoch is before the average; epochs 2-4 end at half the run or later
    assert "val_acc_raw" not in history[0] and all(0 <= h["val_acc_raw"] <= 1 for h in history[1:])
    assert int(last["swa_state"]["n_averaged"]) == 3
    assert history[0]["lr"] != pytest.approx(0.004)
    assert [h["lr"] for h in history[1:]] == pytest.approx([0.004] * 3)  # held, not annealed
    swa = _average_is_what_val_measured(last, "swa_state", tiny_csv)
    w = "features.0.weight"
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    if best["epoch"] == 4:
        assert torch.equal(best["state_dict"][w], swa[w])
    r = run(*args, "--epochs", 5, "--resume")  # the average survives a resume and takes epoch 5 in
    assert r.returncode == 0, r.stderr
    resumed = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert int(resumed["swa_state"]["n_averaged"]) == 4
    for bad in (("--swa", 1.0), ("--swa-lr", 0.01), ("--swa", 0.5, "--ema", 0.9)):
        r = run("train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 8, *bad,
                "--out", tmp_path / "bad", "--no-progress")
        assert r.returncode == 2 and "swa" in r.stderr


def test_bf16_autocast_trains_float32_weights_close_to_fp32(tiny_csv, tmp_path):
    """bf16 changes the arithmetic, not the run: same seed, float32 weights, nearby values."""
    runs = {}
    for precision in ("fp32", "bf16"):
        r = train_tiny(tiny_csv, tmp_path / precision, "--seed", 3, "--precision", precision)
        assert r.returncode == 0, r.stderr
        runs[precision] = torch.load(tmp_path / precision / "last.pt", map_location="cpu",
                                     weights_only=False)
    assert runs["bf16"]["config"]["precision"] == "bf16"
    w32, w16 = runs["fp32"]["state_dict"], runs["bf16"]["state_dict"]
    for name in w32:
        if w32[name].is_floating_point():
            assert w16[name].dtype == torch.float32, name
    w = "features.0.weight"
    assert not torch.equal(w32[w], w16[w])  # bf16 arithmetic really ran...
    # ...and took the same few steps from the same start (here ~12% apart; two seeds ~130%)
    assert (w32[w] - w16[w]).abs().mean() < 0.25 * w32[w].abs().mean()
    # the val pass of a bf16 run is bf16's too: its recorded loss is the bf16 loss of the
    # weights it measured, not the float32 one
    from ferkit.data import load_fer2013
    from ferkit.preprocess import Preprocessing
    from ferkit.train import predict_logits
    model, ckpt = load_checkpoint(tmp_path / "bf16" / "last.pt")
    val = load_fer2013(tiny_csv, "all")["val"]
    pre, y = Preprocessing.from_dict(ckpt["preprocessing"]), torch.from_numpy(val.targets)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the run's thread count, so that its sums add up in the same order
    try:
        losses = {}
        for precision in ("fp32", "bf16"):
            logits = torch.from_numpy(predict_logits(model, val.images, pre, bf16=precision == "bf16"))
            losses[precision] = float(torch.nn.functional.cross_entropy(logits, y))
    finally:
        torch.set_num_threads(threads)
    recorded = ckpt["history"][-1]["val_loss"]
    assert abs(recorded - losses["bf16"]) < 0.1 * abs(losses["fp32"] - losses["bf16"]), (recorded, losses)
    bad = tmp_path / "bad.yaml"
    bad.write_text("precision: fp16\n")
    r = train_tiny(tiny_csv, tmp_path / "bad", "--config", bad)
    assert r.returncode == 2 and "precision" in r.stderr


def test_precision_auto_times_both_and_keeps_its_choice_on_resume(tiny_csv, tmp_path):
    from ferkit.models import create_model
    from ferkit.train import choose_precision

    torch.manual_seed(0)
    model = create_model("vgg_s", widths=(8, 16, 16, 16), crop=40, dropout=0.5)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    choice, ms = choose_precision(model, 4, 40, steps=2)
    assert set(ms) == {"fp32", "bf16"} and all(v > 0 for v in ms.values())
    assert choice == min(ms, key=ms.get)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # timed on a copy
    assert torch.equal(torch.get_rng_state(), rng)  # the run's own random draws are not shifted

    out = tmp_path / "auto"
    r = train_tiny(tiny_csv, out, "--precision", "auto")
    assert r.returncode == 0, r.stderr
    chosen = torch.load(out / "last.pt", map_location="cpu", weights_only=False)["config"]["precision"]
    assert chosen in ("fp32", "bf16") and f"precision auto: {chosen} (" in r.stdout
    assert json.loads((out / "config.json").read_text())["precision"] == chosen
    r = run("train", "--data", tiny_csv, "--epochs", 2, "--batch-size", 8, "--out", out,
            "--no-progress", "--threads", 1, "--precision", "auto", "--resume")
    assert r.returncode == 0, r.stderr
    assert f"precision auto: {chosen}, as chosen when" in r.stdout


def test_budget_run_stopped_by_its_epoch_cap_warns(tiny_csv, tmp_path):
    r = run("train", "--data", tiny_csv, "--batch-size", 8, "--out", tmp_path / "capped", "--no-progress",
            "--threads", 1, "--epochs", 1, "--budget", 10, "--patience", 0)
    assert r.returncode == 0, r.stderr
    assert "before annealing" in r.stderr


def test_time_budget_runs_one_cycle_on_the_clock(tiny_csv, tmp_path):
    out = tmp_path / "budget"
    budget_min, lr = 0.2, 0.02
    r = run("train", "--data", tiny_csv, "--model", "vgg_s", "--batch-size", 8, "--out", out,
            "--no-progress", "--seed", 1, "--threads", 1, "--epochs", 10_000, "--lr", lr,
            "--budget", budget_min, "--patience", 0)
    assert r.returncode == 0, r.stderr
    assert "time budget of 0.2 min spent" in r.stdout
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    rows = last["history"]
    assert 2 <= len(rows) < 10_000  # stopped by the clock, not by --epochs
    assert last["elapsed"] <= budget_min * 60 + 2.0  # the last val pass may overrun a little
    lrs = [row["lr"] for row in rows]
    assert max(lrs) > 0.5 * lr  # the schedule reached its peak within the budget...
    assert lrs[-1] < 0.2 * lr  # ...and had annealed by its end
    bad = run("train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 8, "--budget", 1,
              "--schedule", "cosine", "--out", tmp_path / "bad", "--no-progress")
    assert bad.returncode == 2 and "onecycle" in bad.stderr


def test_resumed_budget_run_keeps_its_clock(tiny_csv, tmp_path):
    """A budget run stopped early (here by --epochs) and resumed spends only what is left."""
    out = tmp_path / "budget"
    common = ("--data", tiny_csv, "--model", "vgg_s", "--batch-size", 8, "--out", out,
              "--no-progress", "--seed", 1, "--threads", 1, "--budget", 0.25, "--patience", 0)
    first = run("train", *common, "--epochs", 2)
    assert first.returncode == 0, first.stderr
    before = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert len(before["history"]) == 2 and before["elapsed"] < 0.25 * 60
    again = run("train", *common, "--epochs", 10_000, "--resume")
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout and "time budget of 0.25 min spent" in again.stdout
    after = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert len(after["history"]) > 2
    assert after["history"][:2] == before["history"]
    assert before["elapsed"] < after["elapsed"] <= 0.25 * 60 + 2.0  # one clock across both runs
    assert after["history"][-1]["lr"] < after["history"][1]["lr"]  # the schedule went on annealing
    other = run("train", *common[:-4], "--budget", 0.5, "--epochs", 10_000, "--resume")
    assert other.returncode == 2 and "same budget" in other.stderr


@pytest.mark.parametrize("recipe", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_every_recipe_in_configs_builds_its_model(recipe):
    from ferkit.models import create_model
    from ferkit.train import TrainConfig, load_config

    cfg = TrainConfig.from_dict(load_config(Path(__file__).parents[1] / "configs" / recipe))
    model = create_model(cfg.model, input_size=cfg.input_size or 48, **cfg.model_args).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)  # a 48 px face, whatever the crop
    if cfg.fp32_recipe:  # the recipe it falls back to loads as well
        assert cfg.precision == "auto"
        TrainConfig.from_dict(load_config(cfg.fp32_recipe))


def test_augment_contrast_and_brightness_jitter_each_face():
    from ferkit.train import TrainConfig, augment

    gen = torch.Generator().manual_seed(0)
    faces = 0.4 + 0.2 * torch.rand(256, 1, 48, 48, generator=gen)  # mid-gray: no clipping below
    still = dict(rotate=0, shift=0, scale=0, flip=False)
    same = augment(faces, TrainConfig(**still), torch.Generator().manual_seed(1))
    assert torch.allclose(same, faces, atol=1e-5)

    out = augment(faces, TrainConfig(**still, contrast=0.5), torch.Generator().manual_seed(1))
    ratio = out.std(dim=(1, 2, 3)) / faces.std(dim=(1, 2, 3))
    assert torch.allclose(out.mean(dim=(1, 2, 3)), faces.mean(dim=(1, 2, 3)), atol=1e-4)  # about its own mean
    assert ratio.min() >= 0.5 - 1e-3 and ratio.max() <= 1.5 + 1e-3 and ratio.max() - ratio.min() > 0.8

    out = augment(faces, TrainConfig(**still, brightness=0.3), torch.Generator().manual_seed(1))
    factor = out.mean(dim=(1, 2, 3)) / faces.mean(dim=(1, 2, 3))
    assert factor.min() >= 0.7 - 1e-3 and factor.max() <= 1.3 + 1e-3 and factor.max() - factor.min() > 0.5
    assert torch.allclose(out / faces, factor.view(-1, 1, 1, 1).expand_as(out), atol=1e-4)  # one factor a face

    bright = augment(torch.ones(64, 1, 8, 8), TrainConfig(**still, brightness=1.0, contrast=1.0),
                     torch.Generator().manual_seed(2))
    assert bright.min() >= 0.0 and bright.max() <= 1.0  # clipped to the pixel range


def test_bad_jitter_amounts_are_refused(tiny_csv, tmp_path):
    r = train_tiny(tiny_csv, tmp_path / "run", "--contrast", 1.5)
    assert r.returncode != 0 and "brightness and contrast must be in [0, 1]" in r.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_lower_resolution_shrinks_a_share_of_faces_as_a_small_crop_reaches_the_model():
    from ferkit.preprocess import Preprocessing, fit_face
    from ferkit.train import lower_resolution

    pre = Preprocessing(input_size=48)
    rng = np.random.default_rng(0)
    faces = torch.from_numpy(rng.integers(0, 256, (400, 48, 48), dtype=np.uint8))
    assert lower_resolution(faces, 0.0, 12, pre, torch.Generator().manual_seed(0)) is faces

    out = lower_resolution(faces, 1.0, 12, pre, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == faces.shape
    sides = []
    for face, got in zip(faces.numpy(), out.numpy()):  # each is one shrunk side's inference path
        match = [s for s in range(12, 48)
                 if np.array_equal(fit_face(cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA), pre), got)]
        assert len(match) == 1, match
        sides += match
    assert min(sides) <= 14 and max(sides) >= 45  # the whole range is drawn

    half = lower_resolution(faces, 0.5, 40, pre, torch.Generator().manual_seed(2))
    changed = float((half != faces).flatten(1).any(1).float().mean())
    assert 0.4 < changed < 0.6
    again = lower_resolution(faces, 0.5, 40, pre, torch.Generator().manual_seed(2))
    assert torch.equal(half, again)  # the generator decides


def test_lowres_training_records_it_and_bad_amounts_are_refused(tiny_csv, tmp_path):
    r = train_tiny(tiny_csv, tmp_path / "run", "--lowres", 0.5, "--lowres-min", 16)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["lowres"] == 0.5 and cfg["lowres_min"] == 16
    for flags in (("--lowres", 1.5), ("--lowres", 0.5, "--lowres-min", 48), ("--lowres", 0.5, "--lowres-min", 2)):
        r = train_tiny(tiny_csv, tmp_path / "bad", *flags)
        assert r.returncode != 0 and "lowres must be in [0, 1]" in r.stderr, flags
        assert not (tmp_path / "bad" / "last.pt").exists()


def test_auto_precision_trains_the_fp32_recipe_where_fp32_is_faster(tiny_csv, tmp_path):
    primary = tmp_path / "recipes" / "wide.yaml"
    primary.parent.mkdir()
    primary.write_text("model: vgg_s\nmodel_args: {widths: [8, 16, 32, 32], crop: 40, dropout: 0.2}\n"
                       "precision: auto\nfp32_recipe: narrow.yaml\nseed: 5\noptimizer: adamw\nlr: 0.003\n")
    (primary.parent / "narrow.yaml").write_text("model: vgg_s\nmodel_args: {widths: [4, 8, 8, 8], dropout: 0.0}\n"
                                                "seed: 0\noptimizer: sgd\nlr: 0.01\n")
    out = tmp_path / "run"
    r = train_tiny(tiny_csv, out, "--config", primary, "--seed", 3, "--crop", 44)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    chosen = "fp32" if "precision auto: fp32 (" in r.stdout else "bf16"
    assert f"precision auto: {chosen} (" in r.stdout and cfg["precision"] == chosen
    assert cfg["seed"] == 3 and cfg["model_args"]["crop"] == 44 and cfg["out"] == str(out)  # the options given
    if chosen == "fp32":  # the other recipe, with the same options on top
        assert "narrow.yaml (the recipe's fp32_recipe) instead" in r.stdout
        assert cfg["model_args"]["widths"] == [4, 8, 8, 8] and cfg["optimizer"] == "sgd" and cfg["fp32_recipe"] == ""
    else:
        assert cfg["model_args"]["widths"] == [8, 16, 32, 32] and cfg["optimizer"] == "adamw"
    r = run("train", "--config", primary, "--data", tiny_csv, "--epochs", 2, "--batch-size", 8, "--out", out,
            "--no-progress", "--threads", 1, "--seed", 3, "--crop", 44, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"precision auto: {chosen}, as chosen when" in r.stdout  # a resumed run keeps its recipe
    assert json.loads((out / "config.json").read_text())["model_args"] == cfg["model_args"]
    assert len(torch.load(out / "last.pt", map_location="cpu", weights_only=False)["history"]) == 2


def test_logit_adjustment_is_tau_log_prior_and_favours_rare_classes(tiny_csv, tmp_path):
    from ferkit.train import logit_adjustment

    targets = torch.tensor([0, 0, 0, 1, 1, 2])  # class 3 has no faces: counted as one
    adj = logit_adjustment(targets, 4, 0.5)
    assert adj.shape == (4,) and adj.dtype == torch.float32
    assert torch.allclose(adj, 0.5 * torch.log(torch.tensor([3.0, 2.0, 1.0, 1.0]) / 7.0))
    assert torch.equal(logit_adjustment(targets, 4, 0.0), torch.zeros(4))
    # The loss on logits + adj: at uniform logits, its gradient pushes the rare class's
    # logit up more than plain cross-entropy does, so the model learns to predict it more.
    logits = torch.zeros(6, 4, requires_grad=True)
    torch.nn.functional.cross_entropy(logits + logit_adjustment(targets, 4, 1.0), targets).backward()
    plain = torch.zeros(6, 4, requires_grad=True)
    torch.nn.functional.cross_entropy(plain, targets).backward()
    assert float(-logits.grad[:, 2].sum()) > float(-plain.grad[:, 2].sum())
    assert float(-logits.grad[:, 0].sum()) < float(-plain.grad[:, 0].sum())

    r = train_tiny(tiny_csv, tmp_path / "la", "--logit-adjust", 1.0)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "la" / "config.json").read_text())["logit_adjust"] == 1.0
    r = train_tiny(tiny_csv, tmp_path / "bad", "--logit-adjust", -1)
    assert r.returncode != 0 and "logit_adjust must be >= 0" in r.stderr


def test_training_on_a_pack_is_training_on_its_source(tiny_csv, tmp_path):
    pack = tmp_path / "carry" / "fer.npz.xz"
    r = run("pack", tiny_csv, "--out", pack)
    assert r.returncode == 0, r.stderr
    assert "56 train, 14 val faces" in r.stdout and pack.is_file()
    a = train_tiny(tiny_csv, tmp_path / "csv", "--seed", 4, "--device", "cpu")
    b = train_tiny(pack, tmp_path / "pack", "--seed", 4)  # device auto: the CPU here
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    sa = torch.load(tmp_path / "csv" / "last.pt", map_location="cpu", weights_only=False)
    sb = torch.load(tmp_path / "pack" / "last.pt", map_location="cpu", weights_only=False)
    assert sa["history"][0]["val_acc"] == sb["history"][0]["val_acc"]
    for k, v in sa["state_dict"].items():  # the same faces, order and draws: the same weights
        assert torch.equal(v, sb["state_dict"][k]), k
    r = run("pack", tiny_csv, "--out", tmp_path / "p.npz", "--splits", "train,holdout")
    assert r.returncode == 2 and "unknown or no splits" in r.stderr


def test_device_is_checked_before_training(tiny_csv, tmp_path):
    from ferkit.train import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    r = train_tiny(tiny_csv, tmp_path / "bad", "--device", "tpu")
    assert r.returncode == 2 and "unknown device 'tpu'" in r.stderr
    if not torch.cuda.is_available():
        r = train_tiny(tiny_csv, tmp_path / "gpu", "--device", "cuda")
        assert r.returncode == 2 and "sees no CUDA GPU" in r.stderr
        assert not (tmp_path / "gpu" / "last.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_trains_there_and_writes_cpu_checkpoints(tiny_csv, tmp_path):
    r = train_tiny(tiny_csv, tmp_path / "gpu", "--device", "cuda", "--precision", "auto", "--crop", 40,
                   "--erase", 0.5, "--brightness", 0.2, "--contrast", 0.2, "--cutmix", 1.0, "--ema", 0.9,
                   "--logit-adjust", 1.0, "--epochs", 2)
    assert r.returncode == 0, r.stderr
    assert "cuda" in r.stdout and "bf16" in r.stdout
    state = torch.load(tmp_path / "gpu" / "best.pt", weights_only=False)  # no map_location needed
    assert all(v.device.type == "cpu" for v in state["state_dict"].values())
    model, _ = load_checkpoint(tmp_path / "gpu" / "best.pt")
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    r = train_tiny(tiny_csv, tmp_path / "gpu", "--device", "cuda", "--precision", "auto", "--crop", 40,
                   "--erase", 0.5, "--brightness", 0.2, "--contrast", 0.2, "--cutmix", 1.0, "--ema", 0.9,
                   "--logit-adjust", 1.0, "--epochs", 3, "--resume")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("tta, zoom_out, zoom_in", [("scales", (42,), (43,)), ("scales5", (42, 45), (45, 43))])
def test_export_with_scales_tta_averages_zooms_and_their_mirrors(trained_run, tmp_path, tta, zoom_out, zoom_in):
    """The views rebuilt independently: the face; zoomed out to 42 px (and, for scales5,
    45 px) with Pillow's (antialiased) bilinear filter and its border replicated back to 48
    by OpenCV; its centre 43 px (and 45 px) zoomed in to 48 with OpenCV's bilinear; each
    mirrored: 6 views for scales, 10 for scales5."""
    from PIL import Image

    from ferkit.export import TTA_MODES

    onnx_path, model, x = _exported_with_tta(trained_run, tmp_path, tta, seed=6)
    faces = [x]
    for n in zoom_out:
        o = (48 - n) // 2
        small = [np.asarray(Image.fromarray(f[0], mode="F").resize((n, n), Image.BILINEAR)) for f in x]
        faces.append(np.stack([cv2.copyMakeBorder(f, o, 48 - n - o, o, 48 - n - o, cv2.BORDER_REPLICATE)[None]
                               for f in small]))
    for c in zoom_in:
        o = (48 - c) // 2
        faces.append(np.stack([cv2.resize(f[0, o:o + c, o:o + c], (48, 48), interpolation=cv2.INTER_LINEAR)[None]
                               for f in x]))
    views = [v for face in faces for v in (face, face[..., ::-1])]
    assert len(views) == TTA_MODES[tta]
    _graph_logits_are_the_views_mean(onnx_path, model, x, views)


def test_val_choices_exports_the_checkpoint_and_tta_that_val_chose(trained_run, tmp_path):
    """benchmarks/val_choices.py --out (what `make test-fast` runs before its one test
    evaluation): the exported graph is the candidate with the highest val accuracy, then
    macro F1, then the lowest cost per face, and it scores on val what its metadata records."""
    from ferkit.classifier import OnnxClassifier
    from ferkit.data import load_fer2013
    out, data = trained_run
    chosen = tmp_path / "chosen.onnx"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "val_choices.py"
    r = subprocess.run([sys.executable, str(script), str(out / "best.pt"), str(out / "last.pt"), "--data", str(data),
                        "--tta", "none", "flip", "--out", str(chosen)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    choice = json.loads(chosen.with_suffix(".json").read_text())["val_choice"]
    assert len(choice["candidates"]) == 4 and choice["split"] == "val" and choice["n"] == 14
    first = max(choice["candidates"], key=lambda c: (c["accuracy"], c["macro_f1"], -c["ms_per_face"]))
    assert (choice["checkpoint"], choice["tta"], choice["accuracy"]) == (first["checkpoint"], first["tta"],
                                                                         first["accuracy"])
    assert "val's choice" in r.stdout and json.loads(chosen.with_suffix(".json").read_text())["tta"] == first["tta"]
    val = load_fer2013(data)["val"]
    pred = OnnxClassifier(chosen).predict_logits(val.images).argmax(1)
    assert np.mean(pred == val.targets) == pytest.approx(choice["accuracy"])


def test_an_exported_model_is_re_exported_with_another_tta_from_its_own_weights(trained_run, tmp_path):
    import onnxruntime as ort

    out, _ = trained_run
    flip = tmp_path / "flip.onnx"
    assert run("export", out / "best.pt", "--out", flip, "--tta", "flip").returncode == 0
    direct, again = tmp_path / "direct.onnx", tmp_path / "again.onnx"
    assert run("export", out / "best.pt", "--out", direct, "--tta", "scales").returncode == 0
    r = run("export", flip, "--out", again, "--tta", "scales")
    assert r.returncode == 0, r.stderr
    meta, first = (json.loads(p.with_suffix(".json").read_text()) for p in (again, direct))
    assert meta["tta"] == "scales" and meta["rebuilt_from"] == "flip.onnx (its graph's weights)"
    assert meta["trained"] == first["trained"] and meta["preprocessing"] == first["preprocessing"]
    x = np.random.default_rng(7).normal(size=(4, 1, 48, 48)).astype(np.float32)
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["logits"], {"images": x})[0]
            for p in (direct, again))
    assert np.allclose(a, b, atol=1e-5)
    r = run("export", tmp_path / "missing.onnx", "--out", tmp_path / "x.onnx")
    assert r.returncode == 2 and "missing.onnx" in r.stderr


def test_tta_rotations_views_match_the_exported_modes(trained_run, tmp_path):
    """benchmarks/tta_rotations.py (session 36's measurement): its ``scales`` and
    ``scales5`` view sets average to the logits of the exported graphs of those modes, and
    its rotations turn the face about its centre (0 degrees: the face; 90: numpy's rot90)."""
    import importlib.util

    import onnxruntime as ort
    from ferkit.data import load_fer2013
    from ferkit.preprocess import Preprocessing, prepare_faces

    out, data = trained_run
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "tta_rotations.py"
    spec = importlib.util.spec_from_file_location("tta_rotations", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x = torch.from_numpy(np.random.default_rng(3).random((2, 1, 48, 48), dtype=np.float32))
    assert torch.allclose(mod.rotate(x, 0), x, atol=1e-5)  # the grid's float rounding: about 3e-6
    assert torch.allclose(mod.rotate(x, 90), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    r = subprocess.run([sys.executable, str(script), str(out / "best.pt"), "--data", str(data),
                        "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rot10: mean gain over scales5" in r.stdout
    (cached,) = (tmp_path / "cache").glob("*.npy")
    logits = np.load(cached)
    val = load_fer2013(data)["val"]
    assert logits.shape[:2] == (len(val.targets), 18)
    ckpt = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    faces = prepare_faces(val.images, Preprocessing.from_dict(ckpt["preprocessing"]))
    for tta in ("scales", "scales5"):
        assert run("export", out / "best.pt", "--out", tmp_path / f"{tta}.onnx", "--tta", tta).returncode == 0
        sess = ort.InferenceSession(str(tmp_path / f"{tta}.onnx"), providers=["CPUExecutionProvider"])
        graph = sess.run(["logits"], {"images": faces.astype(np.float32)})[0]
        assert np.allclose(logits[:, mod.VIEW_SETS[tta]].mean(1), graph, atol=1e-4)


def test_average_checkpoints_writes_the_weight_mean_that_exports(trained_run, tmp_path):
    """benchmarks/average_checkpoints.py: every float tensor of the result is the weighted
    mean of the sources', integer buffers come from the first, the result exports and runs,
    and checkpoints of another network are refused by name."""
    out, _ = trained_run
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "average_checkpoints.py"
    soup, moved = tmp_path / "soup.pt", tmp_path / "moved.pt"
    b = torch.load(out / "last.pt", map_location="cpu", weights_only=False)  # other weights of the same network
    gen = torch.Generator().manual_seed(0)
    b["state_dict"] = {k: t + 0.01 * torch.randn(t.shape, generator=gen) if t.is_floating_point() else t
                       for k, t in b["state_dict"].items()}
    torch.save(b, moved)
    r = subprocess.run([sys.executable, str(script), str(out / "best.pt"), str(moved),
                        "--weights", "3", "1", "--out", str(soup)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a, s = (torch.load(p, map_location="cpu", weights_only=False) for p in (out / "best.pt", soup))
    assert s["averaged_from"] == [str(out / "best.pt"), str(moved)] and s["average_weights"] == [0.75, 0.25]
    differ = 0
    for name, t in s["state_dict"].items():
        if t.is_floating_point():
            assert torch.allclose(t, 0.75 * a["state_dict"][name] + 0.25 * b["state_dict"][name], atol=1e-6), name
            differ += not torch.equal(a["state_dict"][name], b["state_dict"][name])
        else:
            assert torch.equal(t, a["state_dict"][name])
    assert differ > 0
    assert run("export", soup, "--out", tmp_path / "soup.onnx").returncode == 0
    other = dict(b, model_args={**b["model_args"], "dropout": 0.5})
    torch.save(other, tmp_path / "other.pt")
    r = subprocess.run([sys.executable, str(script), str(out / "best.pt"), str(tmp_path / "other.pt"),
                        "--out", str(tmp_path / "x.pt")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "model_args" in r.stderr and "other.pt" in r.stderr
    assert not (tmp_path / "x.pt").exists()


def test_warmup_sets_where_the_one_cycle_lr_peaks(tiny_csv, tmp_path):
    """56 train faces at batch 8: 7 steps an epoch, 28 in 4 epochs; history's lr is each epoch's last."""
    lrs = {}
    for warmup in (0.0, 0.75):
        out = tmp_path / f"w{warmup}"
        r = run("train", "--data", tiny_csv, "--model", "vgg_s", "--epochs", 4, "--batch-size", 8,
                "--lr", 0.01, "--schedule", "onecycle", "--warmup", warmup, "--patience", 0,
                "--out", out, "--no-progress", "--seed", 1, "--threads", 1)
        assert r.returncode == 0, r.stderr
        assert json.loads((out / "config.json").read_text())["warmup"] == warmup
        lrs[warmup] = [h["lr"] for h in torch.load(out / "last.pt", map_location="cpu",
                                                    weights_only=False)["history"]]
    assert lrs[0.0] == sorted(lrs[0.0], reverse=True) and lrs[0.0][0] > lrs[0.0][-1]  # annealing from the start
    up = lrs[0.75]
    # the peak (0.01) after 21 steps (OneCycleLR's step 20), so epoch 3 ends one step past it
    assert up[0] < up[1] < up[2] > up[3] and up[2] > 0.009 > up[1]
    for bad in (1.0, -0.1):
        r = run("train", "--data", tiny_csv, "--epochs", 1, "--batch-size", 8, "--warmup", bad,
                "--out", tmp_path / "bad", "--no-progress")
        assert r.returncode == 2 and "warmup must be in [0, 1)" in r.stderr

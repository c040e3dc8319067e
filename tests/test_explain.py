"""Grad-CAM and feature maps: a toy model whose logits see one region only, the ONNX ->
PyTorch rebuild against ONNX Runtime, and `ferkit explain` on a real photo."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ferkit.classifier import OnnxClassifier
from ferkit.explain import TorchModel, feature_maps, grad_cam, torch_model_from_onnx
from ferkit.preprocess import Preprocessing, prepare_faces
from ferkit.detect import YuNetDetector
from ferkit.recognize import demo_image_path

FERKIT = [sys.executable, "-m", "ferkit.cli"]


class RegionMask(nn.Module):
    """Channel k sees the input inside region k only (a position-coded feature)."""

    def __init__(self, regions, side=48):
        super().__init__()
        masks = torch.zeros(len(regions), 1, side, side)
        for k, ((r0, r1), (c0, c1)) in enumerate(regions):
            masks[k, 0, r0:r1, c0:c1] = 1
        self.register_buffer("masks", masks.transpose(0, 1))  # (1, K, side, side)

    def forward(self, x):
        return x * self.masks  # (B, 1, side, side) -> (B, K, side, side)


REGIONS = [((4, 12), (32, 40)), ((36, 44), (8, 16))]


class RegionModel(nn.Module):
    """Logit k depends on the pixels of region k only (input rows/cols of REGIONS); two
    pooling stages, so the Grad-CAM layer (input of the last pool) is 24x24 and upsampled."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(RegionMask(REGIONS), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2))

    def forward(self, x):
        return self.features(x).mean((2, 3))  # (B, K)


def _region_peak(cam, rows, cols):
    inside = cam[rows[0] + 1:rows[1] - 1, cols[0] + 1:cols[1] - 1]  # bilinear upsampling blurs the edge
    outside = cam.copy()
    outside[max(0, rows[0] - 3):rows[1] + 3, max(0, cols[0] - 3):cols[1] + 3] = 0
    return inside.min(), outside.max()


@pytest.mark.parametrize("target,rows,cols", [(0, (4, 12), (32, 40)), (1, (36, 44), (8, 16))])
def test_grad_cam_peaks_on_the_region_the_logit_sees(target, rows, cols):
    tm = TorchModel(RegionModel().eval(), ("a", "b"), Preprocessing())
    x = np.random.default_rng(0).uniform(0.5, 1.0, (3, 1, 48, 48)).astype(np.float32)
    cams, logits = grad_cam(tm, x, np.full(3, target))
    assert cams.shape == (3, 48, 48) and logits.shape == (3, 2)
    for cam in cams:
        assert cam.max() == pytest.approx(1.0)
        lo_inside, hi_outside = _region_peak(cam, rows, cols)
        assert lo_inside > 0.5 and hi_outside < 0.05, (lo_inside, hi_outside)


@pytest.mark.parametrize("tta", ["flip", "crops", "scales", "scales5"])
def test_grad_cam_with_tta_maps_every_pass_back(tta):
    tm = TorchModel(RegionModel().eval(), ("a", "b"), Preprocessing(), tta=tta)
    x = np.random.default_rng(1).uniform(0.5, 1.0, (2, 1, 48, 48)).astype(np.float32)
    cams, logits = grad_cam(tm, x, np.zeros(2, int))
    with torch.no_grad():
        assert np.allclose(logits, tm.logits(torch.from_numpy(x)).numpy(), atol=1e-6)
    mirror = 0.1 if tta == "crops" else 0.3  # crops: 1 of 7 passes is the mirror image; scales(5): half
    for cam in cams:  # the region (cols 32-39) and, from the mirrored pass, its mirror (cols 8-15);
        # each 44-px crop saw the region within 4 px of its place (rows 4-15, cols 29-40)
        assert cam[5:11, 33:39].min() > 0.3 and cam[5:11, 9:15].min() > mirror
        assert cam[17:, :].max() < 0.05 and cam[:, 19:28].max() < 0.05
    if tta == "crops":  # the top-left crop's map, shrunk back, reaches left of the region
        assert cams[:, 5:10, 30].min() > 0.05


class CroppingRegionModel(RegionModel):
    """RegionModel on the centre 40x40 crop of its input, as a ``crop: 40`` VGG sees it
    (REGIONS then in crop coordinates: region 0 at face rows 8-15, cols 36-43)."""

    crop = 40

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(RegionMask(REGIONS, 40), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2))

    def forward(self, x):
        if x.shape[-1] > self.crop:
            x = x[:, :, 4:44, 4:44]
        return super().forward(x)


@pytest.mark.parametrize("tta", ["none", "crops"])
def test_grad_cam_of_a_cropping_model_lands_where_each_view_looked(tta):
    tm = TorchModel(CroppingRegionModel().eval(), ("a", "b"), Preprocessing(), tta=tta)
    x = np.random.default_rng(3).uniform(0.5, 1.0, (2, 1, 48, 48)).astype(np.float32)
    cams, logits = grad_cam(tm, x, np.zeros(2, int))
    assert cams.shape == (2, 48, 48)
    with torch.no_grad():
        assert np.allclose(logits, tm.logits(torch.from_numpy(x)).numpy(), atol=1e-6)
    for cam in cams:
        assert cam[9:15, 37:43].min() > 0.3  # the centre view's region, 4 px in from the crop
        assert cam[24:, :].max() < 0.05  # no view put the region below row 20
        if tta == "none":
            assert cam[:, :30].max() < 0.05  # only the mirror-free centre view
        else:  # the top-left corner saw it 4 px up and left; the mirrored views, mirrored
            assert cam[5:11, 33:39].min() > 0.05 and cam[5:15, 5:15].max() > 0.05


def test_feature_maps_after_each_pooling_stage():
    tm = torch_model_from_onnx(None)  # bundled vgg_s: four pooling stages, each halving
    face = np.random.default_rng(0).integers(0, 256, (1, 48, 48)).astype(np.uint8)
    maps = feature_maps(tm, prepare_faces(face, tm.preprocessing)[0])
    args = OnnxClassifier().meta["model_args"]  # the bundled one sees a 40 px centre crop
    side, expected = args.get("crop") or 48, []
    for width in args["widths"]:
        side = -(-side // 2)  # ceil-mode pooling: 40 -> 20, 10, 5, 3
        expected.append((width, side, side))
    assert [m.shape for _, m in maps] == expected
    assert all(name.startswith("features.") for name, _ in maps)


def test_onnx_rebuilt_in_torch_matches_onnx_runtime():
    tm = torch_model_from_onnx(None)
    clf = OnnxClassifier()
    assert tm.tta == clf.meta["tta"] in ("flip", "crops", "scales") and tm.class_names == clf.class_names and tm.temperature == clf.temperature
    faces = np.random.default_rng(2).integers(0, 256, (6, 48, 48)).astype(np.uint8)
    with torch.no_grad():
        logits = tm.logits(torch.from_numpy(prepare_faces(faces, tm.preprocessing))).numpy()
    assert np.abs(logits - clf.predict_logits(faces)).max() < 1e-4


def test_cli_explain_on_real_photo(tmp_path):
    photo = demo_image_path()
    r = subprocess.run([*FERKIT, "explain", str(photo), "--out", str(tmp_path), "--compact"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    pred = json.loads(subprocess.run([*FERKIT, "predict", str(photo), "--compact"], capture_output=True,
                                     text=True, timeout=120).stdout)[0]
    assert result["faces"] == pred["faces"] and len(result["faces"]) == 1
    out = cv2.imread(result["gradcam"])
    original = cv2.imread(str(photo))
    assert out.shape == original.shape
    # the heat map covers the face's square crop (side max(w, h), enlarged by the default
    # detector's margin on each side, centred on the box) and nothing else; the label may
    # sit up to 30 px above it
    x, y, w, h = result["faces"][0]["box"]
    changed = np.abs(out.astype(int) - original).sum(2) > 30
    ys, xs = np.nonzero(changed)
    half = max(w, h) * (1 + 2 * YuNetDetector.margin) / 2 + 2
    cx, cy = x + w / 2, y + h / 2
    assert changed[y:y + h, x:x + w].mean() > 0.5
    assert xs.min() >= cx - half and xs.max() <= cx + half and ys.min() >= cy - half - 30 and ys.max() <= cy + half


def test_cli_explain_missing_image(tmp_path):
    r = subprocess.run([*FERKIT, "explain", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nope.jpg" in r.stderr and "no such file" in r.stderr


def test_without_torch_the_error_names_the_extra(monkeypatch):
    from ferkit import explain
    from ferkit.errors import FerkitError

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(FerkitError, match=r"ferkit\[train\]"):
        explain.require_torch()
    with pytest.raises(FerkitError, match=r"ferkit\[train\]"):
        explain.torch_model_from_onnx(None)

"""Post-training int8 quantization of a ferkit ONNX model with ONNX Runtime.

Static quantization (weights and activations in int8, activation ranges calibrated on
real faces), following ONNX Runtime's quantization tool
(``onnxruntime.quantization.quantize_static``; Jacob et al., 2018, "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference"). The
calibration faces must come from the training split; the settings are chosen on val.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .classifier import OnnxClassifier, read_metadata
from .errors import ModelError
from .preprocess import prepare_faces


class _FaceReader:
    """``CalibrationDataReader`` over preprocessed faces, in batches of equal size (the
    histogram calibrators need that); the last ``len(images) % batch_size`` are left out."""

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int):
        n = len(images) - len(images) % batch_size
        self._batches = iter([{input_name: images[i:i + batch_size]} for i in range(0, n, batch_size)])

    def get_next(self):
        return next(self._batches, None)


def quantize_model(model: str | os.PathLike, out: str | os.PathLike, faces: np.ndarray, *,
                   per_channel: bool = False, method: str = "minmax", calibration_source: str = "",
                   batch_size: int = 50, weights: str = "int8", reduce_range: bool = True,
                   base_meta: dict | None = None) -> dict:
    """Write an int8 copy of a ferkit ONNX model, calibrated on ``faces``.

    Args:
        model: the float ``.onnx`` model (its ``.json`` beside it).
        out: path of the int8 ``.onnx``; its ``.json`` is written beside it with every
            key of the float model's metadata (then ``quantization`` added; ``metrics``, the
            temperature and the logit adjustment's record dropped: they must be measured
            again on the int8 model with ``ferkit calibrate`` and ``ferkit evaluate
            --record``; ``parity`` stays the float model's own record);
            ``weights_dtype`` says the int8 model's weight type. The float model may store
            its weights as float16 (``ferkit ensemble --fp16-weights``): they are
            quantized like float32 ones. ``logits`` and
            ``probs`` stay float outputs. Byte-identical int8 initializers (the one
            network of a test-time-augmentation export, quantized once per view) are
            stored once.
        faces: (N, H, W) uint8 gray training faces for the activation ranges, fed in
            batches of ``batch_size`` (N >= batch_size; the last N % batch_size unused).
        per_channel: one weight scale per output channel instead of per tensor.
            The defaults (int8 weights on 7 bits, one scale per tensor, minmax) are the
            settings chosen on val for the bundled ``int8`` model
            (``benchmarks/quant_choices.py``).
        method: activation calibration, ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        calibration_source: a note stored in the metadata (which faces were used).
        weights: ``"uint8"`` or ``"int8"`` weights. On x86-64 CPUs without VNNI (AVX2
            only) ONNX Runtime's uint8 x int8 kernels can saturate (its documentation
            says so); uint8 x uint8, or int8 with ``reduce_range``, avoids that.
        reduce_range: quantize weights to 7 bits (see ``weights``).
        base_meta: metadata whose keys the int8 model inherits where the float model's
            own ``.json`` lacks them (e.g. the bundled default model's, so keys added to
            it carry over); ``None``: the float model's only.

    Returns:
        The metadata written.

    Raises:
        ModelError: missing model, or ``out`` equal to ``model``.
        ValueError: fewer than ``batch_size`` faces, or an unknown ``method``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if weights not in ("uint8", "int8"):
        raise ValueError(f"weights must be 'uint8' or 'int8', got {weights!r}")
    if method not in methods:
        raise ValueError(f"unknown calibration method {method!r}: expected one of {', '.join(methods)}")
    if len(faces) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} calibration faces, got {len(faces)}")
    model, out = Path(model), Path(out)
    if model.resolve() == out.resolve():
        raise ModelError(f"{out}: the int8 model must not overwrite the float model")
    clf = OnnxClassifier(model)
    images = prepare_faces(faces, clf.preprocessing)  # (N, 1, S, S) float32
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        # The outputs stay float: the node making ``logits`` (a 7-row Gemm, negligible cost)
        # and the softmax making ``probs`` are left out, else both come out as 256 levels.
        import onnx

        graph = onnx.load(str(prepared)).graph
        outputs = {o.name for o in graph.output}
        float_nodes = [n.name for n in graph.node if outputs & set(n.output)]
        quantize_static(str(prepared), str(out), _FaceReader(images, clf.session.get_inputs()[0].name, batch_size),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QUInt8 if weights == "uint8" else QuantType.QInt8,
                        per_channel=per_channel, reduce_range=reduce_range,
                        calibrate_method=methods[method], nodes_to_exclude=float_nodes)
    _share_identical_initializers(out)
    meta = {**(base_meta or {}), **read_metadata(model)}
    for key in ("metrics", "temperature", "calibration", "logit_adjustment", "outputs_note"):  # measured on the float model
        meta.pop(key, None)
    meta["quantization"] = {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                            "weights": weights, "activations": "uint8", "per_channel": per_channel,
                            "reduce_range": reduce_range,
                            "calibration": method, "calibration_faces": int(len(faces) - len(faces) % batch_size),
                            "calibration_source": calibration_source, "float_model": model.name}
    meta["weights_dtype"] = (f"{weights} ({7 if reduce_range else 8} bits, "
                             f"{'per channel' if per_channel else 'per tensor'})")
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    int8 = OnnxClassifier(out)  # agreement with the float model on the calibration faces
    p_float, p_int8 = clf.predict_probs(faces), int8.predict_probs(faces)
    meta["quantization"]["agreement_with_float"] = float((p_float.argmax(1) == p_int8.argmax(1)).mean())
    meta["quantization"]["max_abs_diff_probs"] = float(np.abs(p_float - p_int8).max())
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def _share_identical_initializers(path: Path) -> int:
    """Rewrite the ONNX model at ``path`` so that byte-identical initializers are stored once.

    A test-time-augmentation export runs one network on several views, sharing its float
    weights; quantization folds each batch norm into each copy of its convolution, which
    writes one int8 copy of every weight per view (a 6-view graph's file grew 5x). The
    copies are identical (same weights, same scales), so every use is pointed at the first.

    Returns:
        The number of initializers removed.
    """
    import hashlib

    import onnx

    m = onnx.load(str(path))
    graph = m.graph
    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    kept = []
    for t in graph.initializer:
        key = (t.data_type, tuple(t.dims), hashlib.sha256(onnx.numpy_helper.to_array(t).tobytes()).hexdigest())
        if key in first:
            rename[t.name] = first[key]
        else:
            first[key] = t.name
            kept.append(t)
    if not rename:
        return 0
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [i for i in graph.input if i.name not in rename]  # an older IR lists initializers as inputs
    del graph.input[:]
    graph.input.extend(inputs)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    onnx.save(m, str(path))
    return len(rename)


"""Combine several ferkit ONNX models into one ONNX model (an ensemble).

The ensemble is an ordinary ferkit ONNX model: one graph with input ``images``
(B, 1, S, S) float32 and outputs ``logits`` and ``probs`` (B, C) float32, plus its
``.json``; :class:`~ferkit.classifier.OnnxClassifier`, ``ferkit predict``, ``video``,
``serve``, ``evaluate`` and ``calibrate`` use it like any other model. Inside, every
member runs on the same input (with its own test-time augmentation) and the ensemble's
probabilities are the weighted mean of the members' calibrated probabilities,
``softmax(logits_i / T_i)`` (the averaging of Krizhevsky et al., 2012, and of the FER2013
ensembles of Pramerdorfer & Kampel, 2016). Its ``logits`` are ``log`` of that mean, so
``softmax(logits) == probs``, and ``ferkit calibrate`` can fit one more temperature on top.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .classifier import ONNX_FORMAT, OnnxClassifier, read_metadata, resolve_model
from .errors import FerkitError, ModelError

#: Floor of the mean probability before its log (keeps ``logits`` finite).
PROB_FLOOR = 1e-30
#: Initializers of at least this many values are stored as float16 with ``fp16_weights``.
FP16_MIN_ELEMENTS = 1024


def _needed_nodes(nodes, outputs: set[str]) -> list:
    """The nodes that ``outputs`` depend on, in their original (topological) order."""
    needed, keep = set(outputs), []
    for node in reversed(list(nodes)):
        if needed & set(node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    return keep[::-1]


def store_weights_fp16(model, min_elements: int = FP16_MIN_ELEMENTS) -> int:
    """Store the large float32 initializers of an ONNX ``model`` (a ``ModelProto``, changed
    in place) as float16, each followed by a ``Cast`` back to float32: the file is about
    half as big, and the graph still computes in float32 on float32 inputs. ONNX
    Runtime folds the casts once when it loads the model (constant folding), so inference
    costs the same. Each weight is rounded to the nearest float16 (relative error at most
    2**-11, about 5e-4, for magnitudes above float16's smallest normal number, 6.1e-5;
    smaller ones keep an absolute error below 3e-8); tensors of fewer than ``min_elements`` values (biases,
    batch-norm vectors, temperatures) stay float32.

    Returns:
        The number of initializers converted.

    Raises:
        ValueError: a converted tensor holds values beyond float16's range (65504).
    """
    from onnx import TensorProto, helper, numpy_helper

    graph, casts, renamed = model.graph, [], {}
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        values = numpy_helper.to_array(init)
        if np.abs(values).max(initial=0) > np.finfo(np.float16).max:
            raise ValueError(f"initializer {init.name} holds values beyond float16's range")
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float16), init.name))
        renamed[init.name] = f"{init.name}/float32"
        casts.append(helper.make_node("Cast", [init.name], [renamed[init.name]], to=TensorProto.FLOAT,
                                      name=f"{init.name}/cast"))
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def build_ensemble(models: list[str | os.PathLike], out: str | os.PathLike,
                   weights: list[float] | None = None, fp16_weights: bool = False) -> dict:
    """Write one ONNX model ``out`` (and its ``.json``) that averages ``models``.

    Args:
        models: two or more ferkit ONNX models (paths or bundled names, see
            :func:`~ferkit.classifier.resolve_model`), each with its ``.json``. They must
            have the same class names, preprocessing and ONNX opset; each may have its
            own architecture, test-time augmentation, temperature and quantization.
        out: path of the ``.onnx`` to write (``.json`` beside it).
        weights: one non-negative weight per member (normalised to sum 1); ``None``
            gives equal weights.
        fp16_weights: store the members' large weight tensors as float16
            (:func:`store_weights_fp16`): about half the file size, computed in float32
            as before; the members' probabilities move by about 1e-4 (recorded in
            ``parity``).

    Returns:
        The metadata written: the usual keys (class names, preprocessing, inputs and
        outputs), ``model: "ensemble"``, ``members`` (file, architecture and its
        ``model_args``, TTA, temperature, weight, recorded metrics of each; member ``i``'s
        weights are the graph's initializers prefixed ``m{i}/``, so
        :func:`ferkit.explain.torch_model_from_onnx` can rebuild it), ``parameters`` (sum over members)
        and ``parity`` (max abs difference between the graph's ``probs`` and the weighted
        mean of the members' probabilities from :class:`OnnxClassifier` on 16 random
        inputs, checked before any float16 storage; with ``fp16_weights``, also
        ``fp16_max_abs_diff_probs`` between the stored graph and the float32 one) and
        ``weights_dtype``.

    Raises:
        FerkitError: the onnx package is missing.
        ModelError: a missing or unreadable member, ``out`` overwriting a member, or a
            combined graph that disagrees with its members by 1e-5 or more.
        ValueError: fewer than two members, mismatched classes, preprocessing or opsets,
            or bad weights.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise FerkitError("building an ensemble needs onnx: pip install 'ferkit[train]'") from None

    paths = [resolve_model(m) for m in models]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(paths)}")
    out = Path(out)
    if any(out.resolve() == p.resolve() for p in paths):
        raise ModelError(f"{out}: the ensemble must not overwrite one of its members")
    if weights is None:
        weights = [1.0] * len(paths)
    if len(weights) != len(paths) or any(not w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be {len(paths)} non-negative numbers with a positive sum, got {weights}")
    weights = [float(w) / sum(weights) for w in weights]
    members = [OnnxClassifier(p) for p in paths]  # checks files and metadata
    first = members[0]
    for p, m in zip(paths[1:], members[1:]):
        if m.class_names != first.class_names:
            raise ValueError(f"{p}: classes {list(m.class_names)} differ from {paths[0]}'s {list(first.class_names)}")
        if m.meta.get("in_chans", 1) != first.meta.get("in_chans", 1):
            raise ValueError(f"{p}: {m.meta.get('in_chans', 1)} input channels, {paths[0]} has "
                             f"{first.meta.get('in_chans', 1)}")
        if m.preprocessing != first.preprocessing:
            raise ValueError(f"{p}: preprocessing {m.preprocessing} differs from {paths[0]}'s "
                             f"{first.preprocessing}; members must take the same input")

    graphs = [onnx.load(str(p)) for p in paths]
    opsets = [{o.domain: o.version for o in g.opset_import} for g in graphs]
    if len({o.get("", o.get("ai.onnx")) for o in opsets}) != 1:
        raise ValueError(f"members have different ONNX opsets {[o.get('') for o in opsets]}; "
                         "export them with the same --opset")
    domains: dict[str, int] = {}
    for o in opsets:
        for d, v in o.items():
            domains[d] = max(v, domains.get(d, 0))

    nodes, inits, value_info, probs = [], [], [], []
    input_name = first.session.get_inputs()[0].name
    for i, (g, m) in enumerate(zip(graphs, members)):
        prefix = f"m{i}/"
        g = onnx.compose.add_prefix(g, prefix)
        own_input = prefix + m.session.get_inputs()[0].name
        logits = prefix + m._logits
        for node in _needed_nodes(g.graph.node, {logits}):
            for k, name in enumerate(node.input):
                if name == own_input:
                    node.input[k] = input_name
            nodes.append(node)
        inits.extend(g.graph.initializer)
        value_info.extend(g.graph.value_info)
        t_name, w_name = f"{prefix}ensemble_temperature", f"{prefix}ensemble_weight"
        inits += [numpy_helper.from_array(np.array(m.temperature, dtype=np.float32), t_name),
                  numpy_helper.from_array(np.array(weights[i], dtype=np.float32), w_name)]
        nodes += [helper.make_node("Div", [logits, t_name], [f"{prefix}scaled"], name=f"{prefix}ensemble_div"),
                  helper.make_node("Softmax", [f"{prefix}scaled"], [f"{prefix}probs"], axis=1,
                                   name=f"{prefix}ensemble_softmax"),
                  helper.make_node("Mul", [f"{prefix}probs", w_name], [f"{prefix}weighted"],
                                   name=f"{prefix}ensemble_mul")]
        probs.append(f"{prefix}weighted")
    inits.append(numpy_helper.from_array(np.array(PROB_FLOOR, dtype=np.float32), "ensemble_floor"))
    nodes += [helper.make_node("Sum", probs, ["ensemble_mean"], name="ensemble_sum"),
              helper.make_node("Max", ["ensemble_mean", "ensemble_floor"], ["ensemble_floored"],
                               name="ensemble_max"),
              helper.make_node("Log", ["ensemble_floored"], ["logits"], name="ensemble_log"),
              helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="ensemble_probs")]
    c, s = len(first.class_names), first.preprocessing.input_size
    in_chans = first.meta.get("in_chans", 1)
    graph = helper.make_graph(
        nodes, "ferkit_ensemble",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", in_chans, s, s])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", c]) for n in ("logits", "probs")],
        initializer=inits, value_info=value_info)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in domains.items()],
                              producer_name="ferkit")
    model.ir_version = max(g.ir_version for g in graphs)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))

    meta = {
        "format": ONNX_FORMAT,
        "model": "ensemble",
        "num_classes": c,
        "in_chans": in_chans,
        "class_names": list(first.class_names),
        "preprocessing": first.preprocessing.to_dict(),
        "inputs": {input_name: ["batch", in_chans, s, s]},
        "outputs": {"logits": ["batch", c], "probs": ["batch", c]},
        "combination": "probs = sum_i weight_i * softmax(logits_i / temperature_i); logits = log(probs)",
        "members": [{"file": p.name, "model": m.meta.get("model"),
                     **({"model_args": m.meta["model_args"]} if "model_args" in m.meta else {}),
                     "tta": m.meta.get("tta", "none"),
                     "temperature": m.temperature, "weight": w,
                     "parameters": m.meta.get("parameters"),
                     **({"quantization": m.meta["quantization"]["format"]} if "quantization" in m.meta else {}),
                     **({"metrics": m.meta["metrics"]} if "metrics" in m.meta else {})}
                    for p, m, w in zip(paths, members, weights)],
        "tta": "per member",
        "opset": domains.get("", domains.get("ai.onnx")),
        "parameters": sum(int(m.meta.get("parameters") or 0) for m in members),
        "weights_dtype": "float32",
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(16, s, s), dtype=np.uint8)
    expected = sum(w * m.predict_probs(faces) for w, m in zip(weights, members))
    got = OnnxClassifier(out).predict_probs(faces)
    meta["parity"] = {"max_abs_diff_probs": float(np.abs(got - expected).max())}
    if meta["parity"]["max_abs_diff_probs"] >= 1e-5:
        raise ModelError(f"{out}: the combined graph disagrees with its members: {meta['parity']}")
    if fp16_weights:
        store_weights_fp16(model)
        onnx.checker.check_model(model)
        onnx.save(model, str(out))
        meta["weights_dtype"] = "float16 (computed in float32)"
        meta["parity"]["fp16_max_abs_diff_probs"] = float(np.abs(OnnxClassifier(out).predict_probs(faces) - got).max())
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta

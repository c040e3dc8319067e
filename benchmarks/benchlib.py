"""Code shared by the benchmark scripts: timing helpers, generated inputs made from real
photos that installed packages ship, and running the ``fer`` pip package's pipeline in
its own Python environment."""

from __future__ import annotations

import time

import numpy as np


def ms_per_face(clf, faces: np.ndarray, batch: int, seconds: float = 1.0, warmup: int = 3) -> float:
    """Median milliseconds per face of ``clf.predict_logits`` (preprocessing included) at a
    batch size, over repeated calls for about ``seconds``.

    Args:
        clf: an :class:`~ferkit.classifier.OnnxClassifier`.
        faces: (N, H, W) uint8 gray faces, N >= batch.
        batch: faces per call.
    """
    chunks = [faces[i:i + batch] for i in range(0, len(faces) - batch + 1, batch)]
    for c in chunks[:warmup]:
        clf.predict_logits(c, batch_size=batch)
    times, start, k = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        clf.predict_logits(chunks[k % len(chunks)], batch_size=batch)
        times.append(time.perf_counter() - t0)
        k += 1
    return float(np.median(times)) / batch * 1e3

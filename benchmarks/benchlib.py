"""Code shared by the benchmark scripts: timing helpers, generated inputs made from real
photos that installed packages ship, and running the ``fer`` pip package's pipeline in
its own Python environment."""

from __future__ import annotations

import functools
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


# --------------------------------------------------------------------------- real photos

#: Real photos that installed packages ship, with their face box (x, y, w, h) checked by
#: eye (both detectors agree on it): matplotlib's Grace Hopper, scikit-image's astronaut.
FACE_SOURCES = {"grace_hopper": (175, 115, 185, 215), "astronaut": (177, 63, 92, 110)}


@functools.lru_cache(maxsize=None)
def source_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 BGR photo of :data:`FACE_SOURCES` (needs matplotlib, scikit-image)."""
    import cv2

    if name == "grace_hopper":
        from ferkit.recognize import demo_image_path

        return cv2.imread(str(demo_image_path()))
    import skimage.data

    return cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)


def background(width: int = 640, height: int = 480) -> np.ndarray:
    """A face-free real photo (scikit-image's coffee cup) resized to (height, width, 3) BGR
    (a new copy each call)."""
    return _background(width, height).copy()


@functools.lru_cache(maxsize=4)
def _background(width: int, height: int) -> np.ndarray:
    import cv2
    import skimage.data

    return cv2.resize(cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR), (width, height),
                      interpolation=cv2.INTER_AREA)


def paste_face(canvas: np.ndarray, photo: np.ndarray, box, side: int, center, angle: float = 0.0,
               flip: bool = False) -> tuple[int, int, int, int]:
    """Paste the face ``box`` of ``photo`` (with 40% context around it) into ``canvas`` in
    place, scaled so the face is ``side`` px wide, centred at ``center``, rotated in-plane
    by ``angle`` degrees and mirrored if ``flip``; returns the face's box in the canvas."""
    import cv2

    x, y, w, h = box
    m = int(0.4 * max(w, h))
    H, W = photo.shape[:2]
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(W, x + w + m), min(H, y + h + m)
    patch = photo[y0:y1, x0:x1]
    if flip:
        patch = patch[:, ::-1]
    s = side / w
    patch = cv2.resize(patch, (max(1, round(patch.shape[1] * s)), max(1, round(patch.shape[0] * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    fx = ((x1 - (x + w / 2)) if flip else (x + w / 2 - x0)) * s  # face centre in the patch
    fy = (y + h / 2 - y0) * s
    if angle:
        rot = cv2.getRotationMatrix2D((fx, fy), angle, 1.0)
        patch = cv2.warpAffine(patch, rot, (patch.shape[1], patch.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    cx, cy = center
    px, py = round(cx - fx), round(cy - fy)
    ch, cw = canvas.shape[:2]
    sx0, sy0 = max(0, -px), max(0, -py)
    dx0, dy0 = max(0, px), max(0, py)
    dx1, dy1 = min(cw, px + patch.shape[1]), min(ch, py + patch.shape[0])
    canvas[dy0:dy1, dx0:dx1] = patch[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    fw, fh = w * s, h * s
    return round(cx - fw / 2), round(cy - fh / 2), round(fw), round(fh)


def group_photo(seed: int, faces: int = 5, min_side: int = 24, max_side: int = 120,
                max_angle: float = 30.0) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 640x480 BGR photo with ``faces`` real faces (from :data:`FACE_SOURCES`) of random
    size (``min_side``-``max_side`` px wide), roll (up to ``max_angle`` degrees) and
    mirroring, placed without overlap on a real background; returns it and the face boxes."""
    rng = np.random.default_rng(seed)
    canvas = background()
    photos = {k: source_photo(k) for k in FACE_SOURCES}
    boxes: list = []
    tries = 0
    while len(boxes) < faces and tries < 500:
        tries += 1
        name = list(FACE_SOURCES)[rng.integers(len(FACE_SOURCES))]
        side = int(rng.integers(min_side, max_side + 1))
        cx, cy = int(rng.integers(side, 640 - side)), int(rng.integers(side, 480 - side))
        if any(abs(cx - (bx + bw / 2)) < (side + bw) * 0.9 and abs(cy - (by + bh / 2)) < (side * 1.3 + bh) * 0.9
               for bx, by, bw, bh in boxes):
            continue
        boxes.append(paste_face(canvas, photos[name], FACE_SOURCES[name], side, (cx, cy),
                                float(rng.uniform(-max_angle, max_angle)), bool(rng.integers(2))))
    return canvas, boxes


def matches(found, truth) -> tuple[int, int]:
    """(true faces found, false detections): a detection finds a true face when its centre
    lies inside the true box and its width is 0.5-2x the true width (detectors draw boxes
    of different proportions); each true face counts once."""
    hit, false = set(), 0
    for x, y, w, h in found:
        cx, cy = x + w / 2, y + h / 2
        k = next((i for i, (tx, ty, tw, th) in enumerate(truth) if i not in hit and tx <= cx <= tx + tw
                  and ty <= cy <= ty + th and 0.5 * tw <= w <= 2 * tw), None)
        if k is None:
            false += 1
        else:
            hit.add(k)
    return len(hit), false


# --------------------------------------------------------------------------- the fer package

FER_HELP = ("create it with: python3.11 -m venv /work/fer-venv && /work/fer-venv/bin/pip install "
            "fer==25.10.3 --no-deps && /work/fer-venv/bin/pip install tensorflow-cpu "
            "'opencv-contrib-python<5' pandas matplotlib requests pillow tqdm 'setuptools<81'")


def add_fer_option(ap) -> None:
    """``--fer-python``: the Python of an environment with the ``fer`` pip package."""
    ap.add_argument("--fer-python", default="/work/fer-venv/bin/python",
                    help="Python with the fer pip package installed (default /work/fer-venv/bin/python); "
                         "'' to skip fer")


def run_fer(fer_python: str, task: str, **args) -> dict | None:
    """Run one task of ``fer_runner.py`` with fer's Python and return its JSON, or print why
    not and return ``None`` (no such Python, or the task failed)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    if not fer_python or not Path(fer_python).is_file():
        print(f"fer: skipped, no Python at {fer_python!r}; {FER_HELP}", file=sys.stderr)
        return None
    runner = Path(__file__).with_name("fer_runner.py")
    r = subprocess.run([fer_python, str(runner), task, json.dumps(args)], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or not lines:
        print(f"fer: {task} failed (exit {r.returncode}): {r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def write_photo(path, image) -> str:
    """Write ``image`` as a JPEG (quality 90) and return the path as a string."""
    import cv2

    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")
    return str(path)


def one_face_photo() -> np.ndarray:
    """A 640x480 BGR photo with one real face: Grace Hopper's portrait (512x600) scaled to
    480 px high and centred on a real background."""
    import cv2

    canvas = background()
    photo = source_photo("grace_hopper")
    h, w = 480, round(photo.shape[1] * 480 / photo.shape[0])
    x0 = (640 - w) // 2
    canvas[:, x0:x0 + w] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    return canvas


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

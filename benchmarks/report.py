"""Time `ferkit report` for the bundled model on FER2013 and print its calibration figures.

    python benchmarks/report.py --data ../shared/datasets/fer2013 [--repeat 2]

Prints, per run, the total time, the part spent classifying the val and test faces
(ONNX Runtime) and the rest (bootstrap, temperature fit, Grad-CAM, figures, HTML), then
the test figures of the report (accuracy with its 95% bootstrap CI, ECE before/after
temperature scaling fitted on val).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ferkit.data import load_fer2013
from ferkit.report import build_report, format_summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/fer2013")
    ap.add_argument("--model", help="run folder or model (default: bundled)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    load_fer2013(args.data, "all")  # warm the npz cache so the first run is not penalised
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            t0 = time.perf_counter()
            s = build_report(args.model, args.data, Path(tmp) / "report.html")
            total = time.perf_counter() - t0
            size = (Path(tmp) / "report.html").stat().st_size / 2**20
            print(f"run {k + 1}: {total:.1f} s total, {s['inference_seconds']:.1f} s classifying val+test, "
                  f"{total - s['inference_seconds']:.1f} s the rest; HTML {size:.1f} MiB")
    print(format_summary(s))


if __name__ == "__main__":
    main()

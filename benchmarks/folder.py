"""A folder of photos, ferkit against the ``fer`` pip package from the same run: images/s
and peak memory (each pipeline in its own process).

    python benchmarks/folder.py [--images 1000] [--fer-python /work/fer-venv/bin/python]

The folder is generated into a temporary directory: 640x480 JPEGs, each with 1-3 real
faces (see ``benchlib.group_photo``) of 40-140 px. ferkit runs as a user would:
``ferkit predict DIR --out results.jsonl`` (YuNet, pipelined, batches of 256 faces),
with the float and the int8 model (and int8 with ``--detect-width 320``; ``--refine-below PX``
adds int8 at 320 with the landmarks of faces under PX pixels refined, see
:func:`ferkit.detect.refine_landmarks`); fer runs ``FER.detect_emotions`` on each file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import add_fer_option, group_photo, run_fer, write_photo


def make_folder(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_photo(folder / f"photo_{i:05d}.jpg", group_photo(i, 1 + i % 3, min_side=40, max_side=140)[0])
            for i in range(n)]


def run_ferkit(folder: Path, out: Path, model: str, *options: str) -> dict:
    """``ferkit predict`` in a child process: seconds, faces found, peak memory (MiB)."""
    ferkit = Path(sys.executable).with_name("ferkit")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(ferkit), "predict", str(folder), "--out", str(out), "--model", model,
                             "--no-progress", *options], stderr=subprocess.DEVNULL)
    _, _, usage = __import__("os").wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    return {"seconds": dt, "images": len(lines), "faces": sum(len(x["faces"]) for x in lines),
            "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--refine-below", type=int, default=0, metavar="PX",
                    help="also time int8 at 320 with `ferkit predict --refine-below PX` (0: not)")
    add_fer_option(ap)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ferkit-folder-"))
    try:
        t0 = time.perf_counter()
        paths = make_folder(tmp / "photos", args.images)
        print(f"{len(paths)} photos 640x480 generated in {time.perf_counter() - t0:.1f} s "
              f"({sum(1 + i % 3 for i in range(len(paths)))} faces pasted)")
        print(f"{'pipeline':<22}{'seconds':>9}{'images/s':>10}{'faces':>7}{'peak MiB':>10}")
        rows = {}
        pipelines = [("default", ()), ("int8", ()), ("int8", ("--detect-width", "320"))]
        if args.refine_below:
            pipelines.append(("int8", ("--detect-width", "320", "--refine-below", str(args.refine_below))))
        for model, options in pipelines:
            r = run_ferkit(tmp / "photos", tmp / f"{model}.jsonl", model, *options)
            name = f"ferkit {model}" + (" @320" if options else "") + (
                f" refine<{args.refine_below}" if "--refine-below" in options else "")
            rows[name] = r
            print(f"{name:<22}{r['seconds']:>9.1f}{r['images'] / r['seconds']:>10.1f}"
                  f"{r['faces']:>7}{r['peak_rss_mb']:>10.0f}", flush=True)
        fer = run_fer(args.fer_python, "folder", paths=paths, tflite=True)
        if fer:
            print(f"{'fer tflite':<22}{fer['seconds']:>9.1f}{fer['images_per_s']:>10.1f}{fer['faces']:>7}"
                  f"{fer['peak_rss_mb']:>10.0f}")
            best = min(rows.values(), key=lambda r: r["seconds"])
            print(f"fastest ferkit: {fer['seconds'] / best['seconds']:.1f}x the images/s of fer tflite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

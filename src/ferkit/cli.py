"""The ``ferkit`` command line: a thin layer over the library.

Commands: ``predict``, ``demo``, ``video``, ``webcam``, ``serve``, ``train``, ``evaluate``, ``explore``,
``pack``, ``export``, ``quantize``, ``ensemble``, ``models``, ``report``, ``explain``, ``calibrate``.
Heavy imports (PyTorch, scikit-learn, matplotlib) happen inside the commands that need
them, so ``ferkit predict`` starts with NumPy, OpenCV and ONNX Runtime only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import FerkitError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on FER2013 (needs ferkit[train])",
                       description="Train a CNN from scratch. Options given here override "
                                   "those of --config; the rest take TrainConfig's defaults.")
    p.add_argument("--config", help="YAML recipe (e.g. configs/default.yaml)")
    p.add_argument("--data", help="FER2013 CSV file, image-folder root or `ferkit pack` file")
    p.add_argument("--out", help="run folder (default runs/train)")
    p.add_argument("--model", help="registered model name (see `ferkit models`)")
    p.add_argument("--classes", help="all | 6 | comma-separated emotions, e.g. happy,sad,neutral")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "plateau"])
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--warmup", type=float, metavar="SHARE",
                   help="onecycle: the share of the run (of its steps, or of the --budget clock) over "
                        "which the LR rises to its peak before it anneals, in [0, 1) (default 0.15)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--budget", type=float,
                   help="wall-time budget in minutes: the one-cycle schedule runs on time and "
                        "training stops when it is spent (--epochs stays the upper bound; 0: off)")
    p.add_argument("--ema", type=float, help="decay per step of a weight moving average (0: off; e.g. 0.999)")
    p.add_argument("--swa", type=float, metavar="SHARE",
                   help="stochastic weight averaging: average the weights once an epoch after this share "
                        "of the run (0: off; e.g. 0.75; not with --ema)")
    p.add_argument("--swa-lr", type=float, help="with --swa, hold the LR at this value while averaging "
                                                "(0: the schedule runs on)")
    p.add_argument("--input-size", type=int,
                   help="resize faces to this side in pixels for training and inference "
                        "(0: the data's own, 48 for FER2013)")
    p.add_argument("--crop", type=int, metavar="PX",
                   help="train on random PX x PX crops of the faces and classify their centre crop "
                        "(the model argument crop, e.g. 40 of 48; export --tta crops is then the "
                        "ten-crop; 0: the whole face)")
    p.add_argument("--init", help="start from these weights (same model and classes): a .pt checkpoint, "
                                  "an .onnx model or a bundled name such as default")
    p.add_argument("--erase", type=float, metavar="P", help="random erasing of one rectangle on a share P "
                                                            "of the faces (0: off)")
    p.add_argument("--lowres", type=float, metavar="P",
                   help="resolution augmentation: shrink a share P of the train faces to a random side "
                        "from --lowres-min px to just under their own and enlarge them back as a small face in a photo is "
                        "(0: off)")
    p.add_argument("--lowres-min", type=int, metavar="PX", help="smallest side for --lowres (default 12)")
    p.add_argument("--brightness", type=float, metavar="B",
                   help="multiply each face by a factor drawn from [1-B, 1+B] (0: off)")
    p.add_argument("--contrast", type=float, metavar="C",
                   help="scale each face's contrast about its mean by a factor from [1-C, 1+C] (0: off)")
    p.add_argument("--logit-adjust", type=float, metavar="TAU",
                   help="logit-adjusted loss (Menon et al. 2021): train on logits + TAU * log(class "
                        "prior), so rare classes are predicted more often (0: off; 1: the paper's)")
    p.add_argument("--mixup", type=float, metavar="ALPHA", help="mixup with Beta(ALPHA, ALPHA) weights (0: off)")
    p.add_argument("--cutmix", type=float, metavar="ALPHA", help="CutMix with Beta(ALPHA, ALPHA) areas (0: off)")
    p.add_argument("--mix-prob", type=float, help="share of batches mixed when --mixup or --cutmix is on "
                                                  "(default 1)")
    p.add_argument("--teacher", help="distil from this model (.onnx, .pt or a bundled name such as "
                                     "ensemble), or a .npy of its probabilities from an earlier run "
                                     "(teacher_probs.npy): its probabilities on the train faces are soft targets")
    p.add_argument("--distill-weight", type=float, help="weight of the distillation term in [0, 1] (default 0.5)")
    p.add_argument("--distill-temperature", type=float, help="distillation temperature T (default 3)")
    p.add_argument("--self-distill", type=float, metavar="ALPHA",
                   help="progressive self-knowledge distillation (PS-KD, Kim et al. 2021): targets blend "
                        "the label with the model's own softmax of the previous epoch, weight growing "
                        "to ALPHA (0: off; 0.8: the paper's)")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                   help="histogram-equalise faces (recorded in the model's preprocessing)")
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"],
                   help="bf16: bfloat16 autocast for the forward and backward passes (about 2x faster "
                        "on a CPU with AMX, slower than fp32 on most others; weights stay float32); "
                        "auto: time both on a few steps and keep the faster; where fp32 wins, a recipe's "
                        "fp32_recipe is trained instead (default fp32)")
    p.add_argument("--device", help="auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or "
                                    "cuda:N (default auto)")
    p.add_argument("--threads", type=int, help="PyTorch CPU threads (0: all cores)")
    p.add_argument("--skip-bad", action="store_true", default=None,
                   help="leave out malformed rows / unreadable images instead of failing")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _cmd_train(args) -> int:
    from .train import TrainConfig, load_config, merge_options, resolve_config, train

    overrides = {}
    for key in ("data", "out", "model", "classes", "epochs", "batch_size", "optimizer", "lr",
                "weight_decay", "schedule", "warmup", "label_smoothing", "patience", "seed", "budget", "ema", "swa", "swa_lr", "input_size", "equalize", "init",
                "erase", "lowres", "lowres_min", "brightness", "contrast", "logit_adjust", "mixup", "cutmix", "mix_prob", "precision",
                "teacher", "distill_weight", "distill_temperature", "self_distill", "device", "threads", "skip_bad"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.crop is not None:
        overrides["model_args"] = {"crop": args.crop}
    cfg = TrainConfig.from_dict(merge_options(load_config(args.config) if args.config else {}, overrides))
    if not cfg.data:
        raise FerkitError("no data: pass --data PATH (FER2013 CSV or image-folder root) or set "
                          "data: in the --config recipe")
    train(resolve_config(cfg, overrides, resume=args.resume), resume=args.resume, progress=not args.no_progress)
    return 0


def _add_recognizer_options(p) -> None:
    """The options of a :class:`~ferkit.recognize.Recognizer`, shared by predict, demo and video."""
    p.add_argument("--model", help=".onnx model with its .json beside it, or a bundled model's name: "
                                   "default (float) or int8 (quantized, faster) (default: default)")
    p.add_argument("--detector", default="auto",
                   help="face detector: yunet, haar, or auto = yunet if yuface is installed, else haar "
                        "(default: auto)")
    p.add_argument("--margin", type=float,
                   help="fraction of the face box added on each side before cropping (default: the "
                        "detector's own, measured so that crops frame a face as FER2013's faces are "
                        "framed: 0.05 for yunet, 0 for haar)")
    p.add_argument("--small-faces", default="auto", metavar="MODEL",
                   help="model for faces whose crop is under --small-below px: auto = the bundled "
                        "small-faces network with the bundled default model (none with any other), "
                        "none = every face to --model, or an .onnx / bundled name (default: auto)")
    p.add_argument("--small-below", type=int, metavar="PX",
                   help="crop side in photo pixels under which a face goes to --small-faces (default: "
                        "48 for the bundled pair, i.e. every face smaller than its input, else the model's input size)")
    p.add_argument("--sharpness-below", type=float, metavar="S",
                   help="sharpness (ferkit.recognize.sharpness: variance of the Laplacian of the "
                        "median-filtered face over its variance, at 48 px) under which a face of any size "
                        "goes to --small-faces: a blurred face; 0 = never (default: 0.173 for the bundled "
                        "pairs, chosen on val)")
    p.add_argument("--align-above", type=_degrees_or_none, default=argparse.SUPPRESS, metavar="DEG",
                   help="turn a face upright before classifying it when its eyes are rolled by more "
                        "than DEG degrees (detectors with eye landmarks: yunet); none = never "
                        "(default: ferkit.recognize.ALIGN_ABOVE, 15, chosen on val)")
    p.add_argument("--refine-below", type=int, default=argparse.SUPPRESS, metavar="PX",
                   help="for faces under PX px as the detector saw them (after --detect-width), find the "
                        "eye landmarks again on an enlarged patch before measuring the roll (one more "
                        "detector call per face, 15-25 ms on 2 cores); "
                        "0 = never (default: 0; 160 is the value chosen on val)")


def _degrees_or_none(text: str) -> float | None:
    """``--align-above``'s value: degrees in [0, 90), or ``none``."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected degrees or none, got {text!r}") from None
    if not 0 <= value < 90:
        raise argparse.ArgumentTypeError(f"expected degrees in [0, 90) or none, got {text}")
    return value


def _shard(text: str) -> tuple[int, int]:
    """argparse type of ``--shard I/N``: (I, N) with 0 <= I < N."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text}")
    return i, n


def _recognizer(args, **options):
    """The :class:`~ferkit.recognize.Recognizer` of :func:`_add_recognizer_options`' options."""
    from .recognize import Recognizer

    return Recognizer(args.model, detector=args.detector, margin=args.margin,
                      small_faces=None if args.small_faces == "none" else args.small_faces,
                      small_below=args.small_below, sharpness_below=args.sharpness_below, **options,
                      **{k: getattr(args, k) for k in ("align_above", "refine_below") if k in args})


def _add_predict(sub) -> None:
    for name, help_ in (("predict", "emotions of every face in images (JSON on stdout)"),
                        ("demo", "run predict on a real photo shipped with matplotlib")):
        p = sub.add_parser(name, help=help_, description=help_ + ".")
        if name == "predict":
            p.add_argument("images", nargs="+", metavar="IMAGE",
                           help="image files and folders (folders: their images, recursively)")
        _add_recognizer_options(p)
        p.add_argument("--detect-width", type=int, metavar="PX",
                       help="detect faces on a copy shrunk to this width, boxes mapped back (e.g. 320)")
        if name == "predict":
            p.add_argument("--out", metavar="JSONL",
                           help="stream results to this JSON Lines file, one line per image, as they "
                                "come (instead of a JSON list on stdout)")
            p.add_argument("--resume", action="store_true",
                           help="with --out: keep its lines and skip the images already in it")
            p.add_argument("--shard", type=_shard, metavar="I/N",
                           help="only every N-th image of the list, from the I-th (0-based): run the "
                                "command on N machines with I = 0..N-1, each with its own --out")
            p.add_argument("--workers", type=int, default=2,
                           help="threads decoding and detecting while faces are classified (default 2)")
            p.add_argument("--batch-size", type=int, default=256, help="faces per classifier call (default 256)")
            p.add_argument("--no-progress", action="store_true", help="no progress bar (with --out)")
        p.add_argument("--annotate", metavar="DIR",
                       help="write a copy of each image with boxes, labels and landmarks into DIR")
        p.add_argument("--no-landmarks", action="store_true", help="--annotate: draw no landmark dots")
        p.add_argument("--compact", action="store_true", help="one-line JSON")


def _cmd_predict(args) -> int:
    from .batch import find_images, predict_files

    if getattr(args, "resume", False) and not args.out:
        raise FerkitError("--resume needs --out FILE.jsonl (the results of the earlier run)")
    rec = _recognizer(args, detect_width=args.detect_width)
    paths = find_images(args.images)
    if not paths:
        raise FerkitError(f"no image files in {' '.join(args.images)}")
    if getattr(args, "shard", None):  # round robin over the sorted list: shards of equal size
        index, count = args.shard
        total, paths = len(paths), paths[index::count]
        if not paths:
            raise FerkitError(f"shard {index}/{count} is empty: {' '.join(args.images)} holds {total} images")
    if getattr(args, "out", None):
        return _predict_to_jsonl(rec, paths, args)
    results, failed = [], 0
    names_used: set[str] = set()
    for r in predict_files(rec, paths, workers=getattr(args, "workers", 2),
                           batch_size=getattr(args, "batch_size", 256), keep_images=bool(args.annotate)):
        results.append(r.to_dict())
        if r.error:
            failed += 1
            print(f"ferkit: {r.error}", file=sys.stderr)
            continue
        if not r.faces:
            print(f"ferkit: {r.path}: no face found", file=sys.stderr)
        if args.annotate:
            saved = _save_annotated(r, Path(args.annotate), names_used, not args.no_landmarks)
            results[-1]["annotated"] = str(saved)
    print(json.dumps(results, indent=None if args.compact else 2))
    if failed:
        print(f"ferkit: {failed} of {len(results)} files could not be processed", file=sys.stderr)
    return 1 if failed else 0


def _predict_to_jsonl(rec, paths: list[str], args) -> int:
    """``ferkit predict ... --out results.jsonl``: one line per image, written as it comes."""
    from .batch import JsonlWriter, done_images, predict_files

    done = done_images(args.out) if args.resume else set()
    todo = [p for p in paths if p not in done]
    if done:
        print(f"ferkit: {len(paths) - len(todo)} of {len(paths)} images already in {args.out}, skipped",
              file=sys.stderr)
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="img", dynamic_ncols=True)
        except ImportError:  # tqdm is not a runtime dependency
            pass
    failed = faces = 0
    names_used: set[str] = set()
    with JsonlWriter(args.out, resume=args.resume) as out:
        for r in predict_files(rec, todo, workers=args.workers, batch_size=args.batch_size,
                               keep_images=bool(args.annotate)):
            record = r.to_dict()
            if r.error:
                failed += 1
                print(f"ferkit: {r.error}", file=sys.stderr)
            elif args.annotate:
                record["annotated"] = str(_save_annotated(r, Path(args.annotate), names_used, not args.no_landmarks))
            out.write(record)
            faces += len(r.faces)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    print(f"ferkit: {len(todo)} images, {faces} faces, {failed} unreadable, written to {args.out}",
          file=sys.stderr)
    return 1 if failed else 0


def _save_annotated(result, folder: Path, names_used: set[str], landmarks: bool = True) -> Path:
    import cv2

    from .draw import draw_faces

    folder.mkdir(parents=True, exist_ok=True)
    src = Path(result.path)
    suffix = src.suffix.lower() if src.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp") else ".png"
    name, k = src.stem + suffix, 1
    while name in names_used:
        k += 1
        name = f"{src.stem}_{k}{suffix}"
    names_used.add(name)
    out = folder / name
    if not cv2.imwrite(str(out), draw_faces(result.image, result.faces, landmarks=landmarks)):
        raise OSError(f"could not write {out}")
    return out


def _cmd_demo(args) -> int:
    from .recognize import demo_image_path

    args.images = [str(demo_image_path())]
    return _cmd_predict(args)


def _add_video(sub) -> None:
    p = sub.add_parser("video", help="emotions of the faces in a video, tracked over time",
                       description="Detect, track (greedy IoU) and classify the faces of a video, "
                                   "smoothing each face's probabilities over time. Frames are streamed; "
                                   "every output is written under a temporary name and renamed at the "
                                   "end. Exit status 1 when the video breaks off mid-way (the results "
                                   "up to there are written), 2 when it cannot be read at all.")
    p.add_argument("input", metavar="INPUT", help="video file (anything OpenCV reads: mp4, avi, mkv, ...)")
    p.add_argument("--out", metavar="VIDEO",
                   help="annotated copy (.mp4, .avi, .mkv, ...) with boxes, track ids, labels, scores and "
                        "landmarks")
    p.add_argument("--no-landmarks", action="store_true", help="--out: draw no landmark dots")
    p.add_argument("--csv", metavar="CSV", help="timeline: one row per face per frame")
    p.add_argument("--json", metavar="JSON", help="the same rows with settings and the summary")
    p.add_argument("--plot", metavar="PNG", help="probabilities over time per track (needs matplotlib)")
    p.add_argument("--stride", type=int, default=1,
                   help="detect and classify every N-th frame, carry the tracks in between (default 1)")
    p.add_argument("--detect-scale", type=float, default=1.0,
                   help="shrink frames by this factor in (0, 1] for the detector only (default 1)")
    p.add_argument("--min-iou", type=float, default=0.3,
                   help="smallest box overlap (IoU) that continues a track (default 0.3)")
    p.add_argument("--max-missed", type=int, default=5,
                   help="frames a track may go undetected before it ends (default 5)")
    p.add_argument("--alpha", type=float, default=0.3,
                   help="smoothing: weight of the newest probabilities per frame, 1 = none (default 0.3)")
    _add_recognizer_options(p)
    p.add_argument("--fourcc", help="codec of --out (default: mp4v for .mp4/.m4v/.mov, MJPG for .avi/.mkv)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _cmd_video(args) -> int:
    from .video import StreamRecognizer, analyze_video

    stream = StreamRecognizer(_recognizer(args, threads=args.threads),
                              stride=args.stride, detect_scale=args.detect_scale, min_iou=args.min_iou,
                              max_missed=args.max_missed, alpha=args.alpha)
    report = analyze_video(args.input, stream, out=args.out, csv_path=args.csv, json_path=args.json,
                           plot=args.plot, fourcc=args.fourcc, progress=not args.no_progress,
                           landmarks=not args.no_landmarks)
    return _print_stream_report(report, Path(args.input).name, "video")


def _print_stream_report(report, name: str, command: str) -> int:
    """Print a video or webcam run's summary, speed and files; exit code 1 if it broke off."""
    from .video import format_summary

    print(format_summary(report.summary, name))
    print(f"{report.frames} frames in {report.seconds:.1f} s ({report.frames_per_second:.1f} frames/s)")
    for path in report.written:
        print(f"wrote {path}")
    if report.error:
        print(f"ferkit {command}: {report.error}; results up to there written", file=sys.stderr)
        return 1
    return 0


def _add_webcam(sub) -> None:
    p = sub.add_parser("webcam", help="live window with the emotions of the faces in front of a camera",
                       description="Show a camera (or a video file) live with each face's box, track id, "
                                   "emotion and score, and the frames per second; q or Esc quits. The "
                                   "window needs a display and an OpenCV with GUI support (pip install "
                                   "opencv-python); --no-window runs without one and records with --out/--csv.")
    p.add_argument("--camera", default="0", help="camera number or a video file (default 0)")
    p.add_argument("--no-window", action="store_true", help="no window: only record (--out, --csv, --json)")
    p.add_argument("--out", metavar="VIDEO", help="annotated video (.mp4, .avi, ...)")
    p.add_argument("--no-landmarks", action="store_true", help="draw no landmark dots (window and --out)")
    p.add_argument("--csv", metavar="CSV", help="timeline: one row per face per frame")
    p.add_argument("--json", metavar="JSON", help="the same rows with settings and the summary")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--stride", type=int, default=1, help="detect and classify every N-th frame (default 1)")
    p.add_argument("--detect-scale", type=float, default=1.0,
                   help="shrink frames by this factor in (0, 1] for the detector only (default 1)")
    p.add_argument("--alpha", type=float, default=0.3,
                   help="smoothing: weight of the newest probabilities per frame, 1 = none (default 0.3)")
    _add_recognizer_options(p)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")


def _cmd_webcam(args) -> int:
    from .video import StreamRecognizer
    from .webcam import check_window_support, run_webcam

    if not args.no_window:
        check_window_support()  # before the model loads: fail fast
    stream = StreamRecognizer(_recognizer(args, threads=args.threads),
                              stride=args.stride, detect_scale=args.detect_scale, alpha=args.alpha)
    report = run_webcam(args.camera, stream, window=not args.no_window, out=args.out, csv_path=args.csv,
                        json_path=args.json, max_frames=args.max_frames, landmarks=not args.no_landmarks)
    return _print_stream_report(report, report.path, "webcam")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="web app: HTTP API, WebSocket stream and a live camera page "
                                    "(needs ferkit[serve])",
                       description="Serve POST /v1/predict, the WebSocket /v1/stream, GET /health, the "
                                   "OpenAPI docs and a page at / that streams the browser's camera. "
                                   "Browsers give the camera only to https pages and to localhost: for "
                                   "a phone on the LAN use --host 0.0.0.0 with --ssl-certfile/--ssl-keyfile.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=10.0,
                   help="largest image accepted, in MB (10^6 bytes; default 10); larger get 413")
    _add_recognizer_options(p)
    p.add_argument("--alpha", type=float, default=0.3,
                   help="live stream smoothing: weight of the newest probabilities per frame (default 0.3)")
    p.add_argument("--max-streams", type=int, default=8,
                   help="live WebSocket streams open at once (default 8); more are told to retry later")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from this origin (e.g. https://example.org) open live streams; "
                        "repeatable; by default only the app's own page may")
    p.add_argument("--stream-detect-width", type=int, default=320, metavar="PX",
                   help="live stream frames are shrunk to this width for the detector only; faces are "
                        "cropped from the full frame (the page sends up to 640 px; default 320; 0: no "
                        "shrinking)")
    p.add_argument("--ssl-certfile", help="PEM certificate for https")
    p.add_argument("--ssl-keyfile", help="PEM private key for https")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def _cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise FerkitError("the web app needs FastAPI and uvicorn: pip install 'ferkit[serve]'") from None
    from .serve import create_app, serve

    if args.max_upload_mb <= 0:
        raise FerkitError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise FerkitError("https needs both --ssl-certfile and --ssl-keyfile")
    for option in ("ssl_certfile", "ssl_keyfile"):
        path = getattr(args, option)
        if path and not Path(path).is_file():
            raise FerkitError(f"--{option.replace('_', '-')} {path}: no such file")
    app = create_app(_recognizer(args),
                     max_upload_bytes=int(args.max_upload_mb * 1_000_000), alpha=args.alpha,
                     max_streams=args.max_streams, allowed_origins=tuple(args.allow_origin),
                     stream_detect_width=args.stream_detect_width or None)
    scheme = "https" if args.ssl_certfile else "http"
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    print(f"ferkit serve: open {scheme}://{shown}:{args.port}/ (API docs at /docs); Ctrl-C stops", flush=True)
    if scheme == "http" and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("ferkit serve: note: other devices get the camera only over https "
              "(--ssl-certfile/--ssl-keyfile); the photo upload works either way", file=sys.stderr)
    serve(app, args.host, args.port, args.ssl_certfile, args.ssl_keyfile, log_level=args.log_level)
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics and figures of a model on one split",
                       description="Accuracy, macro F1, per-class report, top-k accuracy, confusion "
                                   "matrices and ROC curves of a model on one split.")
    p.add_argument("--model", help=".onnx model or .pt checkpoint (default: bundled model)")
    p.add_argument("--data", required=True, help="FER2013 CSV file, image-folder root or `ferkit pack` file")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="test = PrivateTest (report), val = PublicTest (choose); default test")
    p.add_argument("--classes", help="class set of the data (default: the model's)")
    p.add_argument("--out", default="runs/evaluate", help="folder for metrics.json and PNGs")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                   help="override the model's histogram-equalisation setting")
    p.add_argument("--record", action="store_true",
                   help="store the headline figures in the ONNX model's .json metadata")


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate, format_summary

    metrics = evaluate(args.model, args.data, split=args.split, out=args.out, classes=args.classes,
                       equalize=args.equalize)
    print(format_summary(metrics))
    if args.record:
        from .evaluate import record_metrics

        print(f"recorded in {record_metrics(args.model, metrics)}")
    print(f"metrics and figures written to {args.out}")
    return 0


def _add_explore(sub) -> None:
    p = sub.add_parser("explore", help="class balance, sample faces, pixel statistics and a data check "
                                      "(needs matplotlib)",
                       description="Figures of a dataset (class distribution, sample faces, pixel "
                                   "statistics) and a data-quality check: exact and pHash "
                                   "duplicates within and across splits, conflicting labels, blank "
                                   "faces. Writes PNGs, duplicates.csv and summary.json into --out.")
    p.add_argument("data", metavar="DATA", help="FER2013 CSV file, image-folder root or `ferkit pack` file")
    p.add_argument("--classes", default="all",
                   help="all | 6 | comma-separated emotions, e.g. happy,sad,neutral (default all)")
    p.add_argument("--out", default="runs/explore",
                   help="folder for the figures and summary.json (default runs/explore)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample faces (default 0)")
    p.add_argument("--blank-std", type=float, default=3.0,
                   help="faces with pixel std below this (grey levels) are blank (default 3)")
    p.add_argument("--face-check", action="store_true",
                   help="also count faces where the Haar detector finds no face (about 10 ms a face)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out malformed rows / unreadable images instead of failing")


def _cmd_explore(args) -> int:
    import time

    from .explore import explore, format_summary

    start = time.perf_counter()
    summary = explore(args.data, args.out, args.classes, seed=args.seed, blank_std=args.blank_std,
                      face_check=args.face_check, on_error="skip" if args.skip_bad else "raise")
    print(format_summary(summary))
    print(f"figures, duplicates.csv and summary.json written to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _add_pack(sub) -> None:
    p = sub.add_parser("pack", help="write a dataset as one .npz or .npz.xz file (to carry it to another machine)",
                       description="Write FER2013 (CSV, image folders or another pack) as one pack file: "
                                   "the faces as a uint8 array with labels, splits and sources. "
                                   "`ferkit train --data` and every command that takes a dataset read it.")
    p.add_argument("data", metavar="DATA", help="FER2013 CSV file, image-folder root or pack")
    p.add_argument("--out", required=True, help="pack file: NAME.npz (zip-deflated) or NAME.npz.xz (xz, smaller)")
    p.add_argument("--splits", default="train,val",
                   help="comma-separated splits to keep (default train,val: the test split stays here)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out malformed rows / unreadable images instead of failing")


def _cmd_pack(args) -> int:
    import time

    from .data import pack_fer2013

    start = time.perf_counter()
    counts = pack_fer2013(args.data, args.out, [s.strip() for s in args.splits.split(",") if s.strip()],
                          on_error="skip" if args.skip_bad else "raise")
    size = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out}: {', '.join(f'{n} {s}' for s, n in counts.items())} faces, "
          f"{size:.1f} MB in {time.perf_counter() - start:.1f} s")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (dynamic batch axis)")
    p.add_argument("checkpoint", help="ferkit .pt checkpoint, or a ferkit .onnx model or bundled name (default) "
                                      "whose network is re-exported, e.g. with another --tta (then run "
                                      "ferkit calibrate again)")
    p.add_argument("--out", required=True, help="path of the .onnx file (metadata .json beside it)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                   help="override the checkpoint's histogram-equalisation setting (choose on val)")
    p.add_argument("--tta", choices=("none", "flip", "crops", "scales", "scales5"), default="none",
                   help="test-time augmentation baked into the graph: none; flip (face + mirror image, "
                        "2x the cost); crops (flip + 5 zoomed crops, 7x the cost; for a network trained "
                        "on crops the ten-crop, 10x); scales (the face zoomed to 7/8, 1 and 9/8, each with "
                        "its mirror image, 6x); scales5 (zooms 7/8, 15/16, 1, 17/16 and 9/8 with their mirror "
                        "images, 10x). Choose on val.")
    p.add_argument("--flip-tta", dest="tta", action="store_const", const="flip",
                   help="same as --tta flip")
    p.add_argument("--member", type=int, default=None, metavar="I",
                   help="for an ensemble (e.g. the bundled 'ensemble'): export its member I (0-based, in "
                        "the order of its .json 'members') on its own, from the graph's weights")


def _cmd_export(args) -> int:
    from .export import export_onnx

    meta = export_onnx(args.checkpoint, args.out, opset=args.opset, equalize=args.equalize,
                       tta=args.tta, member=args.member)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}: {meta['parameters']:,} parameters, "
          f"ONNX Runtime vs PyTorch max |d probs| {meta['parity']['max_abs_diff_probs']:.2e}")
    return 0


def _add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="int8 copy of an ONNX model, calibrated on training faces",
                       description="Static int8 quantization with ONNX Runtime (QDQ), activation "
                                   "ranges calibrated on faces of the train split. Measure the result "
                                   "on val before using it (ferkit evaluate --split val).")
    p.add_argument("model", help="float .onnx model (with its .json)")
    p.add_argument("--data", required=True, help="FER2013 CSV file, image-folder root or `ferkit pack` file (train split used)")
    p.add_argument("--out", required=True, help="path of the int8 .onnx (metadata .json beside it)")
    p.add_argument("--calibration", type=int, default=1000, help="training faces to calibrate on (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice of faces (default 0)")
    p.add_argument("--per-channel", action="store_true", help="one weight scale per output channel")
    p.add_argument("--weights", choices=["int8", "uint8"], default="int8", help="weight type (default int8)")
    p.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=True,
                   help="7-bit weights, needed for int8 weights on CPUs without VNNI (default on)")
    p.add_argument("--meta-from", metavar="MODEL",
                   help="inherit the metadata keys of this model (path or bundled name, e.g. default) "
                        "that the float model's .json lacks")


def _cmd_quantize(args) -> int:
    import numpy as np

    from .classifier import OnnxClassifier, read_metadata, resolve_model
    from .data import load_fer2013
    from .quantize import quantize_model

    clf = OnnxClassifier(args.model)
    train = load_fer2013(args.data, ",".join(clf.class_names), image_size=clf.preprocessing.input_size)["train"]
    if len(train) == 0:
        raise FerkitError(f"{args.data}: the train split is empty: no faces to calibrate the int8 model on")
    n = min(args.calibration, len(train))
    pick = np.sort(np.random.default_rng(args.seed).choice(len(train), n, replace=False))
    meta = quantize_model(clf.path, args.out, train.images[pick], per_channel=args.per_channel,
                          weights=args.weights, reduce_range=args.reduce_range,
                          base_meta=read_metadata(resolve_model(args.meta_from)) if args.meta_from else None,
                          calibration_source=f"{n} faces of the train split of {args.data}, seed {args.seed}")
    q = meta["quantization"]
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.2f} MB) and its .json; top-1 agreement "
          f"with the float model on the calibration faces {q['agreement_with_float']:.4f}")
    return 0


def _add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="combine ONNX models into one ensemble model (needs ferkit[train])",
                       description="One ONNX graph that runs every member on the same face and averages "
                                   "their calibrated probabilities; use it like any ferkit model. Choose "
                                   "the members and weights on val (ferkit evaluate --split val).")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="two or more .onnx models (with their .json) or bundled names")
    p.add_argument("--out", required=True, help="path of the ensemble .onnx (metadata .json beside it)")
    p.add_argument("--weights", type=float, nargs="+", metavar="W",
                   help="one weight per member (normalised to sum 1; default equal)")
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the large weight tensors as float16 (half the file; still computed in "
                        "float32, probabilities move by about 1e-4): measure it on val")


def _cmd_ensemble(args) -> int:
    from .ensemble import build_ensemble

    meta = build_ensemble(args.models, args.out, weights=args.weights, fp16_weights=args.fp16_weights)
    names = ", ".join(f"{m['file']} ({m['tta']} TTA, weight {m['weight']:.3f})" for m in meta["members"])
    print(f"wrote {args.out} and its .json: {len(meta['members'])} members, {names}; "
          f"{meta['parameters']:,} parameters; max |d probs| vs the members "
          f"{meta['parity']['max_abs_diff_probs']:.1e}"
          + (f"; weights stored as float16: max |d probs| vs float32 {meta['parity']['fp16_max_abs_diff_probs']:.1e}"
             if args.fp16_weights else ""))
    return 0


def _add_models(sub) -> None:
    sub.add_parser("models", help="list the registered model names (needs ferkit[train])")


def _cmd_models(args) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report of a model or run (needs ferkit[train])",
                       description="Test metrics with bootstrap CIs, confusion matrices, ROC and PR curves, "
                                   "training curves (run folders), misclassified faces, calibration "
                                   "(ECE before/after temperature scaling fitted on val), Grad-CAM and "
                                   "feature maps, and an optional side-by-side comparison, in one HTML "
                                   "file with embedded images.")
    p.add_argument("model", nargs="?", metavar="RUN_OR_MODEL",
                   help="run folder (best.pt, history.csv), .onnx or .pt file (default: bundled model)")
    p.add_argument("--data", required=True, help="FER2013 CSV file, image-folder root or `ferkit pack` file")
    p.add_argument("--out", default="runs/report/report.html", help="HTML file (default runs/report/report.html)")
    p.add_argument("--compare", metavar="RUN_OR_MODEL", help="a second run or model shown side by side")
    p.add_argument("--figures", metavar="DIR", help="also write every figure as a PNG into DIR")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the faces shown (default 0)")


def _cmd_report(args) -> int:
    from .report import build_report, format_summary

    if args.bootstrap < 1:
        raise FerkitError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    print(format_summary(build_report(args.model, args.data, args.out, compare=args.compare,
                                      n_boot=args.bootstrap, seed=args.seed, figures=args.figures)))
    return 0


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM heat maps over the faces of a photo (needs ferkit[train])",
                       description="Detect and classify the faces of a photo and write it with each "
                                   "face's Grad-CAM heat map (Selvaraju et al., ICCV 2017) for the "
                                   "predicted emotion; prints the faces' JSON.")
    p.add_argument("image", metavar="IMAGE", help="image file")
    p.add_argument("--model", help=".onnx model or .pt checkpoint (default: bundled model)")
    p.add_argument("--detector", default="auto",
                   help="face detector: yunet, haar, or auto = yunet if yuface is installed, else haar "
                        "(default: auto, as for predict)")
    p.add_argument("--margin", type=float,
                   help="fraction of the face box added on each side before cropping (default: the "
                        "detector's own, measured so that crops frame a face as FER2013's faces are "
                        "framed: 0.05 for yunet, 0 for haar)")
    p.add_argument("--out", default="runs/explain", help="folder for IMAGE_gradcam.png (default runs/explain)")
    p.add_argument("--compact", action="store_true", help="one-line JSON")


def _cmd_explain(args) -> int:
    from .explain import explain_image

    result = explain_image(args.image, args.out, model=args.model, detector=args.detector, margin=args.margin)
    print(json.dumps(result, indent=None if args.compact else 2))
    if not result["faces"]:
        print(f"ferkit: {args.image}: no face found", file=sys.stderr)
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the temperature of an ONNX model on val (needs ferkit[train])",
                       description="Temperature scaling (Guo et al., ICML 2017): fit one scalar T on the "
                                   "val split by minimising the NLL of softmax(logits / T); store T and "
                                   "the val NLL/ECE before and after in the model's .json, and make the "
                                   "graph's probs output softmax(logits / T).")
    p.add_argument("model", nargs="?", metavar="MODEL.onnx", help="ONNX model (default: bundled model)")
    p.add_argument("--data", required=True, help="FER2013 CSV file, image-folder root or `ferkit pack` file (val split used)")
    p.add_argument("--json-only", action="store_true",
                   help="store T in the .json only; the graph's probs stay softmax(logits)")
    p.add_argument("--logit-adjust", action="store_true",
                   help="first fit a logit adjustment on val (Menon et al., ICLR 2021: logits - tau * "
                        "log(train prior), tau with the best val macro F1 that keeps the val accuracy; "
                        "raises rare classes' recall) and bake it into the graph's logits")


def _cmd_calibrate(args) -> int:
    from .calibrate import calibrate_model, format_calibration

    c = calibrate_model(args.model, args.data, graph=not args.json_only, logit_adjust=args.logit_adjust)
    print(format_calibration(c))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial expression recognition.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_predict(sub)
    _add_video(sub)
    _add_webcam(sub)
    _add_serve(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_explore(sub)
    _add_pack(sub)
    _add_export(sub)
    _add_quantize(sub)
    _add_ensemble(sub)
    _add_models(sub)
    _add_report(sub)
    _add_explain(sub)
    _add_calibrate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = globals()[f"_cmd_{args.command}"]
    try:
        return handler(args)
    except (FerkitError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ferkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

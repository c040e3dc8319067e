"""FER2013 loading: the Kaggle challenge CSV and the image-folder layout.

Dataset: Goodfellow et al., 2013, "Challenges in Representation Learning: A report on
three machine learning contests" (ICML workshop). 35,887 grayscale 48x48 faces.

Both layouts the community uses are read:

* **CSV** (``fer2013.csv``): columns ``emotion,pixels,Usage``; ``pixels`` holds
  H*W space-separated integers 0-255 (2,304 for 48x48); ``Usage`` is ``Training``,
  ``PublicTest`` or ``PrivateTest``.
* **Image folders**: ``<root>/{train,test}/<emotion>/<file>`` (also ``val/`` or
  ``validation/``). The split comes from the file-name prefix ``Training_`` /
  ``PublicTest_`` / ``PrivateTest_`` when present, otherwise from the folder.
* **A ferkit pack** (``.npz``, or ``.npz.xz``), written by :func:`pack_fer2013`
  (``ferkit pack``) from either layout: the faces as one uint8 array with their labels,
  splits and sources, optionally only some splits, in one file that travels to another
  machine (a GPU box) in a single copy.

Splits follow the standard protocol: ``train`` = Training (fit), ``val`` = PublicTest
(early stopping, every choice of model, epoch or threshold), ``test`` = PrivateTest
(report only).

Seeded fallback when the split is not recorded (``fallback_seed``, default 0):

* a CSV without a ``Usage`` column: a seeded random permutation puts 80% of rows in
  train, 10% in val, 10% in test;
* image folders without prefixes: files under ``train/`` are train, under ``val/`` or
  ``validation/`` are val; files under ``test/`` are split half val, half test by a
  seeded random permutation when no val images exist, else all test.

The first load of a dataset writes a compact ``.npz`` cache (under
``$FERKIT_CACHE_DIR``, default ``~/.cache/ferkit``) keyed by the files' names, sizes and
modification times, so later loads of all 35,887 images take well under a second.

A CSV or a pack may also be given as a URL of an object store or web server
(``s3://bucket/fer2013.npz.xz``, ``gs://...``, ``https://...``): :func:`fetch` copies it
into the cache once and reads it from there while the source is unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import lzma
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import DataError, ImageReadError
from .images import read_image
from .labels import EMOTIONS, ClassSet, emotion_id, resolve_classes

#: Split names in protocol order, and the FER2013 ``Usage`` values they come from.
SPLITS: tuple[str, ...] = ("train", "val", "test")
USAGE_TO_SPLIT: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm"}
_CACHE_VERSION = 1
_PACK_SUFFIXES = (".npz", ".npz.xz")
_PACK_KEYS = ("images", "labels", "splits", "sources")


@dataclass
class Split:
    """The faces of one split.

    Attributes:
        images: (N, H, W) uint8 grayscale faces, values 0-255.
        targets: (N,) int64 class indices into the dataset's ``class_names``.
        sources: (N,) str: where each face came from (file path relative to the root,
            or ``"row K"`` of the CSV, counting the header as row 1).
    """

    images: np.ndarray
    targets: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class FERDataset:
    """A FER dataset split into train/val/test for one class set.

    Attributes:
        root: the CSV file or folder it was read from.
        class_names: class names in target-index order.
        splits: ``{"train": Split, "val": Split, "test": Split}``.
    """

    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, Split]

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        return self.splits[split]

    def counts(self) -> dict[str, dict[str, int]]:
        """Faces per class and split: ``{split: {class_name: count}}``."""
        return {
            name: {c: int((s.targets == i).sum()) for i, c in enumerate(self.class_names)}
            for name, s in self.splits.items()
        }


def load_fer2013(
    path: str | os.PathLike,
    classes: str | ClassSet | None = "all",
    *,
    image_size: int = 48,
    on_error: str = "raise",
    fallback_seed: int = 0,
    cache: bool = True,
) -> FERDataset:
    """Load FER2013 (or a dataset in the same layouts) as train/val/test splits.

    Args:
        path: the challenge CSV file, the root folder of the image-folder layout, or a
            pack written by :func:`pack_fer2013` (``.npz`` or ``.npz.xz``; splits left out
            of the pack come back empty); a CSV or pack may be a URL (:func:`fetch`).
        classes: a class set (see :func:`ferkit.labels.resolve_classes`): ``"all"``,
            ``"6"`` (disgust merged into angry) or names such as ``"happy,sad,neutral"``.
        image_size: side in pixels of the square faces returned. Folder images and packs
            of another size are resized with area interpolation; CSV rows must hold exactly
            ``image_size**2`` pixels.
        on_error: ``"raise"`` raises :class:`DataError` listing every bad row or file;
            ``"skip"`` leaves them out with a warning that lists them.
        fallback_seed: seed of the split fallback described in the module docstring.
        cache: read and write the ``.npz`` cache.

    Returns:
        The dataset, with images (N, image_size, image_size) uint8.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: malformed rows or unreadable images (with ``on_error="raise"``), or
            no image found at all.
        ValueError: a URL that names a folder, or that cannot be read (:func:`fetch`).
    """
    class_set = classes if isinstance(classes, ClassSet) else resolve_classes(classes)
    root, raw = _checked_raw(path, image_size, on_error, fallback_seed, cache, "left out")
    if len(raw["labels"]) == 0:
        raise DataError(f"{root}: no images found")
    keep, mapped = class_set.apply(raw["labels"])
    splits = {}
    for code, name in enumerate(SPLITS):
        sel = raw["splits"][keep] == code
        splits[name] = Split(
            images=raw["images"][keep][sel],
            targets=mapped[sel],
            sources=raw["sources"][keep][sel],
        )
    return FERDataset(root=root, class_names=class_set.names, splits=splits)


# ----------------------------------------------------------------------------- cache


def _checked_raw(path, image_size: int, on_error: str, seed: int, use_cache: bool,
                 left_out: str) -> tuple[Path, dict[str, np.ndarray]]:
    """``(root, raw arrays)`` of a dataset, its bad rows or files raised as one
    :class:`DataError` (``on_error="raise"``) or warned about as ``left_out`` (``"skip"``)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    root = fetch(str(path)) if is_url(path) else Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset not found: {root}")
    raw = _load_raw(root, image_size, seed, use_cache)
    problems = [str(p) for p in raw["problems"]]
    if problems:
        msg = f"{root}: {len(problems)} bad rows or files"
        if on_error == "raise":
            raise DataError(msg + " (pass on_error='skip' / --skip-bad to leave them out)", problems)
        warnings.warn(str(DataError(f"{msg}, {left_out}", problems)), stacklevel=3)
    return root, raw


def _cache_dir() -> Path:
    return Path(os.environ.get("FERKIT_CACHE_DIR", Path.home() / ".cache" / "ferkit"))


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL (``protocol://...``) rather than a local path."""
    return "://" in str(path) and not str(path).startswith("file://")


def fetch(url: str) -> Path:
    """The local copy of the dataset file at ``url``: any protocol fsspec knows, such as
    ``s3://`` (with ``pip install "ferkit[cloud]"``), ``gs://`` (with ``gcsfs``) or
    ``https://``.

    The file is copied under ``$FERKIT_CACHE_DIR/remote/`` with its own name (the loaders
    go by its suffix) on first use, and read from there afterwards as long as the source
    is unchanged: fsspec's ``filecache`` compares the object's ETag or modification time
    on every use and copies it again when it changed. Credentials and endpoints are the
    protocol's own; for S3 the usual AWS variables and files (``AWS_ACCESS_KEY_ID``,
    ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` for an S3-compatible store such as MinIO).

    Returns:
        The path of the local copy.

    Raises:
        FileNotFoundError: nothing at ``url``.
        ValueError: ``url`` names a folder: only a CSV or a pack travels by URL (write a
            pack with ``ferkit pack``).
        DataError: the protocol is unknown or its package is not installed (fsspec's
            message names it), or the store refused or failed the request (no credentials,
            no connection, access denied): the message names the URL and the cause.
    """
    try:
        import fsspec

        fs, remote = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # fsspec, or the protocol's package, missing; an unknown protocol
        raise DataError(f"{url}: {exc} (s3:// needs pip install 'ferkit[cloud]')") from exc
    storage = _cache_dir() / "remote" / hashlib.sha1(url.encode()).hexdigest()[:16]
    try:
        kind = "folder" if fs.isdir(remote) else "file" if fs.isfile(remote) else None
        if kind == "file":
            local = fsspec.open_local(f"filecache::{url}", filecache={
                "cache_storage": str(storage), "same_names": True, "check_files": True, "expiry_time": False})
    except Exception as exc:  # the store's own: no credentials, no connection, access denied
        raise DataError(f"{url}: cannot read it: {type(exc).__name__}: {exc}") from exc
    if kind == "folder":
        raise ValueError(f"{url} is a folder: a dataset read from a URL must be one file, the CSV "
                         "or a pack (ferkit pack DATA --out NAME.npz.xz)")
    if kind is None:
        raise FileNotFoundError(f"dataset not found: {url}")
    return Path(local)


def _load_raw(root: Path, image_size: int, seed: int, use_cache: bool) -> dict[str, np.ndarray]:
    if root.is_file() and root.name.lower().endswith(_PACK_SUFFIXES):
        return _read_pack(root, image_size)  # already one array file: no cache needed
    files = _list_images(root) if root.is_dir() else None
    h = hashlib.sha1(f"{_CACHE_VERSION}|{root.resolve()}|{image_size}|{seed}".encode())
    if files is None:
        st = root.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache_file = _cache_dir() / f"fer-{h.hexdigest()[:20]}.npz"
    if use_cache and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    if files is None:
        raw = _read_csv(root, image_size, seed)
    else:
        raw = _read_folders(root, files, image_size, seed)
    if use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **raw)
        os.replace(tmp, cache_file)
    return raw


def _pack(images, labels, splits, sources, problems, image_size) -> dict[str, np.ndarray]:
    return {
        "images": np.asarray(images, dtype=np.uint8).reshape(-1, image_size, image_size),
        "labels": np.asarray(labels, dtype=np.int64),
        "splits": np.asarray(splits, dtype=np.int8),
        "sources": np.asarray(sources, dtype=str),
        "problems": np.asarray(problems, dtype=str),
    }


# ----------------------------------------------------------------------------- packs


def pack_fer2013(
    path: str | os.PathLike,
    out: str | os.PathLike,
    splits: tuple[str, ...] | list[str] = ("train", "val"),
    *,
    image_size: int = 48,
    on_error: str = "raise",
    fallback_seed: int = 0,
) -> dict[str, int]:
    """Write a dataset (either layout :func:`load_fer2013` reads) as one pack file.

    A pack holds the faces as one (N, S, S) uint8 array with their emotion labels (0-6,
    FER2013's ids, so any class set can be chosen when it is loaded), split codes and
    sources; :func:`load_fer2013` reads it back to the same faces, targets and sources.
    It exists to carry a dataset to another machine in one file, for example to a GPU
    machine that cannot see the original files: FER2013's train and val splits took
    57.9 MB as ``.npz.xz``, written in 83 s and read back in 7 s (session 20, 2-core AMD
    EPYC Zen 2).

    Args:
        path: the dataset: a CSV file, an image-folder root or another pack.
        out: the file to write; ``.npz`` is zip-deflated (NumPy's ``savez_compressed``),
            ``.npz.xz`` is an uncompressed ``.npz`` inside xz (LZMA preset 9: smaller,
            slower to write).
        splits: the splits to keep, of ``train``, ``val``, ``test``; by default train and
            val, which is what training reads: the held-out test split stays on the
            machine that reports it.
        image_size: side of the packed faces (see :func:`load_fer2013`).
        on_error: ``"raise"`` or ``"skip"``, as in :func:`load_fer2013`; skipped rows and
            files are not in the pack.
        fallback_seed: seed of the split fallback (module docstring).

    Returns:
        Faces written per split, ``{split: count}``, in ``splits``' order.

    Raises:
        ValueError: an unknown split, an ``out`` not ending in ``.npz`` or ``.npz.xz``, or
            a bad ``on_error``.
        FileNotFoundError, DataError: as :func:`load_fer2013`.
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"unknown or no splits {list(splits)}: expected some of {', '.join(SPLITS)}")
    out = Path(out)
    if not out.name.lower().endswith(_PACK_SUFFIXES):
        raise ValueError(f"{out}: a pack's name must end in .npz or .npz.xz")
    _, raw = _checked_raw(path, image_size, on_error, fallback_seed, True, "left out of the pack")
    codes = [SPLITS.index(s) for s in splits]
    keep = np.isin(raw["splits"], codes)
    arrays = {k: raw[k][keep] for k in _PACK_KEYS}
    arrays["problems"] = np.asarray([], dtype=str)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if out.name.lower().endswith(".xz"):
        with lzma.open(tmp, "wb", preset=9) as f:
            np.savez(f, **arrays)
    else:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    os.replace(tmp, out)
    return {s: int((arrays["splits"] == SPLITS.index(s)).sum()) for s in splits}


def _read_pack(path: Path, image_size: int) -> dict[str, np.ndarray]:
    try:
        if path.name.lower().endswith(".xz"):
            with lzma.open(path, "rb") as f:  # zip needs seeks: decompress once into memory
                source = io.BytesIO(f.read())
        else:
            source = path
        with np.load(source, allow_pickle=False) as z:
            missing = [k for k in _PACK_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a ferkit pack: it lacks {', '.join(missing)} "
                                "(write one with `ferkit pack`)")
            raw = {k: z[k] for k in _PACK_KEYS}
    except (OSError, ValueError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: not a readable ferkit pack ({exc})") from None
    images = raw["images"]
    n = len(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or any(
            len(raw[k]) != n for k in _PACK_KEYS):
        raise DataError(f"{path}: not a ferkit pack: images {images.dtype} {images.shape} "
                        f"(expected (N, S, S) uint8) with {len(raw['labels'])} labels, "
                        f"{len(raw['splits'])} splits and {len(raw['sources'])} sources")
    if n and images.shape[1] != image_size:
        raw["images"] = np.stack([cv2.resize(g, (image_size, image_size), interpolation=cv2.INTER_AREA)
                                  for g in images])
    return _pack(raw["images"], raw["labels"], raw["splits"], raw["sources"], [], image_size)


# ----------------------------------------------------------------------------- CSV


def _read_csv(path: Path, image_size: int, seed: int) -> dict[str, np.ndarray]:
    n_pixels = image_size * image_size
    images, labels, splits, sources, problems = [], [], [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = fields
        missing = {"emotion", "pixels"} - set(fields)
        if missing:
            raise DataError(
                f"{path}: not a FER2013 CSV: columns {fields} lack {sorted(missing)} "
                "(expected emotion,pixels[,Usage])"
            )
        has_usage = "Usage" in fields
        for rowno, row in enumerate(reader, start=2):
            where = f"row {rowno}"
            try:
                label = int(row["emotion"])
                if not 0 <= label < len(EMOTIONS):
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"{where}: unknown emotion label {row['emotion']!r} (expected 0-6)")
                continue
            try:
                pixels = np.array((row["pixels"] or "").split(), dtype=np.int64)
            except ValueError:
                problems.append(f"{where}: pixels are not all integers")
                continue
            if pixels.size != n_pixels:
                problems.append(
                    f"{where}: {pixels.size} pixels, expected {n_pixels} ({image_size}x{image_size})"
                )
                continue
            if pixels.min() < 0 or pixels.max() > 255:
                problems.append(f"{where}: pixel values outside 0-255")
                continue
            if has_usage:
                usage = (row["Usage"] or "").strip()
                if usage not in USAGE_TO_SPLIT:
                    problems.append(
                        f"{where}: unknown Usage {usage!r} (expected {', '.join(USAGE_TO_SPLIT)})"
                    )
                    continue
                splits.append(SPLITS.index(USAGE_TO_SPLIT[usage]))
            images.append(pixels.astype(np.uint8))
            labels.append(label)
            sources.append(where)
    if not has_usage:
        splits = _fallback_splits(len(labels), seed, fractions=(0.8, 0.1, 0.1))
    return _pack(images, labels, splits, sources, problems, image_size)


def _fallback_splits(n: int, seed: int, fractions: tuple[float, ...]) -> np.ndarray:
    """Seeded split codes for n items in the given fractions of train/val/test."""
    order = np.random.default_rng(seed).permutation(n)
    codes = np.empty(n, dtype=np.int8)
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    start = 0
    for code, end in enumerate(bounds):
        codes[order[start:end]] = code
        start = end
    return codes


# ----------------------------------------------------------------------------- folders

_FOLDER_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                  "validation": "val", "test": "test", "testing": "test"}


def _list_images(root: Path) -> list[Path]:
    files = []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            files.extend(
                sorted(f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            )
    return files


def _split_of_file(f: Path) -> str | None:
    for usage, split in USAGE_TO_SPLIT.items():
        if f.name.startswith(usage + "_"):
            return split
    return None


def _read_folders(root: Path, files: list[Path], image_size: int, seed: int) -> dict[str, np.ndarray]:
    problems = []
    entries = []  # (file, label, split-or-None, folder split)
    bad_dirs = set()
    for f in files:
        split_dir, class_dir = f.parent.parent.name, f.parent.name
        folder_split = _FOLDER_SPLITS.get(split_dir.lower())
        if folder_split is None:
            bad_dirs.add(f"{split_dir}/: not a split folder (expected train/, val/ or test/)")
            continue
        try:
            label = emotion_id(class_dir)
        except ValueError as exc:
            bad_dirs.add(f"{split_dir}/{class_dir}/: {exc}")
            continue
        entries.append((f, label, _split_of_file(f), folder_split))
    problems.extend(sorted(bad_dirs))

    def load(f: Path):
        try:
            gray = read_image(f, gray=True)
        except ImageReadError as exc:
            return None, f"{f.relative_to(root)}: {str(exc).split(': ', 1)[-1]}"
        if gray.shape != (image_size, image_size):
            gray = cv2.resize(gray, (image_size, image_size), interpolation=cv2.INTER_AREA)
        return gray, None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        results = list(pool.map(load, [e[0] for e in entries]))
    images, labels, split_names, sources = [], [], [], []
    for (f, label, split, folder_split), (gray, err) in zip(entries, results):
        if err is not None:
            problems.append(err)
            continue
        images.append(gray)
        labels.append(label)
        split_names.append(split or f"folder:{folder_split}")
        sources.append(str(f.relative_to(root)))
    codes = _resolve_folder_splits(split_names, seed)
    return _pack(images, labels, codes, sources, problems, image_size)


def _resolve_folder_splits(split_names: list[str], seed: int) -> np.ndarray:
    names = np.asarray(split_names, dtype=object)
    codes = np.full(len(names), -1, dtype=np.int8)
    for code, split in enumerate(SPLITS):
        codes[names == split] = code
    codes[names == "folder:train"] = 0
    codes[names == "folder:val"] = 1
    folder_test = np.flatnonzero(names == "folder:test")
    if (codes == 1).any() or len(folder_test) == 0:
        codes[folder_test] = 2
    else:  # no validation images anywhere: seeded half of test/ becomes val
        codes[folder_test] = _fallback_splits(len(folder_test), seed, (0.0, 0.5, 0.5))
    return codes

"""Exploring a FER dataset: class balance, sample faces, pixel statistics and a data check.

:func:`explore` loads a dataset with :func:`ferkit.data.load_fer2013` and writes into one
folder:

* ``class_distribution.png``: faces per class and split (grouped bars, counts labelled);
* ``samples.png``: seven train faces per class, drawn with a seeded RNG;
* ``pixel_stats.png``: per class mean and std of pixel intensity (0-255) and a box plot of
  the per-image mean brightness;
* ``duplicates_across_splits.png``: faces found in two splits, side by side with their
  splits and labels (labels in red where they disagree);
* ``blank_images.png``: blank or near-constant faces;
* ``no_face_images.png``: faces where the Haar detector finds no face (``face_check``);
* ``duplicates.csv``: every face of every duplicate group, to look up or remove them;
* ``summary.json``: ``counts`` and ``totals`` per split and class; ``pixel_stats`` per
  class, over all faces (``all``) and over the train split (``train``: what an input
  normalisation would use); ``quality`` with the data-check counts and the criteria and
  thresholds used (see :func:`duplicate_stats` for the duplicate fields; ``sources``
  lists name at most the first 100 faces, ``duplicates.csv`` names all); ``files``, the
  paths of the files above.

The data check:

* **Exact duplicates**: faces whose pixel arrays are identical. Each face's raw bytes are
  hashed with BLAKE2b (128-bit digest); equal digests are taken as identical arrays.
  Counted within each split and across each pair of splits (train/val, train/test,
  val/test); a group *conflicts* when its faces in the scope carry more than one label.
  ``blank_groups`` counts the groups of blank faces (below).
* **Near duplicates**: faces with equal 64-bit perceptual hashes (:func:`phash`, Hamming
  distance 0), which catches copies that differ by a brightness shift, re-encoding or
  light noise. Blank faces (below) are left out: their hashes are unstable and all alike.
  Matching uses equal hashes only (a bucket per hash value), so it is fast; copies that
  are cropped, flipped or otherwise altered enough to change one bit are not found.
  Identical faces also have equal hashes, so near duplicates include the exact ones;
  ``pairs_not_exact`` (across splits) and ``groups_not_exact`` (within) count the rest.
* **Blank faces**: faces whose pixel standard deviation is below ``blank_std`` (default
  3 grey levels): a single colour with at most faint noise.
* **No face** (optional, ``face_check=True``, about 10 ms a face): OpenCV's Haar cascade
  (:class:`ferkit.detect.HaarDetector`) finds no face in the face upscaled 2x with a 25%
  replicated border. The cascade also misses many real but turned, tilted or occluded
  faces, so this flags faces to look at, not faces to remove.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

from .data import SPLITS, load_fer2013
from .labels import ClassSet

#: Faces whose pixel standard deviation (grey levels, 0-255) is below this are blank.
BLANK_STD = 3.0
#: Sample faces per class in ``samples.png``.
SAMPLES_PER_CLASS = 7
#: Split pairs compared for duplicates, in the order reported.
SPLIT_PAIRS: tuple[tuple[str, str], ...] = (("train", "val"), ("train", "test"), ("val", "test"))
#: At most this many duplicate pairs, blank faces or faceless faces are drawn in a figure.
MAX_EXAMPLES = 24

EXACT_CRITERION = "identical pixel arrays (equal BLAKE2b-128 digests of the raw uint8 bytes)"
NEAR_CRITERION = ("equal 64-bit DCT perceptual hash (pHash: 32x32 area resize, 2-D DCT-II, "
                  "top-left 8x8 coefficients above their median), i.e. Hamming distance 0; "
                  "blank faces left out")
_HAAR_UPSCALE, _HAAR_PAD = 2, 0.25


# ----------------------------------------------------------------------------- hashes and statistics


def exact_hashes(images: np.ndarray) -> np.ndarray:
    """BLAKE2b-128 digests of each face's raw bytes: equal digests mean identical faces.

    Args:
        images: (N, H, W) uint8 faces.

    Returns:
        (N,) array of 16-byte ``np.void`` digests (sortable, usable with ``np.unique``).
    """
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat)
    return np.frombuffer(digests, dtype="V16")


# DCT-II basis rows 0-7 for 32 samples: _DCT8 @ x gives the 8 lowest-frequency coefficients.
_DCT8 = np.cos(np.pi / 64 * np.outer(np.arange(8), 2 * np.arange(32) + 1)).astype(np.float32)


def phash(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """64-bit DCT perceptual hashes of faces.

    The pHash of Zauner (2010, "Implementation and Benchmarking of Perceptual Image Hash
    Functions") as popularised by N. Krawetz ("Looks Like It", hackerfactor.com, 2011)
    and implemented by ``imagehash.phash`` (J. Buchner): resize to 32x32, take the 2-D
    DCT-II, keep the top-left 8x8 (lowest-frequency) coefficients, and set one bit per
    coefficient above their median. Here the resize is OpenCV's area interpolation on
    float32 (imagehash uses PIL's Lanczos), so the hashes do not match imagehash's bit
    for bit. Adding a constant to every pixel changes only the DC coefficient, so the hash
    is invariant to brightness shifts that do not clip.

    Args:
        images: (N, H, W) uint8 (or float) grayscale faces.
        chunk: faces transformed at a time (bounds memory).

    Returns:
        (N,) uint64 hashes; bit 63 is coefficient (0, 0), bit 0 is (7, 7).
    """
    out = np.empty(len(images), dtype=np.uint64)
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk]
        small = np.stack([cv2.resize(np.asarray(im, dtype=np.float32), (32, 32),
                                     interpolation=cv2.INTER_AREA) for im in block])
        low = (_DCT8 @ small @ _DCT8.T).reshape(len(block), 64)  # (n, 8, 8) DCT-II, unnormalised
        bits = low > np.median(low, axis=1, keepdims=True)
        out[start:start + len(block)] = np.packbits(bits, axis=1).view(">u8").ravel()
    return out


def pixel_moments(images: np.ndarray, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Exact per-face pixel sums, sums of squares, and counts of black and white pixels.

    Args:
        images: (N, H, W) uint8 faces.

    Returns:
        ``{"sum", "sum_sq", "at_0", "at_255"}``, each (N,) int64: the sum of the pixel
        values, of their squares, and the number of pixels equal to 0 and to 255.
    """
    flat = images.reshape(len(images), -1)
    m = {k: np.empty(len(images), dtype=np.int64) for k in ("sum", "sum_sq", "at_0", "at_255")}
    for start in range(0, len(images), chunk):
        c = flat[start:start + chunk].astype(np.int64)
        part = slice(start, start + len(c))
        m["sum"][part], m["sum_sq"][part] = c.sum(1), (c * c).sum(1)
        m["at_0"][part], m["at_255"][part] = (c == 0).sum(1), (c == 255).sum(1)
    return m


def _mean_std(m: dict[str, np.ndarray], sel: np.ndarray, pixels_per_face: int) -> dict:
    """Mean, std and fractions of pixels at 0 and 255 over the faces ``sel`` (None if none)."""
    n = int(sel.sum()) * pixels_per_face
    if n == 0:
        return {"mean": None, "std": None, "frac_at_0": None, "frac_at_255": None}
    mean = float(m["sum"][sel].sum()) / n
    return {"mean": mean, "std": float(np.sqrt(max(float(m["sum_sq"][sel].sum()) / n - mean * mean, 0.0))),
            "frac_at_0": float(m["at_0"][sel].sum()) / n, "frac_at_255": float(m["at_255"][sel].sum()) / n}


def pixel_stats(images: np.ndarray, targets: np.ndarray, class_names) -> dict:
    """Pixel intensity statistics per class and overall.

    Args:
        images: (N, H, W) uint8 faces.
        targets: (N,) int64 class indices into ``class_names``.
        class_names: the C class names.

    Returns:
        ``{"per_class": {name: {...}}, "all": {...}}``, where each entry holds ``images``
        (count), ``mean`` and ``std`` of all its pixels (grey levels 0-255), ``frac_at_0``
        and ``frac_at_255`` (fractions of its pixels that are pure black or white), all
        ``None`` when empty, and ``image_mean`` with the min, quartiles and max of the
        per-face mean brightness.
    """
    return _pixel_stats(pixel_moments(images), images.shape[1] * images.shape[2], targets, class_names)


def _pixel_stats(m: dict[str, np.ndarray], pixels_per_face: int, targets, class_names) -> dict:
    def entry(sel: np.ndarray) -> dict:
        face_means = m["sum"][sel] / pixels_per_face
        quart = (np.percentile(face_means, [0, 25, 50, 75, 100]).round(2).tolist()
                 if len(face_means) else [None] * 5)
        return {"images": int(sel.sum()), **_mean_std(m, sel, pixels_per_face),
                "image_mean": dict(zip(("min", "q1", "median", "q3", "max"), quart))}

    return {"per_class": {c: entry(targets == i) for i, c in enumerate(class_names)},
            "all": entry(np.ones(len(targets), dtype=bool))}


def duplicate_stats(keys: np.ndarray, split_codes: np.ndarray, targets: np.ndarray,
                    include: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Count faces that share a key within each split and across each pair of splits.

    Args:
        keys: (N,) hashes (any sortable dtype); equal keys mean duplicates.
        split_codes: (N,) int indices into :data:`ferkit.data.SPLITS`.
        targets: (N,) int class indices.
        include: optional (N,) bool mask of the faces taking part (default: all).

    Returns:
        ``(stats, group)``. ``stats["within"][split]`` holds ``groups`` (keys held by two
        or more faces of the split), ``images`` (faces in those groups), ``redundant``
        (``images - groups``: copies that could go) and ``conflicting_label_groups``.
        ``stats["across"]["a/b"]`` holds ``groups`` (keys found in both splits),
        ``images_a``/``images_b`` (faces of each split in those groups), ``pairs``
        (cross-split face pairs with equal keys) and ``conflicting_label_groups`` (groups
        whose faces in the two splits carry more than one label). ``stats["all"]`` holds
        the fields of ``within`` for the whole dataset. ``group`` is a (N,)
        int64 group id per face (equal keys, equal ids), -1 for faces left out.
    """
    include = np.ones(len(keys), dtype=bool) if include is None else np.asarray(include, dtype=bool)
    idx = np.flatnonzero(include)
    group = np.full(len(keys), -1, dtype=np.int64)
    if len(idx) == 0:
        n_groups, gid, codes, y = 0, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        _, gid = np.unique(keys[idx], return_inverse=True)
        gid = gid.ravel().astype(np.int64)
        n_groups = int(gid.max()) + 1
        codes, y = np.asarray(split_codes)[idx], np.asarray(targets, dtype=np.int64)[idx]
    group[idx] = gid
    counts = np.stack([np.bincount(gid[codes == c], minlength=n_groups) for c in range(len(SPLITS))])

    def conflicting(members: np.ndarray, groups: np.ndarray) -> int:
        sel = members & groups[gid]
        distinct = np.unique(np.stack([gid[sel], y[sel]], axis=1), axis=0)
        return int((np.bincount(distinct[:, 0], minlength=n_groups) > 1).sum()) if len(distinct) else 0

    def within_scope(n: np.ndarray, members: np.ndarray) -> dict:
        dup = n >= 2
        return {"groups": int(dup.sum()), "images": int(n[dup].sum()),
                "redundant": int(n[dup].sum() - dup.sum()),
                "conflicting_label_groups": conflicting(members, dup)}

    within = {name: within_scope(counts[c], codes == c) for c, name in enumerate(SPLITS)}
    across = {}
    for a, b in SPLIT_PAIRS:
        ca, cb = counts[SPLITS.index(a)], counts[SPLITS.index(b)]
        shared = (ca > 0) & (cb > 0)
        members = (codes == SPLITS.index(a)) | (codes == SPLITS.index(b))
        across[f"{a}/{b}"] = {"groups": int(shared.sum()), f"images_{a}": int(ca[shared].sum()),
                              f"images_{b}": int(cb[shared].sum()),
                              "pairs": int((ca[shared] * cb[shared]).sum()),
                              "conflicting_label_groups": conflicting(members, shared)}
    whole = within_scope(counts.sum(0), np.ones(len(gid), dtype=bool))
    return {"within": within, "across": across, "all": whole}, group


def faceless(images: np.ndarray, detector=None) -> np.ndarray:
    """Which faces the Haar cascade finds no face in (see the module docstring).

    Args:
        images: (N, H, W) uint8 faces.
        detector: an object with ``detect(gray) -> list``; default
            ``HaarDetector(min_neighbors=2)``.

    Returns:
        (N,) bool, True where no face was found.
    """
    if detector is None:
        from .detect import HaarDetector

        detector = HaarDetector(min_neighbors=2)
    found = np.zeros(len(images), dtype=bool)
    for i, im in enumerate(images):
        big = cv2.resize(im, None, fx=_HAAR_UPSCALE, fy=_HAAR_UPSCALE, interpolation=cv2.INTER_CUBIC)
        pad = int(_HAAR_PAD * big.shape[0])
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found[i] = len(detector.detect(big)) > 0
    return ~found


# ----------------------------------------------------------------------------- the command


def explore(path: str | os.PathLike, out: str | os.PathLike = "runs/explore",
            classes: str | ClassSet | None = "all", *, seed: int = 0, blank_std: float = BLANK_STD,
            face_check: bool = False, on_error: str = "raise") -> dict:
    """Explore a dataset and write figures, ``duplicates.csv`` and ``summary.json`` to ``out``.

    Args:
        path: FER2013 CSV file or image-folder root (see :func:`ferkit.data.load_fer2013`).
        out: output folder (created).
        classes: class set, e.g. ``"all"``, ``"6"`` or ``"happy,sad,neutral"``. Labels
            compared for conflicts are the class set's; faces of dropped emotions are left
            out of everything.
        seed: seed of the sample faces drawn for ``samples.png``.
        blank_std: faces with pixel std below this (grey levels) count as blank.
        face_check: also run the Haar face check (slow: about 10 ms a face).
        on_error: ``"raise"`` or ``"skip"`` bad rows or files, as in ``load_fer2013``.

    Returns:
        The summary written to ``summary.json`` (see the module docstring).

    Raises:
        FileNotFoundError, DataError: as :func:`ferkit.data.load_fer2013`.
        ValueError: a negative ``blank_std``.
    """
    if blank_std < 0:
        raise ValueError(f"blank_std must be >= 0, got {blank_std}")
    data = load_fer2013(path, classes, on_error=on_error)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.concatenate([data[s].images for s in SPLITS])
    targets = np.concatenate([data[s].targets for s in SPLITS]).astype(np.int64)
    sources = np.concatenate([data[s].sources for s in SPLITS])
    codes = np.concatenate([np.full(len(data[s]), i, dtype=np.int64) for i, s in enumerate(SPLITS)])
    names = data.class_names

    moments = pixel_moments(images)
    p = images.shape[1] * images.shape[2]
    stats = _pixel_stats(moments, p, targets, names)
    stats["train"] = _mean_std(moments, codes == 0, p)  # what input normalisation would use
    face_mean = moments["sum"] / p
    face_std = np.sqrt(np.maximum(moments["sum_sq"] / p - face_mean ** 2, 0.0))
    blank = face_std < blank_std

    exact_keys, near_keys = exact_hashes(images), phash(images)
    exact, exact_group = duplicate_stats(exact_keys, codes, targets)
    near, near_group = duplicate_stats(near_keys, codes, targets, include=~blank)
    exact_nonblank, _ = duplicate_stats(exact_keys, codes, targets, include=~blank)
    for scope, d in near["across"].items():
        d["pairs_not_exact"] = d["pairs"] - exact_nonblank["across"][scope]["pairs"]
    for c, split in enumerate(SPLITS):
        near["within"][split]["groups_not_exact"] = _mixed_groups(near_group, exact_group, codes == c)
    near["all"]["groups_not_exact"] = _mixed_groups(near_group, exact_group, np.ones(len(codes), bool))
    exact["blank_groups"] = int(len(np.unique(exact_group[blank & _in_groups(exact_group)])))

    quality = {
        "exact_duplicates": {"criterion": EXACT_CRITERION, **exact},
        "near_duplicates": {"criterion": NEAR_CRITERION, "hash": "pHash-64 (DCT)",
                            "max_hamming_distance": 0, "excludes_blank": True, **near},
        "blank": {"criterion": f"pixel std < {blank_std:g} grey levels", "std_threshold": blank_std,
                  "count": int(blank.sum()), "per_split": _per_split(blank, codes),
                  "sources": sources[blank].tolist()[:100]},
        "no_face": None,
    }
    figures = {
        "class_distribution": plot_class_distribution(data.counts(), out / "class_distribution.png"),
        "samples": plot_samples(data["train"].images, data["train"].targets, names,
                                out / "samples.png", seed=seed),
        "pixel_stats": plot_pixel_stats(stats, face_mean, targets, names, out / "pixel_stats.png"),
        "duplicates_across_splits": plot_pairs(
            _example_pairs(exact_group, near_group, codes), images, targets, codes, sources, names,
            out / "duplicates_across_splits.png"),
    }
    shown = np.flatnonzero(blank)[:MAX_EXAMPLES]
    figures["blank_images"] = plot_faces(
        images[shown], [f"{SPLITS[codes[i]]}: {names[targets[i]]}\nstd {face_std[i]:.1f}" for i in shown],
        out / "blank_images.png", f"blank faces (pixel std < {blank_std:g}): {int(blank.sum())}")
    if face_check:
        none = faceless(images)
        quality["no_face"] = {
            "criterion": f"Haar cascade (min_neighbors=2) finds no face in the face upscaled "
                         f"{_HAAR_UPSCALE}x with a {_HAAR_PAD:.0%} replicated border",
            "count": int(none.sum()), "per_split": _per_split(none, codes),
            "sources": sources[none].tolist()[:100]}
        shown = np.flatnonzero(none)[:MAX_EXAMPLES]
        figures["no_face_images"] = plot_faces(
            images[shown], [f"{SPLITS[codes[i]]}: {names[targets[i]]}" for i in shown],
            out / "no_face_images.png", f"no face found by the Haar cascade: {int(none.sum())}")
    dup_csv = write_duplicates_csv(out / "duplicates.csv", exact_group, near_group, codes, targets,
                                   sources, names)
    summary = {
        "data": str(data.root),
        "classes": list(names),
        "image_size": int(images.shape[1]),
        "counts": data.counts(),
        "totals": {**{s: len(data[s]) for s in SPLITS}, "all": int(len(images))},
        "pixel_stats": stats,
        "quality": quality,
        "seed": seed,
        "files": {**{k: str(v) for k, v in figures.items()}, "duplicates_csv": str(dup_csv),
                  "summary": str(out / "summary.json")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _mixed_groups(group: np.ndarray, exact_group: np.ndarray, members: np.ndarray) -> int:
    """How many groups hold at least two different (not identical) faces among ``members``."""
    sel = members & (group >= 0)
    distinct = np.unique(np.stack([group[sel], exact_group[sel]], axis=1), axis=0)
    return int((np.bincount(distinct[:, 0], minlength=1) >= 2).sum()) if len(distinct) else 0


def _in_groups(group: np.ndarray) -> np.ndarray:
    """(N,) bool: faces in a group of two or more."""
    valid = group >= 0
    counts = np.bincount(group[valid], minlength=1)
    out = np.zeros(len(group), dtype=bool)
    out[valid] = counts[group[valid]] >= 2
    return out


def _per_split(mask: np.ndarray, codes: np.ndarray) -> dict[str, int]:
    return {s: int((mask & (codes == i)).sum()) for i, s in enumerate(SPLITS)}


def _example_pairs(exact_group, near_group, codes, limit: int = MAX_EXAMPLES) -> list[tuple[int, int, str]]:
    """Up to ``limit`` cross-split pairs ``(i, j, kind)``, kind ``"exact"`` or ``"pHash"``:
    train/test first, exact copies before near ones, a face's first copy in each split."""
    pairs, seen = [], set()
    for kind, group in (("exact", exact_group), ("pHash", near_group)):
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            ia, ib = SPLITS.index(a), SPLITS.index(b)
            first_a, first_b = {}, {}
            for i in np.flatnonzero((group >= 0) & (codes == ia)):
                first_a.setdefault(int(group[i]), int(i))
            for j in np.flatnonzero((group >= 0) & (codes == ib)):
                first_b.setdefault(int(group[j]), int(j))
            for g in sorted(set(first_a) & set(first_b)):
                i, j = first_a[g], first_b[g]
                if (kind == "pHash" and exact_group[i] == exact_group[j]) or (i, j) in seen:
                    continue  # identical copies are shown as exact
                seen.add((i, j))
                pairs.append((i, j, kind))
    # half the slots for exact copies, half for near ones, the rest to whichever has more
    exact_pairs = [p for p in pairs if p[2] == "exact"]
    near_pairs = [p for p in pairs if p[2] == "pHash"]
    n_near = min(len(near_pairs), max(limit // 2, limit - len(exact_pairs)))
    return exact_pairs[:limit - n_near] + near_pairs[:n_near]


def write_duplicates_csv(path: Path, exact_group, near_group, codes, targets, sources, names) -> Path:
    """Write one row per face of every duplicate group: ``kind,group,split,class,source``.

    ``exact`` groups hold identical faces; ``near`` groups hold faces with equal pHash that
    are not all identical (faces of an exact group appear in both when a near copy exists).
    """
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "group", "split", "class", "source"])
        for kind, group in (("exact", exact_group), ("near", near_group)):
            members = _in_groups(group)
            if kind == "near":  # keep groups holding at least two different faces
                distinct = np.unique(np.stack([group[members], exact_group[members]], 1), axis=0)
                multi = np.flatnonzero(np.bincount(distinct[:, 0], minlength=1) >= 2) if len(distinct) else []
                members &= np.isin(group, multi)
            for i in sorted(np.flatnonzero(members), key=lambda k: (group[k], codes[k], k)):
                w.writerow([kind, int(group[i]), SPLITS[codes[i]], names[targets[i]], sources[i]])
    return path


# ----------------------------------------------------------------------------- figures


def plot_class_distribution(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """Grouped bars: faces per class, one bar per split, counts written on the bars.

    Args:
        counts: ``{split: {class_name: count}}`` as :meth:`ferkit.data.FERDataset.counts`.
    """
    from .plots import _save, plt

    names = list(next(iter(counts.values())))
    x = np.arange(len(names))
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(names)), 4.5))
    for k, (split, per_class) in enumerate(counts.items()):
        bars = ax.bar(x + (k - (len(counts) - 1) / 2) * width, [per_class[c] for c in names], width,
                      label=f"{split} ({sum(per_class.values()):,})")
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=1, rotation=90)
    ax.set_xticks(x, names)
    ax.set_ylabel("faces")
    ax.set_title("faces per class and split")
    ax.margins(y=0.15)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_samples(images: np.ndarray, targets: np.ndarray, class_names, path: Path, *,
                 per_class: int = SAMPLES_PER_CLASS, seed: int = 0) -> Path:
    """A grid of faces, one row per class, drawn without replacement with a seeded RNG.

    Args:
        images: (N, H, W) uint8 faces (the train split).
        targets: (N,) int class indices into ``class_names``.
    """
    from .plots import _save, plt

    rng = np.random.default_rng(seed)
    rows = len(class_names)
    fig, axes = plt.subplots(rows, per_class, figsize=(1.1 * per_class + 0.8, 1.15 * rows), squeeze=False)
    for r, name in enumerate(class_names):
        pool = np.flatnonzero(targets == r)
        pick = rng.choice(pool, size=min(per_class, len(pool)), replace=False) if len(pool) else []
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(pick):
                ax.imshow(images[pick[c]], cmap="gray", vmin=0, vmax=255)
            else:
                ax.set_frame_on(False)
        axes[r, 0].set_ylabel(f"{name}\n({len(pool):,})", rotation=0, ha="right", va="center", fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    _suptitle(fig, f"train faces, {per_class} per class (seed {seed})", 0.05)
    return _save(fig, path)


def plot_pixel_stats(stats: dict, face_means: np.ndarray, targets: np.ndarray, class_names,
                     path: Path) -> Path:
    """Per class mean +- std of pixel intensity, and box plots of per-face mean brightness.

    Args:
        stats: :func:`pixel_stats` output.
        face_means: (N,) float mean intensity of each face, 0-255.
        targets: (N,) int class indices.
    """
    from .plots import _save, plt

    names = list(class_names)
    per = stats["per_class"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(10.0, 2.6 * len(names)), 4.2))
    x = np.arange(len(names))
    means = [per[c]["mean"] or 0.0 for c in names]
    stds = [per[c]["std"] or 0.0 for c in names]
    bars = ax1.bar(x, means, yerr=stds, capsize=4, color="tab:gray")
    ax1.bar_label(bars, labels=[f"{m:.1f}\n±{s:.1f}" for m, s in zip(means, stds)], fontsize=7,
                  label_type="center", color="white")
    ax1.set_xticks(x, names)
    ax1.set_ylim(0, 255)
    ax1.set_ylabel("pixel intensity (0-255)")
    ax1.set_title("pixel mean ± std per class (all splits)")
    ax1.grid(axis="y", alpha=0.3)
    ax2.boxplot([face_means[targets == i] for i in range(len(names))], showfliers=False)
    ax2.set_xticks(x + 1, names)
    ax2.set_ylim(0, 255)
    ax2.set_ylabel("mean intensity of a face")
    ax2.set_title("per-face brightness per class (whiskers 1.5 IQR)")
    ax2.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _suptitle(fig, text: str, room_in: float) -> None:
    """A figure title just above the axes, leaving ``room_in`` inches for their own titles."""
    fig.subplots_adjust(top=1 - room_in / fig.get_figheight())
    fig.suptitle(text, y=1.0, va="bottom")


def _empty_figure(path: Path, text: str) -> Path:
    from .plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    return _save(fig, path)


def plot_pairs(pairs: list[tuple[int, int, str]], images, targets, codes, sources, class_names,
               path: Path, per_row: int = 4) -> Path:
    """Cross-split duplicate pairs side by side, titled with split and label (red when the
    labels differ) and captioned with the file or row they come from."""
    from .plots import _save, plt

    if not pairs:
        return _empty_figure(path, "no duplicates across splits")
    rows = -(-len(pairs) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(2 * per_row * 1.35, rows * 1.75), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (i, j, kind) in enumerate(pairs):
        conflict = targets[i] != targets[j]
        for side, m in enumerate((i, j)):
            ax = axes[k // per_row, 2 * (k % per_row) + side]
            ax.imshow(images[m], cmap="gray", vmin=0, vmax=255)
            head = f"{kind}\n" if side == 0 else "\n"
            ax.set_title(f"{head}{SPLITS[codes[m]]}: {class_names[targets[m]]}", fontsize=8,
                         color="red" if conflict else "black")
            ax.text(0.5, -0.04, Path(str(sources[m])).name, transform=ax.transAxes, ha="center",
                    va="top", fontsize=5.5)
    fig.subplots_adjust(wspace=0.08, hspace=0.6)
    _suptitle(fig, "duplicates across splits (labels in red disagree)", 0.45)
    return _save(fig, path)


def plot_faces(images: np.ndarray, titles: list[str], path: Path, title: str, per_row: int = 8) -> Path:
    """A grid of faces with a small title each (a text-only figure when there are none)."""
    from .plots import _save, plt

    if len(images) == 0:
        return _empty_figure(path, title)
    rows = -(-len(images) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(per_row * 1.2, rows * 1.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, t in zip(axes.ravel(), images, titles):
        ax.imshow(im, cmap="gray", vmin=0, vmax=255)
        ax.set_title(t, fontsize=7)
    _suptitle(fig, title, 0.4)
    return _save(fig, path)


# ----------------------------------------------------------------------------- text summary


def format_summary(summary: dict) -> str:
    """A few lines for a person: sizes, class balance and the data-check counts."""
    t, q = summary["totals"], summary["quality"]
    lines = [f"{summary['data']}: {t['all']:,} faces, {len(summary['classes'])} classes "
             f"(train {t['train']:,} / val {t['val']:,} / test {t['test']:,})",
             "train per class: " + ", ".join(f"{c} {n:,}" for c, n in summary["counts"]["train"].items())]
    px = summary["pixel_stats"]["all"]
    if px["mean"] is not None:
        lines.append(f"pixels (0-255, all splits): mean {px['mean']:.1f}, std {px['std']:.1f}, "
                     f"{px['frac_at_0']:.1%} black, {px['frac_at_255']:.1%} white")
    for key, title in (("exact_duplicates", "exact duplicates (identical pixels)"),
                       ("near_duplicates", "near duplicates (equal pHash, blank faces left out)")):
        d, a = q[key], q[key]["all"]
        lines.append(f"{title}: {a['groups']:,} groups holding {a['images']:,} faces "
                     f"({a['redundant']:,} redundant), {a['conflicting_label_groups']:,} with "
                     "conflicting labels")
        within = []
        for split, v in d["within"].items():
            extra = f", {v['groups_not_exact']:,} not all identical" if "groups_not_exact" in v else ""
            within.append(f"{split} {v['groups']:,} groups / {v['images']:,} faces "
                          f"({v['conflicting_label_groups']:,} conflicting{extra})")
        across = []
        for scope, v in d["across"].items():
            extra = f", {v['pairs_not_exact']:,} pairs not identical" if "pairs_not_exact" in v else ""
            across.append(f"{scope} {v['groups']:,} groups / {v['pairs']:,} pairs "
                          f"({v['conflicting_label_groups']:,} conflicting{extra})")
        lines += ["  within: " + "; ".join(within), "  across: " + "; ".join(across)]
    leak_exact = q["exact_duplicates"]["across"]["train/test"]["images_test"]
    leak_near = q["near_duplicates"]["across"]["train/test"]["images_test"]
    lines.append(f"train/test leakage: {leak_exact:,} test faces have an identical face in train, "
                 f"{leak_near:,} an equal pHash")
    for key, title in (("blank", f"blank faces ({q['blank']['criterion']})"),
                       ("no_face", "no face found by the Haar cascade")):
        if q[key] is not None:
            per = ", ".join(f"{s} {n:,}" for s, n in q[key]["per_split"].items())
            lines.append(f"{title}: {q[key]['count']:,} ({per})")
    return "\n".join(lines)

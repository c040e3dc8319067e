"""Figures with matplotlib (headless Agg backend): training curves, confusion matrices,
ROC curves. Each function writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(history: list[dict], path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch, train against val."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, title in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], label="val (PublicTest)")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].plot(epochs, [h["lr"] for h in history])
    axes[2].set_title("learning rate (end of epoch)")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, class_names, path: Path, normalized: bool, title: str) -> Path:
    """A confusion matrix: rows are true classes, columns predicted ones."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay(cm, display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", colorbar=True, values_format=".2f" if normalized else "d",
        xticks_rotation=45)
    ax.set_title(title)
    return _save(fig, path)


def plot_roc(roc: dict, path: Path, title: str) -> Path:
    """One-vs-rest ROC curves, one per class, with AUC in the legend.

    Args:
        roc: ``{class_name: {"fpr": [...], "tpr": [...], "auc": float}}``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for name, r in roc.items():
        ax.plot(r["fpr"], r["tpr"], label=f"{name} (AUC {r['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_timeline(series: dict[int, tuple[np.ndarray, np.ndarray]], class_names, path: Path,
                  title: str, colors: dict[str, tuple[int, int, int]] | None = None,
                  max_tracks: int = 8) -> Path:
    """Emotion probabilities over time, one panel per face track.

    Args:
        series: ``{track_id: (times, probs)}``: times (T,) in seconds, probs (T, C) in [0, 1].
        class_names: the C emotion names, in the column order of probs.
        path: the PNG to write.
        title: figure title.
        colors: ``{emotion: (B, G, R)}`` 0-255 line colours (as in :mod:`ferkit.draw`).
        max_tracks: at most this many panels: the tracks with the most frames, in id order.
    """
    shown = sorted(sorted(series, key=lambda k: -len(series[k][0]))[:max_tracks])
    if len(shown) < len(series):
        title += f" ({len(shown)} longest of {len(series)} tracks)"
    fig, axes = plt.subplots(max(1, len(shown)), 1, figsize=(10, 1.0 + 2.0 * max(1, len(shown))),
                             sharex=True, squeeze=False)
    for ax, track_id in zip(axes[:, 0], shown):
        times, probs = series[track_id]
        for k, name in enumerate(class_names):
            bgr = (colors or {}).get(name)
            color = None if bgr is None else tuple(c / 255 for c in bgr[::-1])
            ax.plot(times, probs[:, k], ".-", ms=2, lw=1, label=name, color=color)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"track {track_id}")
        ax.grid(alpha=0.3)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time (s)")
    if shown:
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return _save(fig, path)


def plot_pr(pr: dict, path: Path, title: str) -> Path:
    """One-vs-rest precision-recall curves, one per class, with average precision (AP,
    the area under the step curve) in the legend.

    Args:
        pr: ``{class_name: {"precision": [...], "recall": [...], "ap": float, "prevalence": float}}``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 6))
    for name, r in pr.items():
        ax.step(r["recall"], r["precision"], where="post", label=f"{name} (AP {r['ap']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_reliability(curves: dict[str, dict], path: Path, title: str) -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin, one
    panel per entry, bars showing the fraction of faces in each bin.

    Args:
        curves: ``{label: {"accuracy": (B,), "confidence": (B,), "count": (B,), "ece": float}}``
            as :func:`ferkit.calibrate.reliability` gives them (fractions in [0, 1]).
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 4.6), squeeze=False)
    for ax, (label, r) in zip(axes[0], curves.items()):
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
        ax.plot(r["confidence"], r["accuracy"], "o-", color="C3", label="model")
        ax2 = ax.twinx()
        ax2.bar(r["confidence"], np.asarray(r["count"]) / np.sum(r["count"]), width=1 / 15 * 0.8,
                alpha=0.25, color="C0")
        ax2.set_ylim(0, 1)
        ax2.set_yticks([])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{label}\nECE {100 * r['ece']:.2f}%")
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_face_grid(rows: list[tuple[str, list[tuple[np.ndarray, str]]]], path: Path, title: str,
                   cols: int | None = None) -> Path:
    """A grid of images, one row per group, each image with a caption.

    Args:
        rows: ``[(row label, [(image, caption), ...]), ...]``; images are (H, W) uint8
            gray or (H, W, 3) uint8 BGR.
        cols: columns (default: the longest row).
    """
    cols = cols or max([len(r[1]) for r in rows] + [1])
    fig, axes = plt.subplots(max(1, len(rows)), cols, figsize=(1.45 * cols + 0.9, 1.75 * max(1, len(rows))),
                             squeeze=False)
    for r, (label, items) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(items):
                img, caption = items[c]
                if img.ndim == 2:  # float: matplotlib's resampling of small uint8 images can wrap around
                    ax.imshow(img.astype(np.float32), cmap="gray", vmin=0, vmax=255)
                else:
                    ax.imshow(img[..., ::-1])
                ax.set_title(caption, fontsize=6.5)
        axes[r, 0].set_ylabel(label, fontsize=9)
        if not items:
            axes[r, 0].text(0.5, 0.5, "none", ha="center", va="center", transform=axes[r, 0].transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_feature_maps(face: np.ndarray, maps: list[tuple[str, np.ndarray]], path: Path, title: str,
                      per_stage: int = 8) -> Path:
    """The input face and, one row per pooling stage, the ``per_stage`` channels with the
    highest mean activation.

    Args:
        face: (S, S) uint8 gray face.
        maps: ``[(name, (K, h, w) float32), ...]`` (:func:`ferkit.explain.feature_maps`).
    """
    fig, axes = plt.subplots(len(maps) + 1, per_stage, figsize=(1.3 * per_stage, 1.45 * (len(maps) + 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(face.astype(np.float32), cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_title("input", fontsize=8)
    for r, (name, m) in enumerate(maps, start=1):
        top = np.argsort(-m.mean(axis=(1, 2)))[:per_stage]
        for c, k in enumerate(top):
            axes[r, c].imshow(m[k], cmap="viridis")
            axes[r, c].set_title(f"{name} #{k} ({m.shape[1]}x{m.shape[2]})" if c == 0 else f"#{k}", fontsize=6.5)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)

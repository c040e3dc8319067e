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

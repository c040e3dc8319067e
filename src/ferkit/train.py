"""Training a FER CNN from scratch: augmentation, LR schedule, early stopping on val,
resumable checkpoints, a history CSV and curves.

Protocol: the model is fit on ``train`` (FER2013 Training); ``val`` (PublicTest) alone
chooses the checkpoint and stops training. ``test`` (PrivateTest) is never read here.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoint import checkpoint_meta, save_checkpoint
from .data import load_fer2013
from .distributed import Ranks, join_process_group
from .models import create_model
from .preprocess import Preprocessing, fit_face, prepare_faces


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved into every checkpoint.

    Attributes:
        data: FER2013 CSV file or image-folder root.
        out: run folder (checkpoints, history.csv, curves.png, config.json).
        model / model_args: a registered model name and its extra arguments.
        classes: class set (``all``, ``6``, or names such as ``happy,sad,neutral``).
        epochs: maximum number of epochs.
        batch_size: faces per optimisation step (under ``torchrun``, over all processes).
        optimizer: ``sgd`` (Nesterov momentum) or ``adamw``.
        lr: peak learning rate.
        weight_decay: decoupled for AdamW, L2 for SGD.
        schedule: ``onecycle`` (Smith & Topin, 2017, as PyTorch's ``OneCycleLR``: the LR
            rises from peak/25 to the peak on a half cosine over ``warmup``, a share in
            [0, 1) of all steps or of the ``budget`` clock, then anneals on a half cosine
            to peak/25000), ``cosine`` (Loshchilov & Hutter, 2017,
            no restarts) or ``plateau`` (halve the LR after ``plateau_patience`` epochs
            without a better val accuracy, as in the reports).
        label_smoothing: cross-entropy label smoothing (Szegedy et al., 2016).
        patience: early stopping: stop after this many epochs without a better val
            accuracy; 0 disables it.
        rotate: maximum random rotation, degrees.
        shift: maximum random translation, fraction of the side.
        scale: maximum random zoom, fraction (0.1 = 0.9x-1.1x).
        flip: random horizontal flip with probability 0.5.
        erase: probability of random erasing of one rectangle (Zhong et al., 2020).
        lowres: resolution augmentation: the share of train faces that are shrunk to a
            side drawn uniformly from the integers ``[lowres_min, S - 1]`` (OpenCV
            ``INTER_AREA``, as a camera's lower resolution gives a small face) and enlarged
            back to S through :func:`ferkit.preprocess.fit_face` (Lanczos), exactly as a
            small face in a photo reaches the model; applied before the random affine.
            0 = off. For faces found small in photos and webcams (session 38; the face-size
            table in the README).
        lowres_min: the smallest side in pixels ``lowres`` shrinks a face to (>= 4).
        brightness: photometric jitter: every face's pixels are multiplied by a factor
            drawn uniformly from ``[1 - brightness, 1 + brightness]``; 0 = off. As
            torchvision's ``ColorJitter(brightness=...)`` on a gray face; values clipped to
            [0, 1].
        contrast: photometric jitter: every face is blended with its own mean gray,
            ``mean + f * (face - mean)``, ``f`` drawn uniformly from
            ``[1 - contrast, 1 + contrast]``; 0 = off (torchvision's
            ``ColorJitter(contrast=...)``). Applied before ``brightness``.
        logit_adjust: tau of the logit-adjusted loss (Menon et al., 2021, "Long-tail
            Learning via Logit Adjustment", ICLR; its loss form): the loss is computed on
            ``logits + tau * log(prior)``, the prior being the train split's class
            frequencies (:func:`logit_adjustment`), so the raw logits the model outputs
            learn the class-balanced posterior and rare classes (disgust, fear) are
            predicted more often; 0 = off, 1 = the paper's choice. Applies to both terms of
            a distillation loss. The post-hoc form is ``ferkit calibrate --logit-adjust``.
            Measured on the 30-minute fast recipe (session 19, val, ten-crop): tau 1 gave
            disgust recall 82% at precision 0.11 and accuracy 59.5% against 64.5%; the
            post-hoc form on the plain run kept 64.2% with a better macro F1.
        mixup: alpha of mixup (Zhang et al., 2018, "mixup: Beyond Empirical Risk
            Minimization"): a batch becomes ``lam * x + (1 - lam) * x[perm]`` with
            ``lam ~ Beta(alpha, alpha)``; 0 = off.
        cutmix: alpha of CutMix (Yun et al., 2019, "CutMix: Regularization Strategy to Train
            Strong Classifiers with Localizable Features"): a box of ``1 - lam`` of the face's
            area is pasted from ``x[perm]``; 0 = off. With both on, each mixed batch takes
            one of the two at random (as timm's ``Mixup``).
        mix_prob: probability that a batch is mixed (when ``mixup`` or ``cutmix`` is on).
            A mixed batch is trained against both faces' targets, weighted ``lam`` and
            ``1 - lam`` (labels and, with a teacher, the teacher's probabilities).
        input_size: side in pixels every face is resized to (OpenCV ``INTER_AREA``; train
            faces once at load, val, test and photo crops through
            :func:`ferkit.preprocess.prepare_faces`), recorded in the model's preprocessing;
            0 = the dataset's own side (48 for FER2013). A smaller side is cheaper: 32 px
            costs about 0.44 of the compute of 48 px per face, so a time budget buys more
            epochs.
        equalize: histogram-equalise every face (train faces once at load; val, test and
            photo crops through :func:`ferkit.preprocess.prepare_faces`), recorded in the
            model's preprocessing.
        ema: decay per optimisation step of an exponential moving average of the weights
            and batch-norm statistics (Polyak & Juditsky, 1992; as timm's ``ModelEma``),
            0 = off. When on, val is measured on the averaged weights, and ``best.pt``
            holds them; 0.999 averages over about the last 1,000 steps.
        swa: stochastic weight averaging (Izmailov et al., 2018, "Averaging Weights Leads
            to Wider Optima and Better Generalization", UAI): the share of the run in
            [0, 1) (of its epochs, or of its budget's minutes with ``budget``) after which
            the weights are averaged with equal weight, once at the end of each epoch that
            ends past it, with the batch-norm statistics averaged alongside (as
            ``torch.optim.swa_utils.AveragedModel(use_buffers=True)``); 0 = off. Once the
            average holds an epoch, val is measured on it and ``best.pt`` holds it, as
            with ``ema`` (not with ``ema``). 0.75 averages the last quarter.
        swa_lr: with ``swa``, the LR held constant from the averaging's start to the end
            of the run, the paper's form (it ends the schedule's annealing there); 0 =
            the schedule runs on, so the average is taken over its annealing tail.
        budget: wall-time budget of the whole run, minutes (0 = off). With a budget the
            one-cycle schedule runs on time instead of steps: the LR at each step is the
            one-cycle LR at ``elapsed / budget`` of the way through, and training stops
            when the next val pass would overrun the budget (the last epoch may then be
            partial; it is evaluated and can be the best). ``epochs`` stays the upper
            bound. The run fits the budget on any machine, but its number of steps, and so
            its result, depends on the machine's speed. Needs ``schedule: onecycle``. The
            teacher's one-off pass over the train faces (``teacher``) is not counted.
        teacher: knowledge distillation (Hinton, Vinyals & Dean, 2015, "Distilling the
            Knowledge in a Neural Network", arXiv:1503.02531) from this model: an ``.onnx``
            file, a ``.pt`` checkpoint or a bundled name such as ``ensemble``, with the
            run's class names. Its calibrated probabilities on every train face (with its
            own preprocessing and test-time augmentation, computed once and cached in the
            run folder as ``teacher_probs.npy``) are soft targets for every augmented view
            of that face (offline distillation); "" = off. See :func:`distillation_loss`.
            A ``.npy`` file is taken as such probabilities, already computed (an earlier
            run's ``teacher_probs.npy``, carried to another machine without the teacher):
            (N, C) in the run's train-face order and class order.
        distill_weight: weight of the distillation term in [0, 1]; the label term gets
            ``1 - distill_weight``.
        distill_temperature: temperature T > 0 that softens the student's logits and the
            teacher's probabilities (``p ** (1 / T)``, renormalised) in the distillation term.
        self_distill: alpha_T of progressive self-knowledge distillation (PS-KD; Kim et
            al., 2021, "Self-Knowledge Distillation with Progressive Refinement of Targets",
            ICCV): each face's target becomes ``(1 - a) * label + a * p_prev``, where
            ``p_prev`` is the model's own softmax on that face in the previous epoch (of
            the logits the loss sees, so logit-adjusted with ``logit_adjust``; kept
            from the training forward pass, so it costs no extra compute: an (N, C) float32
            table, 0.8 MB for FER2013) and ``a`` grows linearly from 0 to ``self_distill``
            over the run (over its epochs, or its budget's minutes with ``budget``); the
            label part keeps ``label_smoothing``. 0 = off; the paper's value is 0.8.
            Mixed batches (``mixup``/``cutmix``) use the stored targets of both faces but
            do not update them. Not with ``teacher``. Measured on the 30-minute
            ``configs/fast-bf16.yaml`` (session 26, 0.8): val 67.21% against the plain
            recipe's 67.73% (multi-scale TTA), macro F1 0.612 against 0.639.
        init: start from these weights instead of random ones (same model and classes,
            weights of the same shapes; e.g. a second, low-LR stage with lighter
            augmentation): a ferkit ``.pt``
            checkpoint, or a ferkit ``.onnx`` model or bundled name (``default``) whose graph
            weights are rebuilt in PyTorch.
        precision: arithmetic of the forward and backward passes: ``fp32``, ``bf16``
            (``torch.autocast`` to bfloat16 on the CPU; the weights, the optimiser state and
            the loss stay float32, as in mixed-precision training, Micikevicius et al., 2018,
            "Mixed Precision Training"; the val pass after each epoch runs under the same
            autocast, so ``val_acc`` and the choice of ``best.pt`` are bf16's), or
            ``auto``: the faster of the two on this machine, timed on a few training steps of the run's own model and batch
            before the run starts (:func:`choose_precision`; the choice and both timings are
            printed, and the run records the precision it chose). Measured with
            ``benchmarks/train_step.py``, bf16 costs 0.45-0.68x the fp32 step on an Intel
            Xeon with AMX (session 13), 0.86-1.47x on an Intel Xeon with AVX-512 BF16 but no
            AMX (session 15; 1.26-1.37x at the bundled widths 32-64-128-256), 0.57-0.64x on
            an AMD EPYC Zen 5 with AVX-512 BF16 (session 16), and 10-13x on an AMD EPYC
            Zen 3 (8-10x on session 17's Zen 2) without native bfloat16, where it is emulated and the run prints a
            warning.
        fp32_recipe: with ``precision: auto``, the recipe file to train instead where fp32
            is the faster precision for this recipe's model (a recipe tuned for bf16's
            step rate can be the wrong one at half of it; :func:`resolve_config`); a
            relative path in a recipe file is relative to that file's folder; "" = none.
        device: where the model trains: ``cpu``, ``cuda`` (or ``cuda:N``), or ``auto``:
            the first CUDA GPU when PyTorch sees one, else the CPU (:func:`resolve_device`).
            On a GPU the train faces (uint8, 66 MB for FER2013) live on the GPU and are
            augmented there; the draws still come from the seeded CPU generator, so a seed
            gives the same crops, flips and order on either device. ``precision: auto``
            on a GPU means bf16 where it supports bfloat16 (Ampere and later), else fp32.
            Checkpoints are written with CPU tensors, so they load anywhere.
        seed: seeds weights, shuffling, augmentation and dropout.
        threads: CPU threads for PyTorch; 0 = all cores.
        skip_bad: leave out malformed rows or unreadable images (with a warning)
            instead of failing.
    """

    data: str = ""
    out: str = "runs/train"
    model: str = "vgg_s"
    model_args: dict = field(default_factory=dict)
    classes: str = "all"
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup: float = 0.15
    plateau_patience: int = 5
    label_smoothing: float = 0.1
    patience: int = 10
    rotate: float = 15.0
    shift: float = 0.1
    scale: float = 0.1
    flip: bool = True
    erase: float = 0.0
    lowres: float = 0.0
    lowres_min: int = 12
    brightness: float = 0.0
    contrast: float = 0.0
    logit_adjust: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    input_size: int = 0
    equalize: bool = False
    ema: float = 0.0
    swa: float = 0.0
    swa_lr: float = 0.0
    budget: float = 0.0
    teacher: str = ""
    distill_weight: float = 0.5
    distill_temperature: float = 3.0
    self_distill: float = 0.0
    init: str = ""
    precision: str = "fp32"
    fp32_recipe: str = ""
    device: str = "auto"
    seed: int = 0
    threads: int = 0
    skip_bad: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}; "
                             f"expected some of {', '.join(sorted(names))}")
        return cls(**d)


def augment(images: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, crop: int = 0) -> torch.Tensor:
    """Random affine (rotation, zoom, shift, horizontal flip) and an optional random crop
    in one resampling (``grid_sample``, bilinear), then optional contrast and brightness
    jitter and optional erasing.

    Args:
        images: (B, 1, H, H) float32 in [0, 1], on any device.
        cfg: the amounts of each transform.
        gen: the CPU generator that draws them (the same draws on every device).
        crop: side of a random square crop, uniformly placed within the transformed face
            (the random crop of Krizhevsky et al., 2012); 0 = no crop.

    Returns:
        (B, 1, S, S) float32 in [0, 1] on ``images``' device, S = ``crop`` or H; edges
        filled by border replication.
    """
    b, h = images.shape[0], images.shape[-1]
    out_side = crop or h
    frac = out_side / h  # the share of the face's side the output covers

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    angle = uniform(-cfg.rotate, cfg.rotate) * (math.pi / 180)
    zoom = uniform(1 - cfg.scale, 1 + cfg.scale)
    tx, ty = uniform(-2 * cfg.shift, 2 * cfg.shift), uniform(-2 * cfg.shift, 2 * cfg.shift)
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    if crop:  # where the crop lies: anywhere inside the face (normalised units)
        tx, ty = tx + uniform(frac - 1, 1 - frac), ty + uniform(frac - 1, 1 - frac)
    cos, sin = torch.cos(angle) / zoom * frac, torch.sin(angle) / zoom * frac
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1),
                         torch.stack([sin * sign, cos, ty], 1)], 1).to(images.device)  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, images.shape[1], out_side, out_side], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.contrast > 0:
        f = uniform(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1).to(out.device)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (mean + f * (out - mean)).clamp_(0.0, 1.0)
    if cfg.brightness > 0:
        factor = uniform(1 - cfg.brightness, 1 + cfg.brightness).view(b, 1, 1, 1).to(out.device)
        out = (out * factor).clamp_(0.0, 1.0)
    if cfg.erase > 0:
        _, _, h, w = out.shape
        for i in torch.nonzero(torch.rand(b, generator=gen) < cfg.erase).flatten().tolist():
            eh, ew = (int(v) for v in torch.randint(h // 8, h // 2, (2,), generator=gen))
            y0 = int(torch.randint(0, h - eh + 1, (1,), generator=gen))
            x0 = int(torch.randint(0, w - ew + 1, (1,), generator=gen))
            out[i, :, y0:y0 + eh, x0:x0 + ew] = float(torch.rand(1, generator=gen))
    return out


def lower_resolution(faces: torch.Tensor, p: float, min_side: int, pre: Preprocessing,
                     gen: torch.Generator) -> torch.Tensor:
    """Resolution augmentation: a random share of the faces is shrunk and enlarged back,
    as a face that is small in a photo reaches the model.

    Each face is picked with probability ``p``; a picked face is shrunk to s x s pixels,
    s drawn uniformly from the integers ``[min_side, S - 1]``, with OpenCV ``INTER_AREA``
    and enlarged back to S x S by :func:`ferkit.preprocess.fit_face` (``INTER_LANCZOS4``),
    the path of a small crop at inference. With a teacher on the clean faces this is the
    set-up of Ge et al., 2019, "Low-Resolution Face Recognition in the Wild via Selective
    Knowledge Distillation" (IEEE TIP): a high-resolution teacher, a low-resolution student.

    Args:
        faces: (B, S, S) uint8 faces, on any device (the resizing runs on the CPU).
        p: probability in [0, 1] that a face is degraded; 0 returns ``faces`` itself.
        min_side: smallest side s in pixels, 4 <= min_side < S.
        pre: the model's preprocessing (its ``input_size`` is S).
        gen: the CPU generator that draws which faces and which sides.

    Returns:
        (B, S, S) uint8 on ``faces``' device; faces not picked are unchanged.
    """
    if p <= 0:
        return faces
    b, side = faces.shape[0], faces.shape[-1]
    picked = torch.nonzero(torch.rand(b, generator=gen) < p).flatten().tolist()
    sides = torch.randint(min_side, side, (b,), generator=gen).tolist()
    if not picked:
        return faces
    out = faces.cpu().numpy().copy()
    for i in picked:
        small = cv2.resize(out[i], (sides[i], sides[i]), interpolation=cv2.INTER_AREA)
        out[i] = fit_face(small, pre)
    return torch.from_numpy(out).to(faces.device)


def mix_batch(images: torch.Tensor, mixup: float, cutmix: float, prob: float,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019) of a batch with a shuffled
    copy of itself, one ``lam`` per batch (timm's batch mode).

    Args:
        images: (B, C, H, W) float32 batch (any value range).
        mixup: Beta alpha of mixup; 0 = off.
        cutmix: Beta alpha of CutMix; 0 = off. With both on, each mixed batch takes one
            of the two with probability 0.5.
        prob: probability in [0, 1] that the batch is mixed at all.
        rng: draws whether, which, ``lam``, the box and the permutation.

    Returns:
        ``(mixed, perm, lam)``: the (B, C, H, W) mixed batch, the (B,) int64 permutation
        whose faces were mixed in (``None`` when the batch is left as it is) and the weight
        in [0, 1] of the original faces' targets (for CutMix, the share of the area they
        keep after the box is clipped to the face). The loss is then
        ``lam * loss(targets) + (1 - lam) * loss(targets[perm])``.
    """
    if not (mixup > 0 or cutmix > 0) or rng.random() >= prob:
        return images, None, 1.0
    perm = torch.from_numpy(rng.permutation(images.shape[0])).to(images.device)
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    if not use_cutmix:
        return lam * images + (1.0 - lam) * images[perm], perm, lam
    h, w = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)  # box sides in proportion to the face's: area share 1 - lam
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[perm][:, :, y0:y1, x0:x1]
    return mixed, perm, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def logit_adjustment(targets: torch.Tensor, num_classes: int, tau: float) -> torch.Tensor:
    """The offset ``tau * log(prior)`` of the logit-adjusted loss (Menon et al., 2021, "Long-tail
    Learning via Logit Adjustment", ICLR), which training adds to the logits before the loss.

    Args:
        targets: (N,) int64 class indices in [0, num_classes) of the train split.
        num_classes: C.
        tau: the adjustment's strength, >= 0 (1 in the paper).

    Returns:
        (C,) float32, ``tau * log(prior)`` with ``prior`` the class frequencies of
        ``targets`` (a class with no faces counts as one face, so its offset is finite).
    """
    counts = torch.bincount(targets, minlength=num_classes).clamp_min(1).float()
    return tau * torch.log(counts / counts.sum())


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_probs: torch.Tensor,
                      weight: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Knowledge-distillation loss of Hinton, Vinyals & Dean (2015), arXiv:1503.02531.

    ``(1 - weight) * CE(logits, targets) + weight * T**2 * KL(q_T || softmax(logits / T))``
    where ``q_T = softmax(log(teacher_probs) / T)`` is the teacher's distribution softened
    by the same temperature; the ``T**2`` keeps the soft term's gradients on the scale of
    the hard one's.

    Args:
        logits: (B, C) float32 student logits.
        targets: (B,) int64 true class indices in [0, C).
        teacher_probs: (B, C) float32 teacher probabilities (rows sum to 1).
        weight: weight of the distillation term, in [0, 1].
        temperature: T > 0.
        label_smoothing: of the cross-entropy term (Szegedy et al., 2016).

    Returns:
        The scalar mean loss over the batch.
    """
    hard = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if weight == 0.0:
        return hard
    soft_targets = F.softmax(torch.log(teacher_probs.clamp_min(1e-12)) / temperature, dim=1)
    soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft_targets, reduction="batchmean")
    return (1.0 - weight) * hard + weight * temperature ** 2 * soft


def self_distillation_loss(logits: torch.Tensor, targets: torch.Tensor, prev_probs: torch.Tensor,
                           alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against progressively refined targets (PS-KD; Kim et al., 2021,
    "Self-Knowledge Distillation with Progressive Refinement of Targets", ICCV).

    The target of each face is ``(1 - alpha) * y + alpha * prev_probs``, ``y`` its one-hot
    label smoothed by ``label_smoothing`` (Szegedy et al., 2016) and ``prev_probs`` the
    model's own softmax on that face in the previous epoch.

    Args:
        logits: (B, C) float32 logits.
        targets: (B,) int64 true class indices in [0, C).
        prev_probs: (B, C) float32 probabilities (rows sum to 1).
        alpha: weight of the model's own past predictions, in [0, 1].
        label_smoothing: of the label part, in [0, 1).

    Returns:
        The scalar mean loss over the batch; with ``alpha`` 0 it equals
        ``F.cross_entropy(logits, targets, label_smoothing=label_smoothing)``.
    """
    # cross-entropy is linear in its target, so the blend is a blend of two losses
    return ((1.0 - alpha) * F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
            + alpha * F.cross_entropy(logits, prev_probs))


def teacher_probs(teacher: str, faces: np.ndarray, class_names, cache: Path) -> np.ndarray:
    """The teacher's calibrated probabilities on ``faces``, cached in ``cache`` (.npy).

    Args:
        teacher: an ``.onnx`` model, a ``.pt`` checkpoint or a bundled model's name; or a
            ``.npy`` file of probabilities already computed on these faces (an earlier
            run's ``teacher_probs.npy``), used as it is. Such a file records no class
            names, so its columns are taken to be ``class_names``, in order.
        faces: (N, S, S) uint8 train faces, as loaded (the teacher prepares them itself).
        class_names: the run's C class names; the teacher's must be the same, in order.
        cache: file of an earlier run's probabilities; reused when its shape is (N, C).

    Returns:
        (N, C) float32 probabilities, rows summing to 1.

    Raises:
        ValueError: the teacher classifies other classes; a ``.npy`` teacher is not an
            (N, C) array of probabilities (finite, non-negative, rows summing to 1).
        ModelError: the teacher cannot be loaded.
    """
    from .evaluate import load_classifier

    if str(teacher).endswith(".npy"):
        probs = np.load(teacher)
        if probs.shape != (len(faces), len(class_names)):
            raise ValueError(f"teacher {teacher} holds probabilities of shape {probs.shape}, "
                             f"but this run has {len(faces)} train faces and {len(class_names)} classes")
        if not (np.isfinite(probs).all() and (probs >= 0).all()
                and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
            raise ValueError(f"teacher {teacher} is not a table of probabilities: every value "
                             "must be finite and non-negative and every row sum to 1")
        probs = probs.astype(np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, probs)
        return probs
    model = load_classifier(teacher)
    if list(model.class_names) != list(class_names):
        raise ValueError(f"teacher {teacher} classifies {list(model.class_names)}, "
                         f"but this run trains {list(class_names)}")
    if cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(faces), len(class_names)):
            return probs
    probs = np.concatenate([model.predict_probs(faces[i:i + 1024])
                            for i in tqdm(range(0, len(faces), 1024), desc="teacher", unit="batch",
                                          leave=False, mininterval=2.0)]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, probs)
    return probs


def _to_unit(u8: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 -> (B, 1, H, W) float32 in [0, 1]."""
    return u8.unsqueeze(1).float().div_(255.0)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, faces: np.ndarray, pre: Preprocessing,
                   batch_size: int = 512, bf16: bool = False) -> np.ndarray:
    """Logits of a PyTorch model for (N, H, W) uint8 faces, preprocessed exactly as the
    ONNX path does (:func:`ferkit.preprocess.prepare_faces`); returns (N, C) float32 (a
    NumPy array, whatever device the model is on). ``bf16`` runs the model under bfloat16
    autocast (a bf16 training run's val pass)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(faces), batch_size):
        x = torch.from_numpy(prepare_faces(faces[i:i + batch_size], pre)).to(device)  # (B, 1, S, S)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out.append(model(x.contiguous(memory_format=torch.channels_last)).float().cpu())
    return torch.cat(out).numpy()


def step_ms(model: torch.nn.Module, batch_size: int, side: int, bf16: bool, steps: int = 5,
            warmup: int = 2) -> float:
    """Median wall time in milliseconds of one training step (forward, float32 loss,
    backward, AdamW step) of a copy of ``model`` on a random (batch_size, in_chans, side,
    side) channels-last batch, as :func:`train` runs it, in fp32 or under bfloat16
    autocast; ``warmup`` untimed steps first (oneDNN builds its kernels then).

    The model, its weights and PyTorch's global random state are left as they were.
    """
    clone = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(clone.parameters(), lr=1e-4)
    in_chans = next(m for m in clone.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    times = []
    with torch.random.fork_rng():  # dropout draws here must not shift the run's own
        x = torch.randn(batch_size, in_chans, side, side).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (batch_size,))
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = clone(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(times))


def resolve_device(name: str) -> torch.device:
    """The device a run trains on: ``auto`` is the first CUDA GPU when PyTorch sees one,
    else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` are taken as they are.

    Raises:
        ValueError: an unknown device, or a CUDA device when this PyTorch sees none (a
            CPU-only build, or no GPU or driver).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}, but this PyTorch sees no CUDA GPU "
                             f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                             "use device cpu or auto")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def _onednn_bf16() -> bool:
    """Whether oneDNN runs bfloat16 on this CPU: natively (AVX-512 BF16 or AMX) or, on an
    AVX-512 CPU without them, emulated (session 49's Xeon: True there, at 2.1-2.8x the fp32
    step, which is why :func:`choose_precision` times both); False on AVX2-only CPUs; True
    when this PyTorch lacks the (private) query."""
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)())


def choose_precision(model: torch.nn.Module, batch_size: int, side: int,
                     steps: int = 5) -> tuple[str, dict[str, float]]:
    """The faster precision for training ``model`` on this machine: ``("fp32" | "bf16",
    {"fp32": ms, "bf16": ms})``, each the median of ``steps`` timed training steps of
    :func:`step_ms` on batches of ``batch_size`` faces of ``side`` pixels. A CPU where
    oneDNN has no bfloat16 path at all (AVX2 without AVX-512) gets fp32 without timing bf16
    (emulated there, it is 8-13x slower: ``benchmarks/train_step.py``); its bf16 time is then
    reported as ``inf``. An AVX-512 CPU without AVX-512 BF16 or AMX has both timed: oneDNN
    emulates bf16 there at about 2-3x the fp32 step (session 49), so fp32 wins.
    """
    ms = {"fp32": step_ms(model, batch_size, side, False, steps),
          "bf16": step_ms(model, batch_size, side, True, steps) if _onednn_bf16() else math.inf}
    return ("bf16" if ms["bf16"] < ms["fp32"] else "fp32"), ms


def _auto_precision(model: torch.nn.Module, batch_size: int, side: int, last: Path, resume: bool,
                    device: torch.device = torch.device("cpu")) -> str:
    """``precision: auto``'s choice, printed: the one recorded in ``last`` when resuming
    it (a run keeps the precision it started with); on a CUDA GPU bf16 where it supports
    bfloat16, else fp32; on the CPU :func:`choose_precision`'s."""
    if resume and last.exists():
        chosen = torch.load(last, map_location="cpu", weights_only=False)["config"]["precision"]
        print(f"precision auto: {chosen}, as chosen when {last.parent} started")
        return chosen
    if device.type == "cuda":
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        print(f"precision auto: {chosen} on {torch.cuda.get_device_name(device)}")
        return chosen
    chosen, ms = choose_precision(model, batch_size, side)
    print(f"precision auto: {chosen} (a training step of this model and batch: "
          f"fp32 {ms['fp32']:.1f} ms, bf16 {ms['bf16']:.1f} ms)")
    return chosen


def _make_optimizer(model, cfg: TrainConfig, steps: int):
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: expected sgd or adamw")
    return opt, _make_scheduler(opt, cfg, steps)


def _make_scheduler(opt, cfg: TrainConfig, steps: int, last_step: int = -1):
    """The LR schedule over ``steps`` optimisation steps, positioned after ``last_step``."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps,
                                                   pct_start=float(cfg.warmup), div_factor=25,
                                                   final_div_factor=1e3, last_epoch=last_step)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, last_epoch=last_step)
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                          patience=cfg.plateau_patience)
    raise ValueError(f"unknown schedule {cfg.schedule!r}: expected onecycle, cosine or plateau")


#: Virtual length in steps of a time-budgeted one-cycle schedule: the step it is at is
#: ``elapsed / budget`` of this.
_BUDGET_STEPS = 100_000


HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train a model as ``cfg`` says; returns the path of the best checkpoint (by val
    accuracy).

    Writes into ``cfg.out``: ``last.pt`` (after every epoch, with optimizer, scheduler
    and RNG states, for ``resume``), ``best.pt``, ``history.csv``, ``curves.png`` and
    ``config.json``.

    Raises:
        FileExistsError: ``cfg.out`` already holds a run and ``resume`` is False.
        FileNotFoundError, DataError: the data cannot be loaded.
        ValueError: an unknown model, optimizer, schedule or class set; a warmup outside
            [0, 1); under ``torchrun``, a batch size that the processes cannot share
            equally, or ``self_distill``.
        RuntimeError: under ``torchrun``, the processes' weights drifted apart
            (:meth:`ferkit.distributed.Ranks.check_same`).

    Several processes: started by ``torchrun`` (``torchrun --nproc-per-node N -m
    ferkit.cli train ...``, on one machine or, with ``--nnodes``, a cluster), the run is
    data-parallel (:mod:`ferkit.distributed`). ``batch_size`` stays the global batch:
    each of the N processes takes its own ``batch_size / N`` faces of every batch of the
    one seeded order, augments them with its own seeded draws, and the gradients are
    averaged, so a step sees as many faces as one process would. Batch norm normalises
    each process's share (PyTorch's ``SyncBatchNorm`` runs on GPUs only). Every process
    measures val and rank 0's accuracy decides (its batch-norm statistics are the ones
    saved); rank 0's clock runs the ``budget``; rank 0 alone computes a teacher's
    probabilities, prints, and writes the run folder, which ``--resume`` continues with
    any number of processes.
    """
    ranks, device = join_process_group(resolve_device(cfg.device))
    try:
        return _train(cfg, resume, progress, ranks, device)
    finally:
        ranks.close()


def _train(cfg: TrainConfig, resume: bool, progress: bool, ranks: Ranks, device: torch.device) -> Path:
    started = time.time()
    say = print if ranks.main else (lambda *args, **kwargs: None)  # rank 0 speaks for the run
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.budget < 0 or (cfg.budget and cfg.schedule != "onecycle"):
        raise ValueError(f"budget must be >= 0 minutes and needs schedule onecycle "
                         f"(got budget {cfg.budget}, schedule {cfg.schedule!r})")
    if not 0.0 <= cfg.warmup < 1.0:
        raise ValueError(f"warmup must be in [0, 1): the share of a one-cycle run spent rising to "
                         f"the peak LR (got {cfg.warmup})")
    if ranks.world > 1 and (cfg.batch_size % ranks.world or cfg.self_distill):
        raise ValueError(f"{ranks.world} processes need a batch size they can share equally and no "
                         f"self_distill (its per-face table is not shared between them); got batch "
                         f"size {cfg.batch_size}, self_distill {cfg.self_distill}")
    local_batch = cfg.batch_size // ranks.world  # this process's share of every batch
    if last_path.exists() and not resume:
        raise FileExistsError(f"{out} already holds a training run: pass --resume to continue it "
                              "or choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if ranks.local_rank:  # one process a machine loads first: it fetches a URL and writes the caches
        ranks.barrier()
    data = load_fer2013(cfg.data, cfg.classes, on_error="skip" if cfg.skip_bad else "raise")
    if ranks.world > 1 and not ranks.local_rank:
        ranks.barrier()
    tr, va = data["train"], data["val"]
    if len(tr) < cfg.batch_size or len(va) == 0:
        raise ValueError(f"too little data: {len(tr)} train and {len(va)} val faces "
                         f"(batch size {cfg.batch_size})")
    side = cfg.input_size or tr.images.shape[1]
    if side < 8:
        raise ValueError(f"input_size must be 0 (the data's own) or at least 8 pixels, got {cfg.input_size}")
    pre = Preprocessing(input_size=side, equalize=cfg.equalize)
    train_faces = (np.stack([fit_face(f, pre) for f in tr.images])  # as prepare_faces does at inference
                   if side != tr.images.shape[1] or cfg.equalize else tr.images)
    x_tr = torch.from_numpy(train_faces).to(device)  # (N, S, S) uint8
    y_tr = torch.from_numpy(tr.targets).to(device)
    pixels = train_faces.astype(np.float32) / 255.0
    pre = dataclasses.replace(pre, mean=round(float(pixels.mean()), 4), std=round(float(pixels.std()), 4))
    del pixels

    model = create_model(cfg.model, num_classes=len(data.class_names), in_chans=1,
                         input_size=pre.input_size, **cfg.model_args)
    if cfg.init:
        _init_from(model, cfg, data.class_names, say)
    model = model.to(device=device, memory_format=torch.channels_last)
    net = ranks.wrap(model)  # what trains: DDP averages its gradients across processes
    crop = getattr(model, "crop", 0)  # the model sees random crops in training, the centre one at inference
    if not 0.0 <= cfg.ema < 1.0:
        raise ValueError(f"ema must be in [0, 1), got {cfg.ema}")
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if cfg.ema else None)
    if not 0.0 <= cfg.swa < 1.0 or cfg.swa_lr < 0 or (cfg.swa_lr and not cfg.swa) or (cfg.swa and cfg.ema):
        raise ValueError(f"swa must be in [0, 1) (0: off), swa_lr >= 0 and only with swa, and swa "
                         f"not with ema (two weight averages); got swa {cfg.swa}, swa_lr {cfg.swa_lr}, "
                         f"ema {cfg.ema}")
    swa = torch.optim.swa_utils.AveragedModel(model, use_buffers=True) if cfg.swa else None
    average = ema if ema is not None else swa  # a weight average val measures once it holds weights
    if not (0.0 <= cfg.brightness <= 1.0 and 0.0 <= cfg.contrast <= 1.0):
        raise ValueError(f"brightness and contrast must be in [0, 1] (0 = off), got "
                         f"{cfg.brightness} and {cfg.contrast}")
    if not 0.0 <= cfg.lowres <= 1.0 or (cfg.lowres and not 4 <= cfg.lowres_min < pre.input_size):
        raise ValueError(f"lowres must be in [0, 1] (0 = off) and lowres_min in [4, {pre.input_size - 1}] "
                         f"pixels, got {cfg.lowres} and {cfg.lowres_min}")
    if cfg.mixup < 0 or cfg.cutmix < 0 or not 0.0 <= cfg.mix_prob <= 1.0:
        raise ValueError(f"mixup and cutmix must be >= 0 (0 = off) and mix_prob in [0, 1], got "
                         f"{cfg.mixup}, {cfg.cutmix} and {cfg.mix_prob}")
    if cfg.logit_adjust < 0:
        raise ValueError(f"logit_adjust must be >= 0 (0 = off), got {cfg.logit_adjust}")
    adjust = (logit_adjustment(torch.from_numpy(tr.targets), len(data.class_names), cfg.logit_adjust).to(device)
              if cfg.logit_adjust else None)
    if not (0.0 <= cfg.distill_weight <= 1.0 and cfg.distill_temperature > 0):
        raise ValueError(f"distill_weight must be in [0, 1] and distill_temperature > 0, got "
                         f"{cfg.distill_weight} and {cfg.distill_temperature}")
    if cfg.precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision must be fp32, bf16 or auto, got {cfg.precision!r}")
    if cfg.precision == "auto":  # rank 0 times both, so that every process trains in one precision
        chosen = (_auto_precision(model, local_batch, crop or pre.input_size, last_path, resume, device)
                  if ranks.main else "")
        cfg = dataclasses.replace(cfg, precision=("fp32", "bf16")[int(ranks.from_main(float(chosen == "bf16")))])
    bf16 = cfg.precision == "bf16"
    if bf16 and device.type == "cpu" and not _onednn_bf16() and ranks.main:
        warnings.warn("precision bf16 on a CPU where oneDNN has no bfloat16 path (no AVX-512): "
                      "it runs emulated, 8-13x slower than fp32 per step (use precision: fp32 or auto)", stacklevel=3)
    if not 0.0 <= cfg.self_distill <= 1.0 or (cfg.self_distill and cfg.teacher):
        raise ValueError(f"self_distill must be in [0, 1] (0 = off) and cannot be combined with a teacher, "
                         f"got {cfg.self_distill} with teacher {cfg.teacher!r}")
    # PS-KD's table of each train face's softmax in its last epoch; a face not yet seen has its label
    past = (F.one_hot(y_tr, len(data.class_names)).float() if cfg.self_distill else None)  # (N, C)
    t_teacher = time.time()
    soft = None
    if cfg.teacher:  # rank 0 runs the teacher once and sends its (N, C) probabilities to the others
        with torch.random.fork_rng(devices=[]):  # a .pt teacher's construction draws no numbers from the run's RNG
            probs = (torch.from_numpy(teacher_probs(cfg.teacher, tr.images, data.class_names,
                                                    out / "teacher_probs.npy"))
                     if ranks.main else torch.empty(len(tr), len(data.class_names)))
        soft = ranks.share(probs).to(device)
    started += time.time() - t_teacher  # the teacher's one-off pass is not spent from the budget
    steps_per_epoch = len(tr) // cfg.batch_size
    opt, sched = _make_optimizer(model, cfg, _BUDGET_STEPS if cfg.budget else steps_per_epoch * cfg.epochs)
    meta = checkpoint_meta(cfg.model, cfg.model_args, data.class_names, pre)
    history: list[dict] = []
    start, best_acc, bad_epochs, spent = 0, -1.0, 0, 0.0
    if resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["state_dict"])
        for name, avg in (("ema", ema), ("swa", swa)):
            if avg is not None:
                if f"{name}_state" not in state:
                    raise ValueError(f"{last_path} was trained without {name}; resume it with {name}: 0")
                avg.load_state_dict(state[f"{name}_state"])
        opt.load_state_dict(state["optimizer"])
        if state["config"].get("budget", 0.0) != cfg.budget:
            raise ValueError(f"{last_path} was trained with budget {state['config'].get('budget', 0.0)} "
                             f"minutes; resume it with the same budget")
        if state["config"]["epochs"] == cfg.epochs or cfg.schedule == "plateau" or cfg.budget:
            sched.load_state_dict(state["scheduler"])
        else:  # --epochs changed: the rest of the schedule is stretched to the new end
            sched = _make_scheduler(opt, cfg, steps_per_epoch * cfg.epochs,
                                    last_step=state["epoch"] * steps_per_epoch - 1)
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        if past is not None:
            if "self_distill_probs" not in state:
                raise ValueError(f"{last_path} was trained without self_distill; resume it with self_distill: 0")
            past = state["self_distill_probs"].to(device)
        start, best_acc, bad_epochs = state["epoch"], state["best_val_acc"], state["bad_epochs"]
        history = state["history"]
        spent = state.get("elapsed", 0.0)
        say(f"resuming {out} after epoch {start} (best val accuracy {best_acc:.4f})")
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{cfg.model}: {n_params / 1e6:.2f} M parameters; {len(tr)} train / {len(va)} val faces; "
          f"classes {', '.join(data.class_names)}; "
          + (f"{torch.get_num_threads()} threads" if device.type == "cpu"
             else f"{device} ({torch.cuda.get_device_name(device)})") + f", {cfg.precision}"
          + (f"; {ranks.world} processes of {local_batch} faces a batch" if ranks.world > 1 else ""))

    budget_s, val_s = cfg.budget * 60.0, 0.0

    def elapsed() -> float:  # seconds of this run so far, across resumes; rank 0's clock on every rank
        return ranks.from_main(spent + time.time() - started)

    def done(epoch: float) -> float:  # share of the run behind, at this point of epoch index
        return elapsed() / budget_s if cfg.budget else epoch / cfg.epochs

    out_of_time = bool(cfg.budget) and elapsed() >= budget_s
    for epoch in range(start, cfg.epochs):
        if bad_epochs >= cfg.patience > 0 or out_of_time:
            break
        t0 = time.time()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(tr), generator=gen).to(device)
        mix_rng = np.random.default_rng([cfg.seed, epoch])  # mixup / CutMix draws, per epoch as gen
        if ranks.world > 1:  # one order for all; each process's own augmentations and dropout after it
            seeds = np.random.SeedSequence([cfg.seed, epoch, ranks.rank]).generate_state(3, np.uint64)
            gen = torch.Generator().manual_seed(int(seeds[0]))
            mix_rng = np.random.default_rng(seeds[1])
            torch.manual_seed(int(seeds[2]))  # the global RNG that dropout draws from
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (progress and ranks.main), mininterval=2.0, leave=False)
        for step in bar:
            if cfg.budget and elapsed() + val_s >= budget_s:
                out_of_time = True
                break
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            idx = idx[ranks.rank * local_batch:(ranks.rank + 1) * local_batch]  # this process's share
            x = augment(_to_unit(lower_resolution(x_tr[idx], cfg.lowres, cfg.lowres_min, pre, gen)),
                        cfg, gen, crop)
            x, perm, lam = mix_batch(x, cfg.mixup, cfg.cutmix, cfg.mix_prob, mix_rng)
            x = ((x - pre.mean) / pre.std).contiguous(memory_format=torch.channels_last)
            y = y_tr[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(x)  # (B, C)
            logits = logits.float()  # the loss in float32

            fit = logits if adjust is None else logits + adjust  # what the loss sees
            if past is not None:  # PS-KD's alpha_t: linear in the run's progress
                alpha = cfg.self_distill * min(done(epoch + step / steps_per_epoch), 1.0)

            def loss_of(targets: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
                if past is not None:
                    return self_distillation_loss(fit, targets, past[faces], alpha, cfg.label_smoothing)
                if soft is None:
                    return F.cross_entropy(fit, targets, label_smoothing=cfg.label_smoothing)
                return distillation_loss(fit, targets, soft[faces], cfg.distill_weight,
                                         cfg.distill_temperature, cfg.label_smoothing)

            loss = loss_of(y, idx)
            if perm is not None:  # a mixed batch: both faces' targets, weighted by their share
                loss = lam * loss + (1.0 - lam) * loss_of(y[perm], idx[perm])
            if past is not None and perm is None:  # this epoch's prediction, the next epoch's target
                past[idx] = F.softmax(fit.detach(), dim=1)  # in the loss's own terms (logit_adjust)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            if cfg.budget:  # one-cycle on time: move the schedule to this point of the budget
                sched.last_epoch = min(int(elapsed() / budget_s * _BUDGET_STEPS), _BUDGET_STEPS - 1) - 1
            if cfg.schedule != "plateau":
                sched.step()
            if cfg.swa_lr and done(epoch + (step + 1) / steps_per_epoch) >= cfg.swa:
                for group in opt.param_groups:  # SWA's constant LR from here on
                    group["lr"] = cfg.swa_lr
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())  # a mixed batch: against the original faces
            seen += len(y)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        loss_sum, correct, seen = ranks.total(loss_sum, correct, seen)  # over every process's share
        if seen == 0:  # the budget ran out before this epoch's first step
            break
        t_val = time.time()
        if swa is not None and done(epoch + 1) >= cfg.swa:
            swa.update_parameters(model)
        averaged = average is not None and int(average.n_averaged) > 0
        evaluated = average.module if averaged else model  # the weights val measures and best.pt keeps
        # A bf16 run measures val in bf16 too: half the cost of the pass (1.2 against 2.4 s an
        # epoch at the fast-bf16 width, session 16), and on two such runs' best.pt 99.8% of the
        # val predictions agreed with float32's, accuracy within 0.08 points.
        val_logits = torch.from_numpy(predict_logits(evaluated, va.images, pre, bf16=bf16))
        y_va = torch.from_numpy(va.targets)
        val_loss = float(F.cross_entropy(val_logits, y_va))
        val_acc = ranks.from_main(float((val_logits.argmax(1) == y_va).float().mean()))  # rank 0's decides
        lr = opt.param_groups[0]["lr"]
        if cfg.schedule == "plateau":
            sched.step(val_acc)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": val_loss, "val_acc": val_acc, "seconds": time.time() - t0}
        if averaged:  # the raw weights too, so the average's gain is on record
            raw = predict_logits(model, va.images, pre, bf16=bf16).argmax(1)
            row["val_acc_raw"] = float((raw == va.targets).mean())
        raw_note = f" (raw weights {row['val_acc_raw']:.4f})" if averaged else ""
        history.append(row)
        improved = val_acc > best_acc
        now = elapsed()
        ranks.check_same(model, f"epoch {epoch + 1}")
        if improved:
            best_acc, bad_epochs = val_acc, 0
        else:
            bad_epochs += 1
        if ranks.main and improved:
            save_checkpoint(best_path, meta, evaluated, epoch=epoch + 1, val_acc=val_acc,
                            config=dataclasses.asdict(cfg))
        if ranks.main:
            save_checkpoint(last_path, meta, model, epoch=epoch + 1, val_acc=val_acc,
                            config=dataclasses.asdict(cfg), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), torch_rng=torch.get_rng_state(),
                            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                            best_val_acc=best_acc, bad_epochs=bad_epochs, history=history, elapsed=now,
                            **({} if ema is None else {"ema_state": ema.state_dict()}),
                            **({} if swa is None else {"swa_state": swa.state_dict()}),
                            **({} if past is None else {"self_distill_probs": past.cpu()}))
            write_history(out, history)
        val_s = ranks.from_main(time.time() - t_val)  # what the end of an epoch costs, kept free in a budget
        say(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
              f"val loss {val_loss:.4f} acc {val_acc:.4f}{' *' if improved else ''}"
              f"{raw_note} | lr {lr:.2e} | "
              f"{row['seconds']:.0f} s", flush=True)
    now = elapsed()
    if out_of_time:
        say(f"time budget of {cfg.budget:g} min spent after {now / 60:.1f} min")
    elif cfg.budget and len(history) >= cfg.epochs and ranks.main:  # the epoch cap came first: the LR never annealed
        warnings.warn(f"the run reached epochs: {cfg.epochs} after {now / 60:.1f} of its "
                      f"{cfg.budget:g} budget minutes, so its one-cycle schedule stopped before annealing; "
                      f"raise epochs (or lower budget) for a budget run on this machine", stacklevel=3)
    if bad_epochs >= cfg.patience > 0:
        say(f"early stop: no better val accuracy in {cfg.patience} epochs")
    say(f"best val accuracy {best_acc:.4f}: {best_path}")
    return best_path


def _init_from(model: torch.nn.Module, cfg: TrainConfig, class_names, say=print) -> None:
    """Load the weights of ``cfg.init`` into ``model``: a ferkit ``.pt`` checkpoint, or a
    ferkit ``.onnx`` model or bundled model's name (``default``), whose graph weights are
    rebuilt as PyTorch ones (:func:`ferkit.explain.torch_model_from_onnx`).

    Raises:
        ValueError: the checkpoint or model is of another architecture, shape or class set.
        ModelError: an ONNX model that cannot be rebuilt (an ensemble, a quantized graph).
    """
    if str(cfg.init).endswith(".pt"):
        source = torch.load(cfg.init, map_location="cpu", weights_only=False)
        name, classes, state = source.get("model"), source.get("class_names"), source.get("state_dict")
        where, epoch, val_acc = cfg.init, source.get("epoch"), source.get("val_acc", 0)
    else:
        from .classifier import read_metadata, resolve_model
        from .explain import torch_model_from_onnx

        where = resolve_model(cfg.init)
        meta = read_metadata(where)
        name, classes = meta.get("model"), meta.get("class_names")
        state = torch_model_from_onnx(where).model.state_dict() if name == cfg.model else None
        epoch, val_acc = meta.get("trained", {}).get("epoch"), meta.get("trained", {}).get("val_accuracy", 0)
    if name != cfg.model or list(classes or []) != list(class_names):
        raise ValueError(f"--init {cfg.init}: a {name} checkpoint for classes {classes}, "
                         f"but this run trains {cfg.model} for {list(class_names)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # same architecture, other widths
        raise ValueError(f"--init {cfg.init}: its weights do not fit {cfg.model} {cfg.model_args}: "
                         f"{str(exc).splitlines()[0]}") from None
    say(f"initialised from {where} (epoch {epoch}, val accuracy {val_acc:.4f})")


def write_history(out: Path, history: list[dict]) -> None:
    """Write ``history.csv`` and ``curves.png`` (loss, accuracy and LR per epoch)."""
    with open(out / "history.csv", "w", newline="") as f:
        extra = [k for k in ("val_acc_raw",) if any(k in row for row in history)]
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS + extra)
        w.writeheader()
        w.writerows(history)
    from .plots import plot_curves

    plot_curves(history, out / "curves.png")


def load_config(path: str | os.PathLike) -> dict:
    """Read a YAML (or JSON) training recipe into a dict of :class:`TrainConfig` fields
    (a relative ``fp32_recipe`` becomes a path relative to the recipe's folder)."""
    import yaml

    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of option: value")
    if d.get("fp32_recipe") and not os.path.isabs(d["fp32_recipe"]):
        d["fp32_recipe"] = os.path.normpath(Path(path).parent / d["fp32_recipe"])
    return d


def merge_options(recipe: dict, overrides: dict) -> dict:
    """``recipe`` with ``overrides`` on top (e.g. command-line options); ``model_args``
    are merged key by key, so an override of ``crop`` keeps the recipe's widths."""
    merged = {**recipe, **overrides}
    if "model_args" in overrides:
        merged["model_args"] = {**recipe.get("model_args", {}), **overrides["model_args"]}
    return merged


def resolve_config(cfg: TrainConfig, overrides: dict | None = None, resume: bool = False) -> TrainConfig:
    """The config to train on this machine: ``cfg`` itself unless it says
    ``precision: auto`` and names an ``fp32_recipe``. Then the precision is chosen here
    (:func:`choose_precision` on ``cfg``'s model, batch and crop; a resumed run keeps the
    choice recorded in ``cfg.out/last.pt``): bf16 trains ``cfg`` in bf16; fp32 trains the
    ``fp32_recipe`` in fp32 instead, with the same ``overrides`` (the options given on
    top of ``cfg``'s recipe, such as ``data`` or ``seed``) and into ``cfg.out``, so that
    one command gives the recipe that suits the machine. The choice is printed.

    Raises:
        FileNotFoundError: the ``fp32_recipe`` file is missing.
        ValueError: an unknown option in it; a CPU run under ``torchrun`` (its processes,
            each timing its own steps, could choose different recipes).
    """
    if cfg.precision != "auto" or not cfg.fp32_recipe:
        return cfg
    from .labels import resolve_classes

    device = resolve_device(cfg.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and device.type == "cpu":
        raise ValueError(f"precision auto with an fp32_recipe picks the recipe by timing this CPU, and "
                         f"{world} processes could pick differently: choose for them, with --precision bf16 "
                         f"to train this recipe or --config {cfg.fp32_recipe} for its fp32 one")

    side = cfg.input_size or 48  # FER2013's own side
    model = create_model(cfg.model, num_classes=len(resolve_classes(cfg.classes).names), in_chans=1,
                         input_size=side, **cfg.model_args).to(memory_format=torch.channels_last)
    chosen = _auto_precision(model, cfg.batch_size, getattr(model, "crop", 0) or side,
                             Path(cfg.out) / "last.pt", resume, device)
    if chosen == "bf16":
        return dataclasses.replace(cfg, precision="bf16")
    print(f"fp32 is the faster precision here: training {cfg.fp32_recipe} (the recipe's fp32_recipe) instead")
    options = merge_options(load_config(cfg.fp32_recipe), overrides or {})
    options.update(out=cfg.out, precision="fp32", fp32_recipe="")
    return TrainConfig.from_dict(options)

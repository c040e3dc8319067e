"""CNNs for 48x48 grayscale faces, registered by name.

Every model is built by :func:`create_model` with the same keyword arguments
(``num_classes``, ``in_chans``, ``input_size``) plus its own, takes ``images``
(B, in_chans, input_size, input_size) float32, normalised as its preprocessing says, and
returns ``logits`` (B, num_classes) float32. The registry follows timm's
``@register_model`` / ``create_model`` (Wightman, pytorch-image-models).
"""

from __future__ import annotations

import difflib
from typing import Callable

import torch
from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model constructor under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 7, in_chans: int = 1, input_size: int = 48,
                 **kwargs) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: C, the number of output logits.
        in_chans: input channels (1 for grayscale).
        input_size: side in pixels of the square input; must be divisible by the
            model's total pooling stride (8 or 16).
        **kwargs: the model's own arguments (widths, dropout, ...).

    Returns:
        The model, in training mode, with freshly initialised weights.

    Raises:
        ValueError: unknown name (with a "did you mean"), an input size the model
            cannot take, or an argument it does not have.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(list_models())}{hint}")
    try:
        return _MODELS[name](num_classes=num_classes, in_chans=in_chans, input_size=input_size, **kwargs)
    except TypeError as exc:  # an argument this model does not take
        raise ValueError(f"model {name!r}: {exc}") from None


def _check_size(input_size: int, stride: int) -> int:
    if input_size % stride or input_size < stride:
        raise ValueError(f"input_size {input_size} must be a positive multiple of {stride}")
    return input_size // stride


def _pooled_side(side: int, pools: int, name: str = "input_size") -> int:
    """Side after ``pools`` 2x2 max-pools that round up (``ceil_mode``), e.g. 40 -> 3 after
    four; raises ValueError below ``2 ** pools`` pixels."""
    if side < 2 ** pools:
        raise ValueError(f"{name} {side} must be at least {2 ** pools} pixels ({pools} poolings)")
    for _ in range(pools):
        side = -(-side // 2)
    return side


def _he_init(module: nn.Module, nonlinearity: str) -> None:
    """He-normal init of convs and linears (He et al., 2015, "Delving Deep into Rectifiers")."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DCNN(nn.Module):
    """The DCNN of the project's reports (MISSION.md, Models).

    Three stages of two convs (64-64 with 5x5 kernels, 128-128 and 256-256 with 3x3), each
    conv followed by ELU and batch norm; max-pool and dropout (0.4, 0.4, 0.5) after each
    stage; dense 128 with ELU, batch norm and dropout 0.6; a linear classifier (softmax
    is applied outside, on the logits). He-normal initialisation.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48,
                 widths: tuple[int, int, int] = (64, 128, 256), hidden: int = 128,
                 dropouts: tuple[float, float, float] = (0.4, 0.4, 0.5), head_dropout: float = 0.6):
        super().__init__()
        side = _check_size(input_size, 8)
        layers: list[nn.Module] = []
        c_in = in_chans
        for i, (w, p) in enumerate(zip(widths, dropouts)):
            k = 5 if i == 0 else 3
            for _ in range(2):
                layers += [nn.Conv2d(c_in, w, k, padding=k // 2), nn.ELU(inplace=True), nn.BatchNorm2d(w)]
                c_in = w
            layers += [nn.MaxPool2d(2), nn.Dropout(p)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, hidden),
            nn.ELU(inplace=True),
            nn.BatchNorm1d(hidden),
            nn.Dropout(head_dropout),
            nn.Linear(hidden, num_classes),
        )
        _he_init(self, "relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (B, C, H, W) -> (B, num_classes)


class VGG(nn.Module):
    """A VGG-style net (Simonyan & Zisserman, 2015, "Very Deep Convolutional Networks").

    Stages of ``convs`` (one count for all stages, or one per stage) 3x3 convolutions
    (each with batch norm and ReLU) followed by a 2x2 max-pool that rounds odd sides up
    (``ceil_mode``; the same as plain pooling on sides that halve evenly, such as 48 and
    32); then flatten, dense layers of ``hidden`` units with ReLU and dropout, and a
    linear classifier. Batch norm after every conv follows the FER2013 VGG variants of
    Pramerdorfer & Kampel (2016) and Khaireddin & Chen (2021).

    ``crop`` > 0 makes the network see a ``crop`` x ``crop`` square of its input: larger
    inputs (B, C, input_size, input_size) are centre-cropped in :meth:`forward`, and
    inputs already ``crop`` pixels wide pass unchanged; ``ferkit.train`` feeds it random
    crops of the augmented faces. This is the random-crop training with multi-crop
    evaluation of Krizhevsky et al. (2012), used on FER2013 with 40-44 px crops of the
    48 px faces by Pramerdorfer & Kampel (2016) and Khaireddin & Chen (2021). A crop
    costs (crop / input_size)^2 of the compute of the whole face.
    """

    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48,
                 widths: tuple[int, ...] = (64, 128, 256, 512), convs: int | tuple[int, ...] = 2,
                 hidden: tuple[int, ...] = (1024, 512), dropout: float = 0.5,
                 global_pool: bool = False, crop: int = 0):
        super().__init__()
        if crop and not 0 < crop <= input_size:
            raise ValueError(f"crop {crop} must be between 1 and the input size {input_size}")
        self.crop = int(crop)
        side = _pooled_side(crop or input_size, len(widths), "crop" if crop else "input_size")
        layers: list[nn.Module] = []
        c_in = in_chans
        per_stage = (convs,) * len(widths) if isinstance(convs, int) else tuple(convs)
        if len(per_stage) != len(widths):
            raise ValueError(f"convs {convs!r} must be an int or give one count per stage of {widths!r}")
        for w, n in zip(widths, per_stage):
            for _ in range(n):
                layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                           nn.ReLU(inplace=True)]
                c_in = w
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if global_pool else []
        head.append(nn.Flatten())
        n_in = c_in if global_pool else c_in * side * side
        for h in hidden:
            head += [nn.Dropout(dropout), nn.Linear(n_in, h), nn.ReLU(inplace=True)]
            n_in = h
        head += [nn.Dropout(dropout), nn.Linear(n_in, num_classes)]
        self.head = nn.Sequential(*head)
        _he_init(self, "relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        s = images.shape[-1]
        if self.crop and s > self.crop:  # the centre crop
            o = (s - self.crop) // 2
            images = images[:, :, o:o + self.crop, o:o + self.crop]
        return self.head(self.features(images))  # (B, C, H, W) -> (B, num_classes)


@register_model
def dcnn(**kwargs) -> nn.Module:
    """The reports' DCNN (about 2.4 M parameters at 48x48, 7 classes)."""
    return DCNN(**kwargs)


@register_model
def vgg(**kwargs) -> nn.Module:
    """The reports' VGG-style net: four stages of two 3x3 convs (64-128-256-512), dense
    1024-512 with dropout 0.5 (about 9.7 M parameters at 48x48)."""
    return VGG(**kwargs)


@register_model
def vgg_s(**kwargs) -> nn.Module:
    """A compact VGG-style net for CPU training and fast inference: four stages of
    3x3 convs (32-64-128-256; one conv in the 48x48 stage, two in the others), dense 256,
    dropout 0.4 (about 1.75 M parameters, 0.1 GMAC per face)."""
    kwargs.setdefault("widths", (32, 64, 128, 256))
    kwargs.setdefault("convs", (1, 2, 2, 2))
    kwargs.setdefault("hidden", (256,))
    kwargs.setdefault("dropout", 0.4)
    return VGG(**kwargs)

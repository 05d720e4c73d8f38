"""A segmenter network as its ``segment.<name>`` section describes it: spec, build, predictor.

Two kinds: the U-Net of Hssayeni 2020 (``unet``, crops of the slice) and the EfficientNet-Lite0
U-Net (``lite0_unet``, :mod:`ich.models.efficientnet_lite`, whole slices: ``crop`` = the slice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ich.models import build
from ich.segmentation import AffineRanges
from ich.segmentation.inference import predict_prob_map

NETWORK_KINDS = ("unet", "lite0_unet")
"""``segment.<name>.kind`` values that are networks (weights in ``model.pt``), all described by :class:`UNetSpec`."""


@dataclass(frozen=True)
class UNetSpec:
    """How the U-Net sees the data (a ``segment.<name>`` section with ``kind: unet``).

    ``crop``/``stride`` default to Hssayeni 2020's 160/80 (at 640 px); ``crop`` must be a multiple of 16.
    ``loss`` is Hssayeni 2020's ``bce`` or ``bce_dice`` (BCE + ``dice_weight`` x soft-Dice loss).
    ``augment`` holds the affine ranges (Hssayeni 2020: rotation 20 degrees, shift 0.1, shear 0.1, zoom
    0.2); ``None`` (``augment: false`` in the params) switches augmentation off.
    ``inference_batch`` is how many crops go through the network at once when predicting.
    ``pretrained``: ``none``, ``imagenet`` (``lite0_unet``) or a checkpoint path, as for classifiers.
    """

    kind: str = "unet"
    pretrained: str = "none"
    base_width: int = 64
    batch_norm: bool = False  # BatchNorm in every block (ich.models.unet; not in Hssayeni 2020); unet only
    crop: int = 160
    stride: int = 80
    negative_ratio: float = 1.0
    augment: AffineRanges | None = field(default_factory=AffineRanges)
    loss: str = "bce"
    dice_weight: float = 1.0
    inference_batch: int = 64


def unet_spec(section: Mapping[str, Any]) -> UNetSpec:
    """The network part of a ``kind: unet`` section (the optimisation keys are training's:
    :func:`ich.train.segmenter.settings.unet_settings` checks the whole section)."""
    if section.get("kind", "unet") not in NETWORK_KINDS:
        raise ValueError(f"segmenter kind must be one of {NETWORK_KINDS}, got {section.get('kind')!r}")
    if section.get("kind") == "lite0_unet" and "batch_norm" in section:
        raise ValueError("lite0_unet has BatchNorm in every layer, as EfficientNet has: remove batch_norm")
    keys = {f.name for f in fields(UNetSpec)}
    values = {k: v for k, v in section.items() if k in keys}
    if "augment" in values:  # a mapping of ranges (missing ones: the paper's), true: the paper's, false: none
        augment = values["augment"]
        values["augment"] = AffineRanges() if augment is True else AffineRanges(**augment) if augment else None
    return UNetSpec(**values)


def build_unet(spec: UNetSpec, weights: str | Path | None = None) -> nn.Module:
    """The U-Net of ``spec``; with ``weights``, the trained state dict loaded safely."""
    pretrained = str(weights) if weights is not None else spec.pretrained
    # the Lite0 U-Net has BatchNorm in every layer, as EfficientNet has: only the paper's U-Net chooses
    options = {"batch_norm": spec.batch_norm} if spec.kind == "unet" else {}
    return build(
        spec.kind,
        in_channels=3,
        num_outputs=1,
        input_size=spec.crop,
        base_width=spec.base_width,
        pretrained=pretrained,
        **options,
    )


def unet_predictor(model: nn.Module, spec: UNetSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Slice -> probability map with the trained U-Net, on the device it sits on."""
    device = next(model.parameters()).device
    return lambda image: predict_prob_map(model, image, spec.crop, spec.stride, device, spec.inference_batch)


__all__ = ["NETWORK_KINDS", "UNetSpec", "build_unet", "unet_predictor", "unet_spec"]

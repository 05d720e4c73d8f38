"""The ``segment.<name>`` params sections: the U-Net's and the band baseline's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ich.data.exports import ExportAugmentation
from ich.networks.segmenter import UNetSpec, unet_spec
from ich.params import check_known_keys
from ich.segmentation import AffineRanges
from ich.train.loop import TrainConfig


@dataclass(frozen=True)
class UNetTraining:
    """How a segmentation network learns beyond the optimiser (the rest of a network ``segment.<name>`` section).

    ``negative_ratio``: crops without bleed per crop with bleed (Hssayeni 2020 undersamples them).
    ``augment`` holds the affine ranges (Hssayeni 2020: rotation 20 degrees, shift 0.1, shear 0.1, zoom
    0.2); ``None`` (``augment: false`` in the params) switches augmentation off.
    ``loss`` is Hssayeni 2020's ``bce`` or ``bce_dice`` (BCE + ``dice_weight`` x soft-Dice loss).
    ``pretrained``: ``none``, ``imagenet`` (``lite0_unet``) or a checkpoint path, as for classifiers.
    ``exports``: training slices exported as other sites send them and harmonised
    (:class:`ich.data.exports.ExportAugmentation`, the classifiers' ``exports``), before the affine map.
    """

    pretrained: str = "none"
    negative_ratio: float = 1.0
    augment: AffineRanges | None = field(default_factory=AffineRanges)
    exports: ExportAugmentation | None = None
    loss: str = "bce"
    dice_weight: float = 1.0


@dataclass(frozen=True)
class BandSpec:
    """The grey-level band baseline (a ``segment.<name>`` section with ``method: threshold_band``).

    ``lo``/``hi`` are ``(start, stop, step)`` grids of grey levels of image ``channel`` (Hssayeni 2020:
    100-210 and 210-255 on its 8-bit slices); ``objective`` is what the grid search maximises on
    the training slices with bleed (Hssayeni 2020 took the band with the best training Jaccard).
    """

    method: str = "threshold_band"
    channel: int = 0
    lo: tuple[float, float, float] = (100.0, 210.0, 5.0)
    hi: tuple[float, float, float] = (210.0, 255.0, 5.0)
    objective: str = "jaccard"


def unet_settings(
    section: Mapping[str, Any], defaults: Mapping[str, Any], where: str = "segment"
) -> tuple[UNetSpec, UNetTraining, TrainConfig]:
    """Parse a network section, with ``segment.defaults`` (``defaults``) under it as ``train.defaults`` is
    under a classifier's, into the spec, its training and the loop settings.

    ``segment.defaults`` holds Hssayeni 2020's settings and sets every loop key: the loop's own
    defaults are the classifiers' (``train.defaults``), which a segmenter must not get unasked.
    """
    merged = {**defaults, **section}  # a mapping such as augment is replaced whole, as arch_options is
    check_known_keys(merged, UNetSpec, UNetTraining, TrainConfig, where=where)
    unset = sorted({f.name for f in fields(TrainConfig)} - set(merged))
    if unset:
        raise ValueError(f"{where}: segment.defaults must set every loop key; it lacks {', '.join(unset)}")
    spec_keys, training_keys = {f.name for f in fields(UNetSpec)}, {f.name for f in fields(UNetTraining)}
    values = {k: v for k, v in merged.items() if k in training_keys}
    if "augment" in values:  # a mapping of ranges (missing ones: the paper's), true: the paper's, false: none
        augment = values["augment"]
        values["augment"] = AffineRanges() if augment is True else AffineRanges(**augment) if augment else None
    if values.get("exports"):
        values["exports"] = ExportAugmentation.from_params(values["exports"])
    config_values = {k: v for k, v in merged.items() if k not in spec_keys | training_keys}
    return unet_spec(merged), UNetTraining(**values), TrainConfig(**config_values)


def band_settings(section: Mapping[str, Any], where: str = "segment") -> BandSpec:
    """Parse a ``method: threshold_band`` section."""
    check_known_keys(section, BandSpec, where=where)
    values = {k: tuple(v) if k in ("lo", "hi") else v for k, v in section.items()}
    return BandSpec(**values)

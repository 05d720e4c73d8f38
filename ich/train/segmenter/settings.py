"""The ``segment.<name>`` params sections: the U-Net's and the band baseline's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ich.networks.segmenter import UNetSpec, unet_spec
from ich.params import check_known_keys
from ich.train.loop import TrainConfig

UNET_TRAINING = TrainConfig(epochs=150, batch_size=32, optimizer="adam", lr=1e-5)
"""Hssayeni 2020's optimisation (Adam, learning rate 1e-5, mini-batch 32, 150 epochs): what a
``kind: unet`` section gets for every ``TrainConfig`` key it does not set."""


@dataclass(frozen=True)
class BandSpec:
    """The grey-level band baseline (a ``segment.<name>`` section with ``kind: threshold_band``).

    ``lo``/``hi`` are ``(start, stop, step)`` grids of grey levels of image ``channel`` (Hssayeni 2020:
    100-210 and 210-255 on its 8-bit slices); ``objective`` is what the grid search maximises on
    the training slices with bleed (Hssayeni 2020 took the band with the best training Jaccard).
    """

    kind: str = "threshold_band"
    channel: int = 0
    lo: tuple[float, float, float] = (100.0, 210.0, 5.0)
    hi: tuple[float, float, float] = (210.0, 255.0, 5.0)
    objective: str = "jaccard"


def unet_settings(section: Mapping[str, Any], where: str = "segment") -> tuple[UNetSpec, TrainConfig]:
    """Parse a ``kind: unet`` section into the spec and the loop settings (Hssayeni 2020's by default)."""
    check_known_keys(section, UNetSpec, TrainConfig, where=where)
    spec_keys = {f.name for f in fields(UNetSpec)}
    config = replace(UNET_TRAINING, **{k: v for k, v in section.items() if k not in spec_keys})
    return unet_spec(section), config


def band_settings(section: Mapping[str, Any], where: str = "segment") -> BandSpec:
    """Parse a ``kind: threshold_band`` section."""
    check_known_keys(section, BandSpec, where=where)
    values = {k: tuple(v) if k in ("lo", "hi") else v for k, v in section.items()}
    return BandSpec(**values)

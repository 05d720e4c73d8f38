"""A classifier of the zoo as its ``train.<model>`` section describes it: spec, network, probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ich.data.datasets import SliceDataset, StudyDataset
from ich.data.transforms import BatchPreparation, Rewindow
from ich.labels import LABELS
from ich.models import available, build, capabilities


@dataclass(frozen=True)
class ClassifierSpec:
    """Which network and how it sees the data (one ``train.<model>`` params section)."""

    arch: str
    input_size: int = 128
    outputs: str = "any"  # any | all (any + five subtypes, the multi-label variant)
    grey: bool = False  # single brain-window channel (the thesis CNN)
    pretrained: str = "none"
    augment: bool = True
    cache_images: bool = True  # decoded slices kept in RAM (turn off for RSNA-scale data)
    context: int = 0  # neighbouring slices on each side stacked as channels (ich.data.context)
    window_dropout: float = 0.0  # training images shown as brain window only (ich.data.transforms)
    intensity: float = 0.0  # random gamma, contrast and brightness when training (ich.data.transforms)
    rewindow: dict[str, Any] | None = None  # training images re-windowed (ich.data.transforms.Rewindow keys)
    paste: float = 0.0  # share of normal training slices given a real bleed (ich.data.bleed_paste); map models
    map_weight: float = 1.0  # weight of the bleed-map loss beside the slice loss (ich.train.bleedmap); map models
    options: dict[str, Any] = field(default_factory=dict)  # architecture keywords (e.g. batch_norm)

    def __post_init__(self) -> None:
        if (self.rewindow or self.paste) and not self.augment:
            raise ValueError("rewindow and paste are augmentations: they need augment: true")
        if self.paste and not self.uses_masks:
            raise ValueError(
                f"paste labels the pasted bleed's mask: it needs a bleed-map model {available(bleed_map=True)}"
            )
        if self.paste and self.per_study:
            raise ValueError("paste works on single slices, not on whole studies")
        if self.window_dropout and not self.augment:
            raise ValueError("window_dropout is an augmentation: it needs augment: true")
        if self.window_dropout and self.grey:
            raise ValueError("window_dropout needs the three windows; a grey model has one")
        if self.intensity and not self.augment:
            raise ValueError("intensity is an augmentation: it needs augment: true")

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Targets in output order."""
        if self.outputs == "any":
            return ("any",)
        if self.outputs == "all":
            return LABELS
        raise ValueError(f"outputs must be 'any' or 'all', got {self.outputs!r}")

    @property
    def slice_channels(self) -> int:
        """Channels of one slice: its windows, or the brain window alone."""
        return 1 if self.grey else 3

    @property
    def per_study(self) -> bool:
        """Whether the network reads whole studies rather than slices (its registered capabilities)."""
        return capabilities(self.arch).reads_studies

    @property
    def uses_masks(self) -> bool:
        """Whether the network learns from the bleed masks too (a bleed-map head: its registered capabilities)."""
        return capabilities(self.arch).bleed_map

    @property
    def stack(self) -> int:
        """Slices per input: the slice and ``context`` neighbours on each side."""
        return 2 * self.context + 1

    def preparation(self, augment: bool) -> BatchPreparation:
        """The batch preparation this network's inputs get (augmentation only if ``augment``)."""
        return BatchPreparation(
            self.slice_channels,
            augment=augment,
            slices=self.stack,
            window_dropout=self.window_dropout,
            intensity=self.intensity,
            rewindow=Rewindow(**{k: tuple(v) for k, v in self.rewindow.items()}) if self.rewindow else None,
        )

    def dataset(self, table: pd.DataFrame, root: str | Path, training: bool = False) -> SliceDataset | StudyDataset:
        """The rows of ``table`` as this network sees them: slices, or whole studies for a study model.

        ``training``: the training set, whose items carry the mask (and pasted bleeds) for a map model.
        """
        masks = training and self.uses_masks
        slices = SliceDataset(
            table,
            root,
            input_size=self.input_size,
            label_columns=self.label_columns,
            grey=self.grey,
            cache=self.cache_images,
            context=self.context,
            masks=masks,
            paste=self.paste if masks else 0.0,
        )
        return StudyDataset(slices, table) if self.per_study else slices


def classifier_spec(section: Mapping[str, Any]) -> ClassifierSpec:
    """The network part of a ``train.<model>`` section (the optimisation keys are training's:
    :func:`ich.train.classify.parse_section` checks the whole section)."""
    keys = {f.name for f in fields(ClassifierSpec)}
    return ClassifierSpec(**{k: v for k, v in section.items() if k in keys})


def build_classifier(spec: ClassifierSpec, weights: str | Path | None = None) -> nn.Module:
    """The network of ``spec``; with ``weights``, the trained state dict loaded safely."""
    return build(
        spec.arch,
        in_channels=spec.slice_channels * spec.stack,
        num_outputs=len(spec.label_columns),
        input_size=spec.input_size,
        pretrained=str(weights) if weights is not None else spec.pretrained,
        **spec.options,
    )


@torch.no_grad()
def predict_probs(model: nn.Module, loader: DataLoader, device: torch.device, prepare: nn.Module) -> np.ndarray:
    """Sigmoid probabilities ``(N, outputs)`` in loader order (``prepare`` without augmentation)."""
    model.eval()
    prepare = prepare.to(device).eval()
    chunks = [torch.sigmoid(model(prepare(x.to(device))).float()).cpu() for x, _ in loader]
    return torch.cat(chunks).numpy()


__all__ = ["ClassifierSpec", "build_classifier", "classifier_spec", "predict_probs"]

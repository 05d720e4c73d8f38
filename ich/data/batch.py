"""The named parts of a batch for a network that learns from bleed masks as well as labels.

A map model (``bleed_map``, :mod:`ich.train.bleedmap`) trains on items that carry more than an
image and its labels: the slice's bleed mask, which must follow every augmentation with the
image, and whether that mask is known at all (a bleeding slice without a mask file teaches its
label only). They travel as :class:`MaskedSlices` and :class:`MapTargets`, which the default
collate stacks field by field; every other model's items stay plain ``(image, targets)`` tensors.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import torch
from torch import Tensor


class MaskedSlices(NamedTuple):
    """A map model's input: ``image`` ``(..., C, H, W)`` and its bleed ``mask`` ``(..., 1, H, W)``
    (uint8 0/255 as decoded; float [0, 1] once :class:`ich.data.transforms.BatchPreparation` has
    prepared them)."""

    image: Tensor
    mask: Tensor


class MapTargets(NamedTuple):
    """A map model's targets: the slice ``labels`` ``(..., outputs)`` and ``mask_known`` ``(...)``,
    1 where the mask is known (a mask file, or a slice labelled "no bleed", whose mask is empty)."""

    labels: Tensor
    mask_known: Tensor


Batch = TypeVar("Batch", Tensor, MaskedSlices, MapTargets)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """``batch`` (a tensor or one of the named batches) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(*(part.to(device, non_blocking=True) for part in batch))


def batch_length(batch: Tensor | MaskedSlices | MapTargets) -> int:
    """How many items ``batch`` holds (``len`` of a named batch would count its fields)."""
    return len(batch if isinstance(batch, Tensor) else batch[0])


__all__ = ["MapTargets", "MaskedSlices", "batch_length", "to_device"]

"""Batch-level preparation of classifier inputs: uint8 -> normalised float, optional augmentation.

Working on whole batches (on the training device) instead of per image in the loader keeps
the loader to PNG decoding only, so it never starves the model, and lets a GPU do the
augmentation. The random draws come from torch's global generator, which the training loop
seeds per epoch: a resumed run draws the same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ich.data.batch import MaskedSlices
from ich.data.windowing import rewindow

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)

T = TypeVar("T", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Rewindow:
    """Training images re-windowed as another site would window them (:func:`ich.data.windowing.rewindow`).

    ``source`` is the ``[lo, hi]`` HU window the images were made with (CT-ICH's brain window,
    level 40 / width 120: ``[-20, 100]``); each training image is shown at a window of random
    ``level`` and ``width`` (HU, uniform within the ranges) instead. Sites window the brain at
    widths from about 70 to 160 HU: at width 80 fresh blood is as white as bone, at 120 light grey.
    """

    source: tuple[float, float]
    level: tuple[float, float] = (30.0, 50.0)
    width: tuple[float, float] = (70.0, 160.0)

    def __post_init__(self) -> None:
        for name, (lo, hi) in (("source", self.source), ("level", self.level), ("width", self.width)):
            if not hi >= lo:
                raise ValueError(f"rewindow.{name} must be [low, high], got {[lo, hi]}")
        if self.source[1] == self.source[0] or self.width[0] <= 0:
            raise ValueError("rewindow: windows must have a positive width")


def change_display(levels: T, gamma: float | T, contrast: float | T, brightness: float | T) -> T:
    """Grey levels in [0, 1] (a NumPy array or a tensor) shown with another display: ``gamma``, then
    ``contrast`` about mid-grey, then ``brightness`` added; clipped to [0, 1]. The one display
    model of training's ``intensity`` augmentation and :mod:`ich.data.site_shift`'s other sites."""
    return ((levels.clip(0, 1) ** gamma - 0.5) * contrast + 0.5 + brightness).clip(0, 1)


class BatchPreparation(nn.Module):
    """Scale uint8 ``(B, C, H, W)`` to [0, 1], augment when training, normalise per channel.

    Augmentation (training mode only) is one random affine map per image: rotation up to
    ``degrees``, translation up to ``translate`` of the side, isotropic zoom within
    ``1 +/- scale``, and a horizontal flip with probability 1/2 when ``flip`` (a bleed is a
    bleed on either side; the segmentation pipeline keeps its own flip-free augmentation).

    A :class:`ich.data.batch.MaskedSlices` batch (a map model's training input) comes back as one:
    its mask follows the affine map with the image, is scaled to [0, 1] and is left out of every
    intensity change and of the normalisation.

    Args:
        channels: channels per slice: 3 (ImageNet statistics) or 1 (their grey mean).
        augment: whether training mode augments at all.
        slices: slices stacked per input (slice context, :mod:`ich.data.context`); every slice
            gets the same statistics and the same random map.
        intensity: strength (training only) of a random change of the display: per image a gamma
            within ``(1 + intensity) ** +/-1``, a contrast factor within ``1 +/- intensity`` and a
            brightness shift within ``+/- intensity / 2`` of full scale, the same on every channel
            and slice of the image. Another site's pre-windowed images differ in exactly these
            (window level and width, display gamma, JPEG export); 0 (the default) draws nothing.
        window_dropout: probability (training only) that an image's windows are all replaced by
            its first, the brain window, as a one-window grey image arrives from another site
            (``ich.io.image_files``: grey -> R = G = B). A model that has only ever seen three distinct
            windows collapses on such input; one trained with this learns not to rely on the
            other windows being there. 0 (the default) draws no random numbers at all.
        single_image: probability (training only) that an image's neighbour slices (``slices`` > 1) are
            all replaced by its centre slice, as a one-image study arrives (``ich predict`` repeats
            the edge slice of a study, :mod:`ich.data.context`). A network that has only seen real
            neighbours reads such a stack as unlike any slice (the fold-0 CT-ICH model put the
            median normal single image at 0.68, within the bleeds' band); 0 (the default) draws
            nothing.
        rewindow: (training only) each image re-windowed at a random window (:class:`Rewindow`),
            before the affine map so that saturated pixels are still exactly 0 or 1; grey
            (one-window) slices only. ``None``: off.
    """

    def __init__(
        self,
        channels: int,
        augment: bool,
        *,
        degrees: float = 10.0,
        translate: float = 0.05,
        scale: float = 0.1,
        flip: bool = True,
        slices: int = 1,
        window_dropout: float = 0.0,
        single_image: float = 0.0,
        intensity: float = 0.0,
        rewindow: Rewindow | None = None,
    ) -> None:
        super().__init__()
        if rewindow is not None and channels != 1:
            raise ValueError("rewindow needs grey (one-window) slices: other windows would need their own source")
        self.rewindow = rewindow
        if not 0 <= intensity < 1:
            raise ValueError(f"intensity must be in [0, 1), got {intensity}")
        if not 0 <= window_dropout <= 1:
            raise ValueError(f"window_dropout must be in [0, 1], got {window_dropout}")
        if window_dropout and channels != 3:
            raise ValueError("window_dropout needs three windows per slice")
        if not 0 <= single_image <= 1:
            raise ValueError(f"single_image must be in [0, 1], got {single_image}")
        if single_image and slices < 2:
            raise ValueError("single_image needs neighbour slices (context > 0)")
        self.single_image, self.channels = single_image, channels
        self.slices, self.window_dropout, self.intensity = slices, window_dropout, intensity
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (GREY_MEAN, GREY_STD)
        mean, std = mean * slices, std * slices
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.augment = augment
        self.degrees, self.translate, self.scale, self.flip = degrees, translate, scale, flip

    def _random_affine(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        u = lambda: torch.rand(n) * 2 - 1  # noqa: E731 (uniform in [-1, 1])
        angle = u() * math.radians(self.degrees)
        zoom = 1 + u() * self.scale
        sign = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos * sign, -sin, u() * 2 * self.translate], dim=1),
                torch.stack([sin * sign, cos, u() * 2 * self.translate], dim=1),
            ],
            dim=1,
        ).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _drop_windows(self, x: torch.Tensor) -> torch.Tensor:
        chosen = (torch.rand(x.shape[0]) < self.window_dropout).to(x.device)
        stacks = x.view(x.shape[0], self.slices, 3, *x.shape[2:])
        grey = stacks[:, :, :1].expand_as(stacks)
        return torch.where(chosen.view(-1, 1, 1, 1, 1), grey, stacks).reshape(x.shape)

    def _repeat_centre(self, x: torch.Tensor) -> torch.Tensor:
        chosen = (torch.rand(x.shape[0]) < self.single_image).to(x.device)
        stacks = x.view(x.shape[0], self.slices, self.channels, *x.shape[2:])
        centre = stacks[:, self.slices // 2 : self.slices // 2 + 1].expand_as(stacks)
        return torch.where(chosen.view(-1, 1, 1, 1, 1), centre, stacks).reshape(x.shape)

    def _random_display(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        u = lambda: (torch.rand(n) * 2 - 1).view(-1, 1, 1, 1).to(x.device, x.dtype)  # noqa: E731
        gamma = (1 + self.intensity) ** u()
        contrast = 1 + self.intensity * u()
        brightness = self.intensity / 2 * u()
        return change_display(x, gamma, contrast, brightness)

    def _random_window(self, x: torch.Tensor) -> torch.Tensor:
        n, spec = x.shape[0], self.rewindow
        u = lambda lo, hi: (lo + torch.rand(n) * (hi - lo)).view(-1, 1, 1, 1).to(x.device, x.dtype)  # noqa: E731
        level, width = u(*spec.level), u(*spec.width)
        return rewindow(x, spec.source, level - width / 2, level + width / 2)

    def forward(self, x: torch.Tensor | MaskedSlices) -> torch.Tensor | MaskedSlices:
        if isinstance(x, MaskedSlices):
            image, mask = x.image.float() / 255.0, x.mask.float() / 255.0
        elif x.dim() == 5:  # whole studies (B, T, C, H, W): each slice prepared as an image
            return self.forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        else:
            image, mask = x.float() / 255.0, None
        if self.augment and self.training:
            if self.single_image:
                image = self._repeat_centre(image)
            if self.rewindow is not None:
                image = self._random_window(image)
            if mask is not None:
                joint = self._random_affine(torch.cat([image, mask], dim=1))
                image, mask = joint[:, :-1], joint[:, -1:]
            else:
                image = self._random_affine(image)
            if self.window_dropout:
                image = self._drop_windows(image)
            if self.intensity:
                image = self._random_display(image)
        image = (image - self.mean) / self.std
        return image if mask is None else MaskedSlices(image, mask)

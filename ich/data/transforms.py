"""Batch-level preparation of classifier inputs: uint8 -> normalised float, optional augmentation.

Working on whole batches (on the training device) instead of per image in the loader keeps
the loader to PNG decoding only, so it never starves the model, and lets a GPU do the
augmentation. The random draws come from torch's global generator, which the training loop
seeds per epoch: a resumed run draws the same augmentations.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)

T = TypeVar("T", np.ndarray, torch.Tensor)


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
            (``ich.io.images``: grey -> R = G = B). A model that has only ever seen three distinct
            windows collapses on such input; one trained with this learns not to rely on the
            other windows being there. 0 (the default) draws no random numbers at all.
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
        intensity: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= intensity < 1:
            raise ValueError(f"intensity must be in [0, 1), got {intensity}")
        if not 0 <= window_dropout <= 1:
            raise ValueError(f"window_dropout must be in [0, 1], got {window_dropout}")
        if window_dropout and channels != 3:
            raise ValueError("window_dropout needs three windows per slice")
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

    def _random_display(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        u = lambda: (torch.rand(n) * 2 - 1).view(-1, 1, 1, 1).to(x.device, x.dtype)  # noqa: E731
        gamma = (1 + self.intensity) ** u()
        contrast = 1 + self.intensity * u()
        brightness = self.intensity / 2 * u()
        return change_display(x, gamma, contrast, brightness)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # whole studies (B, T, C, H, W): each slice prepared as an image
            return self.forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        x = x.float() / 255.0
        if self.augment and self.training:
            x = self._random_affine(x)
            if self.window_dropout:
                x = self._drop_windows(x)
            if self.intensity:
                x = self._random_display(x)
        return (x - self.mean) / self.std

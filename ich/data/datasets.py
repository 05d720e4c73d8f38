"""PyTorch datasets over the slice index (``docs/contracts.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_slice_image(path: str | Path, input_size: int, grey: bool = False) -> np.ndarray:
    """Read a converted slice PNG as RGB (or its brain-window channel) at ``input_size``."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read slice image {path}")
    image = image[..., ::-1]
    if image.shape[0] != input_size or image.shape[1] != input_size:
        shrinking = image.shape[0] > input_size
        image = cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if grey:
        image = image[..., :1]
    return np.ascontiguousarray(image)


def classification_transform(channels: int, augment: bool) -> v2.Compose:
    """uint8 HWC -> normalised float CHW; mild geometric augmentation for training.

    Flips are allowed for classification (a bleed is a bleed on either side); the
    segmentation pipeline uses its own paper-faithful augmentation without flips.
    """
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.449,), (0.226,))
    steps: list = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1))]
    steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)


class SliceDataset(Dataset):
    """Slices of the index as ``(image, target)`` pairs for classification.

    Args:
        table: rows of the slice index (with ``image_path`` and the label columns).
        root: folder the index's relative paths start from.
        input_size: side of the square network input.
        label_columns: targets, in order ("any" first for multi-label models).
        grey: feed the brain-window channel only (for single-channel models).
        augment: random geometric augmentation (training only).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        root: str | Path,
        *,
        input_size: int,
        label_columns: Sequence[str] = ("any",),
        grey: bool = False,
        augment: bool = False,
    ) -> None:
        self.paths = [Path(root) / p for p in table["image_path"]]
        self.targets = torch.from_numpy(np.array(table[list(label_columns)].astype(float).fillna(0), dtype=np.float32))
        self.input_size = input_size
        self.grey = grey
        self.transform = classification_transform(1 if grey else 3, augment)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_slice_image(self.paths[i], self.input_size, self.grey)
        return self.transform(image), self.targets[i]

"""PyTorch datasets over the slice index (``docs/contracts.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ich.data.context import neighbour_rows
from ich.data.resize import resize_square
from ich.io.slices import read_slice


def read_slice_image(path: str | Path, input_size: int, grey: bool = False) -> np.ndarray:
    """Read a converted slice (file or archive member) as RGB, or its brain-window channel, at ``input_size``."""
    image = resize_square(read_slice(path, cv2.IMREAD_COLOR)[..., ::-1], input_size)
    if grey:
        image = image[..., :1]
    return np.ascontiguousarray(image)


class SliceDataset(Dataset):
    """Slices of the index as ``(uint8 image (C, H, W), float targets)`` pairs.

    Scaling, normalisation and augmentation happen per batch on the training device
    (:class:`ich.data.transforms.BatchPreparation`), so the loader only decodes PNGs.

    Args:
        table: rows of the slice index (with ``image_path`` and the label columns).
        root: folder the index's relative paths start from.
        input_size: side of the square network input.
        label_columns: targets, in order ("any" first for multi-label models).
        grey: feed the brain-window channel only (for single-channel models).
        cache: keep decoded images in memory after the first epoch (per loader worker);
            right for cohorts that fit in RAM (the demo: ~50 MB), off for RSNA-scale data.
        context: neighbours on each side stacked with the slice (:mod:`ich.data.context`):
            ``C x (2 * context + 1)`` channels, slice-major, the slice itself in the middle.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        root: str | Path,
        *,
        input_size: int,
        label_columns: Sequence[str] = ("any",),
        grey: bool = False,
        cache: bool = False,
        context: int = 0,
    ) -> None:
        self.paths = [Path(root) / p for p in table["image_path"]]
        self.stacks = neighbour_rows(table, context) if context else np.arange(len(table))[:, None]
        self.targets = torch.from_numpy(np.array(table[list(label_columns)].astype(float).fillna(0), dtype=np.float32))
        self.input_size = input_size
        self.grey = grey
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _slice(self, row: int) -> torch.Tensor:
        """One decoded slice ``(C, H, W)``; cached per slice, so a stack's neighbours are decoded once."""
        if self._cache is not None and row in self._cache:
            return self._cache[row]
        image = torch.from_numpy(
            read_slice_image(self.paths[row], self.input_size, self.grey).transpose(2, 0, 1).copy()
        )
        if self._cache is not None:
            self._cache[row] = image
        return image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.stacks[i]
        image = self._slice(int(rows[0])) if len(rows) == 1 else torch.cat([self._slice(int(r)) for r in rows])
        return image, self.targets[i]

"""PyTorch datasets over the slice index (``docs/contracts.md``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
        cache: decode every slice once, up front (threads), into one uint8 tensor that loader
            workers share (forked) and every epoch reuses, so a GPU is fed from memory after
            the first pass; right for cohorts that fit in RAM (the demo: ~10 MB at 64 px,
            CT-ICH at 256 px: ~0.5 GB), off for RSNA-scale data (then each item is decoded
            when drawn).
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
        self._images = self._decode_all() if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, row: int) -> torch.Tensor:
        image = read_slice_image(self.paths[row], self.input_size, self.grey)
        return torch.from_numpy(image.transpose(2, 0, 1).copy())

    def _decode_all(self) -> torch.Tensor:
        # OpenCV releases the GIL while decoding and resizing, so threads decode in parallel
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            images = list(pool.map(self._decode, range(len(self.paths))))
        channels = 1 if self.grey else 3
        return (
            torch.stack(images)
            if images
            else torch.empty((0, channels, self.input_size, self.input_size), dtype=torch.uint8)
        )

    def _slice(self, row: int) -> torch.Tensor:
        """One decoded slice ``(C, H, W)``."""
        return self._images[row] if self._images is not None else self._decode(row)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.stacks[i]
        image = self._slice(int(rows[0])) if len(rows) == 1 else torch.cat([self._slice(int(r)) for r in rows])
        return image, self.targets[i]


class StudyDataset(Dataset):
    """Whole studies as items, for the study-level models (:mod:`ich.models.sequence`).

    Item ``i`` is ``(slices (T, C, H, W) uint8 in slice_order, targets (T, outputs))`` of the
    ``i``-th study of ``table`` (studies sorted by ``study_id``), read through ``slices``, the
    :class:`SliceDataset` of the same ``table`` (row ``r`` of ``slices`` is row ``r`` of ``table``).
    """

    def __init__(self, slices: SliceDataset, table: pd.DataFrame) -> None:
        missing = {"study_id", "slice_order"} - set(table.columns)
        if missing:
            raise ValueError(f"a study dataset needs the index columns {sorted(missing)}")
        if len(table) != len(slices):
            raise ValueError(f"{len(table)} table rows for {len(slices)} slices")
        studies = table["study_id"].to_numpy()
        order = np.lexsort((table["slice_order"].to_numpy(), studies))
        bounds = np.flatnonzero(studies[order][1:] != studies[order][:-1]) + 1
        self.rows: list[np.ndarray] = np.split(order, bounds) if len(order) else []
        self.slices = slices

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows[i]
        return torch.stack([self.slices[int(r)][0] for r in rows]), self.slices.targets[rows]

    def labels(self) -> np.ndarray:
        """0/1 per study: whether any of its slices is positive for the first target ("any")."""
        return np.array([int(self.slices.targets[rows, 0].max()) for rows in self.rows])

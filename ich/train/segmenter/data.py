"""The segmenters' data: slices with a reference mask, read as (image, mask) pairs, and the
U-Net's training crops (Hssayeni 2020: every crop with bleed plus undersampled crops without)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ich.io.slices import read_mask, read_slice
from ich.labels import has_mask_file, mask_is_known
from ich.networks.segmenter import UNetSpec, segmenter_view
from ich.segmentation import AffineRanges, augment_crop, crop_grid, extract_crops, positive_crops, undersample
from ich.train.segmenter.settings import UNetTraining

if TYPE_CHECKING:  # an export augmentation is handed in: these modules never build one
    from ich.data.exports import ExportAugmentation


def segmentation_parts(index: pd.DataFrame, split: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Slices whose reference mask is known, by set: ``{"train": ..., "val": ..., "test": ...}``.

    Known: a mask file, or a slice labelled "no bleed", whose mask is empty
    (:func:`ich.labels.mask_is_known`); so a release that ships masks for its bleeding slices
    only (CT-ICH) still trains and tests on its normal slices. Raises if no training slice has a
    mask file: a dataset without bleed masks (RSNA, CQ500) cannot train a segmenter, and saying
    so beats a silently empty model.
    """
    table = index.merge(split[["patient_id", "set", "fold"]], on="patient_id", how="inner")
    table = table[mask_is_known(table)]
    parts = {name: table[table["set"] == name].reset_index(drop=True) for name in ("train", "val", "test")}
    if not has_mask_file(parts["train"]).any():
        raise ValueError(
            "no training slice has a reference bleed mask (index column mask_path): this dataset "
            "cannot train a segmenter; set `segmenters: []` in params.yaml"
        )
    return parts


def read_pair(root: str | Path, row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A converted slice as ``(RGB uint8 HxWx3, boolean HxW reference mask)``."""
    image = read_slice(Path(root) / row["image_path"], cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image[..., ::-1]), read_mask(root, row["mask_path"], image.shape[:2])


def read_pairs(root: str | Path, table: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`read_pair` for every row of ``table``, in order, one slice in memory at a time."""
    for row in table.to_dict("records"):
        yield read_pair(root, row)


class CropDataset(Dataset):
    """Training crops ``(float image (3, c, c) in [0, 1], float mask (1, c, c))`` of in-memory slices.

    Each item is one ``(slice, corner)`` of ``slices`` (converted RGB slices and their masks) as
    ``spec``'s network reads it (:func:`ich.networks.segmenter.segmenter_view`); with ``ranges`` (and
    ``exports``, first) it is re-augmented at every draw, from a generator seeded off torch's global
    one, which the training loop seeds per epoch (so a resumed run draws the same augmentations).
    """

    def __init__(
        self,
        slices: Sequence[tuple[np.ndarray, np.ndarray]],
        crops: Sequence[tuple[int, tuple[int, int]]],
        spec: UNetSpec,
        ranges: AffineRanges | None,
        exports: ExportAugmentation | None = None,
    ) -> None:
        self.slices, self.crops, self.spec, self.ranges, self.exports = slices, list(crops), spec, ranges, exports
        self.crop = spec.crop

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        which, corner = self.crops[i]
        image, mask = self.slices[which]
        rng = np.random.default_rng(int(torch.randint(2**62, ()))) if self.ranges or self.exports else None
        if self.exports is not None:
            image = self.exports(image[None], rng)[0]
        image = segmenter_view(image, self.spec)
        if self.ranges is None:
            image, mask = extract_crops(image, [corner], self.crop)[0], extract_crops(mask, [corner], self.crop)[0]
        else:
            image, mask = augment_crop(image, mask, corner, self.crop, self.ranges, rng)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        return x, torch.from_numpy(mask[None].astype(np.float32))


def training_crops(
    root: str | Path, train: pd.DataFrame, spec: UNetSpec, training: UNetTraining, seed: int
) -> CropDataset:
    """Hssayeni 2020's training set: every crop with bleed plus ``negative_ratio`` x as many without, drawn once.

    Negatives are pooled over every training slice (with or without bleed) before the draw.
    Only the slices that contribute a crop are kept in memory.
    """
    pool: list[tuple[int, tuple[int, int]]] = []
    positive: list[bool] = []
    # convert writes every slice at one size: one decode gives the shape of the empty masks
    shape = read_slice(Path(root) / train["image_path"].iloc[0], cv2.IMREAD_GRAYSCALE).shape
    for k, row in enumerate(train.to_dict("records")):
        mask = read_mask(root, row["mask_path"], shape)
        coords = crop_grid(*mask.shape, crop=spec.crop, stride=spec.stride)
        pool += [(k, corner) for corner in coords]
        positive += positive_crops(mask, coords, spec.crop).tolist()
    if not any(positive):
        raise ValueError("no training crop holds bleed: the U-Net has nothing to learn from")
    kept = [pool[i] for i in undersample(np.array(positive), training.negative_ratio, np.random.default_rng(seed))]
    rows = sorted({k for k, _ in kept})
    renumber = {k: j for j, k in enumerate(rows)}
    slices = [read_pair(root, train.iloc[k]) for k in rows]
    print(f"training crops: {len(kept)} of {len(pool)} ({sum(positive)} with bleed) from {len(rows)} slices")
    crops = [(renumber[k], corner) for k, corner in kept]
    return CropDataset(slices, crops, spec, training.augment, training.exports)

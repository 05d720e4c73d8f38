"""PyTorch datasets over the slice index (``docs/contracts.md``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ich.data.batch import MapTargets, MaskedSlices
from ich.data.bleed_paste import BleedBank
from ich.data.context import neighbour_rows
from ich.data.resize import resize_square
from ich.io.slices import read_slice
from ich.labels import has_mask_file, mask_is_known

if TYPE_CHECKING:  # an export augmentation is handed in: these modules never build one
    from ich.data.exports import ExportAugmentation


def network_image(image: np.ndarray, input_size: int, grey: bool = False) -> np.ndarray:
    """A converted slice (RGB uint8 ``(H, W, 3)``) as a network reads it: ``input_size`` square, the
    brain-window channel alone when ``grey``. Training (here) and ``ich predict``
    (:func:`ich.predict.infer.network_inputs`) both build their inputs with it."""
    image = resize_square(image, input_size)
    if grey:
        image = image[..., :1]
    return np.ascontiguousarray(image)


def read_slice_image(path: str | Path, input_size: int, grey: bool = False) -> np.ndarray:
    """Read a converted slice (file or archive member) as its network image (:func:`network_image`)."""
    return network_image(read_slice(path, cv2.IMREAD_COLOR)[..., ::-1], input_size, grey)


class SliceDataset(Dataset):
    """Slices of the index as ``(uint8 image (C, H, W), float targets)`` pairs.

    Scaling, normalisation and augmentation happen per batch on the training device
    (:class:`ich.data.transforms.BatchPreparation`), so the loader decodes PNGs, stacks context
    slices and masks, and (``paste``) pastes bleeds; nothing else.

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
        masks: for a network trained on the bleed masks too (registered with ``bleed_map=True``):
            each item is ``(MaskedSlices(image, mask), MapTargets(labels, mask_known))``
            (:mod:`ich.data.batch`): the slice's mask (0/255, ``mask_path`` of the index), and
            whether it is known (a mask file, or a slice labelled "no bleed", whose mask is
            empty; not for a positive slice without a mask, whose map is not supervised).
        paste: fraction of the normal slices that receive a real bleed cut from another
            training slice (:mod:`ich.data.bleed_paste`); needs ``masks`` and a training table
            (``set`` all "train"). 0: off.
        exports: training slices shown as another site exports them and ``ich predict`` harmonises
            them (:class:`ich.data.exports.ExportAugmentation`), drawn afresh at every item from a
            generator seeded off torch's global one (which the training loop seeds per epoch), before
            any paste; ``None``: off. The cache then keeps all three windows: the export needs the bone window.
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
        masks: bool = False,
        paste: float = 0.0,
        exports: ExportAugmentation | None = None,
    ) -> None:
        self.paths = [Path(root) / p for p in table["image_path"]]
        self.stacks = neighbour_rows(table, context) if context else np.arange(len(table))[:, None]
        labels = np.array(table[list(label_columns)].astype(float).fillna(0), dtype=np.float32)
        self.input_size = input_size
        self.grey, self.exports = grey, exports
        self.mask_paths: list[Path | None] | None = None
        self.mask_known: torch.Tensor | None = None
        if masks:
            files = has_mask_file(table)
            self.mask_paths = [Path(root) / p if f else None for p, f in zip(table["mask_path"], files, strict=True)]
            self.mask_known = torch.from_numpy(mask_is_known(table).to_numpy(dtype=np.float32))
        self.targets = torch.from_numpy(labels)
        self._images = self._decode_all() if cache else None
        self._masks = self._decode_all_masks() if masks and cache else None
        self.bank: BleedBank | None = None
        if paste:
            if not masks or not cache or not grey:
                raise ValueError(
                    "paste cuts bleeds with their masks from cached grey slices: it needs masks, cache and grey"
                )
            grey_images = self._images if self.decode_grey else self._images[:, :1]
            self.bank = BleedBank(grey_images, self._masks[:, 0], self.targets, table, probability=paste)

    @property
    def decode_grey(self) -> bool:
        """Whether slices are decoded (and cached) as the brain window alone: an export reads the bone window."""
        return self.grey and self.exports is None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, row: int) -> torch.Tensor:
        image = read_slice_image(self.paths[row], self.input_size, self.decode_grey)
        return torch.from_numpy(image.transpose(2, 0, 1).copy())

    def _decode_all(self) -> torch.Tensor:
        # OpenCV releases the GIL while decoding and resizing, so threads decode in parallel
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            images = list(pool.map(self._decode, range(len(self.paths))))
        channels = 1 if self.decode_grey else 3
        return (
            torch.stack(images)
            if images
            else torch.empty((0, channels, self.input_size, self.input_size), dtype=torch.uint8)
        )

    def mask(self, row: int) -> torch.Tensor:
        """Row ``row``'s mask ``(1, H, W)`` uint8 0/255 (zeros where none); needs ``masks``."""
        if self.mask_paths is None:
            raise ValueError("this dataset was built without masks")
        return self._masks[row] if self._masks is not None else self._decode_mask(row)

    def _decode_mask(self, row: int) -> torch.Tensor:
        path, side = self.mask_paths[row], self.input_size
        if path is None:
            return torch.zeros((1, side, side), dtype=torch.uint8)
        mask = resize_square(read_slice(path, cv2.IMREAD_GRAYSCALE), side) > 127
        return torch.from_numpy(mask.astype(np.uint8)[None] * 255)

    def _decode_all_masks(self) -> torch.Tensor:
        masks = [self._decode_mask(row) for row in range(len(self.paths))]
        return torch.stack(masks) if masks else torch.empty((0, 1, self.input_size, self.input_size), dtype=torch.uint8)

    def decoded(self, row: int) -> torch.Tensor:
        """Row ``row``'s slice alone, decoded ``(C, H, W)`` uint8 (no neighbours, no mask, no export)."""
        image = self._decoded_as_cached(row)
        return image[:1] if self.grey and not self.decode_grey else image

    def _decoded_as_cached(self, row: int) -> torch.Tensor:
        return self._images[row] if self._images is not None else self._decode(row)

    def _stack(self, rows: np.ndarray) -> torch.Tensor:
        """The slices of ``rows`` stacked slice-major ``(C x len(rows), H, W)``, exported when drawn."""
        if self.exports is None:
            return self.decoded(int(rows[0])) if len(rows) == 1 else torch.cat([self.decoded(int(r)) for r in rows])
        rgb = [self._decoded_as_cached(int(r)) for r in rows]
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        exported = torch.from_numpy(self.exports(torch.stack(rgb).permute(0, 2, 3, 1).numpy(), rng)).permute(0, 3, 1, 2)
        return (exported[:, :1] if self.grey else exported).flatten(0, 1).contiguous()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | tuple[MaskedSlices, MapTargets]:
        rows = self.stacks[i]
        image = self._stack(rows)
        targets = self.targets[i]
        if self.mask_known is None:
            return image, targets
        centre = int(rows[len(rows) // 2])
        mask = self.mask(centre)
        if self.bank is not None:
            image, pasted, targets = self.bank.maybe_paste(image, mask[0], targets)
            mask = pasted[None]
        return MaskedSlices(image, mask), MapTargets(targets, self.mask_known[i])


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

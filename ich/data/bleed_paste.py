"""Real bleeds pasted into normal training slices: more positive examples from the masks we have.

A cohort like CT-ICH has 36 bleeding patients; each mask outlines a real bleed with its real
texture and density. :class:`BleedBank` cuts every masked bleed of the *training* slices out
with its mask (donors); :meth:`BleedBank.paste` puts one into a normal training slice (the
recipient), and the result is labelled as the donor's slice (slice labels and mask):

- **where**: at the donor's own place in the frame first (slices framed to the head put the
  same anatomy near the same place, so an extra-axial bleed lands near the skull again), then
  at up to ``tries`` random shifts; a place is taken only if every bleed pixel lies inside the
  recipient's intracranial region (:func:`intracranial_region`). When none fits the slice stays
  as it was.
- **matched intensity**: the bleed keeps its contrast to the brain around it: its grey levels
  are shifted by the difference between the recipient's and the donor's median brain level
  around the bleed.
- **blended edges**: the mask is feathered (Gaussian, ``feather`` px) into the alpha of the blend.

The bank refuses any row outside the training set: a validation or test patient is never a
donor, and only the training dataset pastes, so none is a recipient. Images are uint8
``(channels, H, W)`` stacks of grey brain-window slices (every channel gets the same bleed, as
a bleed spans neighbouring slices); random draws come from torch's global generator, which the
training loop seeds per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import torch

BONE_LEVEL = 250
"""Brain-window grey level at and above which a pixel is bone (saturated white)."""
BRAIN_LEVELS = (40, 190)
"""Grey levels counted as brain tissue when matching intensities (between CSF/fat and bone)."""


def intracranial_region(grey: np.ndarray) -> np.ndarray:
    """Pixels inside the skull of a brain-window slice ``(H, W)`` uint8: bool ``(H, W)``.

    The convex hull of the bone pixels, without the bone itself (eroded by one pixel so a pasted
    bleed never touches the skull) and without air. Empty where the slice shows no skull.
    """
    bone = (grey >= BONE_LEVEL).astype(np.uint8)
    points = cv2.findNonZero(bone)
    region = np.zeros_like(bone)
    if points is None or len(points) < 3:
        return region.astype(bool)
    cv2.fillConvexPoly(region, cv2.convexHull(points), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    region &= 1 - cv2.dilate(bone, kernel)
    region &= (grey > BRAIN_LEVELS[0] // 2).astype(np.uint8)
    return cv2.erode(region, kernel).astype(bool)


@dataclass(frozen=True)
class Donor:
    """One bleed: its row in the bank's table, its bounding box there, the grey patch, the mask and the labels."""

    row: int
    top: int
    left: int
    patch: np.ndarray  # (channels, h, w) uint8
    mask: np.ndarray  # (h, w) bool
    brain_level: float  # median brain grey level around the bleed
    targets: torch.Tensor  # the donor slice's targets
    patient_id: str


def _brain_median(grey: np.ndarray, around: np.ndarray) -> float:
    values = grey[around & (grey >= BRAIN_LEVELS[0]) & (grey <= BRAIN_LEVELS[1])]
    return float(np.median(values)) if values.size else float("nan")


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask


class BleedBank:
    """The bleeds of a training set's positive slices, ready to paste (module docstring).

    Args:
        images: uint8 ``(N, channels, H, W)`` slices (grey brain windows) of ``table``'s rows.
        masks: uint8 ``(N, H, W)`` 0/255 masks of the same rows (zeros where none).
        targets: ``(N, outputs)`` float targets, "any" first.
        table: the rows (``patient_id``, ``set``); every row must be a training row.
        probability: chance that a normal slice handed to :meth:`maybe_paste` receives a bleed.
        min_pixels: smaller masks are not cut (a speck carries no texture).
        feather: Gaussian sigma (px) of the blend's edge.
        tries: random places tried after the donor's own.
    """

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        targets: torch.Tensor,
        table: pd.DataFrame,
        *,
        probability: float,
        min_pixels: int = 4,
        feather: float = 1.0,
        tries: int = 8,
    ) -> None:
        if not 0 < probability <= 1:
            raise ValueError(f"paste probability must be in (0, 1], got {probability}")
        outside = table if "set" not in table else table[table["set"] != "train"]
        if not outside.empty:
            patients = sorted(set(outside["patient_id"].astype(str)))[:5]
            raise ValueError(f"bleed donors must all be training slices (a 'set' column of 'train'); got {patients}")
        self.probability, self.feather, self.tries = probability, feather, tries
        self.donors: list[Donor] = []
        patients = table["patient_id"].astype(str).to_numpy()
        for row in np.flatnonzero(targets[:, 0].numpy() > 0):
            mask = masks[row].numpy() > 127
            if mask.sum() < min_pixels:
                continue
            rows, cols = np.nonzero(mask)
            margin = int(np.ceil(3 * feather)) + 1
            top, bottom = max(0, rows.min() - margin), min(mask.shape[0], rows.max() + margin + 1)
            left, right = max(0, cols.min() - margin), min(mask.shape[1], cols.max() + margin + 1)
            image = images[row].numpy()
            self.donors.append(
                Donor(
                    int(row),
                    top,
                    left,
                    image[:, top:bottom, left:right].copy(),
                    mask[top:bottom, left:right].copy(),
                    _brain_median(image[image.shape[0] // 2], _ring(mask, 4)),
                    targets[row].clone(),
                    patients[row],
                )
            )
        if not self.donors:
            raise ValueError("no training slice has a bleed mask to paste: set paste: 0")

    @property
    def patients(self) -> set[str]:
        """The donor patients."""
        return {d.patient_id for d in self.donors}

    def paste(self, image: torch.Tensor, donor: Donor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``donor``'s bleed pasted into ``image`` (uint8 ``(channels, H, W)``): ``(image, mask (H, W) uint8)``,
        or ``None`` when no place inside the skull fits it."""
        grey = image[image.shape[0] // 2].numpy()
        inside = intracranial_region(grey)
        h, w = donor.mask.shape
        rows, cols = grey.shape
        places = [(donor.top, donor.left)]
        jitter = torch.randint(-rows // 8, rows // 8 + 1, (self.tries, 2))
        places += [(donor.top + int(dy), donor.left + int(dx)) for dy, dx in jitter]
        for top, left in places:
            if not (0 <= top <= rows - h and 0 <= left <= cols - w):
                continue
            if not inside[top : top + h, left : left + w][donor.mask].all():
                continue
            return self._blend(image, grey, donor, top, left, inside)
        return None

    def _blend(
        self, image: torch.Tensor, grey: np.ndarray, donor: Donor, top: int, left: int, inside: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = donor.mask.shape
        out = image.numpy().astype(np.float32)
        window = (slice(None), slice(top, top + h), slice(left, left + w))
        around = np.zeros(inside.shape, bool)
        around[window[1:]] = _ring(donor.mask, 4)
        shift = _brain_median(grey, around & inside) - donor.brain_level
        shift = 0.0 if np.isnan(shift) else shift
        alpha = cv2.GaussianBlur(donor.mask.astype(np.float32), (0, 0), self.feather) if self.feather else donor.mask
        alpha = np.maximum(alpha, donor.mask)  # the bleed itself is replaced, only its edge blends
        alpha = alpha * inside[window[1:]]  # the feathered edge never reaches the skull either
        bleed = np.clip(donor.patch.astype(np.float32) + shift, 0, BONE_LEVEL - 1)
        out[window] = alpha * bleed + (1 - alpha) * out[window]
        mask = np.zeros(inside.shape, np.uint8)
        mask[window[1:]] = donor.mask * 255
        return torch.from_numpy(np.rint(out).astype(np.uint8)), torch.from_numpy(mask)

    def maybe_paste(
        self, image: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """With ``probability``, a random donor pasted into a normal slice; ``(image, mask, targets)``.

        Slices already labelled positive, and draws that find no place, are returned unchanged.
        """
        if targets[0] > 0 or float(torch.rand(())) >= self.probability:
            return image, mask, targets
        donor = self.donors[int(torch.randint(len(self.donors), ()))]
        pasted = self.paste(image, donor)
        if pasted is None:
            return image, mask, targets
        return pasted[0], pasted[1], torch.maximum(targets, donor.targets)

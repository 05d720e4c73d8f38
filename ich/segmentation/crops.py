"""Overlapping square crops of a slice, their reassembly, and crop-level class balancing.

The U-Net of Hssayeni 2020 is trained and run on 160x160 crops taken with stride 80 rather than on whole
slices: a whole slice is almost all background, so a network trained on it learns to predict
"no bleed" everywhere (Hssayeni 2020's second experiment); crops let the background be undersampled.

Conventions (documented here because the paper only covers the 640x640 case):

- Grid: along each axis crops start at ``0, stride, 2*stride, ...`` while they fit. When
  ``size - crop`` is not a multiple of ``stride`` (512 or 256 with crop 160 / stride 80) one more
  crop is added flush with the far border, so every pixel is covered and no crop leaves the
  slice; that last crop overlaps its neighbour by more than ``crop - stride``.
- Small slices: along an axis shorter than ``crop`` there is a single crop at 0, and
  :func:`extract_crops` zero-pads the slice at the bottom/right up to ``crop``. Zero is the bottom
  of every display window (air, black) in the windowed PNGs, i.e. the least bleed-like value.
  :func:`stitch` drops the padding again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Coord = tuple[int, int]
"""Top-left corner ``(y, x)`` of a crop, in pixels of the (unpadded) slice."""


def _axis_starts(size: int, crop: int, stride: int) -> list[int]:
    """Crop start offsets along one axis: a regular stride plus, if needed, one flush end crop."""
    if size <= crop:
        return [0]
    starts = list(range(0, size - crop + 1, stride))
    if starts[-1] + crop < size:
        starts.append(size - crop)
    return starts


def crop_grid(height: int, width: int, crop: int = 160, stride: int = 80) -> list[Coord]:
    """Top-left corners of the crops that tile a ``height`` x ``width`` slice, row-major.

    640x640 gives 7x7 = 49 crops (Hssayeni 2020); 512 gives 6x6 and 256 gives 3x3, each with a last crop
    flush with the border (see the module docstring).
    """
    if min(height, width, crop, stride) < 1:
        raise ValueError(f"sizes must be positive: {height=} {width=} {crop=} {stride=}")
    if stride > crop:
        raise ValueError(f"stride {stride} > crop {crop} would leave pixels uncovered")
    return [(y, x) for y in _axis_starts(height, crop, stride) for x in _axis_starts(width, crop, stride)]


def _pad_to(array: np.ndarray, crop: int) -> np.ndarray:
    """Zero-pad the first two axes at the bottom/right so that both are at least ``crop``."""
    pad_y = max(crop - array.shape[0], 0)
    pad_x = max(crop - array.shape[1], 0)
    if pad_y == 0 and pad_x == 0:
        return array
    widths = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="constant", constant_values=0)


def extract_crops(image: np.ndarray, coords: Sequence[Coord], crop: int = 160) -> np.ndarray:
    """Stack the crops of ``image`` (HxW or HxWxC) at ``coords``: (N, crop, crop[, C]).

    The slice is zero-padded first when it is smaller than ``crop`` (see the module docstring).
    """
    padded = _pad_to(np.asarray(image), crop)
    return np.stack([padded[y : y + crop, x : x + crop] for y, x in coords])


def stitch(crop_probs: np.ndarray, coords: Sequence[Coord], shape: tuple[int, int]) -> np.ndarray:
    """Reassemble per-crop maps (N, crop, crop) into one float64 HxW map, averaging overlaps.

    Averaging (rather than max or last-wins) treats every crop's opinion of a pixel equally and
    is exact: if each crop holds the input pixels, the input comes back unchanged.
    """
    crop_probs = np.asarray(crop_probs, dtype=np.float64)
    if crop_probs.ndim != 3 or crop_probs.shape[1] != crop_probs.shape[2]:
        raise ValueError(f"expected (N, crop, crop) crop maps, got {crop_probs.shape}")
    if len(coords) != crop_probs.shape[0]:
        raise ValueError(f"{len(coords)} coordinates for {crop_probs.shape[0]} crops")
    crop = crop_probs.shape[1]
    height, width = shape
    canvas_shape = (max(height, crop), max(width, crop))
    total = np.zeros(canvas_shape)
    count = np.zeros(canvas_shape)
    for (y, x), probs in zip(coords, crop_probs, strict=True):
        total[y : y + crop, x : x + crop] += probs
        count[y : y + crop, x : x + crop] += 1
    count = count[:height, :width]
    if (count == 0).any():
        raise ValueError("the crops do not cover the whole slice")
    return total[:height, :width] / count


def positive_crops(mask: np.ndarray, coords: Sequence[Coord], crop: int = 160) -> np.ndarray:
    """Boolean per crop: does it contain at least one bleed (non-zero) pixel of ``mask``?"""
    padded = _pad_to(np.asarray(mask) != 0, crop)
    return np.array([bool(padded[y : y + crop, x : x + crop].any()) for y, x in coords], dtype=bool)


def undersample(is_positive: np.ndarray, negative_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Indices to keep: every positive, and ``round(negative_ratio * n_positive)`` random negatives.

    Works on any pool of crops (one slice or the whole training set). Hssayeni 2020 balanced its training
    set by undersampling crops without bleed; keeping every positive loses no bleed example. The
    negatives are drawn without replacement (all of them if fewer are available); indices are
    returned sorted so that the result does not depend on the draw order.
    """
    if not np.isfinite(negative_ratio) or negative_ratio < 0:
        raise ValueError(f"negative_ratio must be finite and >= 0, got {negative_ratio}")
    is_positive = np.asarray(is_positive, dtype=bool)
    positives = np.flatnonzero(is_positive)
    negatives = np.flatnonzero(~is_positive)
    n_keep = min(len(negatives), int(round(negative_ratio * len(positives))))
    kept = rng.choice(negatives, size=n_keep, replace=False)
    return np.sort(np.concatenate([positives, kept]))


def sample_crops(
    mask: np.ndarray,
    coords: Sequence[Coord],
    negative_ratio: float,
    rng: np.random.Generator,
    crop: int = 160,
) -> list[Coord]:
    """The crops of one slice to train on: all crops with bleed plus undersampled negatives.

    Per slice, a slice without bleed yields no crop at all; to draw negative crops from such
    slices too, pool :func:`positive_crops` over the training set and call :func:`undersample`.
    """
    keep = undersample(positive_crops(mask, coords, crop), negative_ratio, rng)
    return [coords[i] for i in keep]

"""From a bleed-probability map to a binary bleed mask: threshold, then closing, then opening.

Hssayeni 2020 cleans the thresholded U-Net output with two morphological operations: a closing first, to
fill small gaps inside bleed regions, then an opening, to remove isolated specks (false positives
such as bright pixels near bone). The paper gives no kernel sizes, so they are parameters.
Elliptical kernels are used because they are the closest discrete disc: the result does not
depend on the orientation of the lesion, unlike with a square kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ich.metrics.segmentation import overlap_counts


def binarize(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels with ``prob >= threshold`` as a 0/1 uint8 mask (uint8 is what OpenCV needs)."""
    return (np.asarray(prob) >= threshold).astype(np.uint8)


def _ellipse(size: int) -> np.ndarray:
    """An elliptical (disc) structuring element of diameter ``size`` pixels."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def close_then_open(mask: np.ndarray, close_kernel: int, open_kernel: int) -> np.ndarray:
    """Morphological closing with a ``close_kernel`` disc, then opening with an ``open_kernel`` one.

    A kernel size of 0 or 1 skips that operation (a one-pixel disc is the identity), so the
    post-processing can be switched off from the parameters. Returns a 0/1 uint8 mask. Outside
    the image OpenCV's default border values apply, so neither operation creates or erodes bleed
    at the slice border merely because the slice ends there.
    """
    out = (np.asarray(mask) != 0).astype(np.uint8)
    if close_kernel > 1:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _ellipse(close_kernel))
    if open_kernel > 1:
        out = cv2.morphologyEx(out, cv2.MORPH_OPEN, _ellipse(open_kernel))
    return out


def segment_slice(prob_map: np.ndarray, threshold: float, close_kernel: int, open_kernel: int) -> np.ndarray:
    """The bleed mask of one slice: :func:`binarize` then :func:`close_then_open`."""
    return close_then_open(binarize(prob_map, threshold), close_kernel, open_kernel)


def score_thresholds(
    prob_map: np.ndarray,
    ref: np.ndarray,
    thresholds: Sequence[float],
    close_kernel: int,
    open_kernel: int,
) -> list[dict[str, float]]:
    """Per-slice metric rows (:func:`ich.metrics.segmentation.overlap_counts`), one per threshold.

    Each row carries its ``threshold``, the column
    :func:`ich.metrics.segmentation.summary_by_threshold` groups on (Hssayeni 2020's Table 6 varies the
    probability threshold from 0.5 to 0.9).
    """
    masks = {float(t): segment_slice(prob_map, t, close_kernel, open_kernel) for t in thresholds}
    return [{"threshold": t, **overlap_counts(mask, ref)} for t, mask in masks.items()]

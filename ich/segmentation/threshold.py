"""The intensity-threshold baseline of Hssayeni 2020: bleed = pixels whose grey level lies in a band.

Acute blood is brighter than brain and darker than bone, so a grey-level band ``[lo, hi]``
is the simplest possible segmenter. Hssayeni 2020 chose the band by grid search on the training data
(lower bound 100-210, upper bound 210-255 on its 8-bit windowed slices; it picked 140-230) and
reports it as the baseline the U-Net must beat (Dice 0.135). Ranges and step are parameters.

Which single channel: the grey levels the band is searched on must be those of one image
channel. For our RGB PNGs (three stacked HU windows) the default is channel 0, the brain window
([0, 80] HU by default, where fresh blood at 50-90 HU maps to about 160-255), the window
radiologists read bleeds in and the nearest to Hssayeni 2020's brain-windowed slices. A 2-D input (for
instance HU, when the dataset has them) is used as it is and ``channel`` is ignored; the grids
must then be in HU.

The predicted band mask goes through the same closing-then-opening as the U-Net output, and the
grid search scores the post-processed masks, so that the band is tuned for what is deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ich.metrics.segmentation import dice, jaccard
from ich.segmentation.postprocess import close_then_open

Objective = Literal["dice", "jaccard"]


def inclusive_grid(start: float, stop: float, step: float) -> np.ndarray:
    """``start, start + step, ...`` up to and including ``stop`` (robust to float steps)."""
    if step <= 0 or stop < start:
        raise ValueError(f"need step > 0 and stop >= start: {start=} {stop=} {step=}")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(count)


def _grey(image: np.ndarray, channel: int) -> np.ndarray:
    """The single channel the band applies to: ``image[..., channel]`` or a 2-D image as is."""
    image = np.asarray(image)
    return image[..., channel] if image.ndim == 3 else image


def predict_threshold_band(
    image: np.ndarray,
    lo: float,
    hi: float,
    close_kernel: int = 0,
    open_kernel: int = 0,
    channel: int = 0,
) -> np.ndarray:
    """Bleed mask (0/1 uint8) of pixels with ``lo <= grey <= hi``, then closing and opening."""
    grey = _grey(image, channel)
    return close_then_open((grey >= lo) & (grey <= hi), close_kernel, open_kernel)


def _mean_score(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    lo: float,
    hi: float,
    score_fn: Callable[[np.ndarray, np.ndarray], float],
    post: dict[str, int],
) -> float:
    """Mean ``score_fn`` of the post-processed band ``[lo, hi]`` over ``(image, mask)`` pairs."""
    scores = [score_fn(predict_threshold_band(image, lo, hi, **post), mask) for image, mask in pairs]
    return float(np.mean(scores))


def fit_threshold_band(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    lo_grid: Sequence[float],
    hi_grid: Sequence[float],
    close_kernel: int = 0,
    open_kernel: int = 0,
    channel: int = 0,
    objective: Objective = "dice",
) -> tuple[float, float, pd.DataFrame]:
    """Grid-search the band maximising the mean ``objective`` over the training slices with bleed.

    Only slices whose reference mask has bleed are scored: that is the mean Hssayeni 2020 reports, and
    slices without bleed would otherwise reward an empty band (an empty prediction on an empty
    slice scores 1). Pairs with ``lo > hi`` are skipped. Ties go to the first pair in grid order
    (lowest ``lo``, then lowest ``hi``), so the result is deterministic. Returns ``(lo, hi,
    table)`` where ``table`` has one row per scored pair: ``lo, hi, score``.
    """
    score_fn = {"dice": dice, "jaccard": jaccard}[objective]
    post = {"close_kernel": close_kernel, "open_kernel": open_kernel, "channel": channel}
    pairs = [(image, mask) for image, mask in zip(images, masks, strict=True) if np.any(mask)]
    if not pairs:
        raise ValueError("no training slice has bleed: the band cannot be fitted")
    rows = [
        {"lo": float(lo), "hi": float(hi), "score": _mean_score(pairs, lo, hi, score_fn, post)}
        for lo in lo_grid
        for hi in hi_grid
        if lo <= hi
    ]
    if not rows:
        raise ValueError("the grids contain no pair with lo <= hi")
    table = pd.DataFrame(rows, columns=["lo", "hi", "score"])
    best = table.loc[table["score"].idxmax()]
    return float(best["lo"]), float(best["hi"]), table

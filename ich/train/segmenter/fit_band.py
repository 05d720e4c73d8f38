"""The grey-level band baseline of Hssayeni 2020, fitted on the training slices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ich.segmentation import PostProcess, fit_threshold_band, inclusive_grid, predict_threshold_band
from ich.train.segmenter.data import read_pairs
from ich.train.segmenter.settings import BandSpec


def fit_band(
    root: str | Path, train: pd.DataFrame, spec: BandSpec, post: PostProcess
) -> tuple[float, float, pd.DataFrame]:
    """Grid-search the band on the training slices, scoring masks post-processed as deployed.

    Only the slices whose mask has bleed (the only ones the search scores) are kept in memory.
    Returns ``(lo, hi, table of lo, hi, score)``.
    """
    pairs = [pair for pair in read_pairs(root, train) if pair[1].any()]
    return fit_threshold_band(
        [image for image, _ in pairs],
        [mask for _, mask in pairs],
        inclusive_grid(*spec.lo),
        inclusive_grid(*spec.hi),
        close_kernel=post.close_kernel,
        open_kernel=post.open_kernel,
        channel=spec.channel,
        objective=spec.objective,  # type: ignore[arg-type]
    )


def band_predictor(lo: float, hi: float, spec: BandSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Slice -> raw 0/1 band map (post-processing is the evaluation's, as for the U-Net)."""
    return lambda image: predict_threshold_band(image, lo, hi, channel=spec.channel).astype(np.float64)

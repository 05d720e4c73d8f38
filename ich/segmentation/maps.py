"""Bleed-probability maps: what every segmenter writes and how a map becomes a mask.

Every segmenter (the U-Net, the grey-level band) ends in one probability map per slice at the
slice's resolution, so that one evaluation treats them all alike. Maps are stored as 16-bit
PNGs of ``round(p * PROB_SCALE)``: lossless enough (a step of 1.5e-5, far below any threshold
one would compare) at a fraction of the size of floats, and viewable. One
:class:`PostProcess` turns a map into a mask wherever that happens (U-Net validation, the
band's grid search, the evaluation), so a segmenter is tuned for exactly what is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ich.segmentation.postprocess import segment_slice

PROB_SCALE = 65535
"""Stored value of probability 1 (the 16-bit maximum)."""


@dataclass(frozen=True)
class PostProcess:
    """Probability map -> bleed mask: threshold, then closing, then opening (Hssayeni 2020).

    Attributes:
        threshold: the operating probability threshold (pixels with ``p >= threshold``).
        close_kernel: closing disc diameter in pixels (0 or 1: no closing).
        open_kernel: opening disc diameter in pixels (0 or 1: no opening).
    """

    threshold: float = 0.5
    close_kernel: int = 5
    open_kernel: int = 5

    def mask(self, prob: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The 0/1 uint8 mask of ``prob`` at ``threshold`` (default: the operating threshold)."""
        cut = self.threshold if threshold is None else threshold
        return segment_slice(prob, cut, self.close_kernel, self.open_kernel)


def write_prob_map(path: str | Path, prob: np.ndarray) -> None:
    """Store a probability map (values clipped to [0, 1]) as a 16-bit PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quantised = np.rint(np.clip(prob, 0.0, 1.0) * PROB_SCALE).astype(np.uint16)
    if not cv2.imwrite(str(path), quantised):
        raise OSError(f"cannot write probability map {path}")


def read_prob_map(path: str | Path) -> np.ndarray:
    """A map written by :func:`write_prob_map`, as float64 in [0, 1]."""
    quantised = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if quantised is None:
        raise FileNotFoundError(f"cannot read probability map {path}")
    if quantised.dtype != np.uint16 or quantised.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit single-channel probability map")
    return quantised.astype(np.float64) / PROB_SCALE

"""Hounsfield-unit windowing: the CT equivalent of MONAI's ``ScaleIntensityRange`` with clipping.

A window ``[lo, hi]`` maps ``lo`` HU to 0 and ``hi`` HU to 255, linearly, clipping outside.
Stacking three windows as RGB channels lets ImageNet-shaped networks see brain, blood/subdural
and soft-tissue contrast at once (seeds 002 and 004).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Window = tuple[float, float]

DEFAULT_WINDOWS: tuple[Window, ...] = ((0.0, 80.0), (-20.0, 180.0), (-150.0, 230.0))
"""Brain, subdural and soft-tissue windows in HU (seed 002's defaults)."""


def window(hu: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map HU in ``[lo, hi]`` linearly to ``uint8`` 0..255, clipping outside; rounds to nearest."""
    if not hi > lo:
        raise ValueError(f"window upper bound must exceed lower bound, got [{lo}, {hi}]")
    scale = np.float32(255.0 / (hi - lo))
    scaled = (hu.astype(np.float32, copy=False) - np.float32(lo)) * scale
    return np.clip(scaled + np.float32(0.5), 0, 255).astype(np.uint8)


def stack_windows(hu: np.ndarray, windows: Sequence[Sequence[float]] = DEFAULT_WINDOWS) -> np.ndarray:
    """Window a 2-D HU image once per window and stack the results as channels (H, W, C)."""
    if hu.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {hu.shape}")
    return np.stack([window(hu, lo, hi) for lo, hi in windows], axis=-1)

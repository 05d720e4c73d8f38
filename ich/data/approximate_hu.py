"""Approximate Hounsfield units from two 8-bit windows of the same slice (CT-ICH's brain and bone).

A pre-windowed release keeps no HU, but two windows of one slice together keep most of them: the
brain window (CT-ICH: level 40 / width 120, so -20..100 HU in steps of about 0.47 HU) is exact
inside its range, and the bone window (level 700 / width 3200, -900..2300 HU in steps of about
12.5 HU) covers the rest coarsely. :func:`hu_from_windows` takes the brain window's value where it
is not saturated and the bone window's elsewhere, kept on the saturated side of the brain window,
so that a slice can be shown again at any window a site might use (:mod:`ich.data.exports`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ich.data.windowing import levels_to_hu


def hu_from_windows(
    brain: np.ndarray, bone: np.ndarray, brain_window: Sequence[float], bone_window: Sequence[float]
) -> np.ndarray:
    """Approximate HU (float32, the images' shape) of a slice given as two 8-bit windows of it.

    Inside the brain window (grey 1..254) its value; where the brain window saturates, the bone
    window's value, clamped to the saturated side (at least the brain window's upper bound where the
    brain window is white, at most its lower bound where black), so the two never contradict: JPEG
    ringing in the bone image cannot put a white brain pixel below 100 HU.
    """
    if brain.shape != bone.shape:
        raise ValueError(f"brain and bone windows of one slice must have one shape, got {brain.shape} and {bone.shape}")
    fine = levels_to_hu(brain.astype(np.float32) / np.float32(255), brain_window)
    coarse = levels_to_hu(bone.astype(np.float32) / np.float32(255), bone_window)
    lo, hi = np.float32(brain_window[0]), np.float32(brain_window[1])
    hu = np.where(brain >= 255, np.maximum(coarse, hi), fine)
    return np.where(brain <= 0, np.minimum(coarse, lo), hu).astype(np.float32)


__all__ = ["hu_from_windows"]

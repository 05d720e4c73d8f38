"""Hounsfield-unit windowing: the CT equivalent of MONAI's ``ScaleIntensityRange`` with clipping.

A window ``[lo, hi]`` maps ``lo`` HU to 0 and ``hi`` HU to 255, linearly, clipping outside.
Stacking three windows as RGB channels lets ImageNet-shaped networks see brain, blood/subdural
and soft-tissue contrast at once (Cortes-Ferre 2023 and Alqnatri 2021).

DICOM slices store 16-bit integers and HU = stored * slope + intercept, so a slice can only
take 65,536 distinct HU values. :func:`stack_windows_stored` windows such slices through a
look-up table of those values (built once per slope/intercept/windows, then one gather per
pixel) instead of float arithmetic on every pixel; the table is computed with :func:`window`
itself, so the result is bit-identical to ``stack_windows(hu)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np

Window = tuple[float, float]

DEFAULT_WINDOWS: tuple[Window, ...] = ((0.0, 80.0), (-20.0, 180.0), (-150.0, 230.0))
"""Brain, subdural and soft-tissue windows in HU (Cortes-Ferre 2023's defaults)."""


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


@lru_cache(maxsize=16)
def _stored_lut(dtype: str, slope: float, intercept: float, windows: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``(2**bits, C)`` uint8 table: row ``i`` is the windowed value of the stored integer whose bit
    pattern is ``i``, rescaled to HU exactly as :attr:`ich.io.dicom.CTSlice.hu` does (float32)."""
    stored_type = np.dtype(dtype)
    patterns = np.arange(2 ** (8 * stored_type.itemsize), dtype=f"u{stored_type.itemsize}")
    hu = patterns.view(stored_type).astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return np.ascontiguousarray(stack_windows(hu[:, None], windows)[:, 0, :])


def stack_windows_stored(
    stored: np.ndarray, slope: float, intercept: float, windows: Sequence[Sequence[float]] = DEFAULT_WINDOWS
) -> np.ndarray:
    """``stack_windows(stored * slope + intercept)`` for stored DICOM values, via a look-up table.

    8- and 16-bit integer arrays use the table (about 3x faster than the float path for a
    512x512 slice, see ``bench/convert_speed.py``); any other dtype falls back to the float path.
    """
    if stored.ndim != 2:
        raise ValueError(f"expected a 2-D slice, got shape {stored.shape}")
    key = tuple((float(lo), float(hi)) for lo, hi in windows)
    if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2:
        lut = _stored_lut(stored.dtype.str, float(slope), float(intercept), key)
        return np.take(lut, stored.view(f"u{stored.dtype.itemsize}"), axis=0)
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return stack_windows(hu, key)


def recut_window(grey: np.ndarray, source: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """A uint8 image windowed at ``source`` (``[lo, hi]`` HU) shown at the window ``target`` instead,
    as uint8 (:func:`rewindow`: exact inside ``source``, saturated pixels stay saturated)."""
    levels = grey.astype(np.float32) / np.float32(255)
    shown = rewindow(levels, source, np.float32(target[0]), np.float32(target[1]))
    return np.clip(shown * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8)


T = TypeVar("T")  # a NumPy array or a torch tensor (torch is not imported here: convert does not need it)


def levels_to_hu(levels: T, source: Sequence[float]) -> T:
    """The HU that grey levels in [0, 1] of an image windowed at ``source`` (``[lo, hi]`` HU) stand for.

    Exact inside the window; a level of 0 or 1 only says "at or beyond" ``lo`` or ``hi``.
    """
    lo, hi = float(source[0]), float(source[1])
    return levels * (hi - lo) + lo


def rewindow(levels: T, source: Sequence[float], lo: float | T, hi: float | T) -> T:
    """Grey levels in [0, 1] of an image windowed at ``source``, shown at window ``[lo, hi]`` HU instead.

    A pre-windowed image has lost what lay outside its window, so saturated pixels stay
    saturated: a pixel at 1 (at or above ``source``'s upper bound) stays 1 and one at 0 stays 0,
    even where the new window would show a value the image no longer has. Inside, the mapping
    is exact: ``levels_to_hu`` then the new window, clipped to [0, 1]. Works on NumPy arrays and
    tensors alike (``lo``/``hi`` may be per-image arrays that broadcast).
    """
    shown = ((levels_to_hu(levels, source) - lo) / (hi - lo)).clip(0, 1)
    shown = shown * (levels > 0)
    return shown + (1 - shown) * (levels >= 1)

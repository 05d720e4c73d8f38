"""Thin slices into slabs of the training thickness: mean Hounsfield units over each slab.

A network trained on 5 mm slices has never seen a 0.625 mm slice: it is eight times noisier
(noise falls with the square root of the slice thickness) and shows anatomy a thick slice
averages away, and a detector reads that noise as bleed (a real normal thin-slice study: 159 of
238 slices flagged). Scanners reconstruct thick slices from thin ones by averaging along z; doing
the same, in HU before any window, gives the networks the slices they were trained on. Every
source slice belongs to exactly one slab, so each slab's findings map back to its slices.
"""

from __future__ import annotations

import numpy as np

THIN_FRACTION = 0.75
"""A series is reformatted when its slice spacing is below this fraction of the training
thickness (3.75 mm for 5 mm training slices): 3 mm and thinner, not 4 or 5 mm."""


def needs_slabs(spacing_mm: float, thickness_mm: float | None) -> bool:
    """Whether a series of ``spacing_mm`` is thin for networks trained on ``thickness_mm`` slices."""
    if thickness_mm is None or not np.isfinite(spacing_mm) or spacing_mm <= 0:
        return False
    return spacing_mm < THIN_FRACTION * thickness_mm


def slab_members(z: np.ndarray, thickness_mm: float) -> list[np.ndarray]:
    """Positions (indices into ``z``, ascending z) of the slices in each slab of ``thickness_mm``.

    Slab ``k`` holds the slices whose ``z`` lies in ``[z0 + k T, z0 + (k + 1) T)``, ``z0`` the
    lowest slice; empty slabs (a gap in the series) are left out, so every slab has slices and
    every slice one slab.
    """
    if thickness_mm <= 0:
        raise ValueError(f"slab thickness must be positive, got {thickness_mm}")
    z = np.asarray(z, dtype=float)
    if z.size == 0:
        raise ValueError("no slices to group into slabs")
    order = np.argsort(z, kind="stable")
    # a hair of tolerance so that slices exactly on a boundary (z0 + 8 x 0.625) open the next slab
    slab = np.floor((z[order] - z[order[0]]) / thickness_mm + 1e-6).astype(int)
    bounds = np.flatnonzero(np.diff(slab)) + 1
    return np.split(order, bounds)


def mean_slab(hu_slices: list[np.ndarray]) -> np.ndarray:
    """The slab's image: the mean HU of its slices (float32), as a scanner's thick reconstruction."""
    shapes = {s.shape for s in hu_slices}
    if len(shapes) != 1:
        raise ValueError(f"slices of one slab must share a shape, got {sorted(shapes)}")
    return np.mean(np.stack(hu_slices).astype(np.float32), axis=0)

"""Which window a pre-windowed head CT image was exported with, estimated from the image itself.

An 8-bit export of a window ``[lo, hi]`` HU maps a pixel of ``h`` HU to
``clip(255 (h - lo) / (hi - lo), 0, 255)``. Inside the skull, head CT shows the same tissues
everywhere (parenchyma, CSF, some partial volume and calcification), so the distribution of the
intracranial HU is much the same from slice to slice and scanner to scanner. The grey-level
quantiles of an export's intracranial pixels are then the reference HU quantiles
(:class:`IntracranialReference`) seen through that clipped linear map, and the map's two unknowns
are fitted to them (least squares over the quantiles, saturated ones included, since where the
distribution saturates says where the window ends). Fitting a whole study's slices at once steadies
the estimate; a single image is fitted alone.

The intracranial region is found without HU: the skull saturates white in every brain-range
window (bone is several hundred HU), so its largest white component is the skull, its convex hull
holds the head's inside, and a band along the skull and every other white pixel are left out
(partial volume, calcification: what one window saturates another may not).

:func:`estimate_window` raises :class:`WindowEstimateError` when it cannot estimate: no closed
skull, too few intracranial pixels, a fit that leaves large residuals, or a window outside the
range head CT is read at. :func:`harmonise` re-maps an export to the training window from the
estimate, which is what ``ich predict`` does to pre-windowed images before any network sees them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ich.data.windowing import window

QUANTILES = np.round(np.linspace(0.02, 0.98, 49), 4)
"""Quantiles of the intracranial pixels the fit matches."""
SKULL_GREY = 250
"""Grey level at or above which an export's pixel counts as saturated white (JPEG leaves 250-255)."""
SKULL_THRESHOLDS_HU = tuple(float(v) for v in range(50, 410, 10))
"""Upper window bounds (HU) the reference is tabulated at: an export of ``[lo, hi]`` saturates
everything from ``hi`` up, so its skull mask, and the intracranial pixels it leaves, are those of a
bone threshold at ``hi``; the fit reads the reference row of the ``hi`` it tries."""
MIN_INTRACRANIAL_PIXELS = 400
"""Fewer intracranial pixels (over the slices fitted) than this: no estimate."""
LEVEL_RANGE = (-50.0, 150.0)
WIDTH_RANGE = (40.0, 1000.0)
"""Estimates outside these (HU) are not a brain-range window: refused."""
MAX_RESIDUAL = 20.0
"""Root-mean-square grey-level residual of the fit above which the image does not look like
intracranial CT seen through a window: refused."""
REFERENCE_FILE = Path(__file__).with_name("intracranial_hu.json")


class WindowEstimateError(ValueError):
    """The image's window cannot be estimated; the message says why."""


@dataclass(frozen=True)
class IntracranialReference:
    """The reference intracranial HU: one row of :data:`QUANTILES` per bone threshold of
    :data:`SKULL_THRESHOLDS_HU`, and where it was measured."""

    hu: tuple[tuple[float, ...], ...]
    source: str
    slices: int

    @staticmethod
    def load(path: str | Path = REFERENCE_FILE) -> IntracranialReference:
        data = json.loads(Path(path).read_text())
        if list(data["quantiles"]) != QUANTILES.tolist() or list(data["skull_hu"]) != list(SKULL_THRESHOLDS_HU):
            raise ValueError(
                f"{path}: not tabulated at ich.data.window_estimate's quantiles and thresholds; rebuild it"
            )
        return IntracranialReference(tuple(tuple(row) for row in data["hu"]), data["source"], int(data["slices"]))

    def save(self, path: str | Path) -> None:
        record = {"quantiles": QUANTILES.tolist(), "skull_hu": list(SKULL_THRESHOLDS_HU), **asdict(self)}
        Path(path).write_text(json.dumps(record) + "\n")


@dataclass(frozen=True)
class WindowEstimate:
    """An estimated export window (HU) with the fit's residual (grey levels) and the pixels it used."""

    lo: float
    hi: float
    residual: float
    pixels: int

    @property
    def level(self) -> float:
        return (self.lo + self.hi) / 2

    @property
    def width(self) -> float:
        return self.hi - self.lo

    def describe(self) -> str:
        return f"level {self.level:.0f} / width {self.width:.0f} HU (fit residual {self.residual:.1f} grey levels)"


def intracranial_mask(skull: np.ndarray) -> np.ndarray | None:
    """The inside of the skull given a boolean bone mask of one slice: the convex hull of the largest
    bone component, less a band along the bone (partial volume); ``None`` when nothing is left.

    The hull, not the enclosed holes, so that a skull broken by the foramina, a thin temporal bone
    or an export's blur still encloses the brain.
    """
    band = max(3, (min(skull.shape) // 128) | 1)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(skull.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    largest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    points = cv2.findNonZero(largest)
    hull = np.zeros_like(largest)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    near_bone = cv2.dilate(largest, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)))
    inside = (hull > 0) & (near_bone == 0) & ~skull
    return inside if inside.any() else None


def reference_from_hu(slices: Sequence[np.ndarray], source: str) -> IntracranialReference:
    """The reference: for each bone threshold, the median over ``slices`` (HU images) of each slice's
    intracranial quantiles, found as in an export saturating at that threshold (slices without a
    skull at a threshold are passed over there)."""
    rows, used = [], set()
    for threshold in SKULL_THRESHOLDS_HU:
        per_slice = []
        for k, hu in enumerate(slices):
            white = hu >= threshold
            inside = intracranial_mask(white)
            if inside is not None and inside.sum() >= MIN_INTRACRANIAL_PIXELS:
                per_slice.append(np.quantile(hu[inside], QUANTILES))
                used.add(k)
        if not per_slice:
            raise ValueError(f"no slice with a skull at {threshold:g} HU: no intracranial reference")
        rows.append(tuple(round(float(v), 2) for v in np.median(np.stack(per_slice), axis=0)))
    return IntracranialReference(tuple(rows), source, len(used))


@lru_cache(maxsize=1)
def _shipped_reference() -> IntracranialReference:
    """:data:`REFERENCE_FILE`, read once per process (``ich predict --each`` estimates every study)."""
    return IntracranialReference.load()


def _grey_quantiles(greys: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    pixels = []
    for grey in greys:
        if grey.ndim != 2:
            raise ValueError(f"expected 2-D grey images, got shape {grey.shape}")
        inside = intracranial_mask(grey >= SKULL_GREY)
        if inside is not None:
            pixels.append(grey[inside])
    values = np.concatenate(pixels) if pixels else np.empty(0, np.uint8)
    if values.size < MIN_INTRACRANIAL_PIXELS:
        raise WindowEstimateError(
            f"no closed skull with at least {MIN_INTRACRANIAL_PIXELS} intracranial pixels inside "
            f"(found {values.size} in {len(pixels)} of {len(greys)} images): not a head CT slice in a brain window"
        )
    return np.quantile(values.astype(np.float64), QUANTILES), int(values.size)


def _fit(table: np.ndarray, observed: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``(lo, hi, rms)`` of ``observed ~ clip(255 (reference - lo) / (hi - lo), 0, 255)``,
    the reference being ``table``'s row for the bone threshold nearest ``hi``: a coarse grid, then two
    finer ones around the best point."""
    thresholds = np.asarray(SKULL_THRESHOLDS_HU)
    los, widths = np.arange(-400.0, 200.0, 4.0), np.geomspace(20.0, 1500.0, 160)
    best = (np.inf, 0.0, 1.0)
    for _ in range(3):
        lo, width = np.meshgrid(los, widths, indexing="ij")
        row = np.abs((lo + width)[..., None] - thresholds).argmin(axis=-1)
        model = np.clip(255.0 * (table[row] - lo[..., None]) / width[..., None], 0, 255)
        error = ((model - observed) ** 2).mean(axis=-1)
        i, j = np.unravel_index(int(np.argmin(error)), error.shape)
        best = (float(error[i, j]), float(los[i]), float(widths[j]))
        span_lo, ratio = (los[1] - los[0]) * 2, (widths[1] / widths[0]) ** 2
        los = np.linspace(best[1] - span_lo, best[1] + span_lo, 41)
        widths = np.geomspace(best[2] / ratio, best[2] * ratio, 41)
    mse, lo, width = best
    return lo, lo + width, float(np.sqrt(mse))


def estimate_window(greys: Sequence[np.ndarray], reference: IntracranialReference | None = None) -> WindowEstimate:
    """The window the 8-bit grey images ``greys`` (slices of one study, or one image) were exported with."""
    reference = reference or _shipped_reference()
    observed, pixels = _grey_quantiles(greys)
    lo, hi, residual = _fit(np.asarray(reference.hu, dtype=np.float64), observed)
    estimate = WindowEstimate(round(lo, 1), round(hi, 1), round(residual, 2), pixels)
    if residual > MAX_RESIDUAL:
        raise WindowEstimateError(
            f"the intracranial grey levels do not fit any window of head CT (residual {residual:.1f} > "
            f"{MAX_RESIDUAL:g} grey levels): an inverted, gamma-corrected or non-CT image?"
        )
    if not (LEVEL_RANGE[0] <= estimate.level <= LEVEL_RANGE[1] and WIDTH_RANGE[0] <= estimate.width <= WIDTH_RANGE[1]):
        raise WindowEstimateError(
            f"estimated {estimate.describe()}, outside the brain-range windows head CT is read at "
            f"(level {LEVEL_RANGE[0]:g}..{LEVEL_RANGE[1]:g}, width {WIDTH_RANGE[0]:g}..{WIDTH_RANGE[1]:g} HU)"
        )
    return estimate


def harmonise(grey: np.ndarray, estimate: WindowEstimate, target: Sequence[float]) -> np.ndarray:
    """An export re-mapped to the ``[lo, hi]`` HU window ``target`` from its estimated window.

    Saturated pixels stay saturated (what the export clipped is gone): white stays white, black
    black, whatever the target would show there.
    """
    hu = grey.astype(np.float32) * np.float32(estimate.width / 255.0) + np.float32(estimate.lo)
    shown = window(hu, float(target[0]), float(target[1]))
    shown[grey >= 255] = 255
    shown[grey <= 0] = 0
    return shown


__all__ = [
    "QUANTILES",
    "IntracranialReference",
    "WindowEstimate",
    "WindowEstimateError",
    "estimate_window",
    "harmonise",
    "intracranial_mask",
    "reference_from_hu",
]

"""How other sites send a slice, simulated from its (approximate) Hounsfield units.

A site exports one grey window of its own choosing (level 20-80, width 80-400 HU are common),
quantised to 8 bits at that window, compressed as PNG or JPEG at some quality, often at another
matrix, from a scanner with its own noise and reconstruction kernel. :func:`render_export` applies
one :class:`ExportSetting` to an HU slice in the order a scanner and its export would: kernel and
noise on the HU image, the window with 8-bit quantisation, the resampling, then the codec round
trip. :data:`NAMED_EXPORTS` are the settings the robustness measurement reports
(``experiments/other_sites.py``); :class:`ExportRanges` draws them at random, and
:class:`ExportAugmentation` shows training slices that way, harmonised as ``ich predict`` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from ich.data.approximate_hu import hu_from_windows
from ich.data.window_estimate import WindowEstimate, harmonise
from ich.data.windowing import window


@dataclass(frozen=True)
class ExportSetting:
    """One way of sending a slice.

    ``window``: ``[lo, hi]`` HU; ``noise_hu``: standard deviation of added Gaussian noise (HU);
    ``kernel``: ``sharp`` (unsharp mask, a bone or edge kernel), ``smooth`` (Gaussian, a soft one)
    or ``none``; ``resample``: the matrix scaled by this factor and back (1: none); ``codec``:
    ``png`` (lossless) or ``jpeg`` at ``quality``.
    """

    window: tuple[float, float]
    noise_hu: float = 0.0
    kernel: str = "none"
    resample: float = 1.0
    codec: str = "png"
    quality: int = 95

    def __post_init__(self) -> None:
        if not self.window[1] > self.window[0]:
            raise ValueError(f"an export window must be [lo, hi] with hi > lo, got {list(self.window)}")
        if self.kernel not in ("none", "sharp", "smooth"):
            raise ValueError(f"kernel must be none, sharp or smooth, got {self.kernel!r}")
        if self.codec not in ("png", "jpeg"):
            raise ValueError(f"codec must be png or jpeg, got {self.codec!r}")
        if not 0 < self.resample <= 2:
            raise ValueError(f"resample must be in (0, 2], got {self.resample}")


def _window_of(level: float, width: float) -> tuple[float, float]:
    return (level - width / 2, level + width / 2)


NAMED_EXPORTS: dict[str, ExportSetting] = {
    "png_L40_W80": ExportSetting(_window_of(40, 80)),
    "png_L40_W120": ExportSetting(_window_of(40, 120)),
    "rsna_L40_W80_jpeg70": ExportSetting(_window_of(40, 80), codec="jpeg", quality=70),
    "png_L35_W150": ExportSetting(_window_of(35, 150)),
    "png_L50_W250": ExportSetting(_window_of(50, 250)),
    "png_L40_W400": ExportSetting(_window_of(40, 400)),
    "png_L60_W200_half_matrix": ExportSetting(_window_of(60, 200), resample=0.5),
    "jpeg_q40_L40_W120": ExportSetting(_window_of(40, 120), codec="jpeg", quality=40),
    "noise6_sharp_L40_W120": ExportSetting(_window_of(40, 120), noise_hu=6.0, kernel="sharp"),
    "smooth_L45_W100_jpeg80": ExportSetting(_window_of(45, 100), kernel="smooth", codec="jpeg", quality=80),
}
"""Named settings of the robustness measurement. Outside what :class:`ExportRanges` trains on by
default: width 400 (``png_L40_W400``) and JPEG quality 40 (``jpeg_q40_L40_W120``)."""


@dataclass(frozen=True)
class ExportRanges:
    """Ranges export settings are drawn from for training (uniform; ``kernel`` each with ``kernel_share``)."""

    level: tuple[float, float] = (20.0, 80.0)
    width: tuple[float, float] = (80.0, 300.0)
    noise_hu: tuple[float, float] = (0.0, 4.0)
    kernel_share: float = 0.2
    resample: tuple[float, float] = (0.6, 1.0)
    jpeg_share: float = 0.5
    quality: tuple[int, int] = (60, 95)

    def draw(self, rng: np.random.Generator) -> ExportSetting:
        """One setting."""
        level, width = rng.uniform(*self.level), rng.uniform(*self.width)
        kernel = rng.choice(["none", "sharp", "smooth"], p=[1 - self.kernel_share, *[self.kernel_share / 2] * 2])
        return ExportSetting(
            window=_window_of(float(level), float(width)),
            noise_hu=float(rng.uniform(*self.noise_hu)),
            kernel=str(kernel),
            resample=float(rng.uniform(*self.resample)),
            codec="jpeg" if rng.uniform() < self.jpeg_share else "png",
            quality=int(rng.integers(self.quality[0], self.quality[1] + 1)),
        )


def render_export(hu: np.ndarray, setting: ExportSetting, rng: np.random.Generator) -> np.ndarray:
    """The 8-bit grey image (the input's shape) a site sends of the HU slice ``hu`` under ``setting``."""
    if hu.ndim != 2:
        raise ValueError(f"expected a 2-D HU slice, got shape {hu.shape}")
    image = hu.astype(np.float32, copy=True)
    if setting.kernel == "smooth":
        image = cv2.GaussianBlur(image, (0, 0), 1.0)
    elif setting.kernel == "sharp":
        image = cv2.addWeighted(image, 1.8, cv2.GaussianBlur(image, (0, 0), 1.0), -0.8, 0)
    if setting.noise_hu:
        image = image + rng.normal(0.0, setting.noise_hu, image.shape).astype(np.float32)
    grey = window(image, *setting.window)
    if setting.resample != 1.0:
        rows, cols = grey.shape
        small = (max(1, round(cols * setting.resample)), max(1, round(rows * setting.resample)))
        grey = cv2.resize(cv2.resize(grey, small, interpolation=cv2.INTER_AREA), (cols, rows), cv2.INTER_LINEAR)
    if setting.codec == "jpeg":
        ok, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, setting.quality])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode the export")
        grey = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return grey


@dataclass(frozen=True)
class ExportAugmentation:
    """Training slices shown as another site sends them, then as ``ich predict`` harmonises them.

    With probability ``share`` an item's slices (the slice and its neighbours, one site's export of
    one study: one setting for all) are turned into approximate HU from the release's two windows
    (:func:`ich.data.approximate_hu.hu_from_windows`: ``brain`` is the first channel's ``[lo, hi]`` HU,
    ``bone`` the third's), exported at a setting drawn from ``ranges`` (:func:`render_export`) and
    re-mapped to the brain window (:func:`ich.data.window_estimate.harmonise`) from a window
    estimate that misses the true one as the estimator does: level off by a normal draw of
    ``level_error_hu`` standard deviation, width scaled by a log-uniform factor within
    ``width_ratio`` (``docs/results/window-estimator.json``: per study, median level error 2 HU, width
    ratio 0.7-1.35 at the 10th-90th percentiles). The result is grey (R = G = B), as a harmonised
    export reaches the networks.

    A slice without a bone window (its first and third channels equal: a grey release such as
    PHE-SICH's or RSNA's PNGs) keeps no HU beyond its window, so its item is left as it is.
    """

    share: float
    brain: tuple[float, float]
    bone: tuple[float, float]
    ranges: ExportRanges = ExportRanges()
    level_error_hu: float = 5.0
    width_ratio: tuple[float, float] = (0.7, 1.4)

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"exports.share must be in (0, 1], got {self.share}")
        for name in ("brain", "bone"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise ValueError(f"exports.{name} must be the release's [lo, hi] HU window, got {[lo, hi]}")
        if not 0 < self.width_ratio[0] <= self.width_ratio[1] or self.level_error_hu < 0:
            raise ValueError("exports: width_ratio must be [low, high] > 0 and level_error_hu >= 0")

    @staticmethod
    def from_params(section: Mapping[str, Any]) -> ExportAugmentation:
        """An ``exports`` params mapping: this class's keys and :class:`ExportRanges`' beside them."""
        own = {f.name for f in fields(ExportAugmentation)} - {"ranges"}
        ranges = {f.name for f in fields(ExportRanges)}
        unknown = sorted(set(section) - own - ranges)
        if unknown:
            raise ValueError(f"exports: unknown keys {unknown}; known: {sorted(own | ranges)}")
        tupled = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
        return ExportAugmentation(
            ranges=ExportRanges(**{k: v for k, v in tupled.items() if k in ranges}),
            **{k: v for k, v in tupled.items() if k in own},
        )

    def __call__(self, slices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``slices`` (uint8 ``(S, H, W, 3)``, one item's) exported and harmonised with probability ``share``."""
        if slices.ndim != 4 or slices.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 (slices, H, W, 3) with a bone window in the third channel, got {slices.shape}"
            )
        if rng.uniform() >= self.share or np.array_equal(slices[..., 0], slices[..., 2]):
            return slices
        setting = self.ranges.draw(rng)
        lo, hi = setting.window
        level = (lo + hi) / 2 + rng.normal(0.0, self.level_error_hu)
        width = (hi - lo) * float(np.exp(rng.uniform(*np.log(self.width_ratio))))
        estimate = WindowEstimate(level - width / 2, level + width / 2, 0.0, 0)
        out = np.empty_like(slices)
        for k, image in enumerate(slices):
            hu = hu_from_windows(image[..., 0], image[..., 2], self.brain, self.bone)
            out[k] = harmonise(render_export(hu, setting, rng), estimate, self.brain)[..., None]
        return out


__all__ = ["NAMED_EXPORTS", "ExportAugmentation", "ExportRanges", "ExportSetting", "render_export"]

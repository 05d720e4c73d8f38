"""How other sites send a slice, simulated from its (approximate) Hounsfield units.

A site exports one grey window of its own choosing (level 20-80, width 80-400 HU are common),
quantised to 8 bits at that window, compressed as PNG or JPEG at some quality, often at another
matrix, from a scanner with its own noise and reconstruction kernel. :func:`render_export` applies
one :class:`ExportSetting` to an HU slice in the order a scanner and its export would: kernel and
noise on the HU image, the window with 8-bit quantisation, the resampling, then the codec round
trip. :data:`NAMED_EXPORTS` are the settings the robustness measurement reports
(``experiments/other_sites.py``); :class:`ExportRanges` draws them at random for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


__all__ = ["NAMED_EXPORTS", "ExportRanges", "ExportSetting", "render_export"]

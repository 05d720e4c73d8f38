"""Framing a slice before it is resized: optional crop to the head, then padding to a square.

Another hospital's images differ in field of view, matrix shape, table and border: a head
can fill the frame or a third of it, and a 512 x 630 image squashed to a square deforms it.
Framing removes both differences before the resize:

- ``pad`` (default): the image is padded with zeros (air, below every window) to a centred
  square, so the aspect ratio is kept; a square image is left exactly as it is.
- ``head``: first the bounding box of the head is cropped: the largest connected component of
  the pixels brighter than ``threshold`` in any window, after a morphological opening that
  cuts thin bridges (a headrest, a table edge), grown by ``margin`` of its side; then padded.

The same frame is applied to the slice's mask, and the pixel spacing scales by one isotropic
factor (framed side / output side), so volumes stay in mL.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRAMINGS = ("pad", "head")


@dataclass(frozen=True)
class Frame:
    """Rows ``top:bottom`` and columns ``left:right`` of the source, placed in a ``side`` x ``side`` square."""

    top: int
    bottom: int
    left: int
    right: int
    side: int

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The framed square of ``image`` (H, W[, C]); outside the crop is zero."""
        crop = image[self.top : self.bottom, self.left : self.right]
        height, width = crop.shape[:2]
        out = np.zeros((self.side, self.side, *image.shape[2:]), dtype=image.dtype)
        row, col = (self.side - height) // 2, (self.side - width) // 2
        out[row : row + height, col : col + width] = crop
        return out

    def restore(self, framed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """The inverse of :meth:`apply` for a ``side`` x ``side`` array: back on the source grid ``shape``.

        What the frame cropped away comes back as zero (for a mask: no bleed there).
        """
        if framed.shape[:2] != (self.side, self.side):
            raise ValueError(f"expected a {self.side}x{self.side} array, got {framed.shape[1]}x{framed.shape[0]}")
        height, width = self.bottom - self.top, self.right - self.left
        row, col = (self.side - height) // 2, (self.side - width) // 2
        out = np.zeros((*shape, *framed.shape[2:]), dtype=framed.dtype)
        out[self.top : self.bottom, self.left : self.right] = framed[row : row + height, col : col + width]
        return out


def head_box(image: np.ndarray, threshold: int = 20, margin: float = 0.04) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the head in a windowed uint8 image (H, W[, C]).

    Raises ``ValueError`` when nothing is brighter than ``threshold`` (an empty or black slice):
    a crop of nothing would hide the problem.
    """
    grey = image.max(axis=2) if image.ndim == 3 else image
    foreground = (grey > threshold).astype(np.uint8)
    if not foreground.any():
        raise ValueError(f"no pixel above {threshold}: nothing to crop to")
    size = max(3, (min(grey.shape) // 64) | 1)  # odd, about 1.5% of the side
    opened = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    if not opened.any():
        opened = foreground  # only thin structures: keep them rather than nothing
    count, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    largest = 1 + int(np.argmax(stats[1:count, cv2.CC_STAT_AREA]))
    left, top, width, height = (int(v) for v in stats[largest, :4])
    grow = int(round(margin * max(width, height)))
    rows, cols = grey.shape
    return max(0, top - grow), min(rows, top + height + grow), max(0, left - grow), min(cols, left + width + grow)


def frame_for(image: np.ndarray, framing: str) -> Frame:
    """The frame of ``image`` under ``framing`` (one of :data:`FRAMINGS`)."""
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    rows, cols = image.shape[:2]
    top, bottom, left, right = head_box(image) if framing == "head" else (0, rows, 0, cols)
    return Frame(top, bottom, left, right, side=max(bottom - top, right - left))

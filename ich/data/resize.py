"""Resize an image to a square side: area averaging when shrinking (no aliasing), bilinear when enlarging."""

from __future__ import annotations

import cv2
import numpy as np


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` (H, W[, C]) at ``size`` x ``size``; returned as is when already that size."""
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

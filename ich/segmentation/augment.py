"""Random linear (affine) augmentation of a slice and its bleed mask, as in Hssayeni 2020.

Hssayeni 2020 augments with rotation (up to 20 degrees), width/height shift (0.1), shear (0.1) and zoom
(0.2), and deliberately no flips (every head enters the scanner facing the same way) and no
non-linear deformations (they produce slices no scanner would). It used Keras'
ImageDataGenerator; this module reproduces its geometry with one 2x3 matrix per draw, applied by
``cv2.warpAffine`` to the image (bilinear) and to the mask (nearest, so it stays binary): the
two can never drift apart because they share the matrix.

Interpretation of the paper's numbers (its text says "0.1% of the image", its code is Keras):
- shift: uniform in ``[-shift, shift]`` times the width (x) and the height (y), as Keras does;
- zoom: one factor per axis, each uniform in ``[1 - zoom, 1 + zoom]``, as Keras does;
- shear: a shear *factor* (``x' = x + s * y``) uniform in ``[-shear, shear]``. Keras reads
  ``shear_range`` in degrees, which would make 0.1 a no-op; the factor (about 5.7 degrees at
  0.1) is the evident intent.
Everything is about the image centre (:func:`augment_pair`) or, for the U-Net's training
crops, the crop centre (:func:`augment_crop`). Pixels mapped from outside the slice are 0 (air
in the windowed images, background in the mask) rather than Keras' edge replication, which
would smear skull and bleed touching the border.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AffineRanges:
    """Maximum magnitude of each random transform; zeros everywhere give the identity."""

    rotation_deg: float = 20.0
    shift: float = 0.1
    shear: float = 0.1
    zoom: float = 0.2


def random_affine_matrix(height: int, width: int, ranges: AffineRanges, rng: np.random.Generator) -> np.ndarray:
    """Draw one forward 2x3 affine matrix (output = M @ [x, y, 1]) for a slice of that size.

    Order, as in Keras: zoom, then shear, then rotation about the centre, then the shift.
    The draws are made in a fixed order so that a seeded ``rng`` always gives the same matrix.
    """
    angle = np.deg2rad(rng.uniform(-ranges.rotation_deg, ranges.rotation_deg))
    shift_x = rng.uniform(-ranges.shift, ranges.shift) * width
    shift_y = rng.uniform(-ranges.shift, ranges.shift) * height
    shear = rng.uniform(-ranges.shear, ranges.shear)
    zoom_x = rng.uniform(1.0 - ranges.zoom, 1.0 + ranges.zoom)
    zoom_y = rng.uniform(1.0 - ranges.zoom, 1.0 + ranges.zoom)

    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    to_centre = np.array([[1.0, 0.0, -centre_x], [0.0, 1.0, -centre_y], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, centre_x + shift_x], [0.0, 1.0, centre_y + shift_y], [0.0, 0.0, 1.0]])
    cos, sin = np.cos(angle), np.sin(angle)
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    shear_m = np.array([[1.0, shear, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    scale = np.diag([zoom_x, zoom_y, 1.0])
    return (back @ rotate @ shear_m @ scale @ to_centre)[:2]


def warp(array: np.ndarray, matrix: np.ndarray, interpolation: int, size: int | None = None) -> np.ndarray:
    """Apply ``matrix`` to an HxW or HxWxC array, keeping its dtype; outside is 0.

    The output has the input's shape, or is ``size`` x ``size`` (same channels) when ``size`` is
    given: the matrix then maps the input into that smaller canvas (see :func:`augment_crop`).
    """
    height, width = (array.shape[0], array.shape[1]) if size is None else (size, size)
    out = cv2.warpAffine(
        array,
        matrix,
        (width, height),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape((height, width, *array.shape[2:]))  # OpenCV drops a channel axis of size 1


def augment_pair(
    image: np.ndarray, mask: np.ndarray, ranges: AffineRanges, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Transform ``image`` (bilinear) and ``mask`` (nearest) with the same random affine matrix.

    ``mask`` may be boolean; it is warped as uint8 and returned in its own dtype.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    matrix = random_affine_matrix(image.shape[0], image.shape[1], ranges, rng)
    warped_mask = warp(mask.astype(np.uint8), matrix, cv2.INTER_NEAREST).astype(mask.dtype)
    return warp(image, matrix, cv2.INTER_LINEAR), warped_mask


def augment_crop(
    image: np.ndarray,
    mask: np.ndarray,
    corner: tuple[int, int],
    crop: int,
    ranges: AffineRanges,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``crop`` x ``crop`` window at ``corner`` (y, x) of a slice, randomly transformed.

    The transform is drawn as for a ``crop``-sized image (:func:`random_affine_matrix`: about the
    crop centre, shifts relative to the crop side), which is what Hssayeni 2020 did by augmenting its
    160x160 windows. It is applied to the *slice*, warping straight into the crop canvas, so
    the corners a rotation or a shrink uncovers show the real neighbouring anatomy, not a black
    fill inside the head; only parts of the window that map from outside the slice are 0. A
    bleed near the crop centre stays in the crop, so positive crops stay positive. Image
    (bilinear) and mask (nearest) share the matrix; with zero ranges this is
    :func:`ich.segmentation.crops.extract_crops` of that one window.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} differ in size")
    y, x = corner
    to_crop = np.array([[1.0, 0.0, -x], [0.0, 1.0, -y], [0.0, 0.0, 1.0]])
    matrix = random_affine_matrix(crop, crop, ranges, rng) @ to_crop
    warped_mask = warp(mask.astype(np.uint8), matrix, cv2.INTER_NEAREST, crop).astype(mask.dtype)
    return warp(image, matrix, cv2.INTER_LINEAR, crop), warped_mask

"""Read pre-windowed images (PNG, JPEG, ...) as ``uint8`` RGB arrays (H, W, 3).

These images carry no Hounsfield units: whatever windowing produced them is baked in and the
grey levels are used as they are.

Channel mapping (documented contract of :func:`read_image` and :func:`read_windowed_image`):

* greyscale (``L``, ``1``, ``LA``, ``I;16``, ``I``, ``F``) -> the grey level in R, G and B;
  16-bit and 32-bit grey are scaled to 8 bits by ``value / 257`` (65535 -> 255) after
  clipping to 0..65535, unless every value already lies in 0..255 (then kept as is). One whose
  values would keep fewer than :data:`MIN_GREY_LEVELS` of the 256 levels (values 24-2024 become
  0-8) is refused: those are stored CT numbers, not a windowed display image, and read as one
  they would be a black slice;
* ``RGB`` -> unchanged; ``RGBA``/``LA`` -> the alpha channel is dropped (not composited);
* palette (``P``), ``CMYK``, ``YCbCr`` and other colour modes -> converted to RGB by Pillow;
* EXIF orientation is ignored (CT exports carry none; rotating would desync masks).

Two-window releases (CT-ICH Kaggle JPG: a brain-window and a bone-window image per slice):
:func:`read_windowed_image(brain, bone_path=bone)` returns **R = brain window, G = brain
window, B = bone window** (brain L40/W120 where the blood contrast is; bone L700/W3200 for
skull and fractures). Without a bone image (``bone_path=None``) all three channels are the
brain window, and the manifest row says so in its ``note`` column.

Unreadable files raise :class:`ich.io.dicom.UnusableSliceError` with a reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ich.io.unusable import UnusableSliceError

CHANNEL_MAPPING: dict[str, str] = {
    "grey": "R = G = B = grey level",
    "rgb": "R, G, B unchanged (alpha dropped)",
    "brain+bone": "R = brain window, G = brain window, B = bone window",
    "brain only": "R = G = B = brain window (bone window image missing)",
}
"""Human-readable channel mapping per input kind (for source.json and reports)."""


def image_channels(image: np.ndarray, *, bone: bool) -> str:
    """Which windows a pre-windowed slice (H, W, 3) really has, for the index's ``channels`` column.

    ``brain+bone`` (composed from a brain and a bone image), ``grey`` (one window: R = G = B, so a
    network trained on several windows sees one), or ``rgb`` (three channels as stored).
    """
    if bone:
        return "brain+bone"
    same = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
    return "grey" if same else "rgb"


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise UnusableSliceError(path, "image file not found")
    if path.stat().st_size == 0:
        raise UnusableSliceError(path, "empty image file (0 bytes)")
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError as exc:
        raise UnusableSliceError(path, "not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableSliceError(path, f"truncated or corrupted image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise UnusableSliceError(path, f"image too large ({exc})") from exc
    if img.width < 1 or img.height < 1:
        raise UnusableSliceError(path, f"image has no pixels ({img.width}x{img.height})")
    return img


MIN_GREY_LEVELS = 32
"""A wide (16/32-bit) grey image must reach at least this level out of 255 once scaled to 8 bits."""


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
    values = np.clip(values, 0, 65535)
    if values.max(initial=0) > 255:
        values = values / 257.0
        if values.max() < MIN_GREY_LEVELS:
            low, high = (float(v) for v in np.nanpercentile(array, [0, 100]))
            raise UnusableSliceError(
                path,
                f"a {array.dtype.itemsize * 8}-bit grey image with values {low:g}-{high:g}: scaled to 8 bits "
                f"(/257) it would span 0-{values.max():.0f} of 255 grey levels, a black slice. These look like "
                "stored CT numbers, not a windowed image: give the DICOM series or a NIfTI volume in HU",
            )
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _grey_array(img: Image.Image, path: Path) -> np.ndarray | None:
    """The grey levels of a greyscale image as uint8, or None if the image is in colour."""
    mode = img.mode
    if mode in ("L", "1"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.asarray(img.getchannel("L"), dtype=np.uint8)
    if mode.startswith("I") or mode == "F":
        return _to_uint8(np.asarray(img), path)
    return None


def read_image(path: str | Path) -> np.ndarray:
    """Any grey/RGB/RGBA/palette image -> uint8 (H, W, 3) per the module's channel mapping."""
    path = Path(path)
    img = _open(path)
    grey = _grey_array(img, path)
    if grey is not None:
        return np.repeat(grey[:, :, None], 3, axis=2)
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def read_grey(path: str | Path) -> np.ndarray:
    """Any image -> uint8 (H, W) grey levels (colour images: Pillow's ITU-R 601 luma)."""
    path = Path(path)
    img = _open(path)
    grey = _grey_array(img, path)
    if grey is not None:
        return grey
    return np.asarray(img.convert("RGB").convert("L"), dtype=np.uint8)


def compose_windows(brain: np.ndarray, bone: np.ndarray | None = None) -> np.ndarray:
    """Stack window images as R = brain, G = brain, B = bone (or brain when bone is None)."""
    if brain.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {brain.shape}")
    if bone is None:
        bone = brain
    if bone.shape != brain.shape:
        raise ValueError(f"bone image shape {bone.shape} differs from brain image shape {brain.shape}")
    return np.stack([brain, brain, bone], axis=-1).astype(np.uint8, copy=False)


def read_windowed_image(path: str | Path, bone_path: str | Path | None = None) -> np.ndarray:
    """One pre-windowed slice as uint8 (H, W, 3).

    Without ``bone_path``: :func:`read_image` (grey replicated, colour kept). With it: the
    two-window composition R = G = ``path`` (brain window), B = ``bone_path`` (bone window).
    """
    if bone_path is None or str(bone_path) == "":
        return read_image(path)
    brain = read_grey(path)
    bone = read_grey(bone_path)
    if bone.shape != brain.shape:
        raise UnusableSliceError(
            bone_path,
            f"bone window image is {bone.shape[1]}x{bone.shape[0]}, "
            f"brain window image is {brain.shape[1]}x{brain.shape[0]}",
        )
    return compose_windows(brain, bone)


__all__ = [
    "CHANNEL_MAPPING",
    "compose_windows",
    "read_grey",
    "read_image",
    "read_windowed_image",
]

"""One reader per manifest format (``dicom``, ``nifti``, ``image``): a source item as a windowed RGB
slice, what the index records of it, and its reference mask at the source resolution.

``convert`` (:mod:`ich.data.cohort_conversion`) and ``ich predict`` (:mod:`ich.predict.inputs`)
read every slice through :data:`SOURCE_READERS`, so a study to report is read as the training
slices were; framing, resizing and writing are the conversion's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ich.data.windowing import stack_windows, stack_windows_stored
from ich.io.dicom import read_ct_slice
from ich.io.image_files import image_channels, read_windowed_image
from ich.io.nifti import read_nifti_mask_slice, read_nifti_slice
from ich.io.unusable import UnusableSliceError


@dataclass(frozen=True)
class SourceItem:
    """One source item: a manifest row (paths relative to ``raw_dir``), and for NIfTI the slice number."""

    raw_dir: str
    row: dict
    sub_index: int | None = None
    require_patient_id: bool = True  # a cohort's slices need one (patient-level splits); one study to report does not


@dataclass(frozen=True)
class SourceSlice:
    """What a reader gives: the windowed ``rgb`` slice (uint8, source resolution), the index
    ``record`` (key, patient, study, series, z, has_hu, channels, spacing, thickness, notes) and the
    0/255 reference ``mask`` (``None`` without one)."""

    rgb: np.ndarray
    record: dict[str, Any]
    mask: np.ndarray | None


Windows = Sequence[tuple[float, float]]


def resolve(raw_dir: str, path: str) -> Path:
    """A manifest path: absolute, or relative to the raw cohort folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(raw_dir) / p


def read_mask_image(path: Path, shape: tuple[int, int], median: int = 0) -> np.ndarray:
    """A 0/255 mask at the source resolution; it must cover the image pixel for pixel.

    A mask saved as lossy JPEG (the CT-ICH release's ``*_HGE_Seg.jpg``) carries 8 x 8 block
    speckle along its edges: grey levels ringing about the threshold, which thresholding turns
    into a checkerboard fringe of specks. ``median`` (an odd kernel size) filters the grey levels
    first, so the threshold sees the edge the annotator drew (docs/real-data.md measures what it
    changes on CT-ICH).
    """
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UnusableSliceError(path, "mask file is unreadable")
    if mask.shape != tuple(shape):
        raise UnusableSliceError(path, f"mask is {mask.shape[1]}x{mask.shape[0]}, its image {shape[1]}x{shape[0]}")
    if median:
        mask = cv2.medianBlur(mask, median)
    return (mask > 127).astype(np.uint8) * 255


def _mask_file(item: SourceItem, shape: tuple[int, int], mask_median: int) -> np.ndarray | None:
    path = item.row.get("mask_path")
    return read_mask_image(resolve(item.raw_dir, path), shape, mask_median) if path else None


def read_dicom_source(item: SourceItem, windows: Windows, mask_median: int) -> SourceSlice:
    """A DICOM CT slice: HU windows; identity and geometry from its header."""
    ct = read_ct_slice(resolve(item.raw_dir, item.row["path"]), require_patient_id=item.require_patient_id)
    rgb = stack_windows_stored(ct.pixels, ct.slope, ct.intercept, windows)
    record = {
        "key": ct.sop_uid,
        "patient": ct.patient_id,
        "study": ct.study_uid,
        "series": ct.series_uid,
        "z": ct.z,
        "has_hu": True,
        "channels": "hu",
        "spacing": ct.pixel_spacing,
        "thickness": ct.slice_thickness,
        "notes": "; ".join(ct.notes),
    }
    return SourceSlice(rgb, record, _mask_file(item, ct.shape, mask_median))


def read_nifti_source(item: SourceItem, windows: Windows, mask_median: int) -> SourceSlice:
    """Slice ``item.sub_index`` of a NIfTI volume in HU; its mask is the same slice of the mask volume."""
    row = item.row
    hu, spacing, z = read_nifti_slice(resolve(item.raw_dir, row["path"]), item.sub_index)
    record = {
        "key": f"{row['slice_key']}_{item.sub_index}",
        "patient": row["patient_id"],
        "study": row["study_id"],
        "series": row["series_id"],
        "z": z,
        "has_hu": True,
        "channels": "hu",
        "spacing": spacing[:2],
        "thickness": spacing[2],
        "notes": "",
    }
    mask = None
    if row.get("mask_path"):
        mask = read_nifti_mask_slice(resolve(item.raw_dir, row["mask_path"]), item.sub_index) * 255
    return SourceSlice(stack_windows(hu, windows), record, mask)


def read_image_source(item: SourceItem, windows: Windows, mask_median: int) -> SourceSlice:
    """A pre-windowed image (no HU; ``windows`` do not apply), with its bone-window image if any."""
    row = item.row
    bone = resolve(item.raw_dir, row["bone_path"]) if row.get("bone_path") else None
    rgb = read_windowed_image(resolve(item.raw_dir, row["path"]), bone_path=bone)
    record = {
        "key": row["slice_key"],
        "patient": row["patient_id"],
        "study": row["study_id"],
        "series": row["series_id"],
        "z": float(row["z"]),
        "has_hu": False,
        "channels": image_channels(rgb, bone=bone is not None),
        "spacing": (float("nan"), float("nan")),
        "thickness": None,
        "notes": row.get("note", ""),
    }
    return SourceSlice(rgb, record, _mask_file(item, rgb.shape[:2], mask_median))


SOURCE_READERS: dict[str, Callable[[SourceItem, Windows, int], SourceSlice]] = {
    "dicom": read_dicom_source,
    "nifti": read_nifti_source,
    "image": read_image_source,
}
"""The reader of each manifest ``format``."""


__all__ = [
    "SOURCE_READERS",
    "SourceItem",
    "SourceSlice",
    "read_dicom_source",
    "read_image_source",
    "read_mask_image",
    "read_nifti_source",
    "resolve",
]

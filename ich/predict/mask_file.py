"""The bleed mask as ``mask.nii.gz`` (nibabel), on the study's own voxel grid and world coordinates.

A DICOM SEG needs a FrameOfReferenceUID that many exports (CQ500 among them) do not carry; a
NIfTI mask needs only the geometry, so every input that has one gets the mask:

- **NIfTI** input: the input's grid and affine, slice ``k`` of the mask on slice ``k`` of the volume;
- **DICOM** input: voxel ``(i, j, k)`` is column ``i``, row ``j`` of the ``k``-th slice along z; the
  affine comes from ImagePositionPatient, ImageOrientationPatient and PixelSpacing (DICOM's LPS
  turned into NIfTI's RAS), and needs evenly spaced, distinct slice positions;
- pre-windowed images have no geometry and get none.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from ich.io.nifti import mask_volume_like
from ich.predict.inputs import Study
from ich.predict.seg import source_grid_masks

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
POSITION_TOLERANCE_MM = 0.1


class MaskNotWritten(ValueError):
    """The study has no geometry to place a NIfTI mask on; the message says why."""


def dicom_affine(paths: list[str]) -> np.ndarray:
    """The NIfTI (RAS) affine of the DICOM slices at ``paths``, in the study's slice order."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    for ds, path in zip(headers, paths, strict=True):
        missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing") if k not in ds]
        if missing:
            raise MaskNotWritten(f"{path}: no {', '.join(missing)} to place the mask in space")
    spacing = np.array([float(v) for v in headers[0].PixelSpacing])
    if not np.all(np.isfinite(spacing)) or spacing.min() <= 0:
        raise MaskNotWritten(f"{paths[0]}: PixelSpacing {list(spacing)} is not a positive size")
    orientation = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    along_row, along_col = orientation[:3], orientation[3:]
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    if len(positions) > 1:
        step = (positions[-1] - positions[0]) / (len(positions) - 1)
        if np.linalg.norm(step) < POSITION_TOLERANCE_MM:
            raise MaskNotWritten("the slices share one position: no slice spacing")
        expected = positions[0] + np.arange(len(positions))[:, None] * step
        if np.abs(positions - expected).max() > POSITION_TOLERANCE_MM:
            raise MaskNotWritten("the slices are not evenly spaced: one NIfTI grid cannot hold them")
    else:
        thickness = float(headers[0].get("SliceThickness") or 1.0)
        step = np.cross(along_row, along_col) * thickness
    affine = np.eye(4)
    affine[:3, 0] = along_row * spacing[1]  # i: along a row, one column per step
    affine[:3, 1] = along_col * spacing[0]  # j: down a column, one row per step
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    return LPS_TO_RAS @ affine


def mask_image(study: Study, masks: np.ndarray) -> nib.Nifti1Image:
    """The mask volume of ``masks`` (N, size, size) over ``study``, on the input's grid."""
    grid = source_grid_masks(study, masks).astype(np.uint8)
    if study.kind == "nifti":
        planes = {int(s.source_path.rsplit("#", 1)[1]): plane for s, plane in zip(study.slices, grid, strict=True)}
        return mask_volume_like(study.path, planes)
    if study.kind == "dicom":
        affine = dicom_affine([s.source_path for s in study.slices])
        image = nib.Nifti1Image(np.ascontiguousarray(grid.transpose(2, 1, 0)), affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        return image
    raise MaskNotWritten(f"{study.kind} input carries no geometry to place a mask on")


def write_mask_nifti(study: Study, masks: np.ndarray, path: str | Path) -> Path:
    """Write ``mask.nii.gz`` (0/1 uint8) of ``masks`` over ``study``; :class:`MaskNotWritten` says why not."""
    path = Path(path)
    nib.save(mask_image(study, masks), str(path))
    return path

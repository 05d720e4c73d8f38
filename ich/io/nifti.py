"""Read a NIfTI CT volume (values in HU) or mask volume as 2D axial slices.

Conventions (shared by CT volumes and masks, so a CT slice and its mask always align):

* **Slice index** ``k`` is the 0-based index along the file's stored slice axis (the array
  axis closest to the patient's head-feet direction), in storage order. Iteration yields
  slices in that order, so the ``k``-th item is slice ``k``; the manifest's slice key of
  slice ``k`` is ``<slice_key>_<k>``. For PhysioNet CT-ICH, ``k = SliceNumber - 1``.
* **In-plane orientation** is that of a standard axial DICOM image whatever the affine:
  row 0 is the most anterior row and rows run towards posterior; column 0 is at the
  patient's right and columns run towards the patient's left (LPS display, "radiological").
* **z** is the world superior coordinate (mm, RAS) of the slice centre, so sorting by z
  orders slices feet to head, as ``ImagePositionPatient[2]`` does for DICOM.
* **spacing** is ``(row_mm, col_mm, slice_mm)`` from the voxel sizes.
* Values are float32 with the NIfTI scaling (``scl_slope``/``scl_inter``) applied; CT-ICH
  volumes are already HU. Masks come out the same way; threshold them with ``> 0``
  (CT-ICH masks hold 0/255) or use :func:`read_nifti_mask_slice`.
* NaN voxels are air (:data:`NAN_AS`): resampling leaves NaN outside a circular field of view.

Unreadable or non-3D files raise :class:`ich.io.dicom.UnusableSliceError` with a reason, and so
do headers that cannot be measured: a voxel size of zero (or none) would have nibabel assume
1 mm, and slabs and volumes would be computed on a guessed grid; a plane larger than
:data:`MAX_SIDE` would be read whole before anything could say it is no CT slice.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation

from ich.io.unusable import UnusableSliceError

MAX_SIDE = 2048
"""Largest plane side (voxels) read: DICOM CT matrices stop at 1024."""
NAN_AS = -1024.0
"""What a NaN voxel is read as: air (HU); 0 after a mask's ``> 0``."""


class NiftiSlice(NamedTuple):
    """One axial slice; unpacks as ``data, spacing, z``. ``data`` is None for header-only."""

    data: np.ndarray | None  # float32 (rows, cols)
    spacing: tuple[float, float, float]  # (row_mm, col_mm, slice_mm)
    z: float  # mm, world superior coordinate of the slice centre


class _Geometry(NamedTuple):
    slice_axis: int
    row_axis: int  # stored axis that becomes display rows (anterior -> posterior)
    col_axis: int  # stored axis that becomes display columns (right -> left)
    flip_rows: bool  # reverse the stored row axis to run anterior -> posterior
    flip_cols: bool  # reverse the stored column axis to run right -> left
    spacing: tuple[float, float, float]
    n_slices: int


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    if not path.is_file():
        raise UnusableSliceError(path, "file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise UnusableSliceError(path, f"unreadable NIfTI ({type(exc).__name__}: {exc})") from exc
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3 or min(shape) < 1:
        raise UnusableSliceError(path, f"not a 3D volume (shape {tuple(img.shape)})")
    if sorted(shape)[1] > MAX_SIDE:  # a plane whatever the slice axis: both of its sides
        raise UnusableSliceError(
            path, f"declares {' x '.join(map(str, shape))} voxels: planes over {MAX_SIDE} a side are no CT slices"
        )
    stat = path.stat()
    zooms, by_affine = _written_voxel_size(str(path), type(img.header), stat.st_mtime_ns, stat.st_size)
    if not by_affine and not all(np.isfinite(z) and z > 0 for z in zooms):
        raise UnusableSliceError(
            path,
            f"voxel size {' x '.join(f'{z:g}' for z in zooms)} mm in its header (pixdim): the spacing is unknown, "
            "so slabs and volumes cannot be measured. Write the volume with its true voxel size",
        )
    return img


@lru_cache(maxsize=64)
def _written_voxel_size(path: str, header_class: type, mtime_ns: int, size: int) -> tuple[tuple[float, ...], bool]:
    """The voxel size a file's header holds as written (loading sets a zero size to 1 mm), and whether
    a qform or sform gives the grid instead; read once per file version, not once per slice read."""
    with nib.openers.ImageOpener(path) as raw:
        header = header_class.from_fileobj(raw, check=False)
    by_affine = "sform_code" in header and (int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0)
    return tuple(float(z) for z in header["pixdim"][1:4]), by_affine


def _geometry(img: nib.spatialimages.SpatialImage) -> _Geometry:
    affine = np.asarray(img.affine, dtype=float)[:4, :4]
    shape = tuple(int(s) for s in img.shape[:3])
    ornt = io_orientation(affine)
    # ornt[i] = (world axis R=0/A=1/S=2 that stored axis i is closest to, +1 same direction / -1 opposite)
    by_world = {int(ornt[i, 0]): i for i in range(3)}
    slice_axis, r_axis, a_axis = by_world[2], by_world[0], by_world[1]
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return _Geometry(
        slice_axis=slice_axis,
        row_axis=a_axis,
        col_axis=r_axis,
        flip_rows=ornt[a_axis, 1] > 0,  # stored axis runs towards anterior: reverse it
        flip_cols=ornt[r_axis, 1] > 0,  # stored axis runs towards the right: reverse it
        spacing=(float(zooms[a_axis]), float(zooms[r_axis]), float(zooms[slice_axis])),
        n_slices=shape[slice_axis],
    )


def _z(img: nib.spatialimages.SpatialImage, geom: _Geometry, k: int) -> float:
    centre = [(int(s) - 1) / 2.0 for s in img.shape[:3]]
    centre[geom.slice_axis] = float(k)
    world = np.asarray(img.affine, dtype=float) @ np.array([*centre, 1.0])
    return float(world[2])


def _plane(img: nib.spatialimages.SpatialImage, geom: _Geometry, k: int) -> np.ndarray:
    slicer: list[object] = [slice(None)] * len(img.shape)
    slicer[geom.slice_axis] = k
    if len(img.shape) == 4:
        slicer[3] = 0
    plane = np.asarray(img.dataobj[tuple(slicer)], dtype=np.float32)
    remaining = [a for a in range(3) if a != geom.slice_axis]  # plane axes, in stored order
    if remaining.index(geom.row_axis) != 0:
        plane = plane.T
    if geom.flip_rows:
        plane = plane[::-1, :]
    if geom.flip_cols:
        plane = plane[:, ::-1]
    return np.ascontiguousarray(plane)


def nifti_slice_count(path: str | Path) -> int:
    """Number of axial slices (header only)."""
    path = Path(path)
    img = _load(path)
    return _geometry(img).n_slices


class NiftiGrid(NamedTuple):
    """What a volume's affine says about its voxels as a whole."""

    voxel_mm3: float  # |det| of the affine's 3x3 part: a voxel's true volume, sheared or not
    spacing: tuple[float, float, float]  # (row_mm, col_mm, slice_mm), as the slices report it
    sheared: bool  # the voxel axes are not orthogonal
    n_slices: int
    qform_offset_mm: float  # how far the qform places a voxel from where the sform (used) does; 0 with one of them


SHEAR_COSINE = 1e-3
"""Voxel axes whose cosine exceeds this are not orthogonal: the grid is sheared."""


def nifti_grid(path: str | Path) -> NiftiGrid:
    """The voxel volume, shear and slice count of a volume's grid (header only)."""
    path = Path(path)
    img = _load(path)
    geometry = _geometry(img)
    axes = np.asarray(img.affine, dtype=float)[:3, :3]
    unit = axes / np.linalg.norm(axes, axis=0)
    cosines = np.abs(unit.T @ unit - np.eye(3))
    sheared = bool(cosines.max() > SHEAR_COSINE)
    return NiftiGrid(float(abs(np.linalg.det(axes))), geometry.spacing, sheared, geometry.n_slices, _qform_offset(img))


def _qform_offset(img: nib.spatialimages.SpatialImage) -> float:
    """The largest distance (mm) between where the qform and the sform put the volume's corners."""
    header = img.header
    if not hasattr(header, "get_qform") or not (header["qform_code"] > 0 and header["sform_code"] > 0):
        return 0.0
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, img.shape[0] - 1) for j in (0, img.shape[1] - 1) for k in (0, img.shape[2] - 1)]
    )
    offsets = (corners @ header.get_qform().T - corners @ header.get_sform().T)[:, :3]
    return float(np.linalg.norm(offsets, axis=1).max())


def iter_nifti_slices(path: str | Path, *, only: int | None = None, header_only: bool = False) -> Iterator[NiftiSlice]:
    """Yield the slices of a volume in storage order (item ``k`` is slice index ``k``).

    ``only=k`` yields just slice ``k`` (reading only that plane from disk);
    ``header_only=True`` yields ``data=None`` items (for counting and z without pixel I/O).
    """
    path = Path(path)
    img = _load(path)
    try:
        geom = _geometry(img)
    except Exception as exc:
        raise UnusableSliceError(path, f"NIfTI affine has no usable orientation ({exc})") from exc
    if only is not None:
        if not 0 <= int(only) < geom.n_slices:
            raise UnusableSliceError(path, f"slice index {only} outside the volume (0..{geom.n_slices - 1})")
        indices: range | list[int] = [int(only)]
    else:
        indices = range(geom.n_slices)
    for k in indices:
        data = None
        if not header_only:
            try:
                data = _plane(img, geom, k)
            except Exception as exc:
                raise UnusableSliceError(
                    path, f"NIfTI voxel data cannot be read ({type(exc).__name__}: {exc})"
                ) from exc
            data[np.isnan(data)] = NAN_AS
            if not np.isfinite(data).all():
                raise UnusableSliceError(path, f"infinite voxel values in slice {k}")
        yield NiftiSlice(data, geom.spacing, _z(img, geom, k))


def read_nifti_slice(path: str | Path, k: int) -> NiftiSlice:
    """Slice ``k`` of a volume."""
    return next(iter_nifti_slices(path, only=k))


def read_nifti_mask_slice(path: str | Path, k: int) -> np.ndarray:
    """Slice ``k`` of a mask volume as uint8 0/1 (any value > 0 is bleed)."""
    data = read_nifti_slice(path, k).data
    assert data is not None
    return (data > 0).astype(np.uint8)


def mask_volume_like(path: str | Path, planes: dict[int, np.ndarray]) -> nib.Nifti1Image:
    """A uint8 volume on the grid of the NIfTI file ``path`` (its shape and affine) whose slice ``k``
    is ``planes[k]``, given as :func:`read_nifti_slice` shows slice ``k``; other slices are 0."""
    path = Path(path)
    img = _load(path)
    geom = _geometry(img)
    shape = tuple(int(s) for s in img.shape[:3])
    volume = np.zeros(shape, dtype=np.uint8)
    remaining = [a for a in range(3) if a != geom.slice_axis]
    for k, plane in planes.items():
        stored = np.asarray(plane, dtype=np.uint8)
        if geom.flip_cols:
            stored = stored[:, ::-1]
        if geom.flip_rows:
            stored = stored[::-1, :]
        if remaining.index(geom.row_axis) != 0:
            stored = stored.T
        slicer: list[object] = [slice(None)] * 3
        slicer[geom.slice_axis] = int(k)
        volume[tuple(slicer)] = stored
    out = nib.Nifti1Image(volume, np.asarray(img.affine, dtype=float))
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    return out


__all__ = [
    "NiftiGrid",
    "NiftiSlice",
    "nifti_grid",
    "iter_nifti_slices",
    "mask_volume_like",
    "nifti_slice_count",
    "read_nifti_mask_slice",
    "read_nifti_slice",
]

"""Generators of small DICOM files for tests: a valid CT slice factory and every bad variant.

Reusable by any test (``convert`` uses them to check that files in = slices + quarantined):

    from tests.dicom_fixtures import write_ct_slice, write_study, BAD_VARIANTS, VALID_VARIANTS

* :func:`make_ct_dataset` / :func:`write_ct_slice`: one valid CT slice (int16 stored values,
  RescaleSlope/RescaleIntercept so values are HU, all the identity and geometry tags).
* :func:`write_study`: ``n`` slices of one study/series with increasing z.
* ``BAD_VARIANTS[name] = (writer, reason_fragment)``: ``writer(path) -> path`` writes a file
  that :func:`ich.io.dicom.read_ct_slice` must quarantine with a reason containing
  ``reason_fragment``.
* ``VALID_VARIANTS[name] = writer``: unusual files that must still read (multi-valued
  window, MONOCHROME1, no preamble, RLE / JPEG 2000 compressed, unsigned storage).

All data are generated here with pydicom; nothing comes from a real patient.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's documented example root
JPEG_XL_LOSSLESS = UID("1.2.840.10008.1.2.4.110")  # a real syntax pydicom 3.0 cannot decode


def phantom_hu(rows: int = 256, cols: int = 256, *, seed: int = 0, lesion: bool = False) -> np.ndarray:
    """A head-like HU image: air, skull ring (~1000), brain (~35), a ventricle, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    r = np.hypot((yy - cy) / (rows / 2), (xx - cx) / (cols / 2))
    hu = np.full((rows, cols), -1000.0)
    hu[r < 0.85] = 1000.0
    hu[r < 0.78] = 35.0
    ventricle = np.hypot((yy - cy) / (rows * 0.08), (xx - cx) / (cols * 0.04)) < 1
    hu[ventricle] = 8.0
    if lesion:
        blob = np.hypot((yy - cy * 0.7) / (rows * 0.06), (xx - cx * 1.3) / (cols * 0.06)) < 1
        hu[blob] = 70.0
    hu += rng.normal(0.0, 3.0, size=hu.shape)
    return np.round(hu).astype(np.float32)


def phantom_grey(rows: int = 256, cols: int = 256, *, seed: int = 0, peak: int = 255) -> np.ndarray:
    """:func:`phantom_hu` as a pre-windowed export: the brain window [0, 80] HU over 0-``peak``, uint8 or uint16."""
    levels = np.clip(phantom_hu(rows, cols, seed=seed) / 80.0, 0.0, 1.0) * peak
    return np.round(levels).astype(np.uint8 if peak <= 255 else np.uint16)


def make_ct_dataset(
    *,
    rows: int = 256,
    cols: int = 256,
    hu: np.ndarray | None = None,
    patient_id: str = "FIXTURE-001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    z: float = 0.0,
    instance_number: int = 1,
    pixel_spacing: tuple[float, float] = (0.5, 0.5),
    slice_thickness: float = 5.0,
    slope: float = 1.0,
    intercept: float = -1024.0,
    window_center: float | Sequence[float] = 40.0,
    window_width: float | Sequence[float] = 80.0,
    modality: str = "CT",
    photometric: str = "MONOCHROME2",
    pixel_representation: int = 1,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    seed: int = 0,
) -> Dataset:
    """A valid single-slice CT dataset (uncompressed explicit VR little endian)."""
    if hu is None:
        hu = phantom_hu(rows, cols, seed=seed)
    rows, cols = hu.shape
    stored = np.round((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    dtype = np.int16 if pixel_representation == 1 else np.uint16
    info = np.iinfo(dtype)
    stored = np.clip(stored, info.min, info.max).astype(dtype)

    sop_uid = sop_uid or generate_uid(UID_ROOT)
    with warnings.catch_warnings():  # RSNA-style UIDs such as "ID_abc" are invalid UI values
        warnings.simplefilter("ignore")
        return _build(
            hu,
            stored,
            sop_uid,
            patient_id,
            study_uid,
            series_uid,
            z,
            instance_number,
            pixel_spacing,
            slice_thickness,
            slope,
            intercept,
            window_center,
            window_width,
            modality,
            photometric,
            pixel_representation,
            orientation,
        )


def _build(
    hu,
    stored,
    sop_uid,
    patient_id,
    study_uid,
    series_uid,
    z,
    instance_number,
    pixel_spacing,
    slice_thickness,
    slope,
    intercept,
    window_center,
    window_width,
    modality,
    photometric,
    pixel_representation,
    orientation,
) -> Dataset:
    rows, cols = hu.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientID = patient_id
    ds.PatientName = "Fixture^Synthetic"
    ds.StudyInstanceUID = study_uid or generate_uid(UID_ROOT)
    ds.SeriesInstanceUID = series_uid or generate_uid(UID_ROOT)
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [-(cols * pixel_spacing[1]) / 2, -(rows * pixel_spacing[0]) / 2, z]
    ds.ImageOrientationPatient = list(orientation)
    ds.SliceLocation = z
    ds.PixelSpacing = list(pixel_spacing)
    ds.SliceThickness = slice_thickness
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = pixel_representation
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    ds.WindowCenter = list(window_center) if isinstance(window_center, Sequence) else window_center
    ds.WindowWidth = list(window_width) if isinstance(window_width, Sequence) else window_width
    ds.PixelData = stored.tobytes()
    return ds


def save(ds: Dataset, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def write_ct_slice(path: str | Path, **kwargs) -> Path:
    """Write a valid CT slice (see :func:`make_ct_dataset` for the parameters)."""
    return save(make_ct_dataset(**kwargs), path)


def write_study(
    folder: str | Path,
    n_slices: int = 5,
    *,
    patient_id: str = "FIXTURE-001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    z0: float = 0.0,
    spacing_z: float = 5.0,
    rows: int = 256,
    cols: int = 256,
    lesion_slices: Sequence[int] = (),
    seed: int = 0,
    **kwargs,
) -> list[Path]:
    """``n_slices`` valid slices of one study/series, z = z0 + k * spacing_z; files k.dcm."""
    folder = Path(folder)
    study_uid = study_uid or generate_uid(UID_ROOT)
    series_uid = series_uid or generate_uid(UID_ROOT)
    paths = []
    for k in range(n_slices):
        hu = phantom_hu(rows, cols, seed=seed + k, lesion=k in lesion_slices)
        ds = make_ct_dataset(
            hu=hu,
            patient_id=patient_id,
            study_uid=study_uid,
            series_uid=series_uid,
            z=z0 + k * spacing_z,
            instance_number=k + 1,
            slice_thickness=spacing_z,
            **kwargs,
        )
        paths.append(save(ds, folder / f"{k:04d}.dcm"))
    return paths


# ----------------------------------------------------------------------------- bad variants


def _variant(path: Path, mutate: Callable[[Dataset], None] | None = None, **kwargs) -> Path:
    ds = make_ct_dataset(**kwargs)
    if mutate is not None:
        mutate(ds)
    return save(ds, path)


def write_truncated(path: str | Path) -> Path:
    """A valid file cut in the middle of its pixel data (an interrupted copy)."""
    path = write_ct_slice(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_truncated_compressed(path: str | Path) -> Path:
    """A JPEG 2000 compressed slice cut inside its encapsulated pixel data."""
    path = write_j2k(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])
    return path


def write_truncated_header(path: str | Path) -> Path:
    """A valid file cut inside its header (inside the PatientName value)."""
    path = write_ct_slice(path)
    data = path.read_bytes()
    cut = data.index(b"Fixture^Synthetic") + 4
    path.write_bytes(data[:cut])
    return path


def write_garbage(path: str | Path) -> Path:
    """Random bytes with a .dcm name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def write_empty(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_corrupted_pixels(path: str | Path) -> Path:
    """JPEG 2000 transfer syntax whose codestream is garbage (decoder fails)."""
    ds = make_ct_dataset(rows=256, cols=256)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 200])
    ds["PixelData"].VR = "OB"
    return save(ds, path)


def write_no_pixel_data(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "PixelData"))


def write_no_decoder(path: str | Path) -> Path:
    """Encapsulated pixel data in JPEG XL, which no installed pydicom plugin decodes."""
    ds = make_ct_dataset()
    ds.file_meta.TransferSyntaxUID = JPEG_XL_LOSSLESS
    ds.PixelData = encapsulate([b"\xff\x0a" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.preamble = b"\x00" * 128
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    return path


def write_missing_rescale(path: str | Path) -> Path:
    def mutate(ds: Dataset) -> None:
        del ds.RescaleSlope
        del ds.RescaleIntercept

    return _variant(Path(path), mutate)


def write_missing_intercept(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "RescaleIntercept"))


def write_zero_slope(path: str | Path) -> Path:
    def mutate(ds: Dataset) -> None:
        ds.RescaleSlope = 0

    return _variant(Path(path), mutate)


def write_non_ct(path: str | Path) -> Path:
    return _variant(Path(path), modality="MR")


def write_missing_modality(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "Modality"))


def write_bad_matrix(path: str | Path) -> Path:
    """A 128x128 slice: outside the default accepted sizes (256..1024)."""
    return _variant(Path(path), rows=128, cols=128)


def write_non_square_matrix(path: str | Path) -> Path:
    """A 2000x256 image, as from a scanned film."""
    return _variant(Path(path), hu=np.zeros((2000, 256), np.float32))


def write_missing_position(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "ImagePositionPatient"))


def write_rgb(path: str | Path) -> Path:
    """Modality CT but a 3-sample RGB image (a screenshot / secondary capture)."""

    def mutate(ds: Dataset) -> None:
        rgb = np.zeros((ds.Rows, ds.Columns, 3), np.uint8)
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = rgb.tobytes()

    return _variant(Path(path), mutate)


def write_multiframe(path: str | Path) -> Path:
    def mutate(ds: Dataset) -> None:
        ds.NumberOfFrames = 2
        ds.PixelData = bytes(ds.PixelData) * 2

    return _variant(Path(path), mutate)


def write_localizer(path: str | Path) -> Path:
    def mutate(ds: Dataset) -> None:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]

    return _variant(Path(path), mutate)


def write_sagittal(path: str | Path) -> Path:
    return _variant(Path(path), orientation=(0, 1, 0, 0, 0, -1))


def write_missing_sop(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "SOPInstanceUID"))


def write_missing_study(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "StudyInstanceUID"))


def write_missing_series(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "SeriesInstanceUID"))


def write_missing_patient(path: str | Path) -> Path:
    return _variant(Path(path), lambda ds: delattr(ds, "PatientID"))


BAD_VARIANTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (write_truncated, "truncated file"),
    "truncated_header": (write_truncated_header, "truncated file"),
    "truncated_compressed": (write_truncated_compressed, "truncated file: ends inside an undefined-length element"),
    "garbage": (write_garbage, "not a DICOM file"),
    "empty": (write_empty, "empty file"),
    "corrupted_pixels": (write_corrupted_pixels, "pixel data cannot be decoded"),
    "no_pixel_data": (write_no_pixel_data, "missing PixelData"),
    "no_decoder": (write_no_decoder, "compressed transfer syntax JPEG XL Lossless"),
    "missing_rescale": (write_missing_rescale, "missing RescaleSlope/RescaleIntercept: cannot convert to HU"),
    "missing_intercept": (write_missing_intercept, "missing RescaleSlope/RescaleIntercept"),
    "zero_slope": (write_zero_slope, "RescaleSlope is 0"),
    "non_ct": (write_non_ct, "non-CT modality 'MR'"),
    "missing_modality": (write_missing_modality, "missing Modality"),
    "bad_matrix": (write_bad_matrix, "unexpected matrix size 128x128"),
    "non_square_matrix": (write_non_square_matrix, "unexpected matrix size 2000x256"),
    "missing_position": (write_missing_position, "missing ImagePositionPatient"),
    "rgb": (write_rgb, "colour image (RGB, 3 samples per pixel)"),
    "multiframe": (write_multiframe, "multi-frame image (2 frames)"),
    "localizer": (write_localizer, "localizer (scout) image"),
    "sagittal": (write_sagittal, "not an axial slice"),
    "missing_sop": (write_missing_sop, "missing SOPInstanceUID"),
    "missing_study": (write_missing_study, "missing StudyInstanceUID"),
    "missing_series": (write_missing_series, "missing SeriesInstanceUID"),
    "missing_patient": (write_missing_patient, "missing PatientID"),
}


# ----------------------------------------------------------------------------- odd but valid


def write_multi_window(path: str | Path) -> Path:
    """Multi-valued WindowCenter/WindowWidth (as in many RSNA files)."""
    return _variant(Path(path), window_center=[40.0, 450.0], window_width=[80.0, 1500.0])


def write_monochrome1(path: str | Path) -> Path:
    return _variant(Path(path), photometric="MONOCHROME1")


def write_unsigned(path: str | Path) -> Path:
    """Unsigned storage (PixelRepresentation 0), the RSNA/CQ500 norm with intercept -1024."""
    return _variant(Path(path), pixel_representation=0)


def write_no_preamble(path: str | Path) -> Path:
    """No preamble, no 'DICM', no file meta: an old ACR-NEMA style implicit VR file."""
    ds = make_ct_dataset()
    del ds.file_meta
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return path


def write_compressed(path: str | Path, transfer_syntax: UID = RLELossless, **kwargs) -> Path:
    """A valid slice compressed losslessly (RLE natively; JPEG 2000 needs pylibjpeg-openjpeg)."""
    ds = make_ct_dataset(**kwargs)
    ds.compress(transfer_syntax, generate_instance_uid=False)  # keep the caller's SOPInstanceUID
    return save(ds, path)


def write_rle(path: str | Path) -> Path:
    return write_compressed(path, RLELossless)


def write_j2k(path: str | Path) -> Path:
    return write_compressed(path, JPEG2000Lossless)


def write_implicit(path: str | Path) -> Path:
    ds = make_ct_dataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return save(ds, path)


VALID_VARIANTS: dict[str, Callable[[Path], Path]] = {
    "multi_window": write_multi_window,
    "monochrome1": write_monochrome1,
    "unsigned": write_unsigned,
    "no_preamble": write_no_preamble,
    "rle": write_rle,
    "j2k": write_j2k,
    "implicit": write_implicit,
}

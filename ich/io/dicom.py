"""Read one CT slice from a DICOM file into Hounsfield units.

Every way a file can be unusable raises :class:`UnusableSliceError` with a specific,
human-readable ``reason``; the caller (``convert``) quarantines the file with that reason
and never drops it silently. Problems that do not make the slice unusable are recorded in
:attr:`CTSlice.notes` instead.

Decisions (see also the docstring of :func:`read_ct_slice`):

* **Missing RescaleSlope/RescaleIntercept -> quarantine.** Stored values are only HU after
  the modality rescale; guessing an identity rescale is right for some scanners and off by
  1024 HU for others, so a file without both tags is rejected with
  ``"missing RescaleSlope/RescaleIntercept: cannot convert to HU"``.
* **Matrix size.** Rows and columns must each lie in ``accepted_sizes`` (default
  256..1024 inclusive: every axial head-CT matrix in practice is 256, 512, 768 or 1024).
  Smaller images are thumbnails or secondary captures, larger ones are scanned films.
  Pass ``accepted_sizes=None`` to accept any 2D size.
* **Missing ImagePositionPatient -> quarantine** by default, because slices cannot be
  ordered or spaced along z. With ``allow_z_fallback=True`` z falls back to SliceLocation
  (mm), then InstanceNumber (slice number, not mm); the choice is reported in
  :attr:`CTSlice.z_source` and :attr:`CTSlice.notes` so the caller can flag the study.
* **MONOCHROME1** only changes how the *display* maps grey levels (minimum = white after
  the VOI transform); the modality rescale to HU is unaffected, so HU are computed the same
  way as for MONOCHROME2 and nothing is inverted. The fact is recorded in ``notes``.
* **Multi-valued WindowCenter/WindowWidth** (common in RSNA files) never break reading:
  the first value is used and the other values are recorded in ``notes``.
* **PixelRepresentation/BitsStored** are honoured by pydicom (sign extension, masking of
  unused high bits); HU are returned as float32.
* **Compressed transfer syntaxes** decode through pydicom's plugins (pylibjpeg with
  pylibjpeg-libjpeg for JPEG baseline/extended/lossless and JPEG-LS, pylibjpeg-openjpeg for
  JPEG 2000 and HTJ2K, native RLE/deflate). A syntax without an installed decoder is
  quarantined with the syntax name and the packages to install.
* **Truncated files**: pydicom reads a file cut short without complaint (short last value,
  or an empty dataset when the cut falls inside encapsulated pixel data); both are detected
  and reported as ``truncated file: ...``.
* **One axial 2D slice per file**: localizers (ImageType LOCALIZER), multi-frame objects,
  colour images and slices more than ``max_obliquity_deg`` (45) from axial (sagittal or
  coronal reformats) are quarantined. z is the position along the slice normal (oriented
  towards the head), which equals ImagePositionPatient[2] for untilted axial slices and
  stays correct under gantry tilt.
* **Identity**: SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID are required;
  PatientID too unless ``require_patient_id=False`` (patient-level splits need it).
  PixelSpacing is optional (``(nan, nan)`` and a note when absent).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ich.io.unusable import UnusableSliceError

DEFAULT_ACCEPTED_SIZES: range = range(256, 1025)
"""Default accepted number of rows and of columns (inclusive 256..1024)."""

DEFAULT_MAX_OBLIQUITY_DEG: float = 45.0
"""Largest angle between the slice normal and the patient's z axis still called axial."""

COSINE_TOLERANCE: float = 0.01
"""ImageOrientationPatient's direction cosines must be unit length and orthogonal within this
(headers round them to a few decimals)."""

Z_SOURCES: tuple[str, ...] = ("ImagePositionPatient", "SliceLocation", "InstanceNumber")
"""Possible values of :attr:`CTSlice.z_source`, most to least trustworthy."""

_UNDEFINED_LENGTH = 0xFFFFFFFF

# Packages that provide a pydicom decoder, by transfer syntax UID (for the error message).
_LIBJPEG = "pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg pylibjpeg-openjpeg"
_DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline (8-bit)
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended (12-bit)
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _LIBJPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE (pydicom also decodes natively)
}
# Transfer syntaxes newer than some pydicom releases, named for the error message.
_EXTRA_TS_NAMES: dict[str, str] = {
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}


@dataclass(frozen=True, eq=False)
class CTSlice:
    """One slice: its stored pixel values, the rescale to HU, and the header fields the pipeline needs.

    :attr:`hu` is computed on first access rather than in the reader, because the converter
    windows the stored integers through a look-up table
    (:func:`ich.data.windowing.stack_windows_stored`) and never needs the float image.
    Fields after ``slice_thickness`` have defaults so the record can be extended freely.
    """

    pixels: np.ndarray  # stored values as decoded (integer), (rows, cols); HU = pixels * slope + intercept
    slope: float  # RescaleSlope
    intercept: float  # RescaleIntercept
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    z: float  # mm along the slice normal, growing towards the head (= ImagePositionPatient[2] when axial)
    pixel_spacing: tuple[float, float]  # (row, col) mm; (nan, nan) when the file has no PixelSpacing
    slice_thickness: float | None  # mm
    z_source: str = "ImagePositionPatient"  # one of Z_SOURCES; "InstanceNumber" means z is not in mm
    instance_number: int | None = None
    window_center: float | None = None  # first value of WindowCenter, if any
    window_width: float | None = None  # first value of WindowWidth, if any
    transfer_syntax: str = ""  # UID of the file's transfer syntax
    photometric: str = "MONOCHROME2"
    notes: tuple[str, ...] = ()  # non-fatal issues, human readable

    @cached_property
    def hu(self) -> np.ndarray:
        """Hounsfield units, float32 (rows, cols): the modality rescale of :attr:`pixels`."""
        return self.pixels.astype(np.float32) * np.float32(self.slope) + np.float32(self.intercept)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the pixel matrix."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))


# --------------------------------------------------------------------------- helpers


def _first_float(value: Any) -> tuple[float | None, bool]:
    """First numeric value of a (possibly multi-valued) element and whether it had several."""
    if value is None:
        return None, False
    multi = False
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if len(value) == 0:
            return None, False
        multi = len(value) > 1
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        value = value.strip().split("\\")[0].strip()
        if value == "":
            return None, multi
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, multi
    return (number if math.isfinite(number) else None), multi


def _floats(value: Any, n: int) -> list[float] | None:
    """Exactly ``n`` finite floats from a multi-valued element, else None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        items: list[Any] = [v for v in text.split("\\")]
    else:
        try:
            items = list(value)
        except TypeError:
            return None
    if len(items) != n:
        return None
    out = []
    for item in items:
        try:
            number = float(item)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        out.append(number)
    return out


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # an unparseable value counts as missing
        return ""
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _get(ds: pydicom.Dataset, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _describe_sizes(accepted: Collection[int]) -> str:
    if isinstance(accepted, range) and accepted.step == 1 and len(accepted) > 0:
        return f"{accepted.start}..{accepted.stop - 1}"
    return ", ".join(str(v) for v in sorted(accepted))


def _ts_name(uid: str) -> str:
    if uid in _EXTRA_TS_NAMES:
        return _EXTRA_TS_NAMES[uid]
    name = UID(uid).name
    return name if name and name != uid else "unknown transfer syntax"


def _get_decoder(uid: UID) -> Any:
    """pydicom's decoder for ``uid`` (a seam for tests)."""
    from pydicom.pixels import get_decoder

    return get_decoder(uid)


def _truncation_reason(ds: pydicom.Dataset) -> str | None:
    """Detect a file that ends inside an element (pydicom reads such files silently)."""
    try:
        tags = list(ds.keys())
    except Exception:
        return None
    if not tags:
        return None
    last_tag = max(tags)
    elem = ds.get_item(last_tag)
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
        return None
    got = len(elem.value) if elem.value is not None else 0
    if got < elem.length:
        return f"truncated file: ends inside element {last_tag} after {got} of {elem.length} bytes"
    return None


def _stray_tail(ds: pydicom.Dataset, size: int) -> bool:
    """True when 1-7 bytes follow the last complete element (a cut element header)."""
    try:
        tags = list(ds.keys())
        if not tags:
            return False
        elem = ds.get_item(max(tags))
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
            return False
        if elem.value_tell is None:
            return False
        end = int(elem.value_tell) + int(elem.length)
    except Exception:
        return False
    return 0 < size - end < 8


def _dcmread(path: Path, *, force: bool) -> pydicom.Dataset:
    """dcmread that turns pydicom's silent end-of-file handling into a truncation error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(path, force=force)
    for warning in caught:
        if "End of file reached before delimiter" in str(warning.message):
            # pydicom returns a silently emptied dataset for a file cut inside an
            # undefined-length item (encapsulated pixel data or a sequence)
            raise UnusableSliceError(
                path,
                "truncated file: ends inside an undefined-length element "
                "(encapsulated pixel data or sequence) before its delimiter",
            )
    return ds


def _read_dataset(path: Path) -> tuple[pydicom.Dataset, list[str]]:
    notes: list[str] = []
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnusableSliceError(path, "file not found") from None
    except OSError as exc:
        raise UnusableSliceError(path, f"cannot access file ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise UnusableSliceError(path, "not a regular file")
    if size == 0:
        raise UnusableSliceError(path, "empty file (0 bytes)")
    try:
        ds = _dcmread(path, force=False)
    except UnusableSliceError:
        raise
    except InvalidDicomError:
        # No 128-byte preamble + "DICM": old ACR-NEMA style files are still valid datasets.
        try:
            ds = _dcmread(path, force=True)
        except UnusableSliceError:
            raise
        except Exception as exc:
            raise UnusableSliceError(
                path, f"not a DICOM file (no 'DICM' prefix; forced read failed: {type(exc).__name__})"
            ) from exc
        if "PixelData" not in ds and "SOPInstanceUID" not in ds and "Rows" not in ds:
            raise UnusableSliceError(path, "not a DICOM file (no 'DICM' prefix and no DICOM image elements)") from None
        notes.append("no DICOM preamble/file meta information: read with force=True")
    except Exception as exc:  # pydicom raises many types for corrupt files
        raise UnusableSliceError(path, f"corrupted DICOM header ({type(exc).__name__}: {exc})") from exc
    if len(ds) == 0:
        raise UnusableSliceError(
            path, "truncated or empty file: no DICOM data elements after the file meta information"
        )
    truncated = _truncation_reason(ds)
    if truncated:
        raise UnusableSliceError(path, truncated)
    if "PixelData" not in ds and _stray_tail(ds, size):
        raise UnusableSliceError(path, "truncated file: ends inside an element header before PixelData")
    return ds, notes


def _transfer_syntax(ds: pydicom.Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(str(uid))
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = True, True
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return uid


def _check_decoder(path: Path, uid: UID) -> None:
    text = str(uid)
    try:
        compressed = uid.is_compressed
    except ValueError:  # not in pydicom's UID dictionary: a syntax newer than pydicom
        raise UnusableSliceError(
            path,
            f"compressed transfer syntax {_ts_name(text)} ({text}) is not supported by "
            f"pydicom {pydicom.__version__}: no decoder; decompress the file first "
            "(e.g. dcmtk dcmdjpeg/dcmdjpls or gdcmconv --raw)",
        ) from None
    if not compressed:
        return
    try:
        decoder = _get_decoder(uid)
    except NotImplementedError:
        raise UnusableSliceError(
            path,
            f"compressed transfer syntax {_ts_name(text)} ({text}) has no pydicom decoder; "
            "decompress the file first (e.g. gdcmconv --raw)",
        ) from None
    if not decoder.is_available:
        packages = _DECODER_PACKAGES.get(text, "a pydicom pixel-data plugin for it")
        raise UnusableSliceError(
            path,
            f"compressed transfer syntax {_ts_name(text)} ({text}) has no installed decoder: pip install {packages}",
        )


# --------------------------------------------------------------------------- main API


def read_ct_slice(
    path: str | Path,
    *,
    accepted_sizes: Collection[int] | None = DEFAULT_ACCEPTED_SIZES,
    allow_z_fallback: bool = False,
    require_patient_id: bool = True,
    max_obliquity_deg: float | None = DEFAULT_MAX_OBLIQUITY_DEG,
) -> CTSlice:
    """Read ``path`` and return its pixels in HU, or raise :class:`UnusableSliceError`.

    Parameters
    ----------
    accepted_sizes:
        Allowed values for Rows and for Columns (default 256..1024 inclusive); ``None``
        accepts any size.
    allow_z_fallback:
        Without ImagePositionPatient, use SliceLocation (mm) or InstanceNumber (a slice
        number, not mm) for z instead of quarantining; see :attr:`CTSlice.z_source`.
    require_patient_id:
        Quarantine files without PatientID (patient-level splits need it). The one-study
        report command may pass False; patient_id is then "".
    max_obliquity_deg:
        Quarantine slices whose normal is further than this from the patient's z axis
        (sagittal/coronal reformats); ``None`` disables the check. Gantry tilt (< 30 deg)
        passes with the default 45.

    Reasons raised (the caller prefixes the file name), in the order they are checked:
    ``file not found``, ``empty file (0 bytes)``, ``not a DICOM file (...)``,
    ``corrupted DICOM header (...)``, ``truncated file: ...`` (cut inside an element, an
    element header or encapsulated pixel data), ``truncated or empty file: ...``,
    ``missing Modality: expected CT``, ``non-CT modality 'MR': only CT slices are used``,
    ``missing PixelData: the file holds no image``,
    ``localizer (scout) image, not an axial slice``,
    ``multi-frame image (N frames): expected one 2D slice per file``,
    ``colour image (RGB, 3 samples per pixel): expected greyscale CT``,
    ``missing Rows/Columns``, ``unexpected matrix size RxC: accepted rows/columns are 256..1024``,
    ``missing RescaleSlope/RescaleIntercept: cannot convert to HU``,
    ``invalid RescaleSlope '...': cannot convert to HU`` (or ``...Intercept``),
    ``RescaleSlope is 0: cannot convert to HU``,
    ``missing SOPInstanceUID: ...``, ``missing StudyInstanceUID: ...``,
    ``missing SeriesInstanceUID: ...``, ``missing PatientID: ...``,
    ``missing ImagePositionPatient: cannot order the slice along z ...``,
    ``not an axial slice: ...``,
    ``compressed transfer syntax NAME (UID) has no installed decoder: pip install ...``,
    ``compressed transfer syntax NAME (UID) is not supported by pydicom ...``,
    ``truncated or corrupted pixel data (...)``, ``pixel data cannot be decoded (...)``,
    ``non-integer decoded pixel data (...)``, ``unexpected error reading DICOM (...)``.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on every odd VR value
            return _read(path, accepted_sizes, allow_z_fallback, require_patient_id, max_obliquity_deg)
    except UnusableSliceError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # never let one odd file crash a conversion of thousands
        raise UnusableSliceError(path, f"unexpected error reading DICOM ({type(exc).__name__}: {exc})") from exc


def _check_image_kind(ds: pydicom.Dataset, path: Path, accepted_sizes: Collection[int] | None) -> tuple[str, int, int]:
    """Refuse what is not one greyscale axial CT image of an accepted size; ``(photometric, rows, cols)``."""
    modality = _text(ds, "Modality")
    if not modality:
        raise UnusableSliceError(path, "missing Modality: expected CT")
    if modality.upper() != "CT":
        raise UnusableSliceError(path, f"non-CT modality {modality!r}: only CT slices are used")
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnusableSliceError(path, "float pixel data: expected integer CT pixel data")
        raise UnusableSliceError(path, "missing PixelData: the file holds no image")
    image_type = _text(ds, "ImageType").upper()
    if "LOCALIZER" in image_type.split("\\"):
        raise UnusableSliceError(path, "localizer (scout) image, not an axial slice")
    frames, _ = _first_float(_get(ds, "NumberOfFrames"))
    if frames is not None and frames > 1:
        raise UnusableSliceError(path, f"multi-frame image ({int(frames)} frames): expected one 2D slice per file")
    samples, _ = _first_float(_get(ds, "SamplesPerPixel"))
    photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    if (samples is not None and samples != 1) or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        spp = int(samples) if samples is not None else 1
        raise UnusableSliceError(
            path,
            f"colour image ({photometric}, {spp} samples per pixel): expected greyscale CT",
        )
    rows, _ = _first_float(_get(ds, "Rows"))
    cols, _ = _first_float(_get(ds, "Columns"))
    if not rows or not cols:
        raise UnusableSliceError(path, "missing Rows/Columns")
    rows_i, cols_i = int(rows), int(cols)
    if accepted_sizes is not None and (rows_i not in accepted_sizes or cols_i not in accepted_sizes):
        raise UnusableSliceError(
            path,
            f"unexpected matrix size {rows_i}x{cols_i}: accepted rows/columns are {_describe_sizes(accepted_sizes)}",
        )
    return photometric, rows_i, cols_i


def _hu_rescale(ds: pydicom.Dataset, path: Path, notes: list[str]) -> tuple[float, float]:
    """``(slope, intercept)`` of the conversion to HU."""
    raw_slope, raw_intercept = _get(ds, "RescaleSlope"), _get(ds, "RescaleIntercept")
    if raw_slope in (None, "") or raw_intercept in (None, ""):
        raise UnusableSliceError(path, "missing RescaleSlope/RescaleIntercept: cannot convert to HU")
    slope, _ = _first_float(raw_slope)
    intercept, _ = _first_float(raw_intercept)
    if slope is None:
        raise UnusableSliceError(path, f"invalid RescaleSlope {str(raw_slope)!r}: cannot convert to HU")
    if intercept is None:
        raise UnusableSliceError(path, f"invalid RescaleIntercept {str(raw_intercept)!r}: cannot convert to HU")
    if slope == 0:
        raise UnusableSliceError(path, "RescaleSlope is 0: cannot convert to HU")
    rescale_type = _text(ds, "RescaleType").upper()
    if rescale_type and rescale_type != "HU":
        notes.append(f"RescaleType {rescale_type!r} (expected 'HU'): values used as HU")
    return slope, intercept


def _identity(ds: pydicom.Dataset, path: Path, require_patient_id: bool) -> tuple[str, str, str, str]:
    """``(sop_uid, study_uid, series_uid, patient_id)``: what keys the slice to its labels and groups."""
    sop_uid = _text(ds, "SOPInstanceUID")
    if not sop_uid:
        raise UnusableSliceError(path, "missing SOPInstanceUID: the slice cannot be keyed to its labels")
    study_uid = _text(ds, "StudyInstanceUID")
    if not study_uid:
        raise UnusableSliceError(path, "missing StudyInstanceUID: the slice cannot be grouped into a study")
    series_uid = _text(ds, "SeriesInstanceUID")
    if not series_uid:
        raise UnusableSliceError(path, "missing SeriesInstanceUID: the slice cannot be grouped into a series")
    patient_id = _text(ds, "PatientID")
    if not patient_id and require_patient_id:
        raise UnusableSliceError(path, "missing PatientID: the slice cannot be assigned to a patient for splitting")
    return sop_uid, study_uid, series_uid, patient_id


def _slice_normal(ds: pydicom.Dataset, path: Path, max_obliquity_deg: float | None) -> np.ndarray | None:
    """The unit normal of the slice's plane, pointing towards the head (``None`` without an orientation)."""
    orientation = _floats(_get(ds, "ImageOrientationPatient"), 6)
    if orientation is None:
        return None
    row_cos = np.asarray(orientation[:3])
    col_cos = np.asarray(orientation[3:])
    lengths = (float(np.linalg.norm(row_cos)), float(np.linalg.norm(col_cos)))
    if max(abs(length - 1) for length in lengths) > COSINE_TOLERANCE or abs(row_cos @ col_cos) > COSINE_TOLERANCE:
        # a plane without a direction has no position along z and no place in a SEG
        raise UnusableSliceError(
            path,
            f"ImageOrientationPatient [{', '.join(f'{v:g}' for v in orientation)}] is not two orthogonal unit "
            "vectors: the slice's plane is undefined",
        )
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    if normal[2] < 0:
        normal = -normal  # z grows towards the head whatever the row/column directions
    if max_obliquity_deg is not None:
        angle = math.degrees(math.acos(min(1.0, abs(float(normal[2])))))
        if angle > max_obliquity_deg:
            raise UnusableSliceError(
                path,
                f"not an axial slice: slice normal is {angle:.0f} degrees from the patient z axis "
                f"(limit {max_obliquity_deg:g}; sagittal/coronal reformat?)",
            )
    return normal


def _z_position(
    ds: pydicom.Dataset, path: Path, normal: np.ndarray | None, allow_z_fallback: bool, notes: list[str]
) -> tuple[float, str, int | None]:
    """``(z, where z came from, InstanceNumber)``: the slice's place along the patient's z axis."""
    instance, _ = _first_float(_get(ds, "InstanceNumber"))
    instance_number = int(instance) if instance is not None else None
    position = _floats(_get(ds, "ImagePositionPatient"), 3)
    if position is not None:
        if normal is not None:
            return float(np.dot(np.asarray(position), normal)), "ImagePositionPatient", instance_number
        notes.append("missing ImageOrientationPatient: z = ImagePositionPatient[2]")
        return float(position[2]), "ImagePositionPatient", instance_number
    location, _ = _first_float(_get(ds, "SliceLocation"))
    if not allow_z_fallback:
        raise UnusableSliceError(
            path,
            "missing ImagePositionPatient: cannot order the slice along z",
        )
    if location is not None:
        notes.append("missing ImagePositionPatient: z from SliceLocation (mm)")
        return float(location), "SliceLocation", instance_number
    if instance_number is not None:
        notes.append("missing ImagePositionPatient: z from InstanceNumber (slice number, not mm)")
        return float(instance_number), "InstanceNumber", instance_number
    raise UnusableSliceError(
        path,
        "missing ImagePositionPatient, SliceLocation and InstanceNumber: cannot order the slice along z",
    )


def _decode(ds: pydicom.Dataset, path: Path, rows: int, cols: int) -> tuple[np.ndarray, str]:
    """The integer pixel array of the declared size, and the transfer syntax UID."""
    uid = _transfer_syntax(ds)
    _check_decoder(path, uid)
    try:
        pixels = ds.pixel_array
    except ValueError as exc:
        message = str(exc)
        if "less than expected" in message or "truncat" in message.lower():
            raise UnusableSliceError(path, f"truncated or corrupted pixel data ({message})") from exc
        raise UnusableSliceError(path, f"pixel data cannot be decoded ({_ts_name(str(uid))}: {message})") from exc
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise UnusableSliceError(
            path,
            f"pixel data cannot be decoded ({_ts_name(str(uid))}: {type(exc).__name__}: {message})",
        ) from exc
    if pixels.ndim != 2 or pixels.shape != (rows, cols):
        raise UnusableSliceError(
            path,
            f"decoded pixel array has shape {tuple(pixels.shape)}, expected ({rows}, {cols})",
        )
    if pixels.dtype.kind not in "iu":  # integer pixels with a finite slope and intercept give finite HU
        raise UnusableSliceError(
            path, f"non-integer decoded pixel data ({pixels.dtype}): expected integer CT pixel data"
        )
    return pixels, str(uid)


def _display_and_geometry(
    ds: pydicom.Dataset, notes: list[str]
) -> tuple[float | None, float | None, tuple[float, float], float | None]:
    """``(window centre, window width, pixel spacing, slice thickness)``, descriptive and never fatal."""
    center, center_multi = _first_float(_get(ds, "WindowCenter"))
    width, width_multi = _first_float(_get(ds, "WindowWidth"))
    if center_multi or width_multi:
        centers = _text(ds, "WindowCenter").replace("\\", ", ")
        widths = _text(ds, "WindowWidth").replace("\\", ", ")
        notes.append(f"multi-valued WindowCenter/WindowWidth ([{centers}] / [{widths}]): first value used")
    spacing = _floats(_get(ds, "PixelSpacing"), 2)
    if spacing is None or min(spacing) <= 0:
        pixel_spacing = (float("nan"), float("nan"))
        notes.append("missing or invalid PixelSpacing: spacing unknown")
    else:
        pixel_spacing = (spacing[0], spacing[1])
    thickness, _ = _first_float(_get(ds, "SliceThickness"))
    if thickness is not None and thickness <= 0:
        thickness = None
    return center, width, pixel_spacing, thickness


def _read(
    path: Path,
    accepted_sizes: Collection[int] | None,
    allow_z_fallback: bool,
    require_patient_id: bool,
    max_obliquity_deg: float | None,
) -> CTSlice:
    ds, notes = _read_dataset(path)
    photometric, rows, cols = _check_image_kind(ds, path, accepted_sizes)
    slope, intercept = _hu_rescale(ds, path, notes)
    sop_uid, study_uid, series_uid, patient_id = _identity(ds, path, require_patient_id)
    normal = _slice_normal(ds, path, max_obliquity_deg)
    z, z_source, instance_number = _z_position(ds, path, normal, allow_z_fallback, notes)
    pixels, uid = _decode(ds, path, rows, cols)
    if photometric == "MONOCHROME1":
        notes.append("MONOCHROME1: HU from the rescale as usual; display inversion not applied")
    center, width, pixel_spacing, thickness = _display_and_geometry(ds, notes)
    return CTSlice(
        pixels=pixels,
        slope=slope,
        intercept=intercept,
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        z=z,
        pixel_spacing=pixel_spacing,
        slice_thickness=thickness,
        z_source=z_source,
        instance_number=instance_number,
        window_center=center,
        window_width=width,
        transfer_syntax=uid,
        photometric=photometric,
        notes=tuple(notes),
    )


def read_dicom_header(path: str | Path, tags: Collection[str] | None = None) -> pydicom.Dataset:
    """Header only (no pixel data), for fast scans of a tree; raises UnusableSliceError."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnusableSliceError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs: dict[str, Any] = {"stop_before_pixels": True}
            if tags is not None:
                kwargs["specific_tags"] = list(tags)
            try:
                return pydicom.dcmread(path, **kwargs)
            except InvalidDicomError:
                ds = pydicom.dcmread(path, force=True, **kwargs)
                if "SOPInstanceUID" not in ds and "Rows" not in ds and "StudyInstanceUID" not in ds:
                    raise UnusableSliceError(path, "not a DICOM file (no 'DICM' prefix)") from None
                return ds
    except UnusableSliceError:
        raise
    except Exception as exc:
        raise UnusableSliceError(path, f"corrupted DICOM header ({type(exc).__name__}: {exc})") from exc


__all__ = [
    "DEFAULT_ACCEPTED_SIZES",
    "DEFAULT_MAX_OBLIQUITY_DEG",
    "Z_SOURCES",
    "CTSlice",
    "read_ct_slice",
    "read_dicom_header",
]

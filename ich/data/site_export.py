"""A cohort's test studies exported as another hospital would send them: the demo's external cohort.

External validation needs images the pipeline never converted, from a scanner and an export it
was not built around. Without a second real cohort, :func:`export_site` writes the test studies
of the current split the way another site might:

- **PNG** (any source): one grey window per study at another level and width, another matrix,
  tight crops to the head, another display and JPEG quality (:class:`ich.data.site_shift.SiteShift`),
  with a ``labels.csv`` the ``images`` source reads (``layout: generic``);
- **DICOM** (sources with Hounsfield units): each study reconstructed on another field of view
  (cropped to the head, non-square), at another matrix and pixel spacing, stored unsigned with
  another rescale intercept, under new UIDs and **without FrameOfReferenceUID** (as CQ500 ships),
  with a ``labels.csv`` the ``folder`` source reads (slice level, keyed by the new SOPInstanceUIDs).

Every draw comes from the seed and the study id, so an export is a pure function of its inputs.
The studies are test studies: no stage trained or chose anything on them, and the ``external``
stages only measure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ich.data.site_shift import SiteShift, brain_window_of, write_shifted_studies
from ich.io.atomic import write_json
from ich.io.dicom import read_ct_slice, read_dicom_header
from ich.io.digest import digest_values
from ich.io.raw_cohort import COHORT_FILE
from ich.labels import LABELS

FORMATS: tuple[str, ...] = ("dicom", "png")


@dataclass(frozen=True)
class ScannerProtocol:
    """Ranges one study's DICOM reconstruction is drawn from."""

    matrix: tuple[int, int] = (320, 512)  # rows of the reconstructed matrix
    margin: tuple[float, float] = (0.02, 0.10)  # field of view around the head, fraction of its extent
    intercept: float = -1000.0  # unsigned storage: stored = HU - intercept (-1024 in the demo's own files)
    head_hu: float = -300.0  # what counts as head when cropping the field of view


def first_channel_window(source: dict, windows: list) -> tuple[float, float] | None:
    """The ``[lo, hi]`` HU window of the converted slices' first channel: ``convert.windows[0]`` for
    a source with Hounsfield units, the brain window a pre-windowed release records otherwise
    (``None`` when it records none)."""
    if source.get("has_hu"):
        lo, hi = windows[0]
        return float(lo), float(hi)
    return brain_window_of(source)


def _rng(seed: int, study_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, int(digest_values(str(study_id)), 16) % 2**32])


def _uid(seed: int, *parts: object) -> str:
    return generate_uid(entropy_srcs=[f"ich-site-{seed}", *map(str, parts)])


def _head_box(hus: list[np.ndarray], threshold: float) -> tuple[int, int, int, int]:
    """Rows and columns ``(top, bottom, left, right)`` the head spans on any slice of the study."""
    head = np.any(np.stack([hu > threshold for hu in hus]), axis=0)
    if not head.any():
        return 0, head.shape[0], 0, head.shape[1]
    rows, cols = np.nonzero(head.any(axis=1))[0], np.nonzero(head.any(axis=0))[0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _ct_file(hu: np.ndarray, header: dict, intercept: float) -> Dataset:
    stored = np.clip(np.rint(hu - intercept), 0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = header["SOPInstanceUID"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = intercept
    ds.PixelData = stored.tobytes()
    return ds


def export_dicom_study(
    study_id: str, rows: pd.DataFrame, out: Path, protocol: ScannerProtocol, seed: int
) -> list[dict]:
    """Write one study (its index ``rows``, ``source_path`` the raw DICOM) as another scanner would.

    Returns one label row per slice (``level, key, any, <subtypes>``, the new SOPInstanceUID as key).
    """
    rng = _rng(seed, study_id)
    slices = [read_ct_slice(path) for path in rows["source_path"]]
    hus = [s.hu for s in slices]
    top, bottom, left, right = _head_box(hus, protocol.head_hu)
    margin = rng.uniform(*protocol.margin)
    pad_r, pad_c = int(round(margin * (bottom - top))), int(round(margin * (right - left)))
    top, bottom = max(0, top - pad_r), min(hus[0].shape[0], bottom + pad_r)
    left, right = max(0, left - pad_c), min(hus[0].shape[1], right + pad_c)
    out_rows = int(rng.integers(protocol.matrix[0], protocol.matrix[1] + 1))
    scale = out_rows / (bottom - top)
    out_cols = max(256, int(round((right - left) * scale)))  # the pipeline's readers refuse matrices under 256
    row_mm, col_mm = slices[0].pixel_spacing
    patient = f"SITE{digest_values(str(study_id))[:8].upper()}"
    study_uid, series_uid = _uid(seed, study_id, "study"), _uid(seed, study_id, "series")
    folder = out / str(study_id)
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for k, (row, ct) in enumerate(zip(rows.itertuples(), slices, strict=True)):
        crop = ct.hu[top:bottom, left:right]
        hu = cv2.resize(crop, (out_cols, out_rows), interpolation=cv2.INTER_LINEAR)
        sop_uid = _uid(seed, study_id, row.slice_id)
        spacing = [row_mm * (bottom - top) / out_rows, col_mm * (right - left) / out_cols]
        x, y, z = (float(v) for v in read_dicom_header(row.source_path, ["ImagePositionPatient"]).ImagePositionPatient)
        origin = [x + left * col_mm, y + top * row_mm, z]
        header = {
            "SOPInstanceUID": sop_uid,
            "PatientID": patient,
            "PatientName": f"SYNTHETIC^{patient}",
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": series_uid,
            "StudyDescription": "HEAD CT, another site (ich.data.site_export)",
            "SeriesDescription": "AXIAL 5MM",
            "InstanceNumber": k + 1,
            "ImagePositionPatient": origin,
            "PixelSpacing": spacing,
            "SliceThickness": ct.slice_thickness or 5.0,
        }
        _ct_file(hu, header, protocol.intercept).save_as(folder / f"{k + 1:04d}.dcm", enforce_file_format=True)
        labels.append({"level": "slice", "key": sop_uid, **{label: getattr(row, label) for label in LABELS}})
    return labels


def export_site(
    index: pd.DataFrame,
    converted_dir: str | Path,
    out: str | Path,
    *,
    formats: tuple[str, ...],
    shift: SiteShift,
    scanner: ScannerProtocol,
    seed: int,
    origin: Mapping[str, Any],
) -> dict[str, int]:
    """Export the studies of ``index`` (converted slices under ``converted_dir``) into ``out/<format>/``.

    ``dicom`` needs Hounsfield units (``has_hu`` rows, ``source_path`` the raw DICOM file). Each
    format's folder says what it holds in its :data:`ich.io.raw_cohort.COHORT_FILE` (``origin``'s name and
    ``synthetic`` flag: a site export of phantoms is still phantoms). Returns the number of studies
    written per format.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"site formats must be among {FORMATS}, got {list(formats)}")
    if index.empty:
        raise ValueError("no studies to export")
    out = Path(out)
    index = index.sort_values(["study_id", "slice_order"])
    written = {}
    if "png" in formats:
        folders = write_shifted_studies(index, converted_dir, out / "png", shift, seed=seed)
        images = [
            {
                "image": f"{row.study_id}/{row.slice_order:04d}_{row.slice_id}.png",
                "patient_id": row.study_id,
                "z": row.slice_order,
                **{label: getattr(row, label) for label in LABELS},
            }
            for row in index.itertuples()
        ]
        pd.DataFrame(images).to_csv(out / "png" / "labels.csv", index=False)
        written["png"] = len(folders)
    if "dicom" in formats:
        if not index["has_hu"].astype(bool).all():
            raise ValueError("a DICOM export needs Hounsfield units: this cohort's slices are pre-windowed images")
        labels = []
        for study_id, rows in index.groupby("study_id", sort=True):
            labels += export_dicom_study(str(study_id), rows, out / "dicom", scanner, seed)
        pd.DataFrame(labels, columns=["level", "key", *LABELS]).to_csv(out / "dicom" / "labels.csv", index=False)
        written["dicom"] = int(index["study_id"].nunique())
    for fmt in written:
        described = {
            "name": f"{origin['name']} as another site sends them ({fmt})",
            "synthetic": bool(origin["synthetic"]),
        }
        write_json(out / fmt / COHORT_FILE, described)
    return written


__all__ = ["FORMATS", "ScannerProtocol", "export_dicom_study", "export_site", "first_channel_window"]

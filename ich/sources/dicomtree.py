"""Scan a tree of DICOM files (headers only) and pick one series per study.

A study often holds several reconstructions of the same scan (thin and thick slices, soft
tissue and bone kernels, reformats). Mixing them would interleave slices along z and count
the same anatomy several times, so ``cq500`` and ``folder`` keep one axial series per study
by default (``series: one-per-study``): non-bone kernel first, then the slice thickness
closest to ``preferred_thickness_mm`` (5 mm, the usual thick axial head CT), then the series
with most files. Every series left out is listed in ``source.json`` issues with its reason.
Files whose header cannot be read are kept (``convert`` quarantines them with the reason).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ich.io.dicom import read_dicom_header
from ich.io.unusable import UnusableSliceError

HEADER_TAGS: tuple[str, ...] = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesDescription",
    "ConvolutionKernel",
    "SliceThickness",
    "ImageType",
    "AccessionNumber",
)
RECORD_COLUMNS: tuple[str, ...] = (
    "path",
    "patient_id",
    "study_uid",
    "series_uid",
    "sop_uid",
    "modality",
    "description",
    "kernel",
    "thickness",
    "image_type",
    "accession",
    "error",
)
SERIES_MODES: tuple[str, ...] = ("one-per-study", "all")
_BONE = re.compile(r"bone|\bH[6-9]\d|\bB[6-9]\d|\bD[6-9]\d|LUNG|EDGE|SHARP", re.IGNORECASE)


def _value(ds, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def read_record(path: Path) -> dict:
    """Header fields of one file (``error`` set and fields empty when unreadable)."""
    record = {c: "" for c in RECORD_COLUMNS}
    record["path"] = str(path)
    try:
        ds = read_dicom_header(path, HEADER_TAGS)
    except UnusableSliceError as exc:
        record["error"] = exc.reason
        return record
    record.update(
        patient_id=_value(ds, "PatientID"),
        study_uid=_value(ds, "StudyInstanceUID"),
        series_uid=_value(ds, "SeriesInstanceUID"),
        sop_uid=_value(ds, "SOPInstanceUID"),
        modality=_value(ds, "Modality"),
        description=_value(ds, "SeriesDescription"),
        kernel=_value(ds, "ConvolutionKernel"),
        thickness=_value(ds, "SliceThickness"),
        image_type=_value(ds, "ImageType"),
        accession=_value(ds, "AccessionNumber"),
    )
    if not record["study_uid"]:
        record["error"] = "missing StudyInstanceUID"
    return record


def scan_dicom_tree(files: Iterable[Path], *, per_directory: bool = False) -> pd.DataFrame:
    """One record per file. ``per_directory``: read one readable header per folder and copy
    its patient/study/series to the folder's other files (for layouts with one series per
    folder, e.g. CQ500; ``sop_uid`` is then empty for the copied rows)."""
    files = list(files)
    if not per_directory:
        return pd.DataFrame([read_record(p) for p in files], columns=list(RECORD_COLUMNS))
    by_dir: dict[Path, list[Path]] = {}
    for path in files:
        by_dir.setdefault(path.parent, []).append(path)
    rows: list[dict] = []
    for folder_files in by_dir.values():
        representative = None
        for path in folder_files:
            record = read_record(path)
            if not record["error"]:
                representative = record
                break
        for path in folder_files:
            row = {c: "" for c in RECORD_COLUMNS}
            row["path"] = str(path)
            if representative is None:
                row["error"] = "no readable DICOM header in its folder"
            else:
                row.update({k: v for k, v in representative.items() if k not in ("path", "sop_uid", "error")})
                if path == Path(representative["path"]):
                    row["sop_uid"] = representative["sop_uid"]
            rows.append(row)
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def _thickness(text: str) -> float:
    try:
        value = float(str(text).split("\\")[0])
    except ValueError:
        return math.nan
    return value if math.isfinite(value) and value > 0 else math.nan


def select_series(
    records: pd.DataFrame,
    *,
    mode: str = "one-per-study",
    preferred_thickness_mm: float = 5.0,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Keep the records of the chosen series; return them and the issues for the others."""
    if mode not in SERIES_MODES:
        raise ValueError(f"series must be one of {SERIES_MODES}, got {mode!r}")
    if mode == "all" or records.empty:
        return records, []
    readable = records[(records["error"] == "") & (records["series_uid"] != "")]
    unreadable = records.drop(readable.index)
    keep_series: set[tuple[str, str]] = set()
    issues: list[dict[str, str]] = []
    for study_uid, study in readable.groupby("study_uid", sort=True):
        series = []
        for series_uid, group in study.groupby("series_uid", sort=True):
            first = group.iloc[0]
            text = f"{first['description']} {first['kernel']}"
            localizer = "LOCALIZER" in first["image_type"].upper()
            non_ct = first["modality"].upper() != "CT"
            thickness = _thickness(first["thickness"])
            distance = abs(thickness - preferred_thickness_mm) if not math.isnan(thickness) else 1e6
            score = (non_ct or localizer, bool(_BONE.search(text)), distance, -len(group), series_uid)
            series.append((score, series_uid, group))
        series.sort(key=lambda item: item[0])
        chosen_score, chosen_uid, chosen = series[0]
        keep_series.add((study_uid, chosen_uid))
        chosen_desc = chosen.iloc[0]["description"] or chosen_uid
        for score, series_uid, group in series[1:]:
            first = group.iloc[0]
            folder = str(Path(first["path"]).parent)
            issues.append(
                {
                    "path": folder,
                    "reason": (
                        f"series {first['description'] or series_uid!r} ({len(group)} files) not used: "
                        f"one series per study, study {study_uid} uses {chosen_desc!r}"
                        + (
                            " (ranked equal to it, chosen by SeriesInstanceUID order: read this one on its own to compare)"
                            if score[:4] == chosen_score[:4]
                            else ""
                        )
                    ),
                }
            )
    mask = [(s, e) in keep_series for s, e in zip(readable["study_uid"], readable["series_uid"], strict=True)]
    kept = pd.concat([readable[mask], unreadable]).sort_index()
    return kept, issues

"""The raw-cohort tables every source adapter writes (docs/contracts.md, "Raw cohort").

``manifest.csv`` (one row per source file), ``labels.csv`` (slice- or study-level labels)
and ``source.json`` (name, synthetic, has_hu, citation, plus ``issues``: problems found while
materialising, each ``{"path", "reason"}``, so that nothing is dropped silently).

Columns added by the adapters of this package (the contract allows added columns):

* ``bone_path`` (``image`` rows of two-window releases): the bone-window image; empty when
  the source has none or it is missing.
* ``note``: a per-row remark for the converter/report, e.g. a missing bone-window image.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ich.labels import LABELS, SUBTYPES

MANIFEST_COLUMNS: tuple[str, ...] = (
    "path",
    "format",
    "patient_id",
    "study_id",
    "series_id",
    "slice_key",
    "z",
    "mask_path",
)
MANIFEST_EXTRA_COLUMNS: tuple[str, ...] = ("bone_path", "note")
LABEL_COLUMNS: tuple[str, ...] = ("level", "key", *LABELS)
FORMATS: frozenset[str] = frozenset({"dicom", "nifti", "image"})
LEVELS: frozenset[str] = frozenset({"slice", "study"})
SOURCE_KEYS: tuple[str, ...] = ("name", "synthetic", "has_hu", "citation")

NON_DICOM_SUFFIXES: frozenset[str] = frozenset(
    {
        ".csv", ".txt", ".json", ".md", ".xml", ".html", ".pdf", ".zip", ".gz", ".tgz", ".tar",
        ".7z", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".nii", ".py", ".log",
        ".yaml", ".yml", ".xlsx", ".xls", ".db", ".ini", ".exe", ".bat", ".sh",
    }
)
"""File suffixes never treated as DICOM when walking a tree (DICOM files often have none)."""


class SourceError(ValueError):
    """A source cannot be materialised (bad parameters, missing files, wrong layout)."""


def require_path(params: Mapping[str, Any], source: str, key: str = "path") -> Path:
    """The absolute local path ``params[key]``, which must exist."""
    value = params.get(key)
    if value in (None, ""):
        raise SourceError(f"source {source!r}: parameter {key!r} (a local folder) is required")
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise SourceError(f"source {source!r}: {key} {str(path)!r} does not exist")
    return path.resolve()


def read_csv_table(path: Path, *, required: Sequence[str] = (), what: str = "CSV") -> pd.DataFrame:
    """Read a CSV as strings (UTF-8 with or without BOM, any line endings); check columns."""
    if not path.is_file():
        raise SourceError(f"{what} not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SourceError(f"{what} {path} lacks columns {missing}; it has {list(frame.columns)}")
    return frame


def to_flag(value: Any) -> int | None:
    """0/1 from the usual spellings (1, 0, 1.0, true/false, yes/no); None for empty."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    text = str(value).strip().lower()
    if text in ("", "nan", "na", "none"):
        return None
    if text in ("1", "1.0", "true", "yes", "y", "t"):
        return 1
    if text in ("0", "0.0", "false", "no", "n", "f"):
        return 0
    raise ValueError(f"not a 0/1 label: {value!r}")


def flags_from_row(row: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, int | None]:
    """Label values ``{label: 0/1/None}`` from a row, with ``columns[label] = row column``."""
    return {label: to_flag(row.get(column)) for label, column in columns.items()}


def natural_key(text: str) -> list[Any]:
    """Sort key that orders "2" before "10"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def iter_files(root: Path, *, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Regular files under ``root`` (no hidden files/folders), sorted naturally.

    ``suffixes``: keep only these (lower-case, with dot); ``None``: keep anything that might
    be DICOM (no suffix or a suffix outside :data:`NON_DICOM_SUFFIXES`).
    """
    wanted = {s.lower() for s in suffixes} if suffixes is not None else None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            suffix = Path(name).suffix.lower()
            if wanted is not None:
                if suffix not in wanted:
                    continue
            elif suffix in NON_DICOM_SUFFIXES or name.lower().endswith(".nii.gz"):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: natural_key(str(p)))


def _label_frame(labels: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(labels).copy() if not isinstance(labels, pd.DataFrame) else labels.copy()
    if frame.empty:
        frame = pd.DataFrame(columns=list(LABEL_COLUMNS))
    for column in LABEL_COLUMNS:
        if column not in frame.columns:
            if column in SUBTYPES:
                frame[column] = None
            else:
                raise SourceError(f"labels lack column {column!r}")
    frame["level"] = frame["level"].astype(str)
    frame["key"] = frame["key"].astype(str)
    bad_levels = sorted(set(frame["level"]) - LEVELS)
    if bad_levels:
        raise SourceError(f"labels: unknown level(s) {bad_levels} (expected slice or study)")
    if (frame["key"].str.strip() == "").any():
        raise SourceError("labels: empty key")
    for label in LABELS:
        values = frame[label].map(to_flag)
        frame[label] = pd.array(values.tolist(), dtype="Int64")
    if frame["any"].isna().any():
        rows = frame.loc[frame["any"].isna(), "key"].head(3).tolist()
        raise SourceError(f"labels: 'any' is missing for key(s) {rows}")
    duplicated = frame.duplicated(["level", "key"], keep=False)
    if duplicated.any():
        keys = frame.loc[duplicated, "key"].head(3).tolist()
        raise SourceError(f"labels: duplicate keys {keys}")
    extra = [c for c in frame.columns if c not in LABEL_COLUMNS]
    return frame[[*LABEL_COLUMNS, *extra]]


def _manifest_frame(manifest: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(manifest).copy() if not isinstance(manifest, pd.DataFrame) else manifest.copy()
    if frame.empty:
        raise SourceError("the source has no image files: empty manifest")
    for column in MANIFEST_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.fillna("")
    bad = sorted(set(frame["format"]) - FORMATS)
    if bad:
        raise SourceError(f"manifest: unknown format(s) {bad}")
    needs_ids = frame["format"].isin(["image", "nifti"])
    for column in ("patient_id", "study_id", "series_id", "slice_key"):
        empty = needs_ids & (frame[column].astype(str) == "")
        if empty.any():
            first = frame.loc[empty, "path"].iloc[0]
            raise SourceError(f"manifest: {column} is required for image/nifti rows ({first})")
    if frame["path"].duplicated().any():
        raise SourceError(f"manifest: duplicate path {frame.loc[frame['path'].duplicated(), 'path'].iloc[0]}")
    extra = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    ordered_extra = [c for c in MANIFEST_EXTRA_COLUMNS if c in extra] + [
        c for c in extra if c not in MANIFEST_EXTRA_COLUMNS
    ]
    return frame[[*MANIFEST_COLUMNS, *ordered_extra]]


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_raw_cohort(
    out_dir: str | Path,
    manifest: pd.DataFrame | Sequence[Mapping[str, Any]],
    labels: pd.DataFrame | Sequence[Mapping[str, Any]],
    source: Mapping[str, Any],
    issues: Sequence[Mapping[str, str]] = (),
) -> None:
    """Validate and write ``manifest.csv``, ``labels.csv`` and ``source.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_frame = _manifest_frame(manifest)
    label_frame = _label_frame(labels)
    missing = [k for k in SOURCE_KEYS if k not in source]
    if missing:
        raise SourceError(f"source.json lacks {missing}")
    info = dict(source)
    info["issues"] = [{"path": str(i["path"]), "reason": str(i["reason"])} for i in issues]
    info["counts"] = {
        "manifest_rows": int(len(manifest_frame)),
        "label_rows": int(len(label_frame)),
        "issues": len(info["issues"]),
        **{f"manifest_{fmt}": int((manifest_frame["format"] == fmt).sum()) for fmt in sorted(FORMATS)},
        **{f"labels_{lvl}": int((label_frame["level"] == lvl).sum()) for lvl in sorted(LEVELS)},
    }
    tmp = out / "manifest.csv.partial"
    manifest_frame.to_csv(tmp, index=False)
    os.replace(tmp, out / "manifest.csv")
    tmp = out / "labels.csv.partial"
    label_frame.to_csv(tmp, index=False)
    os.replace(tmp, out / "labels.csv")
    _atomic_text(out / "source.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")


def read_raw_cohort(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read the three tables back (manifest and labels as strings)."""
    out = Path(out_dir)
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    source = json.loads((out / "source.json").read_text(encoding="utf-8"))
    return manifest, labels, source


def relative_or_absolute(path: Path, out_dir: Path) -> str:
    """Path relative to ``out_dir`` when inside it (downloaded data), else absolute (local data)."""
    path = path.resolve()
    try:
        return path.relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return str(path)

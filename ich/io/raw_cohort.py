"""The raw cohort on disk (docs/contracts.md, "Raw cohort"): what every source writes and convert reads.

``manifest.csv`` (one row per source file), ``labels.csv`` (slice- or study-level labels)
and ``source.json`` (name, synthetic, has_hu, citation, plus ``issues``: problems found while
materialising, each ``{"path", "reason"}``, so that nothing is dropped silently). The source
adapters (:mod:`ich.sources`) and the synthetic cohort (:mod:`ich.synth`) both write it here,
so neither needs the other.

Columns the adapters add (the contract allows added columns):

* ``bone_path`` (``image`` rows of two-window releases): the bone-window image; empty when
  the source has none or it is missing.
* ``note``: a per-row remark for the converter/report, e.g. a missing bone-window image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.atomic import write_csv, write_text
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
MANIFEST_EXTRA_COLUMNS: tuple[str, ...] = ("bone_path", "note", "cohort")
LABEL_COLUMNS: tuple[str, ...] = ("level", "key", *LABELS)
FORMATS: frozenset[str] = frozenset({"dicom", "nifti", "image"})
LEVELS: frozenset[str] = frozenset({"slice", "study"})
SOURCE_KEYS: tuple[str, ...] = ("name", "synthetic", "has_hu", "citation")
# A cohort folder may say what it holds (``name``, ``synthetic``) where its files cannot, e.g. a
# site export of synthetic phantoms read back by the generic ``folder`` or ``images`` adapter.
COHORT_FILE = "cohort.json"
DESCRIBED_KEYS: tuple[str, ...] = ("name", "synthetic")


class SourceError(ValueError):
    """A source cannot be materialised (bad parameters, missing files, wrong layout)."""


def cohort_description(root: str | Path) -> dict[str, Any]:
    """What ``root``'s :data:`COHORT_FILE` says of the cohort (empty when there is none)."""
    path = Path(root) / COHORT_FILE
    if not path.exists():
        return {}
    try:
        described = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc})") from exc
    unknown = sorted(set(described) - set(DESCRIBED_KEYS)) if isinstance(described, dict) else ["(not an object)"]
    if unknown:
        raise SourceError(f"{path}: unknown keys {unknown}; a cohort is described by {list(DESCRIBED_KEYS)}")
    if "synthetic" in described and not isinstance(described["synthetic"], bool):
        raise SourceError(f"{path}: 'synthetic' must be true or false, got {described['synthetic']!r}")
    return described


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
    write_csv(out / "manifest.csv", manifest_frame)
    write_csv(out / "labels.csv", label_frame)
    write_text(out / "source.json", json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")


def read_raw_cohort(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read the three tables back (manifest and labels as strings)."""
    out = Path(out_dir)
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    source = json.loads((out / "source.json").read_text(encoding="utf-8"))
    return manifest, labels, source

"""Source ``rsna``: RSNA 2019 Intracranial Hemorrhage Detection (Kaggle competition).

Parameters (``download.rsna``; ``path`` may come from ``download.path``):

``path``      local folder holding ``stage_2_train/`` (``ID_<sop>.dcm`` files) and
              ``stage_2_train.csv``; files are referenced, not copied.
``images``    images sub-folder (default ``stage_2_train``; ``stage_1_train_images`` works too).
``labels``    labels CSV (default ``stage_2_train.csv``).
``download``  ``true``: download the competition with the ``kaggle`` package into
              ``<out_dir>/rsna/`` (credentials: KAGGLE_USERNAME/KAGGLE_KEY or
              ~/.kaggle/kaggle.json; the competition rules must be accepted on kaggle.com).
              The archive is large (~180 GB); a local copy is the usual route.

Labels: ``stage_2_train.csv`` rows ``ID_<sop>_<subtype>,Label`` are pivoted to one
slice-level row per SOPInstanceUID (``ID_<sop>``, which is the DICOM SOPInstanceUID in this
release) with ``any`` and the five subtypes. Repeated rows with the same value are merged;
conflicting repeats are resolved as positive (max) and listed in source.json ``issues``.
Every ``.dcm`` file becomes a ``dicom`` manifest row (identity read from the header later).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.raw_cohort import write_raw_cohort
from ich.labels import LABELS
from ich.sources.common import SourceError, relative_or_absolute, require_path
from ich.sources.fetch import RSNA_COMPETITION, kaggle_competition_download

CITATION = (
    "Flanders AE, Prevedello LM, Shih G, et al. Construction of a Machine Learning Dataset "
    "through Collaboration: The RSNA 2019 Brain CT Hemorrhage Challenge. Radiology: Artificial "
    "Intelligence 2020;2(3):e190211. Data: Kaggle competition rsna-intracranial-hemorrhage-detection."
)


def pivot_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """RSNA long labels (``ID``, ``Label``) -> wide slice-level labels, plus issues."""
    if not {"ID", "Label"} <= set(frame.columns):
        raise SourceError(f"RSNA labels need columns ID,Label; found {list(frame.columns)}")
    ids = frame["ID"].astype(str).str.strip()
    parts = ids.str.rsplit("_", n=1, expand=True)
    if parts.shape[1] != 2:
        raise SourceError("RSNA labels: IDs must look like ID_<sop>_<subtype>")
    long = pd.DataFrame({"key": parts[0], "subtype": parts[1], "label": frame["Label"].astype(str).str.strip()})
    bad_subtype = ~long["subtype"].isin(LABELS)
    if bad_subtype.any():
        raise SourceError(f"RSNA labels: unknown subtype(s) {sorted(set(long.loc[bad_subtype, 'subtype']))[:5]}")
    long["label"] = pd.to_numeric(long["label"], errors="coerce")
    if long["label"].isna().any() or not long["label"].isin([0, 1]).all():
        raise SourceError("RSNA labels: Label must be 0 or 1")
    issues: list[dict] = []
    long = long.drop_duplicates()
    conflicts = long[long.duplicated(["key", "subtype"], keep=False)]
    for (key, subtype), _ in conflicts.groupby(["key", "subtype"]):
        issues.append({"path": f"labels:{key}_{subtype}", "reason": "conflicting repeated label rows; positive kept"})
    wide = long.pivot_table(index="key", columns="subtype", values="label", aggfunc="max")
    incomplete = wide[list(LABELS)].isna().any(axis=1) if set(LABELS) <= set(wide.columns) else None
    for label in LABELS:
        if label not in wide.columns:
            wide[label] = pd.NA
    if incomplete is not None:
        for key in wide.index[incomplete][:1000]:
            issues.append({"path": f"labels:{key}", "reason": "some subtype rows are missing"})
    wide = wide.reset_index()
    wide.insert(0, "level", "slice")
    return wide[["level", "key", *LABELS]], issues


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    if params.get("download"):
        root = out_dir / "rsna"
        kaggle_competition_download(RSNA_COMPETITION, root)
    else:
        root = require_path(params, "rsna")
    images = root / str(params.get("images") or "stage_2_train")
    labels_csv = root / str(params.get("labels") or "stage_2_train.csv")
    if not images.is_dir():
        raise SourceError(f"source 'rsna': images folder {images} not found")
    if not labels_csv.is_file():
        raise SourceError(f"source 'rsna': labels CSV {labels_csv} not found")
    with os.scandir(images) as entries:
        names = sorted(e.name for e in entries if e.is_file() and e.name.lower().endswith(".dcm"))
    if not names:
        raise SourceError(f"source 'rsna': no .dcm files in {images}")
    manifest = pd.DataFrame(
        {
            "path": [relative_or_absolute(images / n, out_dir) for n in names],
            "format": "dicom",
        }
    )
    labels, issues = pivot_labels(pd.read_csv(labels_csv, dtype=str, keep_default_na=False))
    source = {
        "name": "rsna",
        "synthetic": False,
        "has_hu": True,
        "citation": CITATION,
        "license": "RSNA 2019 competition data: use under the Kaggle competition rules",
        "images": str(images),
        "labels_csv": str(labels_csv),
    }
    write_raw_cohort(out_dir, manifest, labels, source, issues)


__all__ = ["materialise", "pivot_labels"]

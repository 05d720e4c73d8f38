"""Source ``folder``: any tree of DICOM studies with a labels CSV.

Parameters (``download.folder``; ``path`` may come from ``download.path``):

``path``                   root of the DICOM tree (files with any or no suffix; referenced,
                           not copied).
``labels``                 labels CSV (default ``<path>/labels.csv``), see below.
``key_field``              what study-level keys are: ``StudyInstanceUID`` (default),
                           ``PatientID`` or ``AccessionNumber``; mapped to StudyInstanceUID
                           through the headers (a patient key labels all their studies).
``series``                 ``one-per-study`` (default) or ``all`` (see :mod:`ich.sources.dicomtree`).
``preferred_thickness_mm`` slice thickness preferred when choosing the series (default 5).
``name``, ``citation``, ``license``: what source.json reports.

Labels CSV: columns ``key`` and ``any`` (0/1), optionally ``level`` (``study``, the default,
or ``slice``) and the subtype columns ``epidural, intraparenchymal, intraventricular,
subarachnoid, subdural`` (empty = unknown). Slice-level keys are SOPInstanceUIDs;
study-level keys are interpreted by ``key_field``. Our own ``labels.csv`` format
(``level,key,any,...``) is therefore accepted as is. Every header is read (stop before
pixels), so slice labels of series left out are dropped with an issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.raw_cohort import to_flag, write_raw_cohort
from ich.labels import LABELS, SUBTYPES
from ich.sources.common import SourceError, iter_files, read_csv_table, relative_or_absolute, require_path
from ich.sources.dicomtree import scan_dicom_tree, select_series

KEY_FIELDS: dict[str, str] = {
    "StudyInstanceUID": "study_uid",
    "PatientID": "patient_id",
    "AccessionNumber": "accession",
}


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    root = require_path(params, "folder")
    labels_value = params.get("labels") or "labels.csv"
    labels_csv = Path(str(labels_value)).expanduser()
    if not labels_csv.is_absolute():
        labels_csv = root / labels_csv
    key_field = str(params.get("key_field") or "StudyInstanceUID")
    if key_field not in KEY_FIELDS:
        raise SourceError(f"source 'folder': key_field must be one of {sorted(KEY_FIELDS)}, got {key_field!r}")
    table = read_csv_table(labels_csv, required=["key", "any"], what="folder labels")
    if "level" not in table.columns:
        table["level"] = "study"
    table["level"] = table["level"].replace("", "study")
    bad = sorted(set(table["level"]) - {"slice", "study"})
    if bad:
        raise SourceError(f"folder labels: unknown level(s) {bad}")

    files = iter_files(root)
    if not files:
        raise SourceError(f"source 'folder': no candidate DICOM files under {root}")
    all_records = scan_dicom_tree(files, per_directory=False)
    records, issues = select_series(
        all_records,
        mode=str(params.get("series") or "one-per-study"),
        preferred_thickness_mm=float(params.get("preferred_thickness_mm", 5.0)),
    )
    kept_sops = set(records["sop_uid"]) - {""}
    dropped_sops = set(all_records["sop_uid"]) - kept_sops - {""}
    readable = all_records[all_records["study_uid"] != ""]
    column = KEY_FIELDS[key_field]
    studies_of: dict[str, set[str]] = {}
    for value, study in zip(readable[column], readable["study_uid"], strict=True):
        if value:
            studies_of.setdefault(value, set()).add(study)

    labels: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for row in table.to_dict("records"):
        values = {label: to_flag(row.get(label)) for label in LABELS if label in row}
        for subtype in SUBTYPES:
            values.setdefault(subtype, None)
        key = str(row["key"]).strip()
        if row["level"] == "slice":
            if key in dropped_sops:
                issues.append({"path": f"{labels_csv.name}:{key}", "reason": "slice label of a series not used"})
                continue
            targets = [key]
        else:
            targets = sorted(studies_of.get(key, set()))
            if not targets:
                # kept as is: convert reports "study label without any image"
                targets = [key]
        for target in targets:
            if (row["level"], target) in seen:
                reason = f"duplicate {row['level']} label for {target}; first kept"
                issues.append({"path": f"{labels_csv.name}:{key}", "reason": reason})
                continue
            seen.add((row["level"], target))
            labels.append({"level": row["level"], "key": target, **values})

    paths = [relative_or_absolute(Path(p), out_dir) for p in records["path"]]
    manifest = pd.DataFrame({"path": paths, "format": "dicom"})
    source = {
        "name": str(params.get("name") or "folder"),
        "synthetic": False,
        "has_hu": True,
        "citation": str(params.get("citation") or ""),
        "labels_csv": str(labels_csv),
        "key_field": key_field,
        "series": str(params.get("series") or "one-per-study"),
    }
    if params.get("license"):
        source["license"] = str(params["license"])
    write_raw_cohort(out_dir, manifest, labels, source, issues)


__all__ = ["KEY_FIELDS", "materialise"]

"""Source ``cq500``: the qure.ai CQ500 head-CT dataset (DICOM studies + three radiologists' reads).

Parameters (``download.cq500``; ``path`` may come from ``download.path``):

``path``                   local folder with the unpacked studies (any depth, e.g.
                           ``CQ500CT0 CQ500CT0/Unknown Study/CT PLAIN THIN/*.dcm``) and
                           ``reads.csv`` (files are referenced, not copied).
``labels``                 reads CSV (default ``<path>/reads.csv``).
``series``                 ``one-per-study`` (default) or ``all`` (see :mod:`ich.sources.dicomtree`).
``preferred_thickness_mm`` slice thickness preferred when choosing the series (default 5).
``scan``                   ``folder`` (default: one header per folder, CQ500 has one series
                           per folder) or ``file`` (every header; slower, any layout).

Labels: ``reads.csv`` has one row per patient, ``name`` (``CQ500-CT-<n>``, equal to the
DICOM PatientID), ``Category`` and, for each reader ``R1``, ``R2``, ``R3``, the columns
``R<i>:ICH``, ``R<i>:IPH``, ``R<i>:IVH``, ``R<i>:SDH``, ``R<i>:EDH``, ``R<i>:SAH`` (plus
location, chronicity, fracture, mass effect and midline shift, not used here). Each label is
the **majority vote** of the readers (at least 2 of 3): ``any`` from ICH, ``intraparenchymal``
from IPH, ``intraventricular`` from IVH, ``subdural`` from SDH, ``epidural`` from EDH,
``subarachnoid`` from SAH. Labels are study-level (key = StudyInstanceUID, read from the
headers; every slice of the study inherits them). Studies are matched to reads by the
DICOM PatientID, or by the folder name ``CQ500CT<n>`` when the header has none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.raw_cohort import to_flag, write_raw_cohort
from ich.sources.common import SourceError, iter_files, read_csv_table, relative_or_absolute, require_path
from ich.sources.dicomtree import scan_dicom_tree, select_series

CITATION = (
    "Chilamkurthy S, Ghosh R, Tanamala S, et al. Deep learning algorithms for detection of critical "
    "findings in head CT scans: a retrospective study. Lancet 2018;392(10162):2388-2396. "
    "Data: CQ500, qure.ai (http://headctstudy.qure.ai/dataset)."
)
READERS: tuple[str, ...] = ("R1", "R2", "R3")
FINDINGS: dict[str, str] = {
    "any": "ICH",
    "epidural": "EDH",
    "intraparenchymal": "IPH",
    "intraventricular": "IVH",
    "subarachnoid": "SAH",
    "subdural": "SDH",
}
_FOLDER_NAME = re.compile(r"CQ500[-_ ]?CT[-_ ]?(\d+)", re.IGNORECASE)


def majority_labels(reads: pd.DataFrame) -> pd.DataFrame:
    """Per patient ``name``: each label is 1 when at least half the readers (2 of 3) say so."""
    required = ["name"] + [f"{r}:{f}" for r in READERS for f in FINDINGS.values()]
    missing = [c for c in required if c not in reads.columns]
    if missing:
        raise SourceError(f"CQ500 reads.csv lacks columns {missing[:6]}")
    out = pd.DataFrame({"name": reads["name"].astype(str).str.strip()})
    for label, finding in FINDINGS.items():
        votes = pd.DataFrame({r: reads[f"{r}:{finding}"].map(to_flag) for r in READERS})
        if votes.isna().any().any():
            raise SourceError(f"CQ500 reads.csv: empty vote in {finding}")
        out[label] = (votes.sum(axis=1) * 2 >= len(READERS) + 1).astype(int)  # strict majority
    return out


def _patient_from_folder(path: str, root: Path) -> str:
    match = _FOLDER_NAME.search(str(Path(path).relative_to(root)))
    return f"CQ500-CT-{int(match.group(1))}" if match else ""


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    root = require_path(params, "cq500")
    labels_csv = Path(str(params.get("labels") or "reads.csv")).expanduser()
    if not labels_csv.is_absolute():
        labels_csv = root / labels_csv
    reads = read_csv_table(labels_csv, required=["name"], what="CQ500 reads")
    votes = majority_labels(reads)
    files = iter_files(root)
    if not files:
        raise SourceError(f"source 'cq500': no DICOM files under {root}")
    scan = str(params.get("scan") or "folder")
    if scan not in ("folder", "file"):
        raise SourceError(f"source 'cq500': scan must be 'folder' or 'file', got {scan!r}")
    records = scan_dicom_tree(files, per_directory=scan == "folder")
    records, issues = select_series(
        records,
        mode=str(params.get("series") or "one-per-study"),
        preferred_thickness_mm=float(params.get("preferred_thickness_mm", 5.0)),
    )
    readable = records[records["study_uid"] != ""].copy()
    readable["patient"] = readable["patient_id"]
    no_id = readable["patient"] == ""
    readable.loc[no_id, "patient"] = [_patient_from_folder(p, root) for p in readable.loc[no_id, "path"]]
    studies = readable.drop_duplicates("study_uid")[["study_uid", "patient", "path"]]
    by_name = votes.set_index("name")
    labels: list[dict] = []
    matched: set[str] = set()
    for study in studies.to_dict("records"):
        if study["patient"] not in by_name.index:
            issues.append(
                {
                    "path": str(Path(study["path"]).parent),
                    "reason": f"study of patient {study['patient']!r} has no row in reads.csv",
                }
            )
            continue
        matched.add(study["patient"])
        values = by_name.loc[study["patient"]]
        if isinstance(values, pd.DataFrame):
            reason = f"{study['patient']} appears more than once; first row used"
            issues.append({"path": str(labels_csv), "reason": reason})
            values = values.iloc[0]
        labels.append({"level": "study", "key": study["study_uid"], **{k: int(values[k]) for k in FINDINGS}})
    for name in sorted(set(votes["name"]) - matched):
        issues.append({"path": f"{labels_csv.name}:{name}", "reason": "reads.csv row without any image"})
    paths = [relative_or_absolute(Path(p), out_dir) for p in records["path"]]
    manifest = pd.DataFrame({"path": paths, "format": "dicom"})
    source = {
        "name": "cq500",
        "synthetic": False,
        "has_hu": True,
        "citation": CITATION,
        "license": "CC BY-NC-SA 4.0 (qure.ai CQ500)",
        "labels": "study-level majority vote of three radiologists (R1-R3)",
        "series": str(params.get("series") or "one-per-study"),
    }
    write_raw_cohort(out_dir, manifest, labels, source, issues)


__all__ = ["FINDINGS", "READERS", "majority_labels", "materialise"]

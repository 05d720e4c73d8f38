"""Source ``ct-ich``: PhysioNet CT-ICH 1.3.1 (NIfTI volumes in HU, bleed masks, slice labels).

Parameters (``download.ct_ich``; ``path`` may come from ``download.path``):

``path``      local copy: a folder holding ``ct_scans/``, ``masks/`` and
              ``hemorrhage_diagnosis_raw_ct.csv`` (or a folder with exactly one such
              sub-folder, as PhysioNet's zip unpacks). Files are referenced, not copied.
``download``  ``true``: fetch from PhysioNet into ``<out_dir>/ct-ich-<version>/`` with the
              credentials in PHYSIONET_USERNAME/PHYSIONET_PASSWORD (the project's data use
              agreement must be accepted on physionet.org), verifying every file against
              the project's published SHA256SUMS.txt.
``version``   PhysioNet version (default ``1.3.1``).
``verify``    local copies with a ``SHA256SUMS.txt``: verify every listed file (default true).

Tables: one ``nifti`` manifest row per volume ``ct_scans/<NNN>.nii[.gz]`` with
``patient_id = study_id = series_id = NNN``, ``slice_key = ctich_<NNN>`` and
``mask_path = masks/<NNN>.nii[.gz]``. Slice ``k`` of a volume (0-based, storage order; see
:mod:`ich.io.nifti`) is the CSV's ``SliceNumber = k + 1`` and gets the key ``ctich_<NNN>_<k>``.
``any = 1 - No_Hemorrhage``. Label rows of patients without a volume (the release omits some
patients' scans) and volumes whose depth differs from their number of label rows are listed
in source.json ``issues``; the label rows are kept so ``convert`` reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ich.io.nifti import nifti_slice_count
from ich.io.raw_cohort import write_raw_cohort
from ich.io.unusable import UnusableSliceError
from ich.sources.common import SourceError, natural_key, relative_or_absolute, require_path
from ich.sources.ct_ich_labels import CT_ICH_CITATION, read_ct_ich_labels
from ich.sources.fetch import CT_ICH_PROJECT, CT_ICH_VERSION, parse_sha256sums, physionet_download, verify_checksums

LABELS_CSV = "hemorrhage_diagnosis_raw_ct.csv"
SUMS = "SHA256SUMS.txt"


def find_root(path: Path) -> Path:
    """The folder that holds ``ct_scans/`` and the labels CSV (``path`` or its only child)."""
    if (path / "ct_scans").is_dir() and (path / LABELS_CSV).is_file():
        return path
    children = [c for c in path.iterdir() if c.is_dir() and (c / "ct_scans").is_dir() and (c / LABELS_CSV).is_file()]
    if len(children) == 1:
        return children[0]
    raise SourceError(
        f"source 'ct-ich': {path} does not hold ct_scans/ and {LABELS_CSV} (nor exactly one sub-folder with them)"
    )


def _volumes(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        name = path.name
        stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(".nii") else None
        if stem is None or not stem.isdigit() or not path.is_file():
            continue
        found[f"{int(stem):03d}"] = path
    return found


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    version = str(params.get("version") or CT_ICH_VERSION)
    out_dir = Path(out_dir)
    if params.get("download"):
        root = physionet_download(CT_ICH_PROJECT, version, out_dir / f"ct-ich-{version}")
        root = find_root(root)
    else:
        root = find_root(require_path(params, "ct-ich"))
        if params.get("verify", True) and (root / SUMS).is_file():
            sums = parse_sha256sums((root / SUMS).read_text(encoding="utf-8"))
            verify_checksums(root, sums)
    manifest, labels, issues = tables(root, out_dir)
    source = {
        "name": "ct-ich",
        "synthetic": False,
        "has_hu": True,
        "citation": CT_ICH_CITATION,
        "license": f"PhysioNet data licence of ct-ich {version} (accepted by the user on physionet.org)",
        "version": version,
        "slice_key": "ctich_<NNN>_<k>, k = SliceNumber - 1 = 0-based slice index of the volume",
    }
    write_raw_cohort(out_dir, manifest, labels, source, issues)


def tables(root: Path, out_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Manifest rows, label rows and issues of a CT-ICH NIfTI folder."""
    label_rows, issues = read_ct_ich_labels(root / LABELS_CSV)
    volumes = _volumes(root / "ct_scans")
    masks = _volumes(root / "masks")
    labels: list[dict] = []
    rows_per_patient: dict[str, int] = {}
    for row in label_rows:
        # the NIfTI release numbers slices from 1, our keys (volume slice indices) from 0
        labels.append({"level": "slice", "key": f"ctich_{row.patient}_{row.slice_number - 1}", **row.labels})
        rows_per_patient[row.patient] = rows_per_patient.get(row.patient, 0) + 1

    for patient in sorted(set(rows_per_patient) - set(volumes)):
        issues.append(
            {
                "path": str(root / "ct_scans" / f"{patient}.nii"),
                "reason": f"no CT volume for patient {patient}: {rows_per_patient[patient]} label rows without images",
            }
        )
    manifest: list[dict] = []
    for patient, volume in volumes.items():
        mask = masks.get(patient)
        if mask is None:
            issues.append({"path": str(volume), "reason": "no mask volume: slices kept without a reference mask"})
        try:
            depth = nifti_slice_count(volume)
        except UnusableSliceError as exc:
            depth = None
            issues.append({"path": str(volume), "reason": exc.reason})
        if depth is not None and patient in rows_per_patient and depth != rows_per_patient[patient]:
            issues.append(
                {
                    "path": str(volume),
                    "reason": f"volume has {depth} slices but the labels list {rows_per_patient[patient]}",
                }
            )
        if patient not in rows_per_patient:
            issues.append({"path": str(volume), "reason": "volume without any label row"})
        manifest.append(
            {
                "path": relative_or_absolute(volume, out_dir),
                "format": "nifti",
                "patient_id": patient,
                "study_id": patient,
                "series_id": patient,
                "slice_key": f"ctich_{patient}",
                "z": "",
                "mask_path": relative_or_absolute(mask, out_dir) if mask else "",
            }
        )
    return manifest, labels, issues


__all__ = ["LABELS_CSV", "find_root", "materialise", "tables"]

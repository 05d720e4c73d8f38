"""Source ``images``: already-windowed image datasets (no Hounsfield units).

Parameters (``params.yaml`` -> ``download.images``; ``path`` may come from ``download.path``):

``path``     local dataset folder (required; files are referenced there, not copied).
``layout``   ``ct-ich-jpg`` | ``headct-png`` | ``generic`` | ``auto`` (default: detect).
``labels``   generic layout: labels CSV (default ``<path>/labels.csv``).
``name``, ``citation``, ``license``: generic layout: what source.json reports.

Layouts
-------
``ct-ich-jpg`` (CT-ICH, Kaggle JPG release; Hssayeni et al.): ``Patients_CT/<NNN>/brain/<S>.jpg``
and ``Patients_CT/<NNN>/bone/<S>.jpg`` plus ``hemorrhage_diagnosis.csv`` (UTF-8 BOM, CRLF;
PatientNumber, SliceNumber, Intraventricular, Intraparenchymal, Subarachnoid, Epidural,
Subdural, No_Hemorrhage, Fracture_Yes_No). One manifest row per brain image:
``patient_id = study_id = series_id = NNN``, ``slice_key = ctich_<NNN>_<S>``, ``z = S`` (a
slice number, not mm), ``bone_path`` = the bone image. ``any = 1 - No_Hemorrhage`` (checked
against the subtypes; disagreements are reported). Fracture_Yes_No is not an ICH label and is
not carried. Segmentation masks ``brain/<S>_HGE_Seg.jpg`` of the original release are used as
``mask_path`` when present.
**Missing bone image** (``084/bone/36.jpg`` in the release): the slice is kept, because its
label and its diagnostic brain window are intact; ``bone_path`` is empty, ``note`` says
``bone window image missing: B channel = brain window`` and source.json lists it under
``issues``. A missing *brain* image drops the manifest row (its label row stays, so
``convert`` reports a label without an image) and is listed in ``issues`` too.

``headct-png`` (Kaggle "Head CT - hemorrhage", Kitamura): ``head_ct/<id>.png`` (3-digit ids,
possibly under ``head_ct/head_ct/``) and ``labels.csv`` with ``id,hemorrhage``. The release
has no patient ids: each image is treated as its own patient (an assumption reported in
source.json) and only ``any`` is known.

``generic``: a labels CSV with columns ``image,patient_id,any`` and optionally
``study_id`` (default patient_id), ``series_id`` (default study_id), ``z`` (default: the
row's rank within its study), ``slice_key`` (default: the image path relative to ``path``),
``mask`` (a 0/255 mask image), ``bone`` (a bone-window image) and the subtype columns
``epidural,intraparenchymal,intraventricular,subarachnoid,subdural``. Image paths are
relative to ``path`` or absolute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ich.io.image_files import CHANNEL_MAPPING
from ich.io.raw_cohort import to_flag, write_raw_cohort
from ich.labels import SUBTYPES
from ich.sources.common import SourceError, natural_key, read_csv_table, require_path
from ich.sources.ct_ich_labels import CT_ICH_CITATION, read_ct_ich_labels

CT_ICH_CSV = "hemorrhage_diagnosis.csv"
CT_ICH_MASK_SUFFIX = "_HGE_Seg"
"""The release's bleed masks sit beside the slices: ``brain/<S>_HGE_Seg.jpg`` is the mask of ``brain/<S>.jpg``."""
HEADCT_CITATION = "Kitamura F. Head CT - hemorrhage (Kaggle dataset, felipekitamura/head-ct-hemorrhage)."
LAYOUTS = ("auto", "ct-ich-jpg", "headct-png", "generic")


def detect_layout(root: Path) -> str:
    if (root / "Patients_CT").is_dir() and (root / CT_ICH_CSV).is_file():
        return "ct-ich-jpg"
    if (root / "head_ct").is_dir() and (root / "labels.csv").is_file():
        return "headct-png"
    return "generic"


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    root = require_path(params, "images")
    layout = str(params.get("layout") or "auto")
    if layout not in LAYOUTS:
        raise SourceError(f"source 'images': layout must be one of {LAYOUTS}, got {layout!r}")
    detected = layout == "auto"
    if detected:
        layout = detect_layout(root)
    if layout == "ct-ich-jpg":
        manifest, labels, source, issues = ct_ich_jpg_tables(root)
    elif layout == "headct-png":
        manifest, labels, source, issues = headct_tables(root)
    else:
        if detected and not generic_labels(root, params).is_file():
            searched = "; ".join(layout_searched(root, params))
            raise SourceError(f"source 'images': no dataset layout found under {root}; looked for {searched}")
        manifest, labels, source, issues = generic_tables(root, params)
    studies = Counter(row["study_id"] for row in manifest)
    # a study of one image is a complete study here (convert's min_slices_per_study does not apply)
    source["single_slice_studies"] = bool(studies) and max(studies.values()) == 1
    write_raw_cohort(out_dir, manifest, labels, source, issues)


def layout_searched(root: Path, params: dict[str, Any]) -> list[str]:
    """Every place the layouts look for their labels, for the message when none is there."""
    return [
        f"{root / 'Patients_CT'}/ with {root / CT_ICH_CSV} (ct-ich-jpg)",
        f"{root / 'head_ct'}/ with {root / 'labels.csv'} (headct-png)",
        f"{generic_labels(root, params)} (generic: columns image, patient_id, any)",
    ]


# ----------------------------------------------------------------------------- CT-ICH JPG


def ct_ich_slice_images(paths: Iterable[Path]) -> list[Path]:
    """The CT slices among ``paths`` (a glob of ``brain/*.jpg``), in natural order: the masks left out."""
    return sorted((p for p in paths if not p.stem.endswith(CT_ICH_MASK_SUFFIX)), key=lambda p: natural_key(str(p)))


def ct_ich_jpg_tables(root: Path) -> tuple[list[dict], list[dict], dict, list[dict]]:
    """Manifest rows, label rows, source info and issues of the CT-ICH Kaggle JPG release."""
    rows, issues = read_ct_ich_labels(root / CT_ICH_CSV)
    manifest: list[dict] = []
    labels: list[dict] = []
    patients_dir = root / "Patients_CT"
    for row in rows:
        patient, number = row.patient, row.slice_number
        key = f"ctich_{patient}_{number}"
        labels.append({"level": "slice", "key": key, **row.labels})

        brain = patients_dir / patient / "brain" / f"{number}.jpg"
        bone = patients_dir / patient / "bone" / f"{number}.jpg"
        mask = patients_dir / patient / "brain" / f"{number}{CT_ICH_MASK_SUFFIX}.jpg"
        if not brain.is_file():
            issues.append({"path": str(brain), "reason": "brain window image missing: label row without an image"})
            continue
        note = ""
        if not bone.is_file():
            note = "bone window image missing: B channel = brain window"
            issues.append({"path": str(bone), "reason": note})
        manifest.append(
            {
                "path": str(brain),
                "format": "image",
                "patient_id": patient,
                "study_id": patient,
                "series_id": patient,
                "slice_key": key,
                "z": number,
                "mask_path": str(mask) if mask.is_file() else "",
                "bone_path": str(bone) if bone.is_file() else "",
                "note": note,
            }
        )
    # images on disk that the label table does not list: kept (convert reports them)
    listed = {Path(r["path"]) for r in manifest}
    if patients_dir.is_dir():
        for brain in ct_ich_slice_images(patients_dir.glob("*/brain/*.jpg")):
            if brain in listed:
                continue
            patient, number = brain.parent.parent.name, brain.stem
            issues.append({"path": str(brain), "reason": "image not listed in hemorrhage_diagnosis.csv"})
            bone = brain.parent.parent / "bone" / brain.name
            manifest.append(
                {
                    "path": str(brain),
                    "format": "image",
                    "patient_id": patient,
                    "study_id": patient,
                    "series_id": patient,
                    "slice_key": f"ctich_{patient}_{number}",
                    "z": number,
                    "mask_path": "",
                    "bone_path": str(bone) if bone.is_file() else "",
                    "note": "",
                }
            )
    source = {
        "name": "ct-ich-jpg",
        "synthetic": False,
        "has_hu": False,
        "citation": CT_ICH_CITATION,
        "license": "CC BY 4.0",
        "layout": "ct-ich-jpg",
        "windows": {"brain": {"level": 40, "width": 120}, "bone": {"level": 700, "width": 3200}},
        "channels": CHANNEL_MAPPING["brain+bone"],
        "z_units": "slice number",
        "slice_thickness_mm": 5.0,  # Hssayeni 2020: the scans were reconstructed at 5 mm
        "note": "Pre-windowed 8-bit JPEG: no Hounsfield units, no pixel spacing; grey levels used as they are.",
    }
    return manifest, labels, source, issues


# ----------------------------------------------------------------------------- Head CT PNG


def headct_tables(root: Path) -> tuple[list[dict], list[dict], dict, list[dict]]:
    table = read_csv_table(root / "labels.csv", required=["id", "hemorrhage"], what="Head CT labels")
    image_dir = root / "head_ct"
    if (image_dir / "head_ct").is_dir():
        image_dir = image_dir / "head_ct"
    issues: list[dict] = []
    manifest: list[dict] = []
    labels: list[dict] = []
    for row in table.to_dict("records"):
        try:
            number = int(str(row["id"]).strip())
        except ValueError:
            issues.append({"path": str(root / "labels.csv"), "reason": f"unparseable id {row['id']!r}"})
            continue
        name = f"{number:03d}"
        key = f"headct_{name}"
        labels.append({"level": "slice", "key": key, "any": to_flag(row["hemorrhage"])})
        image = image_dir / f"{name}.png"
        if not image.is_file():
            issues.append({"path": str(image), "reason": "image missing: label row without an image"})
            continue
        manifest.append(
            {
                "path": str(image),
                "format": "image",
                "patient_id": key,
                "study_id": key,
                "series_id": key,
                "slice_key": key,
                "z": 0,
                "mask_path": "",
            }
        )
    source = {
        "name": "head-ct-hemorrhage",
        "synthetic": False,
        "has_hu": False,
        "citation": HEADCT_CITATION,
        "layout": "headct-png",
        "channels": f"{CHANNEL_MAPPING['grey']}; colour images {CHANNEL_MAPPING['rgb']}",
        "note": (
            "Pre-windowed PNGs of varying size: no Hounsfield units. The release has no patient ids; "
            "each image is treated as its own patient (an assumption)."
        ),
    }
    return manifest, labels, source, issues


# ----------------------------------------------------------------------------- generic


def _resolve(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def generic_labels(root: Path, params: dict[str, Any]) -> Path:
    """The generic layout's labels CSV: ``labels`` (relative to ``root`` or absolute), default ``labels.csv``."""
    return _resolve(root, str(params.get("labels") or "labels.csv"))


def generic_tables(root: Path, params: dict[str, Any]) -> tuple[list[dict], list[dict], dict, list[dict]]:
    labels_path = generic_labels(root, params)
    table = read_csv_table(labels_path, required=["image", "patient_id", "any"], what="image labels")
    subtypes = [s for s in SUBTYPES if s in table.columns]
    table["study_id"] = table["study_id"] if "study_id" in table.columns else table["patient_id"]
    table.loc[table["study_id"] == "", "study_id"] = table["patient_id"]
    table["series_id"] = table["series_id"] if "series_id" in table.columns else table["study_id"]
    table.loc[table["series_id"] == "", "series_id"] = table["study_id"]
    if "z" not in table.columns or (table["z"] == "").all():
        table["z"] = table.groupby("study_id").cumcount().astype(str)
    issues: list[dict] = []
    manifest: list[dict] = []
    labels: list[dict] = []
    for row in table.to_dict("records"):
        image = _resolve(root, row["image"])
        if row["patient_id"].strip() == "":
            issues.append({"path": str(image), "reason": "empty patient_id in the labels CSV: row skipped"})
            continue
        key = row.get("slice_key") or _relative_key(image, root)
        values = {label: to_flag(row[label]) for label in ("any", *subtypes)}
        labels.append({"level": "slice", "key": key, **values})
        if not image.is_file():
            issues.append({"path": str(image), "reason": "image missing: label row without an image"})
            continue
        mask = _resolve(root, row["mask"]) if row.get("mask") else None
        if mask is not None and not mask.is_file():
            issues.append({"path": str(mask), "reason": "mask image missing: slice kept without a mask"})
            mask = None
        bone = _resolve(root, row["bone"]) if row.get("bone") else None
        note = ""
        if bone is not None and not bone.is_file():
            note = "bone window image missing: B channel = brain window"
            issues.append({"path": str(bone), "reason": note})
            bone = None
        manifest.append(
            {
                "path": str(image),
                "format": "image",
                "patient_id": row["patient_id"],
                "study_id": row["study_id"],
                "series_id": row["series_id"],
                "slice_key": key,
                "z": row["z"],
                "mask_path": str(mask) if mask else "",
                "bone_path": str(bone) if bone else "",
                "note": note,
            }
        )
    source = {
        "name": str(params.get("name") or "images"),
        "synthetic": False,
        "has_hu": False,
        "citation": str(params.get("citation") or ""),
        "layout": "generic",
        "channels": f"{CHANNEL_MAPPING['grey']}; colour images {CHANNEL_MAPPING['rgb']}; "
        f"with a bone column {CHANNEL_MAPPING['brain+bone']}",
        "labels_csv": str(labels_path),
    }
    if params.get("license"):
        source["license"] = str(params["license"])
    return manifest, labels, source, issues


def _relative_key(image: Path, root: Path) -> str:
    try:
        return image.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return image.as_posix()


__all__ = ["LAYOUTS", "ct_ich_jpg_tables", "detect_layout", "generic_tables", "headct_tables", "materialise"]

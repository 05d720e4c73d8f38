"""Turn a raw cohort (``data/raw``: manifest, labels) into windowed PNG slices and the slice index.

Per file: read (DICOM -> HU), resize to the output size, stack the HU windows as RGB, write
the PNG and its mask. Per cohort: order slices by z within each study, attach labels,
pseudonymise ids, and quarantine everything unusable with a reason. The invariant checked
at the end: source items in = slices written + files quarantined.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ich.data.windowing import stack_windows
from ich.io.dicom import UnusableSliceError, read_ct_slice
from ich.io.images import read_windowed_image
from ich.io.nifti import nifti_slice_count, read_nifti_mask_slice, read_nifti_slice
from ich.labels import LABELS

INDEX_COLUMNS = [
    "slice_id",
    "patient_id",
    "study_id",
    "series_id",
    "z",
    "slice_order",
    "image_path",
    "mask_path",
    "has_hu",
    "spacing_row_mm",
    "spacing_col_mm",
    "slice_spacing_mm",
    *LABELS,
    "label_level",
    "notes",
    "source_path",
]
QUARANTINE_COLUMNS = ["source_path", "reason", "stage", "kind"]


@dataclass(frozen=True)
class ConvertConfig:
    """Parameters of the ``convert`` stage."""

    size: int = 256
    windows: tuple[tuple[float, float], ...] = ((0.0, 80.0), (-20.0, 180.0), (-150.0, 230.0))
    png_compression: int = 1
    id_salt: str = "ich"
    min_slices_per_study: int = 2
    workers: int = 0  # 0 = one per CPU core


def pseudonym(value: str, salt: str, prefix: str = "", length: int = 16) -> str:
    """Stable pseudonymous id: a salted SHA-256 prefix (real ids never leave ``data/``)."""
    return prefix + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:length]


@dataclass(frozen=True)
class _Item:
    """One source item: a manifest row, and for NIfTI the slice number within the volume."""

    raw_dir: str
    row: dict
    sub_index: int | None = None


def _resolve(raw_dir: str, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(raw_dir) / p


def _read_mask(path: Path, size: int) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UnusableSliceError(path, "mask file is unreadable")
    return cv2.resize((mask > 127).astype(np.uint8) * 255, (size, size), interpolation=cv2.INTER_NEAREST)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    shrinking = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _convert_item(item: _Item, config: ConvertConfig, out_dir: str) -> dict:
    """Convert one source item; return an index record or a quarantine record."""
    row = item.row
    source = _resolve(item.raw_dir, row["path"])
    source_name = str(source) if item.sub_index is None else f"{source}#{item.sub_index}"
    try:
        mask = None
        if row["format"] == "dicom":
            ct = read_ct_slice(source)
            rgb = stack_windows(ct.hu, config.windows)
            original_shape = ct.hu.shape
            record = {
                "key": ct.sop_uid,
                "patient": ct.patient_id,
                "study": ct.study_uid,
                "series": ct.series_uid,
                "z": ct.z,
                "has_hu": True,
                "spacing": ct.pixel_spacing,
                "thickness": ct.slice_thickness,
                "notes": "; ".join(ct.notes),
            }
        elif row["format"] == "nifti":
            hu, spacing, z = read_nifti_slice(source, item.sub_index)
            rgb = stack_windows(hu, config.windows)
            original_shape = hu.shape
            record = {
                "key": f"{row['slice_key']}_{item.sub_index}",
                "patient": row["patient_id"],
                "study": row["study_id"],
                "series": row["series_id"],
                "z": z,
                "has_hu": True,
                "spacing": spacing[:2],
                "thickness": spacing[2],
                "notes": "",
            }
            if row.get("mask_path"):
                bleed = read_nifti_mask_slice(_resolve(item.raw_dir, row["mask_path"]), item.sub_index)
                mask = cv2.resize(bleed * 255, (config.size,) * 2, interpolation=cv2.INTER_NEAREST)
        elif row["format"] == "image":
            rgb = read_windowed_image(source, bone_path=_resolve(item.raw_dir, row["bone_path"]) if row.get("bone_path") else None)
            original_shape = rgb.shape[:2]
            record = {
                "key": row["slice_key"],
                "patient": row["patient_id"],
                "study": row["study_id"],
                "series": row["series_id"],
                "z": float(row["z"]),
                "has_hu": False,
                "spacing": (float("nan"), float("nan")),
                "thickness": None,
                "notes": row.get("note", ""),
            }
        else:
            raise UnusableSliceError(source, f"unknown manifest format {row['format']!r}")
        if mask is None and row.get("mask_path") and row["format"] != "nifti":
            mask = _read_mask(_resolve(item.raw_dir, row["mask_path"]), config.size)
    except UnusableSliceError as exc:
        return {"quarantine": True, "source_path": source_name, "reason": exc.reason}

    slice_id = pseudonym(record["key"], config.id_salt)
    image_rel = f"images/{slice_id[:2]}/{slice_id}.png"
    _write_png(Path(out_dir) / image_rel, _resize(rgb, config.size)[..., ::-1], config.png_compression)
    mask_rel = ""
    if mask is not None:
        mask_rel = f"masks/{slice_id[:2]}/{slice_id}.png"
        _write_png(Path(out_dir) / mask_rel, mask, config.png_compression)
    scale = original_shape[0] / config.size, original_shape[1] / config.size
    return {
        "quarantine": False,
        "key": record["key"],
        "slice_id": slice_id,
        "patient_raw": record["patient"],
        "study_raw": record["study"],
        "series_raw": record["series"],
        "z": record["z"],
        "image_path": image_rel,
        "mask_path": mask_rel,
        "has_hu": record["has_hu"],
        "spacing_row_mm": record["spacing"][0] * scale[0],
        "spacing_col_mm": record["spacing"][1] * scale[1],
        "thickness": record["thickness"],
        "notes": record["notes"],
        "source_path": source_name,
    }


def _write_png(path: Path, image: np.ndarray, compression: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, compression]):
        raise OSError(f"could not write {path}")


def _items(raw_dir: Path, manifest: pd.DataFrame) -> tuple[list[_Item], list[dict]]:
    """Expand the manifest into slice items; volumes that cannot even be opened are quarantined whole."""
    items, unreadable = [], []
    for row in manifest.to_dict("records"):
        if row["format"] != "nifti":
            items.append(_Item(str(raw_dir), row))
            continue
        path = _resolve(str(raw_dir), row["path"])
        try:
            n = nifti_slice_count(path)
        except UnusableSliceError as exc:
            unreadable.append({"source_path": str(path), "reason": exc.reason, "stage": "convert", "kind": "file"})
            continue
        items += [_Item(str(raw_dir), row, k) for k in range(n)]
    return items, unreadable


def _run(fn, items: Sequence[_Item], config: ConvertConfig, out_dir: Path) -> list[dict]:
    workers = config.workers or os.cpu_count() or 1
    progress = dict(total=len(items), desc="convert", unit="slice", mininterval=2.0)
    if workers == 1:
        return [fn(item, config, str(out_dir)) for item in tqdm(items, **progress)]
    with ProcessPoolExecutor(workers) as pool:
        chunks = max(1, len(items) // (workers * 16))
        futures = pool.map(fn, items, [config] * len(items), [str(out_dir)] * len(items), chunksize=chunks)
        return list(tqdm(futures, **progress))


def convert_cohort(raw_dir: str | Path, out_dir: str | Path, config: ConvertConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert the raw cohort in ``raw_dir`` into ``out_dir``; return ``(index, quarantine)``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = pd.read_csv(raw_dir / "manifest.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(raw_dir / "labels.csv", dtype={"level": str, "key": str})
    items, quarantine = _items(raw_dir, manifest)
    n_in = len(items) + len(quarantine)  # slices, plus whole volumes that could not be opened
    results = _run(_convert_item, items, config, out_dir)
    quarantine += [
        {"source_path": r["source_path"], "reason": r["reason"], "stage": "convert", "kind": "file"}
        for r in results
        if r["quarantine"]
    ]
    slices = pd.DataFrame([r for r in results if not r["quarantine"]])
    if slices.empty:
        raise ValueError(f"{raw_dir}: no usable slice among {len(items)} source items; see the quarantine reasons")
    slices, dropped = _cohort_checks(slices, labels, config, out_dir)
    quarantine += dropped
    index = _finish_index(slices, config)
    quarantine_df = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS)
    n_files_quarantined = int((quarantine_df["kind"] == "file").sum())
    if len(index) + n_files_quarantined != n_in:
        raise AssertionError(f"counts do not balance: {n_in} in, {len(index)} written, {n_files_quarantined} quarantined")
    return index, quarantine_df


def _cohort_checks(
    slices: pd.DataFrame, labels: pd.DataFrame, config: ConvertConfig, out_dir: Path
) -> tuple[pd.DataFrame, list[dict]]:
    """Cross-file checks: duplicates, label coverage, studies too small. Returns kept slices and quarantine rows."""
    dropped: list[dict] = []

    def drop(mask: pd.Series, reason_of) -> None:
        nonlocal slices
        for row in slices[mask].to_dict("records"):
            dropped.append({"source_path": row["source_path"], "reason": reason_of(row), "stage": "convert", "kind": "file"})
            _remove_outputs(row, out_dir)
        slices = slices[~mask]

    first = slices.drop_duplicates("key").set_index("key")["source_path"]
    drop(slices.duplicated("key"), lambda r: f"duplicate SOPInstanceUID/slice key {r['key']} (first seen in {first[r['key']]})")

    slice_labels = labels[labels["level"] == "slice"].set_index("key")
    study_labels = labels[labels["level"] == "study"].set_index("key")
    has_label = slices["key"].isin(slice_labels.index) | slices["study_raw"].isin(study_labels.index)
    drop(~has_label, lambda r: "image without a label row")
    for key in sorted(set(slice_labels.index) - set(slices["key"])):
        dropped.append({"source_path": f"labels.csv:{key}", "reason": "label row without an image", "stage": "convert", "kind": "label"})
    for key in sorted(set(study_labels.index) - set(slices["study_raw"])):
        dropped.append({"source_path": f"labels.csv:{key}", "reason": "study label without any image", "stage": "convert", "kind": "label"})

    counts = slices.groupby("study_raw")["key"].transform("size")
    drop(counts < config.min_slices_per_study, lambda r: f"study has fewer than {config.min_slices_per_study} usable slices")

    by_slice = slices["key"].map(lambda k: k in slice_labels.index)
    values = np.where(
        by_slice.to_numpy()[:, None],
        slice_labels.reindex(slices["key"])[list(LABELS)].to_numpy(dtype=float),
        study_labels.reindex(slices["study_raw"])[list(LABELS)].to_numpy(dtype=float),
    )
    slices = slices.assign(**{label: values[:, i] for i, label in enumerate(LABELS)})
    slices["label_level"] = np.where(by_slice, "slice", "study")
    return slices, dropped


def _remove_outputs(row: dict, out_dir: Path) -> None:
    """Quarantined after writing: delete its PNGs so outputs hold exactly the indexed slices."""
    for rel in (row["image_path"], row["mask_path"]):
        if rel:
            (out_dir / rel).unlink(missing_ok=True)


def _finish_index(slices: pd.DataFrame, config: ConvertConfig) -> pd.DataFrame:
    """Pseudonymise ids, order slices by z within each study and derive slice spacing."""
    slices = slices.copy()
    slices["patient_id"] = slices["patient_raw"].map(lambda v: pseudonym(v, config.id_salt, "P", 12))
    slices["study_id"] = slices["study_raw"].map(lambda v: pseudonym(v, config.id_salt, "S", 12))
    slices["series_id"] = slices["series_raw"].map(lambda v: pseudonym(v, config.id_salt, "E", 12))
    slices = slices.sort_values(["patient_id", "study_id", "z", "slice_id"], kind="stable").reset_index(drop=True)
    slices["slice_order"] = slices.groupby("study_id").cumcount()
    gap = slices.groupby("study_id")["z"].transform(lambda z: np.median(np.diff(z.to_numpy())) if len(z) > 1 else np.nan)
    slices["slice_spacing_mm"] = gap.where(slices["has_hu"], np.nan).fillna(pd.to_numeric(slices["thickness"], errors="coerce"))
    for label in LABELS:
        slices[label] = slices[label].astype("Int64")
    return slices[INDEX_COLUMNS]

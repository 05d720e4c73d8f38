"""Turn a raw cohort (``data/raw``: manifest, labels) into windowed PNG slices and the slice index.

Per file: read (:mod:`ich.data.source_readers`, one reader per format: DICOM or NIfTI -> HU
windows as RGB, or a pre-windowed image), frame and resize to the output size, write the PNG and
its mask. Per cohort: order slices by z within each study, attach labels,
pseudonymise ids, and quarantine everything unusable with a reason. The invariant checked
at the end: source items in = slices written + files quarantined.

PNGs are written one file per slice, or packed ``shard_size`` to an archive for cohorts large
enough to slow DVC down (:mod:`ich.io.slices`, ``docs/scaling.md``). Work is split into units
(a batch of items; in packed mode exactly one archive's items, so archives do not depend on
the number of workers), converted in a process pool.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ich.data.framing import Frame, frame_for
from ich.data.resize import resize_square
from ich.data.source_readers import SOURCE_READERS, SourceItem, resolve
from ich.data.windowing import stack_windows
from ich.io.nifti import nifti_slice_count
from ich.io.slices import SliceArchive, SliceFiles, encode_png, output_path, remove_slices
from ich.io.unusable import UnusableSliceError
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
    "channels",
    "spacing_row_mm",
    "spacing_col_mm",
    "slice_spacing_mm",
    *LABELS,
    "label_level",
    "notes",
    "source_path",
    "cohort",
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
    shard_size: int = 0  # 0: one PNG file per slice; N: N slices per zip archive (100k+ slices, docs/scaling.md)
    framing: str = "pad"  # pad: keep the aspect ratio; head: crop to the head first (ich.data.framing)
    mask_median: int = 0  # odd kernel of the median filter on 8-bit mask images before thresholding; 0: off

    def __post_init__(self) -> None:
        if self.mask_median and (self.mask_median < 3 or self.mask_median % 2 == 0):
            raise ValueError(f"convert.mask_median must be 0 (off) or an odd size >= 3, got {self.mask_median}")

    @classmethod
    def from_params(cls, section: dict) -> ConvertConfig:
        """The ``convert`` section of ``params.yaml``."""
        return cls(
            size=section["image_size"],
            windows=tuple(tuple(w) for w in section["windows"]),
            png_compression=section["png_compression"],
            id_salt=section["id_salt"],
            min_slices_per_study=section["min_slices_per_study"],
            workers=section["workers"],
            shard_size=section["shard_size"],
            framing=section["framing"],
            mask_median=section["mask_median"],
        )


def pseudonym(value: str, salt: str, prefix: str = "", length: int = 16) -> str:
    """Stable pseudonymous id: a salted SHA-256 prefix (real ids never leave ``data/``)."""
    return prefix + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:length]


@dataclass(frozen=True)
class _Unit:
    """Items converted together by one worker; ``shard`` names their archive in packed mode."""

    items: list[SourceItem]
    shard: int | None = None


def _render(item: SourceItem, config: ConvertConfig) -> dict:
    """Read and window one source item; an index record with ``image`` (BGR) and ``mask``
    arrays at the output size, or a quarantine record."""
    row = item.row
    source = resolve(item.raw_dir, row["path"])
    source_name = str(source) if item.sub_index is None else f"{source}#{item.sub_index}"
    try:
        if row["format"] not in SOURCE_READERS:
            raise UnusableSliceError(source, f"unknown manifest format {row['format']!r}")
        read = SOURCE_READERS[row["format"]](item, config.windows, config.mask_median)
        rgb, record, mask = read.rgb, read.record, read.mask
        original_shape = rgb.shape[:2]
        try:
            frame = frame_for(rgb, config.framing)
        except ValueError as exc:
            raise UnusableSliceError(source, f"cannot frame the slice: {exc}") from exc
    except UnusableSliceError as exc:
        return {"quarantine": True, "source_path": source_name, "reason": exc.reason}

    if mask is not None:
        mask = cv2.resize(frame.apply(mask), (config.size,) * 2, interpolation=cv2.INTER_NEAREST)
    scale = frame.side / config.size  # isotropic: framing keeps the aspect ratio
    return {
        "quarantine": False,
        "image": resize_square(frame.apply(rgb), config.size)[..., ::-1],
        "mask": mask,
        "key": record["key"],
        "slice_id": pseudonym(record["key"], config.id_salt),
        "patient_raw": record["patient"],
        "study_raw": record["study"],
        "series_raw": record["series"],
        "z": record["z"],
        "has_hu": record["has_hu"],
        "channels": record["channels"],
        "spacing_row_mm": record["spacing"][0] * scale,
        "spacing_col_mm": record["spacing"][1] * scale,
        "thickness": record["thickness"],
        "notes": record["notes"],
        "source_path": source_name,
        "cohort": row.get("cohort", ""),
        "frame": frame,
        "source_shape": tuple(original_shape),
    }


def render_hu(hu: np.ndarray, config: ConvertConfig) -> tuple[np.ndarray, Frame]:
    """An HU image (a slab of thin slices, say) windowed, framed and resized as :func:`render_slice`
    renders a source slice: ``(RGB uint8 at config.size, frame)``."""
    rgb = stack_windows(hu, config.windows)
    frame = frame_for(rgb, config.framing)
    return resize_square(frame.apply(rgb), config.size), frame


def render_slice(
    row: dict,
    config: ConvertConfig,
    *,
    raw_dir: str | Path = ".",
    sub_index: int | None = None,
    require_patient_id: bool = True,
) -> dict:
    """Read, window, frame and resize one source, as ``convert`` does, without writing anything.

    ``row`` is a manifest row (``path``, ``format`` and the format's columns, paths relative to
    ``raw_dir``); ``sub_index`` is the slice of a NIfTI volume; ``require_patient_id=False``
    accepts an anonymised DICOM file (one study to report needs no patient). Returns the record ``convert``
    indexes, with the ``image`` (BGR uint8 at ``config.size``), the ``mask`` (or ``None``), the
    ``frame`` and the ``source_shape``; or ``{"quarantine": True, "source_path", "reason"}``.
    """
    return _render(SourceItem(str(raw_dir), row, sub_index, require_patient_id), config)


def _convert_unit(unit: _Unit, config: ConvertConfig, out_dir: str) -> list[dict]:
    """Convert and write one unit; one index or quarantine record per item, in order."""

    def tag(source_name: str) -> str:
        return pseudonym(source_name, config.id_salt, length=8)

    sink = SliceFiles(Path(out_dir), tag) if unit.shard is None else SliceArchive(Path(out_dir), unit.shard, tag)
    records = []
    try:
        for item in unit.items:
            record = _render(item, config)
            if not record["quarantine"]:
                ids = record["slice_id"], record["source_path"]
                image, mask = record.pop("image"), record.pop("mask")
                del record["frame"], record["source_shape"]
                record["image_path"] = sink.put("images", *ids, encode_png(image, config.png_compression))
                record["mask_path"] = (
                    "" if mask is None else sink.put("masks", *ids, encode_png(mask, config.png_compression))
                )
            records.append(record)
    finally:
        sink.close()
    return records


def convert_rows(raw_dir: str | Path, rows: list[dict], config: ConvertConfig, out_dir: str | Path) -> list[dict]:
    """Convert manifest ``rows`` (DICOM or image rows) in this process: one worker's per-slice work.

    Writes the slices under ``out_dir`` and returns one index or quarantine record per row, but
    no index or checks: :func:`convert_cohort` is the converter; this is for profiling it.
    """
    return _convert_unit(_Unit([SourceItem(str(raw_dir), row) for row in rows]), config, str(out_dir))


def _items(raw_dir: Path, manifest: pd.DataFrame) -> tuple[list[SourceItem], list[dict]]:
    """Expand the manifest into slice items; volumes that cannot even be opened are quarantined whole."""
    items, unreadable = [], []
    for row in manifest.to_dict("records"):
        if row["format"] != "nifti":
            items.append(SourceItem(str(raw_dir), row))
            continue
        path = resolve(str(raw_dir), row["path"])
        try:
            n = nifti_slice_count(path)
        except UnusableSliceError as exc:
            unreadable.append({"source_path": str(path), "reason": exc.reason, "stage": "convert", "kind": "file"})
            continue
        items += [SourceItem(str(raw_dir), row, k) for k in range(n)]
    return items, unreadable


def _units(items: list[SourceItem], config: ConvertConfig, workers: int) -> list[_Unit]:
    """Packed: one unit per archive of ``shard_size`` items in manifest order. Files: batches
    small enough to balance the workers and show progress."""
    if config.shard_size > 0:
        size = config.shard_size
        return [_Unit(items[i : i + size], shard=i // size) for i in range(0, len(items), size)]
    size = max(1, min(64, len(items) // (workers * 16)))
    return [_Unit(items[i : i + size]) for i in range(0, len(items), size)]


def _run(items: list[SourceItem], config: ConvertConfig, out_dir: Path) -> list[dict]:
    """Convert every item (in a process pool unless ``workers == 1``); records in item order."""
    workers = config.workers or os.cpu_count() or 1
    units = _units(items, config, workers)
    progress = tqdm(total=len(items), desc="convert", unit="slice", mininterval=2.0)

    def collect(per_unit: Iterator[list[dict]]) -> list[dict]:
        records = []
        for unit_records in per_unit:
            records += unit_records
            progress.update(len(unit_records))
        progress.close()
        return records

    if workers == 1:
        return collect(_convert_unit(unit, config, str(out_dir)) for unit in units)
    with ProcessPoolExecutor(workers) as pool:
        return collect(pool.map(_convert_unit, units, [config] * len(units), [str(out_dir)] * len(units)))


def convert_cohort(
    raw_dir: str | Path, out_dir: str | Path, config: ConvertConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert the raw cohort in ``raw_dir`` into ``out_dir``; return ``(index, quarantine)``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = pd.read_csv(raw_dir / "manifest.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(raw_dir / "labels.csv", dtype={"level": str, "key": str})
    items, quarantine = _items(raw_dir, manifest)
    n_in = len(items) + len(quarantine)  # slices, plus whole volumes that could not be opened
    results = _run(items, config, out_dir)
    quarantine += [
        {"source_path": r["source_path"], "reason": r["reason"], "stage": "convert", "kind": "file"}
        for r in results
        if r["quarantine"]
    ]
    slices = pd.DataFrame([r for r in results if not r["quarantine"]])
    if slices.empty:
        raise ValueError(f"{raw_dir}: no usable slice among {len(items)} source items; see the quarantine reasons")
    source = json.loads((raw_dir / "source.json").read_text(encoding="utf-8"))
    if "cohort" not in manifest.columns:  # one source: its name (a combined source tags every row)
        slices["cohort"] = str(source["name"])
    min_slices = 1 if source.get("single_slice_studies") else config.min_slices_per_study
    slices, dropped, removed = _cohort_checks(slices, labels, min_slices)
    quarantine += dropped
    if slices.empty:
        reasons = pd.Series([q["reason"] for q in quarantine]).str.replace(r" \(first seen in .*\)$", "", regex=True)
        top = "; ".join(f"{n} x {reason}" for reason, n in reasons.value_counts().head(5).items())
        raise ValueError(f"{raw_dir}: every one of {len(items)} source items was quarantined ({top})")
    remove_slices(out_dir, removed)  # quarantined after writing: outputs hold exactly the indexed slices
    if config.shard_size == 0:
        slices = _settle_duplicates(slices, out_dir)
    index = _finish_index(slices, config)
    quarantine_df = pd.DataFrame(quarantine, columns=QUARANTINE_COLUMNS)
    n_files_quarantined = int((quarantine_df["kind"] == "file").sum())
    if len(index) + n_files_quarantined != n_in:
        raise AssertionError(
            f"counts do not balance: {n_in} in, {len(index)} written, {n_files_quarantined} quarantined"
        )
    return index, quarantine_df


def _cohort_checks(
    slices: pd.DataFrame, labels: pd.DataFrame, min_slices: int
) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Cross-file checks: duplicates, label coverage, studies with fewer than ``min_slices`` slices.

    ``min_slices`` is ``config.min_slices_per_study``, or 1 for a source whose studies are single
    images by construction (``single_slice_studies`` in ``source.json``): a lone slice in a DICOM
    study is a scout or a fragment, a lone pre-windowed image is the study.

    Returns the kept slices, the quarantine rows, and the written PNGs of the slices dropped here.
    """
    dropped: list[dict] = []
    removed: list[str] = []

    def drop(mask: pd.Series, reason_of) -> None:
        nonlocal slices
        for row in slices[mask].to_dict("records"):
            dropped.append(
                {"source_path": row["source_path"], "reason": reason_of(row), "stage": "convert", "kind": "file"}
            )
            removed.extend(ref for ref in (row["image_path"], row["mask_path"]) if ref)
        slices = slices[~mask]

    first = slices.drop_duplicates("key").set_index("key")["source_path"]
    drop(
        slices.duplicated("key"),
        lambda r: f"duplicate SOPInstanceUID/slice key {r['key']} (first seen in {first[r['key']]})",
    )

    slice_labels = labels[labels["level"] == "slice"].set_index("key")
    study_labels = labels[labels["level"] == "study"].set_index("key")
    has_label = slices["key"].isin(slice_labels.index) | slices["study_raw"].isin(study_labels.index)
    drop(~has_label, lambda r: "image without a label row")
    unmatched = [
        *(
            (key, "label row without an image (no readable slice has this key)")
            for key in sorted(set(slice_labels.index) - set(slices["key"]))
        ),
        *((key, "study label without any image") for key in sorted(set(study_labels.index) - set(slices["study_raw"]))),
    ]
    dropped += [
        {"source_path": f"labels.csv:{key}", "reason": reason, "stage": "convert", "kind": "label"}
        for key, reason in unmatched
    ]

    counts = slices.groupby("study_raw")["key"].transform("size")
    drop(counts < min_slices, lambda r: f"study has fewer than {min_slices} usable slices")

    by_slice = slices["key"].map(lambda k: k in slice_labels.index)
    values = np.where(
        by_slice.to_numpy()[:, None],
        slice_labels.reindex(slices["key"])[list(LABELS)].to_numpy(dtype=float),
        study_labels.reindex(slices["study_raw"])[list(LABELS)].to_numpy(dtype=float),
    )
    slices = slices.assign(**{label: values[:, i] for i, label in enumerate(LABELS)})
    slices["label_level"] = np.where(by_slice, "slice", "study")
    return slices, dropped, removed


def _settle_duplicates(slices: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """Move kept slice files that lost the race for their name (see :class:`ich.io.slices.SliceFiles`) to it.

    Runs after the dropped duplicates' files were removed, so the canonical name is free.
    """
    slices = slices.copy()
    for column, folder in (("image_path", "images"), ("mask_path", "masks")):
        canonical = pd.Series([output_path(folder, s) for s in slices["slice_id"]], index=slices.index)
        for i in slices.index[(slices[column] != "") & (slices[column] != canonical)]:
            os.replace(out_dir / slices.at[i, column], out_dir / canonical[i])
            slices.at[i, column] = canonical[i]
    return slices


def slice_gap_mm(z: np.ndarray) -> float:
    """The median distance between consecutive slice positions of one study (NaN for one slice)."""
    return float(np.median(np.diff(np.sort(z)))) if len(z) > 1 else float("nan")


def _finish_index(slices: pd.DataFrame, config: ConvertConfig) -> pd.DataFrame:
    """Pseudonymise ids, order slices by z within each study and derive slice spacing."""
    slices = slices.copy()
    slices["patient_id"] = slices["patient_raw"].map(lambda v: pseudonym(v, config.id_salt, "P", 12))
    slices["study_id"] = slices["study_raw"].map(lambda v: pseudonym(v, config.id_salt, "S", 12))
    slices["series_id"] = slices["series_raw"].map(lambda v: pseudonym(v, config.id_salt, "E", 12))
    slices = slices.sort_values(["patient_id", "study_id", "z", "slice_id"], kind="stable").reset_index(drop=True)
    slices["slice_order"] = slices.groupby("study_id").cumcount()
    gap = slices.groupby("study_id")["z"].transform(lambda z: slice_gap_mm(z.to_numpy()))
    slices["slice_spacing_mm"] = gap.where(slices["has_hu"], np.nan).fillna(
        pd.to_numeric(slices["thickness"], errors="coerce")
    )
    for label in LABELS:
        slices[label] = slices[label].astype("Int64")
    return slices[INDEX_COLUMNS]

"""Segmentation metrics: Dice and Jaccard per slice, per subtype and per patient, slice-level
detection from the masks (Hssayeni 2020, Table 6), and bleed volume in mL with its per-patient error.

Conventions:

- Masks: any non-zero pixel is bleed (the PNG masks are 0/255, predictions 0/1).
- Empty masks: Dice and Jaccard of an empty prediction against an empty reference are 1.0
  (nothing to find, nothing found); an empty prediction against a bleed, or any bleed predicted
  on an empty reference, scores 0.0. Hssayeni 2020 reports the mean over slices *with* bleed, where the
  convention never applies; the mean over all slices, where it does, is reported beside it.
- Per patient: Dice/Jaccard are pooled over the patient's voxels (sums of the slice counts),
  so large slices weigh more than in a mean of slice scores.
- Detection: a slice is predicted positive if its predicted mask is non-empty and is truly
  positive if its reference mask is non-empty (the mask, not the label, is the reference here).
- Volume: voxel count x row spacing x column spacing x slice spacing (the distance between
  slice centres, the slab each slice stands for) / 1000, in mL. Spacings must be those of the
  image the masks are at (scaled if the slice was resized).
- Summaries are JSON-ready: NaN becomes ``None``, floats are rounded to 6 decimals.

The per-slice table the summaries read has one row per slice (and per operating threshold):
``patient_id, ref_pixels, pred_pixels, intersection`` (see :func:`overlap_counts`), optionally
the subtype label columns, ``spacing_row_mm, spacing_col_mm, slice_spacing_mm`` and
``threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ich.labels import SUBTYPES
from ich.metrics.jsonsafe import json_ready

COUNT_COLUMNS: tuple[str, ...] = ("ref_pixels", "pred_pixels", "intersection")
"""The per-slice counts every summary is computed from."""

SPACING_COLUMNS: tuple[str, ...] = ("spacing_row_mm", "spacing_col_mm", "slice_spacing_mm")
"""Slice-index columns the volumes need (missing or NaN: volume unknown)."""


def _dice_from_counts(intersection: ArrayLike, pred: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """Dice from pixel counts (scalars or arrays), 1.0 when both masks are empty."""
    denominator = np.asarray(pred, dtype=np.float64) + np.asarray(ref, dtype=np.float64)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, 1.0, 2.0 * np.asarray(intersection) / safe)


def _jaccard_from_counts(intersection: ArrayLike, pred: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """Jaccard from pixel counts (scalars or arrays), 1.0 when both masks are empty."""
    union = np.asarray(pred, dtype=np.float64) + np.asarray(ref) - np.asarray(intersection)
    safe = np.where(union == 0, 1.0, union)
    return np.where(union == 0, 1.0, np.asarray(intersection) / safe)


def overlap_counts(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """One per-slice row: ``ref_pixels, pred_pixels, intersection, dice, jaccard``.

    The counts are kept (not only the scores) so that patients can be pooled and volumes
    computed later from the table alone.
    """
    pred_b = np.asarray(pred) != 0
    ref_b = np.asarray(ref) != 0
    if pred_b.shape != ref_b.shape:
        raise ValueError(f"prediction {pred_b.shape} and reference {ref_b.shape} differ in shape")
    inter = int(np.count_nonzero(pred_b & ref_b))
    n_pred, n_ref = int(np.count_nonzero(pred_b)), int(np.count_nonzero(ref_b))
    return {
        "ref_pixels": n_ref,
        "pred_pixels": n_pred,
        "intersection": inter,
        "dice": float(_dice_from_counts(inter, n_pred, n_ref)),
        "jaccard": float(_jaccard_from_counts(inter, n_pred, n_ref)),
    }


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient 2|P & R| / (|P| + |R|) of two masks; 1.0 if both are empty."""
    return overlap_counts(pred, ref)["dice"]


def jaccard(pred: np.ndarray, ref: np.ndarray) -> float:
    """Jaccard index |P & R| / |P | R| of two masks; 1.0 if both are empty."""
    return overlap_counts(pred, ref)["jaccard"]


def voxel_volume_ml(spacing_row_mm: Any, spacing_col_mm: Any, slice_spacing_mm: Any) -> Any:
    """Volume of one voxel in mL (1 mL = 1000 mm^3); works on scalars and columns alike."""
    return spacing_row_mm * spacing_col_mm * slice_spacing_mm / 1000.0


def segmentation_by_patient(per_slice: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: pooled counts, Dice, Jaccard, reference/predicted volume and errors.

    A patient's volume is NaN when any of its slices lacks a spacing. The relative error is
    ``(pred - ref) / ref`` and is NaN for patients without reference bleed.
    """
    df = per_slice.copy()
    if all(column in df for column in SPACING_COLUMNS):
        df["voxel_ml"] = voxel_volume_ml(*(df[c].astype(float) for c in SPACING_COLUMNS))
    else:
        df["voxel_ml"] = np.nan
    df["ref_ml"] = df["ref_pixels"] * df["voxel_ml"]
    df["pred_ml"] = df["pred_pixels"] * df["voxel_ml"]
    grouped = df.groupby("patient_id", sort=True)
    table = grouped[[*COUNT_COLUMNS, "ref_ml", "pred_ml"]].sum()
    complete = grouped["voxel_ml"].count() == grouped.size()
    table.loc[~complete, ["ref_ml", "pred_ml"]] = np.nan
    counts = (table["intersection"], table["pred_pixels"], table["ref_pixels"])
    table["dice"] = _dice_from_counts(*counts)
    table["jaccard"] = _jaccard_from_counts(*counts)
    table["volume_error_ml"] = table["pred_ml"] - table["ref_ml"]
    table["abs_volume_error_ml"] = table["volume_error_ml"].abs()
    with_bleed_ml = table["ref_ml"].where(table["ref_ml"] > 0)
    table["rel_volume_error"] = table["volume_error_ml"] / with_bleed_ml
    return table.reset_index()


def _distribution(values: pd.Series) -> dict[str, float]:
    """Mean, population standard deviation, min and max (NaN for no values)."""
    values = values.astype(float)
    if values.empty:
        return {"mean": np.nan, "std": np.nan, "min": np.nan, "max": np.nan}
    return {
        "mean": values.mean(),
        "std": values.std(ddof=0),
        "min": values.min(),
        "max": values.max(),
    }


def _overlap_block(counts: pd.DataFrame) -> dict[str, Any]:
    """``n`` and the Dice/Jaccard distributions of rows holding ``COUNT_COLUMNS``."""
    args = (counts["intersection"], counts["pred_pixels"], counts["ref_pixels"])
    return {
        "n": len(counts),
        "dice": _distribution(pd.Series(_dice_from_counts(*args), dtype=float)),
        "jaccard": _distribution(pd.Series(_jaccard_from_counts(*args), dtype=float)),
    }


def detection_counts(per_slice: pd.DataFrame) -> dict[str, float]:
    """Slice-level detection from the masks: sensitivity, specificity, accuracy and the counts."""
    truth = per_slice["ref_pixels"].to_numpy() > 0
    predicted = per_slice["pred_pixels"].to_numpy() > 0
    from sklearn.metrics import confusion_matrix  # where used: ich predict measures volumes without scikit-learn

    tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[False, True]).ravel()
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
        "specificity": tn / (tn + fp) if tn + fp else np.nan,
        "accuracy": (tp + tn) / len(truth) if len(truth) else np.nan,
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def _volume_block(patients: pd.DataFrame) -> dict[str, Any]:
    """Volume errors over patients with known spacing (relative error: those with bleed)."""
    known = patients.dropna(subset=["ref_ml"])
    relative = known["rel_volume_error"].dropna()
    return {
        "n_patients": len(known),
        "mean_abs_error_ml": known["abs_volume_error_ml"].mean(),
        "mean_error_ml": known["volume_error_ml"].mean(),
        "mean_abs_relative_error": relative.abs().mean(),
        "n_patients_relative": len(relative),
    }


def segmentation_summary(per_slice: pd.DataFrame) -> dict[str, Any]:
    """All segmentation metrics of one operating point (one row per slice), JSON-ready.

    Keys: ``slice.with_bleed`` (Hssayeni 2020's headline mean, with std/min/max as in its Table 5),
    ``slice.all``, ``subtype.<name>`` (slices with bleed labelled with that subtype),
    ``patient.with_bleed`` / ``patient.all`` (pooled per patient, then averaged over patients),
    ``detection`` (Hssayeni 2020's Table 6 row) and ``volume`` (per-patient volume error).
    """
    with_bleed = per_slice[per_slice["ref_pixels"] > 0]
    patients = segmentation_by_patient(per_slice)
    summary = {
        "slice": {"with_bleed": _overlap_block(with_bleed), "all": _overlap_block(per_slice)},
        "subtype": {name: _overlap_block(with_bleed[with_bleed[name] == 1]) for name in SUBTYPES if name in per_slice},
        "patient": {
            "with_bleed": _overlap_block(patients[patients["ref_pixels"] > 0]),
            "all": _overlap_block(patients),
        },
        "detection": detection_counts(per_slice),
        "volume": _volume_block(patients),
    }
    return json_ready(summary)


def summary_by_threshold(per_slice: pd.DataFrame) -> dict[str, Any]:
    """:func:`segmentation_summary` per value of the ``threshold`` column: ``threshold_<t>``."""
    return {
        f"threshold_{threshold:g}": segmentation_summary(rows)
        for threshold, rows in per_slice.groupby("threshold", sort=True)
    }

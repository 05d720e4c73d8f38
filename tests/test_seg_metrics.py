"""Tests for ich.metrics.segmentation: Dice/Jaccard conventions, summaries, detection (Hssayeni 2020's
Table 6) and bleed volume."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ich.metrics.segmentation import (
    detection_counts,
    dice,
    jaccard,
    overlap_counts,
    segmentation_by_patient,
    segmentation_summary,
    summary_by_threshold,
    voxel_volume_ml,
)
from ich.segmentation import score_thresholds


def _mask(pixels: list[tuple[int, int]], shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    for y, x in pixels:
        out[y, x] = 255
    return out


# --- Dice / Jaccard ----------------------------------------------------------------------------


def test_dice_jaccard_hand_computed() -> None:
    ref = _mask([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])  # 6 px
    pred = _mask([(0, 0), (0, 1), (1, 1), (3, 3)])  # 4 px, 3 shared
    assert dice(pred, ref) == pytest.approx(2 * 3 / (4 + 6))
    assert jaccard(pred, ref) == pytest.approx(3 / 7)
    assert overlap_counts(pred, ref) == {
        "ref_pixels": 6,
        "pred_pixels": 4,
        "intersection": 3,
        "dice": pytest.approx(0.6),
        "jaccard": pytest.approx(3 / 7),
    }


def test_identical_and_disjoint_masks() -> None:
    a = _mask([(1, 1), (2, 2)])
    assert dice(a, a) == 1.0 and jaccard(a, a) == 1.0
    b = _mask([(0, 3)])
    assert dice(a, b) == 0.0 and jaccard(a, b) == 0.0


def test_empty_conventions() -> None:
    empty = np.zeros((4, 4), dtype=np.uint8)
    bleed = _mask([(2, 2)])
    assert dice(empty, empty) == 1.0 and jaccard(empty, empty) == 1.0  # nothing to find, found
    assert dice(empty, bleed) == 0.0 and jaccard(empty, bleed) == 0.0  # missed bleed
    assert dice(bleed, empty) == 0.0 and jaccard(bleed, empty) == 0.0  # false positive


def test_mask_values_only_need_to_be_non_zero() -> None:
    assert dice(np.array([[1, 0]]), np.array([[255, 0]])) == 1.0
    assert dice(np.array([[True, False]]), np.array([[0.3, 0.0]])) == 1.0
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


# --- summaries -------------------------------------------------------------------------------


def _per_slice() -> pd.DataFrame:
    """Patient a: two bleed slices + one clean slice with a false positive; patient b: clean."""
    return pd.DataFrame(
        {
            "patient_id": ["a", "a", "a", "b", "b"],
            "ref_pixels": [10, 30, 0, 0, 0],
            "pred_pixels": [10, 10, 5, 0, 0],
            "intersection": [5, 10, 0, 0, 0],
            "epidural": [1, 0, 0, 0, 0],
            "subdural": [0, 1, 0, 0, 0],
            "spacing_row_mm": [0.5] * 5,
            "spacing_col_mm": [0.5] * 5,
            "slice_spacing_mm": [5.0] * 5,
        }
    )


def test_segmentation_summary_values() -> None:
    summary = segmentation_summary(_per_slice())
    json.dumps(summary, allow_nan=False)  # JSON-ready: no NaN, plain Python types
    d1, d2 = 2 * 5 / 20, 2 * 10 / 40  # 0.5, 0.5
    j1, j2 = 5 / 15, 10 / 30
    with_bleed = summary["slice"]["with_bleed"]
    assert with_bleed["n"] == 2
    assert with_bleed["dice"]["mean"] == pytest.approx((d1 + d2) / 2)
    assert with_bleed["jaccard"]["mean"] == pytest.approx(round((j1 + j2) / 2, 6))
    assert with_bleed["dice"]["std"] == 0.0
    # over all slices: the false positive scores 0, the two empty-empty slices score 1
    assert summary["slice"]["all"]["n"] == 5
    assert summary["slice"]["all"]["dice"]["mean"] == pytest.approx((d1 + d2 + 0 + 1 + 1) / 5)
    assert summary["subtype"]["epidural"]["n"] == 1
    assert summary["subtype"]["epidural"]["dice"]["mean"] == pytest.approx(d1)
    assert summary["subtype"]["subdural"]["jaccard"]["mean"] == pytest.approx(round(j2, 6))
    assert set(summary["subtype"]) == {"epidural", "subdural"}  # only columns present
    # patient a pooled: I = 15, P = 25, R = 40
    assert summary["patient"]["with_bleed"]["n"] == 1
    assert summary["patient"]["with_bleed"]["dice"]["mean"] == pytest.approx(round(30 / 65, 6))
    assert summary["patient"]["all"]["dice"]["mean"] == pytest.approx(round((30 / 65 + 1) / 2, 6))
    assert summary["detection"] == {
        "sensitivity": 1.0,
        "specificity": 0.666667,
        "accuracy": 0.8,
        "tp": 2,
        "fp": 1,
        "tn": 2,
        "fn": 0,
    }


def test_summary_without_positives_or_spacing_gives_none() -> None:
    df = _per_slice().iloc[3:].drop(columns=["slice_spacing_mm"])
    summary = segmentation_summary(df)
    json.dumps(summary, allow_nan=False)
    assert summary["slice"]["with_bleed"]["n"] == 0
    assert summary["slice"]["with_bleed"]["dice"]["mean"] is None
    assert summary["detection"]["sensitivity"] is None
    assert summary["detection"]["specificity"] == 1.0
    assert summary["volume"]["n_patients"] == 0
    assert summary["volume"]["mean_abs_error_ml"] is None


def test_patient_table_volumes_and_errors() -> None:
    table = segmentation_by_patient(_per_slice()).set_index("patient_id")
    voxel_ml = 0.5 * 0.5 * 5.0 / 1000
    assert table.loc["a", "ref_ml"] == pytest.approx(40 * voxel_ml)
    assert table.loc["a", "pred_ml"] == pytest.approx(25 * voxel_ml)
    assert table.loc["a", "abs_volume_error_ml"] == pytest.approx(15 * voxel_ml)
    assert table.loc["a", "rel_volume_error"] == pytest.approx(-15 / 40)
    assert math.isnan(table.loc["b", "rel_volume_error"])  # no reference bleed
    assert table.loc["b", "dice"] == 1.0
    summary = segmentation_summary(_per_slice())["volume"]
    assert summary["n_patients"] == 2 and summary["n_patients_relative"] == 1
    assert summary["mean_abs_error_ml"] == pytest.approx(round(15 * voxel_ml / 2, 6))
    assert summary["mean_error_ml"] == pytest.approx(round(-15 * voxel_ml / 2, 6))
    assert summary["mean_abs_relative_error"] == pytest.approx(0.375)


def test_patient_volume_unknown_when_a_slice_lacks_spacing() -> None:
    df = _per_slice()
    df.loc[1, "slice_spacing_mm"] = np.nan
    table = segmentation_by_patient(df).set_index("patient_id")
    assert math.isnan(table.loc["a", "ref_ml"])
    assert table.loc["b", "ref_ml"] == 0.0


# --- detection (Hssayeni 2020 Table 6) -------------------------------------------------------------------


def test_detection_counts_match_hand_counts() -> None:
    df = pd.DataFrame({"ref_pixels": [5, 5, 5, 0, 0, 0, 0], "pred_pixels": [3, 0, 1, 2, 0, 0, 0]})
    result = detection_counts(df)
    assert (result["tp"], result["fn"], result["fp"], result["tn"]) == (2, 1, 1, 3)
    assert result["sensitivity"] == pytest.approx(2 / 3)
    assert result["specificity"] == pytest.approx(3 / 4)
    assert result["accuracy"] == pytest.approx(5 / 7)


def test_thresholds_table_and_summary_by_threshold() -> None:
    """A slice with bleed at p=0.75 and a clean slice with a false blob at p=0.65."""
    yy, xx = np.mgrid[:64, :64]
    blob = ((yy - 32) ** 2 + (xx - 32) ** 2 <= 100).astype(np.uint8)
    bleed_prob = blob * 0.75
    clean_prob = np.roll(blob, 10, axis=0) * 0.65
    thresholds = [0.5, 0.6, 0.7, 0.8, 0.9]
    rows = [{"patient_id": "p", **row} for row in score_thresholds(bleed_prob, blob, thresholds, 3, 3)] + [
        {"patient_id": "q", **row} for row in score_thresholds(clean_prob, np.zeros_like(blob), thresholds, 3, 3)
    ]
    df = pd.DataFrame(rows)
    by_t = summary_by_threshold(df)
    detection = [by_t[f"threshold_{t}"]["detection"] for t in thresholds]
    assert [d["sensitivity"] for d in detection] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert [d["specificity"] for d in detection] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert [d["accuracy"] for d in detection] == [0.5, 0.5, 1.0, 0.5, 0.5]
    assert list(by_t) == [f"threshold_{t}" for t in thresholds]
    assert by_t["threshold_0.7"]["slice"]["with_bleed"]["dice"]["mean"] == 1.0
    assert by_t["threshold_0.9"]["slice"]["with_bleed"]["dice"]["mean"] == 0.0
    json.dumps(by_t, allow_nan=False)


# --- volume ------------------------------------------------------------------------------------


def test_ellipsoid_volume_matches_analytic() -> None:
    """An ellipsoid with semi-axes 20 x 15 x 25 mm rasterised at 0.5 x 0.5 x 5 mm."""
    a, b, c = 20.0, 15.0, 25.0  # x, y, z semi-axes in mm
    row_mm, col_mm, slice_mm = 0.5, 0.5, 5.0
    z = np.arange(-40.0, 40.0 + slice_mm, slice_mm) + slice_mm / 2  # slice centres
    y = (np.arange(128) - 63.5) * row_mm
    x = (np.arange(128) - 63.5) * col_mm
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    masks = ((xx / a) ** 2 + (yy / b) ** 2 + (zz / c) ** 2 <= 1.0).astype(np.uint8)
    analytic_ml = 4.0 / 3.0 * np.pi * a * b * c / 1000.0
    measured = np.count_nonzero(masks) * voxel_volume_ml(row_mm, col_mm, slice_mm)
    assert measured == pytest.approx(analytic_ml, rel=0.05)
    assert 200 * voxel_volume_ml(1.0, 1.0, 5.0) == pytest.approx(1.0)

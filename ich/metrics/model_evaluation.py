"""Test-set evaluation of one model's predictions: the nested, JSON-ready metrics block.

Layout (keys are stable; thresholds and fractions are formatted with ``:g``)::

    {
      "n_slices": int, "n_patients": int, "n_positive_slices": int, "n_positive_patients": int,
      "slice": {
        "roc_auc": {"value", "ci_low", "ci_high"}, "pr_auc": {...},
        "threshold_0.5": {"accuracy": {...}, "sensitivity": ..., "specificity": ..., "ppv": ...,
                          "npv": ..., "f1": ..., "balanced_accuracy": ...,
                          "tp": int, "fp": int, "tn": int, "fn": int},
        ...
      },
      "patient": {"fraction_0.05": {"threshold_0.5": {same as above}, ...}, ...,
                  "study_score": {"score": "max_slice_probability", "roc_auc": {...}, "pr_auc": {...}}},
      "operating_points": {"slice_youden": {"threshold", "chosen_on", <ratios and counts>},
                           "slice_sensitivity": {...}, "patient_youden": {...}},
      "calibration": {"slope", "intercept", "ece", "ece_calibrated"},
      "subtypes": {"epidural": {"n_slices", "n_positive_slices", "roc_auc", "pr_auc",
                               "threshold_0.5": {...}, ...}, ...}
    }

``study_score``, ``operating_points`` and ``calibration`` (test ECE before and after the
validation-fitted Platt scaling) are there when the model's validation-chosen
operating points (``ich.metrics.operating_points``) are given; ``headline`` picks from the
block the few figures a reviewer decides on.

Every interval is a 95% patient-level (cluster) bootstrap interval (``ich.metrics.ci``); blocks
over the same patients share the same resamples. Floats are rounded to 6 decimals and undefined
values (NaN) become ``None`` (JSON ``null``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ich.labels import SUBTYPES
from ich.metrics.calibration import calibrate, expected_calibration_error
from ich.metrics.ci import bootstrap_ci
from ich.metrics.classification import (
    COUNT_KEYS,
    RANKING_KEYS,
    RATE_KEYS,
    check_binary,
    confusion_counts,
    rates_from_counts,
    weighted_confusion_counts,
    weighted_ranking_metrics,
)
from ich.metrics.jsonsafe import json_ready
from ich.metrics.operating_points import study_scores

JsonBlock = dict[str, object]


def threshold_key(threshold: float) -> str:
    """Key of a probability threshold's block, e.g. ``threshold_0.5``."""
    return f"threshold_{threshold:g}"


def fraction_key(fraction: float) -> str:
    """Key of a patient-rule block, e.g. ``fraction_0.05`` for "at least 5% of slices"."""
    return f"fraction_{fraction:g}"


def minimum_positive_slices(n_slices: NDArray[np.int64] | pd.Series, fraction: float) -> NDArray[np.int64]:
    """Positive slices a patient needs to be called positive: ``ceil(fraction * n_slices)``, at least 1.

    The product is rounded to 9 decimals before the ceiling because binary floating point
    makes, e.g., ``0.1 * 30`` slightly more than 3, which would wrongly demand 4 slices. The
    floor of 1 means a patient with no positive slice is never positive.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    needed = np.ceil(np.round(np.asarray(n_slices, dtype=float) * fraction, 9)).astype(np.int64)
    return np.maximum(needed, 1)


def patient_predictions(
    df: pd.DataFrame,
    slice_threshold: float,
    fraction: float,
    *,
    prob_col: str = "prob_any",
    label_col: str = "any",
) -> pd.DataFrame:
    """Patient-level diagnosis: positive if at least ``fraction`` of the patient's slices are positive.

    A slice is positive when ``prob_col >= slice_threshold``. A single flagged slice in a long
    study is weak evidence, so the count needed scales with the number of slices
    (``minimum_positive_slices``); slice continuity is not required. The patient's truth is
    "any slice labelled positive". Returns one row per patient, sorted by id: ``patient_id,
    n_slices, n_positive_slices, required, pred, label``.
    """
    table = (
        df.assign(_flag=(df[prob_col] >= slice_threshold).astype(np.int64))
        .groupby("patient_id", sort=True)
        .agg(n_slices=("_flag", "size"), n_positive_slices=("_flag", "sum"), label=(label_col, "max"))
        .reset_index()
    )
    table["required"] = minimum_positive_slices(table["n_slices"], fraction)
    table["pred"] = (table["n_positive_slices"] >= table["required"]).astype(np.int64)
    table["label"] = table["label"].astype(np.int64)
    return table[["patient_id", "n_slices", "n_positive_slices", "required", "pred", "label"]]


def interval(value: float, low: float, high: float) -> dict[str, float | None]:
    """``{value, ci_low, ci_high}`` as the metric files hold it (rounded; NaN -> ``None``)."""
    return {key: json_ready(float(x)) for key, x in (("value", value), ("ci_low", low), ("ci_high", high))}


def _threshold_block(rates: NDArray[np.float64], counts: dict[str, int]) -> JsonBlock:
    """Ratios with intervals (``rates`` has rows value, low, high and one column per ``RATE_KEYS``),
    then the point confusion counts (a count has no useful interval)."""
    return {**{k: interval(*rates[:, i]) for i, k in enumerate(RATE_KEYS)}, **{k: counts[k] for k in COUNT_KEYS}}


def _rates_statistic(
    y: NDArray[np.int64], preds: NDArray[np.bool_], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``RATE_KEYS`` for each column of ``preds`` (one per threshold), threshold-major: shape ``(k, T * R)``."""
    rates = rates_from_counts(**weighted_confusion_counts(y, preds, weights))  # each (k, T)
    return np.stack(list(rates.values()), axis=-1).reshape(len(weights), -1)


def _slice_statistic(
    y: NDArray[np.int64], p: NDArray[np.float64], preds: NDArray[np.bool_], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``RANKING_KEYS`` then ``_rates_statistic``: every slice-level number in one batched pass."""
    ranking = np.column_stack(list(weighted_ranking_metrics(y, p, weights).values()))
    return np.hstack([ranking, _rates_statistic(y, preds, weights)])


def _per_threshold(intervals: NDArray[np.float64], n_thresholds: int) -> NDArray[np.float64]:
    """``(3, T * R)`` value/low/high rows of ``_rates_statistic`` as ``(T, 3, R)``, one block per threshold."""
    return intervals.reshape(3, n_thresholds, len(RATE_KEYS)).transpose(1, 0, 2)


def decision_blocks(
    y: NDArray[np.int64], preds: NDArray[np.bool_], groups: ArrayLike, *, n_boot: int, seed: int
) -> list[JsonBlock]:
    """Ratios with intervals and confusion counts of each column of decisions ``preds`` ``(n, T)``."""
    intervals = np.stack(bootstrap_ci(_rates_statistic, y, preds, groups=groups, n_boot=n_boot, seed=seed))
    rates = _per_threshold(intervals, preds.shape[1])
    return [_threshold_block(rates[j], confusion_counts(y, preds[:, j])) for j in range(preds.shape[1])]


def ranking_and_decision(
    y: NDArray[np.int64],
    scores: NDArray[np.float64],
    decided: NDArray[np.bool_],
    groups: ArrayLike,
    *,
    n_boot: int,
    seed: int,
) -> tuple[JsonBlock, JsonBlock]:
    """``(ROC-AUC and PR-AUC of scores, ratios of the decisions)``, from one set of resamples."""
    intervals = np.stack(
        bootstrap_ci(_slice_statistic, y, scores, decided[:, None], groups=groups, n_boot=n_boot, seed=seed)
    )
    ranking: JsonBlock = {k: interval(*intervals[:, i]) for i, k in enumerate(RANKING_KEYS)}
    rates = _per_threshold(intervals[:, len(RANKING_KEYS) :], 1)[0]
    return ranking, _threshold_block(rates, confusion_counts(y, decided))


def slice_block(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    groups: ArrayLike,
    *,
    thresholds: Sequence[float],
    n_boot: int,
    seed: int,
) -> JsonBlock:
    """ROC-AUC, PR-AUC and per-threshold ratios of one label, with patient-bootstrap intervals."""
    y, p = check_binary(y_true, y_prob)
    preds = np.column_stack([p >= t for t in thresholds])
    intervals = np.stack(bootstrap_ci(_slice_statistic, y, p, preds, groups=groups, n_boot=n_boot, seed=seed))
    block: JsonBlock = {k: interval(*intervals[:, i]) for i, k in enumerate(RANKING_KEYS)}
    rates = _per_threshold(intervals[:, len(RANKING_KEYS) :], len(thresholds))
    for j, t in enumerate(thresholds):
        block[threshold_key(t)] = _threshold_block(rates[j], confusion_counts(y, p >= t))
    return block


def patient_block(
    table: pd.DataFrame, *, fraction: float, thresholds: Sequence[float], n_boot: int, seed: int
) -> JsonBlock:
    """Per-threshold ratios of the patient rule at ``fraction``, bootstrapping patients.

    ``table`` has one row per slice with ``patient_id``, ``prob_any`` and ``any``.
    """
    per_threshold = [patient_predictions(table, t, fraction) for t in thresholds]
    y = per_threshold[0]["label"].to_numpy()
    preds = np.column_stack([pt["pred"].to_numpy().astype(bool) for pt in per_threshold])
    groups = per_threshold[0]["patient_id"].to_numpy()
    blocks = decision_blocks(y, preds, groups, n_boot=n_boot, seed=seed)
    return {threshold_key(t): block for t, block in zip(thresholds, blocks, strict=True)}


def study_block(table: pd.DataFrame, points: dict, *, n_boot: int, seed: int) -> tuple[JsonBlock, JsonBlock]:
    """Patient level from the study score: ``(ranking block, block at the patient operating point)``.

    One row per patient, so the bootstrap resamples patients as everywhere else.
    """
    score = points["patient_youden"]["study_score"]
    studies = study_scores(table, score)
    y, p = check_binary(studies["label"], studies["score"])
    decided = p >= points["patient_youden"]["threshold"]
    ranking, at_point = ranking_and_decision(y, p, decided, studies["patient_id"], n_boot=n_boot, seed=seed)
    return {"score": score, **ranking}, at_point


def operating_point_blocks(table: pd.DataFrame, points: dict, *, n_boot: int, seed: int) -> tuple[JsonBlock, JsonBlock]:
    """Test metrics at the validation-chosen points: ``(patient study_score block, operating_points block)``."""
    slice_points = ("slice_youden", "slice_sensitivity")
    thresholds = [points[name]["threshold"] for name in slice_points]
    y, p = check_binary(table["any"], table["prob_any"])
    preds = np.column_stack([p >= t for t in thresholds])
    at_slices = decision_blocks(y, preds, table["patient_id"].to_numpy(), n_boot=n_boot, seed=seed)
    ranking, at_patient = study_block(table, points, n_boot=n_boot, seed=seed)
    chosen = {"chosen_on": points["chosen_on"]}
    blocks: JsonBlock = {
        name: {"threshold": t, **chosen, **at} for name, t, at in zip(slice_points, thresholds, at_slices, strict=True)
    }
    blocks["patient_youden"] = {"threshold": points["patient_youden"]["threshold"], **chosen, **at_patient}
    return ranking, blocks


def headline(block: JsonBlock) -> JsonBlock:
    """The figures a reviewer decides on, from an ``evaluate_predictions`` block with operating points.

    Slice ROC-AUC and PR-AUC and patient ROC-AUC (study score) with their intervals; patient
    sensitivity and specificity at the validation-chosen patient threshold.
    """
    at_patient = block["operating_points"]["patient_youden"]
    return {
        "slice_roc_auc": block["slice"]["roc_auc"],
        "slice_pr_auc": block["slice"]["pr_auc"],
        "patient_roc_auc": block["patient"]["study_score"]["roc_auc"],
        "patient_sensitivity": at_patient["sensitivity"]["value"],
        "patient_specificity": at_patient["specificity"]["value"],
    }


def _labelled_rows(
    predictions: pd.DataFrame, labels: pd.DataFrame, subset: str, subtypes: Sequence[str]
) -> pd.DataFrame:
    """Rows of ``subset`` joined to their labels; a prediction without a label is an error, not a drop."""
    rows = predictions[predictions["set"] == subset]
    if rows.empty:
        raise ValueError(f"no predictions for set {subset!r}")
    label_cols = [c for c in ("any", *subtypes) if c in labels.columns]
    table = rows.merge(labels[["slice_id", *label_cols]], on="slice_id", how="left", validate="one_to_one")
    if table["any"].isna().any():
        missing = table.loc[table["any"].isna(), "slice_id"].head(5).tolist()
        raise ValueError(f"{table['any'].isna().sum()} predicted slices have no 'any' label, e.g. {missing}")
    return table


def evaluate_predictions(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    thresholds: Sequence[float],
    patient_fractions: Sequence[float],
    n_boot: int,
    seed: int,
    subtypes: Sequence[str] = SUBTYPES,
    subset: str = "test",
    operating_points: dict | None = None,
) -> JsonBlock:
    """Metrics of one model on the ``subset`` rows of its predictions table (layout: module docstring).

    ``predictions`` follows the Predictions contract (``slice_id, patient_id, set, fold,
    prob_any[, prob_<subtype>]``); ``labels`` is the slice index (``slice_id, any,
    <subtypes>``). A subtype is evaluated when its ``prob_<subtype>`` column exists and it has
    labels; slices whose subtype label is missing (study-level datasets) are left out of that
    subtype only. ``operating_points`` (from ``choose_operating_points`` on validation) adds the
    study-score and operating-point blocks.
    """
    table = _labelled_rows(predictions, labels, subset, subtypes)
    groups = table["patient_id"].to_numpy()
    y_any = table["any"].to_numpy()
    slice_metrics = partial(slice_block, thresholds=thresholds, n_boot=n_boot, seed=seed)
    patient_metrics = partial(patient_block, thresholds=thresholds, n_boot=n_boot, seed=seed)
    subtype_blocks: JsonBlock = {}
    for subtype in subtypes:
        if f"prob_{subtype}" not in table.columns or subtype not in table.columns:
            continue
        known = table[subtype].notna().to_numpy()
        if not known.any():
            continue
        y_sub = table.loc[known, subtype].to_numpy()
        subtype_blocks[subtype] = {
            "n_slices": int(known.sum()),
            "n_positive_slices": int(y_sub.sum()),
            **slice_metrics(y_sub, table.loc[known, f"prob_{subtype}"].to_numpy(), groups[known]),
        }
    block: JsonBlock = {
        "n_slices": len(table),
        "n_patients": int(table["patient_id"].nunique()),
        "n_positive_slices": int(y_any.sum()),
        "n_positive_patients": int(table.groupby("patient_id")["any"].max().sum()),
        "slice": slice_metrics(y_any, table["prob_any"].to_numpy(), groups),
        "patient": {fraction_key(f): patient_metrics(table, fraction=f) for f in patient_fractions},
        "subtypes": subtype_blocks,
    }
    if operating_points is not None:
        ranking, at_points = operating_point_blocks(table, operating_points, n_boot=n_boot, seed=seed)
        block["patient"]["study_score"] = ranking
        block["operating_points"] = at_points
        fit = operating_points["calibration"]
        p_any = table["prob_any"].to_numpy(dtype=float)
        block["calibration"] = {
            "slope": fit["slope"],
            "intercept": fit["intercept"],
            "ece": round(expected_calibration_error(y_any, p_any), 6),
            "ece_calibrated": round(expected_calibration_error(y_any, calibrate(p_any, fit)), 6),
        }
    return block

"""Pooling k test folds with each fold's own validation-chosen operating point and temperature.

In patient-level k-fold cross-validation every patient is tested once, by the model of its
fold. Pooling the raw probabilities compares k models on k scales; pooling decisions made at
one fixed threshold assumes one scale too. Here each fold's test rows are first put on a common
footing with what that fold chose on its own validation patients (``operating_points.json``):

- slice probabilities are divided through the fold's temperature (``ich.metrics.calibration``)
  before the pooled slice ROC-AUC and the study scores (maximum calibrated slice probability)
  are computed;
- each test patient is called positive when its raw study score reaches the fold's
  ``patient_youden`` threshold, and those decisions are pooled into one sensitivity and one
  specificity.

Every figure comes with a 95% patient-bootstrap interval (``ich.metrics.ci``) over all pooled
patients. :func:`summary` gives the keys of ``docs/results/<profile>-crossval.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ich.metrics.calibration import apply_temperature, expected_calibration_error
from ich.metrics.ci import bootstrap_ci
from ich.metrics.classification import rates_from_counts, weighted_confusion_counts, weighted_ranking_metrics
from ich.metrics.operating_points import study_scores


def _interval(values: tuple[np.ndarray, np.ndarray, np.ndarray], i: int = 0) -> dict[str, float | None]:
    out = {}
    for key, array in zip(("value", "ci_low", "ci_high"), values, strict=True):
        x = float(np.atleast_1d(array)[i])
        out[key] = None if np.isnan(x) else round(x, 6)
    return out


def _ranking(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weighted_ranking_metrics(y, p, weights)["roc_auc"]


def _sens_spec(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    rates = rates_from_counts(**weighted_confusion_counts(y, pred, weights))
    return np.column_stack([rates["sensitivity"], rates["specificity"]])


def pool_folds(
    tables: Mapping[int, pd.DataFrame], points: Mapping[int, dict], labels: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(slices, patients)`` over all folds.

    ``tables[k]``: fold k's test predictions (Predictions contract); ``points[k]``: its
    ``operating_points.json``. ``slices`` gains ``any`` and ``prob_calibrated``; ``patients``
    has ``patient_id, fold, label, score, score_calibrated, pred``. A patient or slice in two
    test folds is an error.
    """
    slice_parts, patient_parts = [], []
    for fold, table in tables.items():
        test = table[table["set"] == "test"].merge(labels[["slice_id", "any"]], on="slice_id", validate="one_to_one")
        if test.empty:
            raise ValueError(f"fold {fold}: no test predictions")
        temperature = points[fold]["calibration"]["temperature"]
        test = test.assign(fold=fold, prob_calibrated=apply_temperature(test["prob_any"], temperature))
        raw = study_scores(test)
        calibrated = study_scores(test, prob_col="prob_calibrated")
        threshold = points[fold]["patient_youden"]["threshold"]
        patient_parts.append(
            raw.assign(
                fold=fold, score_calibrated=calibrated["score"].to_numpy(), pred=(raw["score"] >= threshold).astype(int)
            )
        )
        slice_parts.append(test)
    slices = pd.concat(slice_parts, ignore_index=True)
    patients = pd.concat(patient_parts, ignore_index=True)
    if slices["slice_id"].duplicated().any() or patients["patient_id"].duplicated().any():
        raise ValueError("a patient or slice appears in more than one test fold")
    return slices, patients


def summary(
    tables: Mapping[int, pd.DataFrame], points: Mapping[int, dict], labels: pd.DataFrame, *, n_boot: int, seed: int
) -> dict:
    """One model's cross-validated figures (module docstring), JSON-ready."""
    slices, patients = pool_folds(tables, points, labels)
    y_slice = slices["any"].to_numpy().astype(np.int64)
    p_slice = slices["prob_calibrated"].to_numpy(dtype=float)
    pooled = bootstrap_ci(_ranking, y_slice, p_slice, groups=slices["patient_id"], n_boot=n_boot, seed=seed)
    y_patient = patients["label"].to_numpy().astype(np.int64)
    ids = patients["patient_id"]
    patient_auc = bootstrap_ci(
        _ranking, y_patient, patients["score_calibrated"].to_numpy(dtype=float), groups=ids, n_boot=n_boot, seed=seed
    )
    decided = bootstrap_ci(
        _sens_spec, y_patient, patients["pred"].to_numpy().astype(bool), groups=ids, n_boot=n_boot, seed=seed
    )
    per_fold = {
        int(k): round(float(roc_auc_score(part["any"], part["prob_any"])), 6) for k, part in slices.groupby("fold")
    }
    return {
        "slice_roc_auc_pooled": _interval(pooled),
        "slice_roc_auc_folds": {
            "per_fold": per_fold,
            "mean": round(float(np.mean(list(per_fold.values()))), 6),
            "sd": round(float(np.std(list(per_fold.values()), ddof=1)), 6) if len(per_fold) > 1 else None,
        },
        "patient_roc_auc": _interval(patient_auc),
        "patient_sensitivity": _interval(decided, 0),
        "patient_specificity": _interval(decided, 1),
        "ece": round(expected_calibration_error(y_slice, slices["prob_any"].to_numpy(dtype=float)), 6),
        "ece_calibrated": round(expected_calibration_error(y_slice, p_slice), 6),
        "n_slices": len(slices),
        "n_patients": len(patients),
    }

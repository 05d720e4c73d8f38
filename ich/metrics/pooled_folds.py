"""Pooling k test folds with each fold's own validation-chosen operating point and calibration.

In patient-level k-fold cross-validation every patient is tested once, by the model of its
fold. Pooling the raw probabilities compares k models on k scales; pooling decisions made at
one fixed threshold assumes one scale too. Here each fold's test rows are first put on a common
footing with what that fold chose on its own validation patients (``operating_points.json``):

- slice probabilities are mapped through the fold's Platt scaling (``ich.metrics.calibration``)
  before the pooled slice ROC-AUC and the study scores (each fold's validation-chosen pooling)
  are computed;
- each test patient is called positive when its raw study score reaches the fold's
  ``patient_youden`` threshold, and those decisions are pooled into one sensitivity and one
  specificity;
- each test slice is flagged when its raw probability reaches the fold's ``slice_youden``
  threshold, the point ``ich predict`` flags slices at, pooled the same way: for a cohort whose
  patients all bleed (PHE-SICH) or that comes as single slices (RSNA's), this is the decision
  figure there is.

Every figure comes with a 95% patient-bootstrap interval (``ich.metrics.ci``) over all pooled
patients. :func:`summary` gives the keys of ``docs/results/<profile>-crossval.json``;
:func:`cohort_summaries` the same for each cohort (hospital) of a combined cohort apart.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ich.metrics.calibration import calibrate, expected_calibration_error
from ich.metrics.model_evaluation import ranking_and_decision
from ich.metrics.operating_points import study_scores


def pool_folds(
    tables: Mapping[int, pd.DataFrame], points: Mapping[int, dict], labels: pd.DataFrame, subset: str = "test"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(slices, patients)`` over all folds.

    ``tables[k]``: fold k's test predictions (Predictions contract); ``points[k]``: its
    ``operating_points.json``. ``slices`` gains ``any``, ``prob_calibrated`` and ``flagged``; ``patients``
    has ``patient_id, fold, label, score, score_calibrated, pred``. A patient or slice in two
    test folds is an error.
    """
    slice_parts, patient_parts = [], []
    for fold, table in tables.items():
        test = table[table["set"] == subset].merge(labels[["slice_id", "any"]], on="slice_id", validate="one_to_one")
        if test.empty:
            raise ValueError(f"fold {fold}: no {subset} predictions")
        fit = points[fold]["calibration"]
        test = test.assign(
            fold=fold,
            prob_calibrated=calibrate(test["prob_any"], fit),
            flagged=test["prob_any"] >= points[fold]["slice_youden"]["threshold"],
        )
        raw = study_scores(test, points[fold]["patient_youden"]["study_score"])
        threshold = points[fold]["patient_youden"]["threshold"]
        patient_parts.append(
            raw.assign(
                fold=fold,
                # the fold's slice calibration, a monotone map, puts every fold's study scores on one
                # scale without changing their order within the fold (for the maximum it commutes;
                # the top-slice mean and a study model's own output get it as they are: none is
                # fitted to study scores)
                score_calibrated=calibrate(raw["score"], fit),
                pred=(raw["score"] >= threshold).astype(int),
            )
        )
        slice_parts.append(test)
    slices = pd.concat(slice_parts, ignore_index=True)
    patients = pd.concat(patient_parts, ignore_index=True)
    if slices["slice_id"].duplicated().any() or patients["patient_id"].duplicated().any():
        raise ValueError("a patient or slice appears in more than one test fold")
    return slices, patients


def summary(
    tables: Mapping[int, pd.DataFrame],
    points: Mapping[int, dict],
    labels: pd.DataFrame,
    *,
    n_boot: int,
    seed: int,
    subset: str = "test",
) -> dict:
    """One model's cross-validated figures (module docstring), JSON-ready.

    ``subset="val"`` pools the folds' validation predictions instead: in k-fold mode every patient
    validates exactly one fold too, so the pooled out-of-fold validation set is the whole cohort,
    large enough to choose between variants (one fold's 16 patients are not). Its sensitivity
    and specificity are at thresholds chosen on those same rows, so only its rankings (ROC-AUCs)
    are fair comparisons.
    """
    slices, patients = pool_folds(tables, points, labels, subset)
    ranking, decided = ranking_and_decision(
        patients["label"].to_numpy().astype(np.int64),
        patients["score_calibrated"].to_numpy(dtype=float),
        patients["pred"].to_numpy().astype(bool),
        patients["patient_id"],
        n_boot=n_boot,
        seed=seed,
    )
    return {
        **_slice_figures(slices, n_boot=n_boot, seed=seed),
        "patient_roc_auc": ranking["roc_auc"],
        "patient_sensitivity": decided["sensitivity"],
        "patient_specificity": decided["specificity"],
        "n_patients": len(patients),
    }


def _slice_figures(slices: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """The slice-level part of :func:`summary`, from :func:`pool_folds`'s slices."""
    y_slice = slices["any"].to_numpy().astype(np.int64)
    p_slice = slices["prob_calibrated"].to_numpy(dtype=float)
    ranking, flagged = ranking_and_decision(
        y_slice, p_slice, slices["flagged"].to_numpy(dtype=bool), slices["patient_id"], n_boot=n_boot, seed=seed
    )
    per_fold = {
        int(k): round(float(roc_auc_score(part["any"], part["prob_any"])), 6) for k, part in slices.groupby("fold")
    }
    return {
        "slice_roc_auc_pooled": ranking["roc_auc"],
        "slice_roc_auc_folds": {
            "per_fold": per_fold,
            "mean": round(float(np.mean(list(per_fold.values()))), 6),
            "sd": round(float(np.std(list(per_fold.values()), ddof=1)), 6) if len(per_fold) > 1 else None,
        },
        "slices_flagged": {"point": "slice_youden", **flagged},
        "ece": round(expected_calibration_error(y_slice, slices["prob_any"].to_numpy(dtype=float)), 6),
        "ece_calibrated": round(expected_calibration_error(y_slice, p_slice), 6),
        "n_slices": len(slices),
    }


def cohort_summaries(
    tables: Mapping[int, pd.DataFrame],
    points: Mapping[int, dict],
    labels: pd.DataFrame,
    *,
    n_boot: int,
    seed: int,
    subset: str = "test",
) -> dict:
    """:func:`summary` of each cohort's patients apart (``labels`` with a ``cohort`` column).

    A cohort whose patients all bleed (or none does) has no patient-level ROC-AUC, sensitivity
    or specificity to give: its block holds the slice figures and says why the others are absent.
    """
    blocks = {}
    for cohort, members in labels.groupby("cohort", sort=True):
        ids = set(members["patient_id"])
        part = {k: t[t["patient_id"].isin(ids)] for k, t in tables.items()}
        part = {k: t for k, t in part.items() if (t["set"] == subset).any()}
        patients = members.groupby("patient_id")["any"].max()
        if patients.nunique() > 1:
            blocks[cohort] = summary(part, points, members, n_boot=n_boot, seed=seed, subset=subset)
            continue
        slices, pooled_patients = pool_folds(part, points, members, subset)
        state = "bleeds" if patients.iloc[0] else "is normal"
        blocks[cohort] = {
            **_slice_figures(slices, n_boot=n_boot, seed=seed),
            "n_patients": len(pooled_patients),
            "patient_figures": f"undefined: every patient of this cohort {state}",
        }
    return blocks

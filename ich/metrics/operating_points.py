"""Operating points chosen on the validation set, stored with each model and applied to test.

A fixed threshold of 0.5 means different things for different models (and for one model from
fold to fold), so each model gets its own decision thresholds, all chosen on validation rows
only (test rows are never looked at here):

- ``slice_youden``: the slice threshold that maximises Youden's J (sensitivity + specificity - 1);
- ``slice_sensitivity``: the highest slice threshold whose validation sensitivity is at least
  ``min_sensitivity`` (0.95 by default), i.e. the most specific point of a screening setting;
- ``patient_youden``: the threshold on the study score that maximises Youden's J over
  validation patients. The study score is the patient's maximum slice probability (a bleed on
  any one slice makes the study positive), or, when it ranks the validation patients strictly
  better, the mean of the three highest slice probabilities or a study-level model's own output
  (:func:`choose_study_score`).

When the validation rows come from several cohorts (hospitals: the index's ``cohort`` column of a
``combined`` source), every point weighs the cohorts equally instead of pooling their slices:
Youden's J is the mean of each cohort's J (cohorts whose validation rows hold one class only do not
vote), and the sensitivity point must reach ``min_sensitivity`` in every cohort. Pooled, the largest
cohort chooses the point and a smaller site's specificity can collapse; balanced, no site's does
without every site paying for it. Each point then also gives every cohort's own validation rates.

A threshold ``t`` reads "positive when the probability is at least ``t``", as everywhere in
``ich.metrics``. Thresholds are scores that occur on validation (scikit-learn's ``roc_curve``),
so ties are resolved the same way on every machine; they are stored unrounded because rounding
could move a threshold past the score it was chosen at.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ich.metrics.calibration import apply_platt, expected_calibration_error, fit_platt
from ich.metrics.classification import binary_metrics, check_binary

STUDY_SCORE = "max_slice_probability"
"""How ``study_scores`` turns slice probabilities into one score per patient."""
STUDY_PROBABILITY = "study_probability"
"""The score of a study model (``prob_study`` in its predictions): its own study output."""
TOP_SLICES_SCORE = "mean_top3_slice_probability"
"""The mean of a study's three highest slice probabilities: one bright slice (a calcification, a
beam-hardening streak) counts less than a bleed seen on neighbouring slices."""
TOP_SLICES = 3


def candidate_study_scores(table: pd.DataFrame) -> list[str]:
    """The study scores ``table`` can give: the maximum slice probability, the mean of the top
    slices, and a study model's own (``prob_study``) where it has that column."""
    return [STUDY_SCORE, TOP_SLICES_SCORE, *([STUDY_PROBABILITY] if "prob_study" in table.columns else [])]


def pool_slice_probabilities(probs: ArrayLike, score: str) -> float:
    """One study's score from its slice probabilities: :data:`STUDY_SCORE` or :data:`TOP_SLICES_SCORE`."""
    values = np.sort(np.asarray(probs, dtype=float))[::-1]
    if values.size == 0:
        raise ValueError("no slice probabilities to pool")
    if score == STUDY_SCORE:
        return float(values[0])
    if score == TOP_SLICES_SCORE:
        return float(values[:TOP_SLICES].mean())
    raise ValueError(f"{score!r} is not a pooling of slice probabilities ({STUDY_SCORE}, {TOP_SLICES_SCORE})")


def study_scores(
    table: pd.DataFrame, score: str = STUDY_SCORE, *, prob_col: str = "prob_any", label_col: str = "any"
) -> pd.DataFrame:
    """One row per patient (sorted by id): ``patient_id, score, label``.

    ``score`` names the study score: :data:`STUDY_SCORE`, the maximum slice probability,
    :data:`TOP_SLICES_SCORE`, the mean of the patient's three highest, or
    :data:`STUDY_PROBABILITY`, a study model's own (``prob_study``; the patient's highest over
    their studies). Which one a model uses is chosen on validation (``patient_youden.study_score``
    of its operating points). ``label`` says whether any slice is labelled positive.
    """
    if table.empty:
        raise ValueError("no slices to score")
    if score not in candidate_study_scores(table):
        raise ValueError(f"study score {score!r} not available here; the table gives {candidate_study_scores(table)}")
    grouped = table.groupby("patient_id", sort=True)
    if score == STUDY_PROBABILITY:
        values = grouped["prob_study"].max()
    else:
        values = grouped[prob_col].agg(lambda probs: pool_slice_probabilities(probs.to_numpy(), score))
    return pd.DataFrame({"score": values, "label": grouped[label_col].max().astype(np.int64)}).reset_index()


def choose_study_score(table: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The study score with the highest validation patient ROC-AUC, and every candidate's.

    The maximum slice probability is the default: another score must beat it strictly (on a few
    validation patients several often rank perfectly, and then the simplest score is kept).
    """
    from sklearn.metrics import roc_auc_score  # where used: ich predict pools scores without scikit-learn

    aucs = {}
    for name in candidate_study_scores(table):
        studies = study_scores(table, name)
        labels = studies["label"].to_numpy()
        aucs[name] = float(roc_auc_score(labels, studies["score"])) if 0 < labels.sum() < len(labels) else float("nan")
    best = STUDY_SCORE
    for name, auc in aucs.items():
        if auc > aucs[best]:
            best = name
    return best, {name: round(auc, 6) for name, auc in aucs.items()}


def _roc_points(y_true: ArrayLike, y_prob: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, p = check_binary(y_true, y_prob)
    if np.unique(y).size < 2:
        raise ValueError(f"cannot choose a {what} threshold: validation has only one class ({int(y[0])})")
    from sklearn.metrics import roc_curve  # where used, as above

    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # roc_curve's first point (threshold inf) calls nothing positive; no finite probability reaches it
    return fpr[1:], tpr[1:], thresholds[1:]


def youden_threshold(y_true: ArrayLike, y_prob: ArrayLike, what: str = "slice") -> float:
    """The threshold with the largest Youden's J; on ties the highest such threshold."""
    fpr, tpr, thresholds = _roc_points(y_true, y_prob, what)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def _voting_cohorts(y: np.ndarray, cohorts: np.ndarray) -> list:
    """The cohorts whose rows hold both classes, in sorted order."""
    return [c for c in np.unique(cohorts) if np.unique(y[cohorts == c]).size == 2]


def _positive_rates(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and false-positive rate of ``p >= t`` for every ``t`` of ``thresholds``."""
    positives, negatives = np.sort(p[y == 1]), np.sort(p[y == 0])
    tpr = 1 - np.searchsorted(positives, thresholds, side="left") / len(positives)
    fpr = 1 - np.searchsorted(negatives, thresholds, side="left") / len(negatives)
    return tpr, fpr


def balanced_thresholds(
    y_true: ArrayLike, y_prob: ArrayLike, cohorts: ArrayLike, min_sensitivity: float | None = None, what: str = "slice"
) -> float:
    """Youden's threshold with the cohorts weighed equally (``min_sensitivity`` ``None``), or the highest
    threshold whose sensitivity reaches ``min_sensitivity`` in every cohort; a single voting cohort
    gives :func:`youden_threshold` and :func:`sensitivity_threshold` exactly."""
    y, p = check_binary(y_true, y_prob)
    groups = np.asarray(cohorts)
    voting = _voting_cohorts(y, groups)
    if len(voting) < 2:
        rows = groups == voting[0] if voting else np.ones(len(y), bool)
        if min_sensitivity is None:
            return youden_threshold(y[rows], p[rows], what)
        return sensitivity_threshold(y[rows], p[rows], min_sensitivity, what)
    candidates = np.unique(p)[::-1]  # highest first: argmax then keeps the highest of tied thresholds
    rates = [_positive_rates(y[groups == c], p[groups == c], candidates) for c in voting]
    if min_sensitivity is None:
        return float(candidates[int(np.argmax(np.mean([tpr - fpr for tpr, fpr in rates], axis=0)))])
    reached = np.all([tpr >= min_sensitivity for tpr, _ in rates], axis=0)
    return float(candidates[int(np.argmax(reached))])  # every cohort's sensitivity is 1 at the lowest score


def sensitivity_threshold(y_true: ArrayLike, y_prob: ArrayLike, min_sensitivity: float, what: str = "slice") -> float:
    """The highest threshold whose sensitivity is at least ``min_sensitivity``.

    Lowering a threshold never lowers sensitivity, so the highest one that reaches the target is
    the most specific of all that do.
    """
    if not 0 < min_sensitivity <= 1:
        raise ValueError(f"min_sensitivity must be in (0, 1], got {min_sensitivity}")
    _, tpr, thresholds = _roc_points(y_true, y_prob, what)
    return float(thresholds[int(np.argmax(tpr >= min_sensitivity))])  # tpr reaches 1 at the lowest score


def rates_at(y: np.ndarray, p: np.ndarray, threshold: float, cohorts: np.ndarray | None = None) -> dict:
    """``val_sensitivity`` and ``val_specificity`` of ``p >= threshold``, and each cohort's
    (``val_by_cohort``) when ``cohorts`` holds more than one."""
    rates = binary_metrics(y, p, threshold)
    out: dict = {f"val_{k}": round(rates[k], 6) for k in ("sensitivity", "specificity")}
    if cohorts is not None and np.unique(cohorts).size > 1:
        out["val_by_cohort"] = {}
        for c in np.unique(cohorts):
            rows = cohorts == c
            tp, n_pos = int(((p >= threshold) & (y == 1) & rows).sum()), int(((y == 1) & rows).sum())
            tn, n_neg = int(((p < threshold) & (y == 0) & rows).sum()), int(((y == 0) & rows).sum())
            out["val_by_cohort"][str(c)] = {
                "sensitivity": round(tp / n_pos, 6) if n_pos else None,
                "specificity": round(tn / n_neg, 6) if n_neg else None,
            }
    return out


def choose_operating_points(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, min_sensitivity: float = 0.95, subset: str = "val"
) -> dict:
    """The operating points of one model from the ``subset`` rows of its predictions table.

    ``predictions`` follows the Predictions contract (``slice_id, patient_id, set, prob_any``);
    ``labels`` is the slice index (``slice_id, any``). Returns a JSON-ready dict with, for each
    point, the threshold and the validation sensitivity and specificity it gives, and the
    Platt scaling that calibrates the slice probabilities (``ich.metrics.calibration``) with the
    validation ECE before and after it.
    """
    rows = predictions[predictions["set"] == subset]
    if rows.empty:
        raise ValueError(f"no {subset!r} predictions to choose operating points on")
    labels = labels if "cohort" in labels.columns else labels.assign(cohort="")  # one site
    table = rows.merge(labels[["slice_id", "any", "cohort"]], on="slice_id", how="left", validate="one_to_one")
    if table["any"].isna().any():
        raise ValueError(f"{int(table['any'].isna().sum())} {subset} slices have no 'any' label")
    y, p = table["any"].to_numpy().astype(np.int64), table["prob_any"].to_numpy(dtype=float)
    cohorts = table["cohort"].astype(str).to_numpy()
    score, score_aucs = choose_study_score(table)
    studies = study_scores(table, score)
    patient_cohorts = table.groupby("patient_id", sort=True)["cohort"].first().astype(str).to_numpy()
    ys, ps = studies["label"].to_numpy(), studies["score"].to_numpy(dtype=float)
    slice_youden = balanced_thresholds(y, p, cohorts)
    slice_sensitive = balanced_thresholds(y, p, cohorts, min_sensitivity)
    patient_youden = balanced_thresholds(ys, ps, patient_cohorts, what="patient")
    slope, intercept = fit_platt(y, p)
    return {
        "chosen_on": subset,
        "n_slices": len(table),
        "n_patients": len(studies),
        "slice_youden": {"threshold": slice_youden, **rates_at(y, p, slice_youden, cohorts)},
        "slice_sensitivity": {
            "min_sensitivity": min_sensitivity,
            "threshold": slice_sensitive,
            **rates_at(y, p, slice_sensitive, cohorts),
        },
        "patient_youden": {
            "study_score": score,
            "val_roc_auc_by_study_score": score_aucs,
            "threshold": patient_youden,
            **rates_at(ys, ps, patient_youden, patient_cohorts),
        },
        "calibration": {
            "method": "platt",
            "slope": round(slope, 6),
            "intercept": round(intercept, 6),
            "val_ece": round(expected_calibration_error(y, p), 6),
            "val_ece_calibrated": round(expected_calibration_error(y, apply_platt(p, slope, intercept)), 6),
        },
    }

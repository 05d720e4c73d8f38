"""Patient-level train/val/test splits and k folds, stratified on patient-level "any ICH".

Slices of one patient are strongly correlated; splitting by slice leaks patients between
training and test and inflates every metric. Everything here works on one row per patient,
and :func:`assert_no_leakage` checks the result against the slice index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split


def patient_labels(index: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: ``patient_id, cohort, any`` (1 if any of their slices, or their study, is positive).

    A patient id found in two cohorts is refused: two hospitals' patients merged into one would
    be split, trained and scored as one person.
    """
    table = index.groupby("patient_id", sort=True).agg(
        cohort=("cohort", "first"), cohorts=("cohort", "nunique"), any=("any", "max")
    )
    shared = table.index[table["cohorts"] > 1]
    if len(shared):
        raise ValueError(f"patients {list(shared[:5])} have slices in more than one cohort: their ids collide")
    return table.drop(columns="cohorts").astype({"any": int}).reset_index()


def _stratify(labels: pd.Series, n_groups: int) -> pd.Series | None:
    """Stratify only when every class can appear in every group; tiny cohorts fall back to random."""
    return labels if labels.value_counts().min() >= n_groups else None


def split_patients(
    patients: pd.DataFrame,
    *,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    folds: int = 5,
    mode: str = "holdout",
    test_fold: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign every patient a set and a fold.

    Every cohort (hospital) is split on its own, as if it were the only one: adding a cohort
    never moves another cohort's patients between folds or sets, and each cohort is spread over
    every fold, so each of its patients is tested once in cross-validation.

    Args:
        patients: ``patient_id, any`` one row per patient, and ``cohort`` where there are several.
        fractions: train/val/test fractions for ``mode="holdout"``.
        folds: number of stratified folds (Hssayeni 2020 uses 5); the ``fold`` column always
            holds each patient's fold so cross-validation can be run from one split table.
        mode: ``"holdout"`` uses ``fractions``; ``"kfold"`` makes fold ``test_fold`` the test
            set, the next fold validation and the rest training (Hssayeni 2020's protocol).
        test_fold: which fold is the test set in ``kfold`` mode.
        seed: random seed; the same inputs and seed give the same table.

    Returns:
        ``patient_id, set, fold, any``.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    if patients["patient_id"].duplicated().any():
        raise ValueError("patient table has duplicate patient ids")
    options = {"fractions": fractions, "folds": folds, "mode": mode, "test_fold": test_fold, "seed": seed}
    if "cohort" in patients and patients["cohort"].nunique() > 1:
        parts = [_split_one_cohort(group, **options) for _, group in patients.groupby("cohort", sort=True)]
        return pd.concat(parts).sort_values("patient_id").reset_index(drop=True)
    return _split_one_cohort(patients, **options)


def _split_one_cohort(
    patients: pd.DataFrame, *, fractions: tuple[float, float, float], folds: int, mode: str, test_fold: int, seed: int
) -> pd.DataFrame:
    """:func:`split_patients` of one cohort's patients."""
    table = patients[["patient_id", "any"]].sort_values("patient_id").reset_index(drop=True)
    n = len(table)
    if n < max(3, folds):
        raise ValueError(f"need at least {max(3, folds)} patients to split, got {n}")

    fold = np.empty(n, dtype=int)
    strat = _stratify(table["any"], folds)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (_, members) in enumerate(splitter.split(table, strat if strat is not None else np.zeros(n))):
        fold[members] = k
    table["fold"] = fold

    if mode == "kfold":
        if not 0 <= test_fold < folds:
            raise ValueError(f"test_fold must be in [0, {folds}), got {test_fold}")
        val_fold = (test_fold + 1) % folds
        table["set"] = np.where(fold == test_fold, "test", np.where(fold == val_fold, "val", "train"))
    elif mode == "holdout":
        train_frac, val_frac, test_frac = fractions
        rest, test = train_test_split(
            table.index, test_size=test_frac, random_state=seed, stratify=_stratify(table["any"], 2)
        )
        rest_labels = table.loc[rest, "any"]
        train, val = train_test_split(
            rest, test_size=val_frac / (train_frac + val_frac), random_state=seed, stratify=_stratify(rest_labels, 2)
        )
        table["set"] = ""
        table.loc[train, "set"] = "train"
        table.loc[val, "set"] = "val"
        table.loc[test, "set"] = "test"
    else:
        raise ValueError(f"split mode must be 'holdout' or 'kfold', got {mode!r}")
    return table[["patient_id", "set", "fold", "any"]]


def assert_no_leakage(index: pd.DataFrame, split: pd.DataFrame) -> None:
    """Raise if a patient or a study appears in two sets, or a slice has no set."""
    if split["patient_id"].duplicated().any():
        raise AssertionError("a patient appears twice in the split table")
    merged = index.merge(split[["patient_id", "set"]], on="patient_id", how="left")
    if merged["set"].isna().any():
        missing = merged.loc[merged["set"].isna(), "patient_id"].unique()[:5]
        raise AssertionError(f"slices of patients without a set, e.g. {list(missing)}")
    studies = merged.groupby("study_id")["set"].nunique()
    if (studies > 1).any():
        raise AssertionError(f"studies split across sets: {list(studies[studies > 1].index[:5])}")

"""Pooling cross-validation folds with each fold's validation-chosen threshold and calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ich.metrics import choose_operating_points
from ich.metrics.calibration import calibrate
from ich.metrics.pooled_folds import cohort_summaries, pool_folds, summary


def fold_tables(n_folds: int = 3, patients: int = 12, slices: int = 8, seed: int = 0):
    """Per fold: val and test predictions on scales that differ by fold (fold k's logits x (k + 1))."""
    rng = np.random.default_rng(seed)
    tables, labels = {}, []
    for k in range(n_folds):
        rows = []
        for subset in ("val", "test"):
            for i in range(patients):
                pid = f"f{k}-{subset}-{i}"
                sick = i % 3 != 0
                for j in range(slices):
                    bleed = int(sick and j in (3, 4))
                    logit = (k + 1) * (1.5 * bleed - 1 + rng.normal(0, 0.8))
                    rows.append({"slice_id": f"{pid}-{j}", "patient_id": pid, "set": subset, "fold": k,
                                 "prob_any": 1 / (1 + np.exp(-logit))})  # fmt: skip
                    labels.append({"slice_id": f"{pid}-{j}", "any": bleed})
        tables[k] = pd.DataFrame(rows)
    return tables, pd.DataFrame(labels)


def test_each_fold_is_decided_at_its_own_threshold_and_calibrated_by_its_own_fit():
    tables, labels = fold_tables()
    points = {k: choose_operating_points(t, labels) for k, t in tables.items()}
    assert len({round(p["calibration"]["slope"], 3) for p in points.values()}) == 3
    slices, patients = pool_folds(tables, points, labels)
    assert len(patients) == 36 and set(patients["fold"]) == {0, 1, 2}
    for k, part in patients.groupby("fold"):
        threshold = points[k]["patient_youden"]["threshold"]
        assert (part["pred"] == (part["score"] >= threshold)).all()
    fold1 = slices[slices["fold"] == 1]
    expected = calibrate(fold1["prob_any"], points[1]["calibration"])
    assert np.allclose(fold1["prob_calibrated"], expected)

    result = summary(tables, points, labels, n_boot=200, seed=0)
    assert result["slice_roc_auc_pooled"]["value"] == pytest.approx(
        roc_auc_score(slices["any"], slices["prob_calibrated"]), abs=1e-6
    )
    tp = int(((patients["pred"] == 1) & (patients["label"] == 1)).sum())
    assert result["patient_sensitivity"]["value"] == pytest.approx(tp / patients["label"].sum(), abs=1e-6)
    for key in ("slice_roc_auc_pooled", "patient_roc_auc", "patient_sensitivity", "patient_specificity"):
        block = result[key]
        assert block["ci_low"] <= block["value"] <= block["ci_high"], key
    assert set(result["slice_roc_auc_folds"]["per_fold"]) == {0, 1, 2}
    # slices are flagged at their own fold's slice_youden threshold, on the raw probability
    for k, part in slices.groupby("fold"):
        assert (part["flagged"] == (part["prob_any"] >= points[k]["slice_youden"]["threshold"])).all()
    normal = slices[slices["any"] == 0]
    flagged = result["slices_flagged"]
    assert flagged["point"] == "slice_youden"
    assert flagged["specificity"]["value"] == pytest.approx(1 - normal["flagged"].mean(), abs=1e-6)
    assert flagged["specificity"]["ci_low"] <= flagged["specificity"]["value"] <= flagged["specificity"]["ci_high"]
    assert result["ece_calibrated"] < result["ece"]  # fold scales differ; each fold's fit undoes most of it


def test_a_patient_in_two_test_folds_is_an_error():
    tables, labels = fold_tables(n_folds=2)
    points = {k: choose_operating_points(t, labels) for k, t in tables.items()}
    tables[1] = pd.concat([tables[1], tables[0][tables[0]["set"] == "test"].head(8)], ignore_index=True)
    with pytest.raises(ValueError, match="more than one test fold"):
        pool_folds(tables, points, labels)


def test_folds_shifted_apart_are_realigned_by_their_validation_fits():
    # the same model quality in every fold, but fold k's logits shifted by 3k: pooling the raw
    # probabilities ranks fold 2's negatives above fold 0's positives; a shift per fold undoes it
    tables, labels = fold_tables(seed=1)
    for k, table in tables.items():
        z = np.log(table["prob_any"] / (1 - table["prob_any"])) / (k + 1) + 3 * k
        table["prob_any"] = 1 / (1 + np.exp(-z))
    points = {k: choose_operating_points(t, labels) for k, t in tables.items()}
    slices, _ = pool_folds(tables, points, labels)
    raw = roc_auc_score(slices["any"], slices["prob_any"])
    calibrated = roc_auc_score(slices["any"], slices["prob_calibrated"])
    per_fold = np.mean([roc_auc_score(part["any"], part["prob_any"]) for _, part in slices.groupby("fold")])
    assert raw < per_fold - 0.05
    assert calibrated == pytest.approx(per_fold, abs=0.03)


def test_each_cohort_is_summarised_apart_and_one_where_everyone_bleeds_says_so():
    """Patients whose id ends in 1, 2, 4, 5, ... bleed; the 'second' hospital holds only bleeding
    ones, as PHE-SICH does: its block has slice figures and no patient figures, and the first
    hospital's block is the summary of its patients alone."""
    tables, labels = fold_tables()
    points = {k: choose_operating_points(t, labels) for k, t in tables.items()}
    patient = labels["slice_id"].str.rsplit("-", n=1).str[0]
    number = patient.str.rsplit("-", n=1).str[1].astype(int)
    labels = labels.assign(patient_id=patient, cohort=np.where((number % 3 != 0) & (number > 6), "second", "first"))
    blocks = cohort_summaries(tables, points, labels, n_boot=100, seed=0)
    assert set(blocks) == {"first", "second"}
    assert blocks["second"]["patient_figures"] == "undefined: every patient of this cohort bleeds"
    assert "patient_roc_auc" not in blocks["second"] and 0.5 < blocks["second"]["slice_roc_auc_pooled"]["value"] <= 1
    second = pool_folds(tables, points, labels)[0].merge(labels[labels["cohort"] == "second"][["slice_id"]])
    expected = second.loc[second["any"] == 1, "flagged"].mean()  # the decision figure a bleeding-only site has
    assert blocks["second"]["slices_flagged"]["sensitivity"]["value"] == pytest.approx(expected, abs=1e-6)
    first = labels[labels["cohort"] == "first"]
    alone = summary({k: t[t["patient_id"].isin(set(first["patient_id"]))] for k, t in tables.items()}, points, first,
                    n_boot=100, seed=0)  # fmt: skip
    assert blocks["first"] == alone
    assert blocks["first"]["n_patients"] + blocks["second"]["n_patients"] == 36


def test_the_evaluate_stage_reports_each_cohort_of_a_combined_source_apart():
    from ich.metrics.model_report import report_model

    tables, labels = fold_tables(n_folds=1, patients=30)
    predictions = tables[0]
    patient = labels["slice_id"].str.rsplit("-", n=1).str[0]
    labels = labels.assign(patient_id=patient, cohort=np.where(patient.str.endswith(("1", "2")), "b", "a"))
    points = choose_operating_points(predictions, labels)
    options = {"thresholds": [0.5], "patient_fractions": [0.1], "n_boot": 50, "seed": 0}
    single = report_model(predictions, labels.assign(cohort="a"), points, **options)
    assert "by_cohort" not in single.table
    report = report_model(predictions, labels, points, **options)
    assert set(report.table["by_cohort"]) == {"a", "b"}
    tested = report.table["by_cohort"]
    assert tested["a"]["n_patients"] + tested["b"]["n_patients"] == 30
    assert report.headline == single.headline  # the headline stays the pooled test set

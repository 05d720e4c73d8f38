"""Metrics, patient-level bootstrap intervals, the patient rule, evaluation layout and plot tables."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from ich.metrics import (
    RATE_KEYS,
    binary_metrics,
    bootstrap_ci,
    calibration_table,
    choose_operating_points,
    confusion_rows,
    evaluate_predictions,
    headline,
    metric_by_name,
    patient_predictions,
    pr_table,
    ranking_metrics,
    roc_table,
    study_scores,
)
from ich.metrics.calibration import SLOPE_BOUNDS, apply_platt, calibrate, expected_calibration_error, fit_platt
from ich.metrics.classification import weighted_confusion_counts, weighted_ranking_metrics
from ich.metrics.model_evaluation import minimum_positive_slices
from ich.metrics.operating_points import (
    choose_study_score,
    pool_slice_probabilities,
    sensitivity_threshold,
    youden_threshold,
)

Y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
P = np.array([0.9, 0.6, 0.4, 0.2, 0.7, 0.1, 0.5, 0.8])


def random_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative, tied (2-decimal) probabilities."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.round(np.clip(0.35 + 0.3 * y + rng.normal(0, 0.2, n), 0, 1), 2)


def clustered_sample(n_patients: int, slices: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and patient ids with ``slices`` slices per patient."""
    y, p = random_scores(n_patients * slices, seed)
    return y, p, np.repeat(np.arange(n_patients), slices)


def accuracy_statistic(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Batched accuracy, the simplest statistic for the bootstrap tests."""
    return weights @ (y == pred) / weights.sum(axis=1)


# --- binary and ranking metrics ------------------------------------------------------------


def test_binary_metrics_hand_counted() -> None:
    m = binary_metrics(Y, P, 0.5)  # 0.5 itself counts as positive
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 2, 1)
    expected = {
        "accuracy": 5 / 8,
        "sensitivity": 3 / 4,
        "specificity": 2 / 4,
        "ppv": 3 / 5,
        "npv": 2 / 3,
        "f1": 2 / 3,
        "balanced_accuracy": 0.625,
    }
    assert m == pytest.approx({**expected, "tp": 3, "fp": 2, "tn": 2, "fn": 1})


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_binary_metrics_match_sklearn(threshold: float) -> None:
    y, p = random_scores(500)
    pred = p >= threshold
    m = binary_metrics(y, p, threshold)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["ppv"] == pytest.approx(precision_score(y, pred))
    assert m["npv"] == pytest.approx(precision_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))


def test_ranking_metrics_match_sklearn() -> None:
    y, p = random_scores(500)
    assert ranking_metrics(y, p) == pytest.approx(
        {"roc_auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p)}
    )


def test_undefined_ratios_are_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
        r = ranking_metrics([1, 1], [0.4, 0.9])
    assert (m["tn"], m["accuracy"], m["specificity"], m["npv"]) == (3, 1.0, 1.0, 1.0)
    for key in ("sensitivity", "ppv", "f1", "balanced_accuracy"):
        assert math.isnan(m[key]), key
    assert all(math.isnan(v) for v in r.values())


@pytest.mark.parametrize(
    ("y", "p"), [([0, 2], [0.1, 0.2]), ([0, 1], [0.1]), ([0, 1], [0.1, float("nan")])], ids=["label", "length", "nan"]
)
def test_bad_inputs_are_rejected(y: list[int], p: list[float]) -> None:
    with pytest.raises(ValueError):
        binary_metrics(y, p, 0.5)


def test_metric_by_name() -> None:
    assert metric_by_name("roc_auc", Y, P) == ranking_metrics(Y, P)["roc_auc"]
    assert metric_by_name("f1@0.5", Y, P) == pytest.approx(2 / 3)
    assert metric_by_name("balanced_accuracy@.75", Y, P) == binary_metrics(Y, P, 0.75)["balanced_accuracy"]
    for bad in ("auc", "accuracy", "accuracy@high", "tp@0.5"):
        with pytest.raises(ValueError, match="unknown metric"):
            metric_by_name(bad, Y, P)


def test_weighted_metrics_equal_sklearn_on_repeated_rows() -> None:
    """Integer weights are resample multiplicities: same numbers as the expanded data."""
    y, p = random_scores(300)
    weights = np.random.default_rng(1).integers(0, 4, (3, len(y))).astype(float)
    ranking = weighted_ranking_metrics(y, p, weights)
    thresholds = (0.3, 0.5, 0.7)
    counts = weighted_confusion_counts(y, np.column_stack([p >= t for t in thresholds]), weights)
    assert counts["tp"].shape == (3, len(thresholds))
    for b, w in enumerate(weights.astype(int)):
        yr, pr = np.repeat(y, w), np.repeat(p, w)
        assert ranking["roc_auc"][b] == pytest.approx(roc_auc_score(yr, pr))
        assert ranking["pr_auc"][b] == pytest.approx(average_precision_score(yr, pr))
        for j, t in enumerate(thresholds):
            point = binary_metrics(yr, pr, t)
            assert {k: c[b, j] for k, c in counts.items()} == {k: point[k] for k in ("tp", "fp", "tn", "fn")}


def test_weighted_ranking_is_nan_without_both_classes() -> None:
    weights = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    out = weighted_ranking_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4]), weights)
    assert np.isnan(out["roc_auc"][0]) and np.isnan(out["pr_auc"][0])
    assert out["roc_auc"][1] == out["pr_auc"][1] == 1.0


# --- bootstrap ----------------------------------------------------------------------------


def test_bootstrap_is_deterministic_per_seed() -> None:
    y, p, groups = clustered_sample(40)
    args = (accuracy_statistic, y, p >= 0.5)
    first = bootstrap_ci(*args, groups=groups, n_boot=200, seed=7)
    assert np.array_equal(first, bootstrap_ci(*args, groups=groups, n_boot=200, seed=7))
    assert not np.array_equal(first, bootstrap_ci(*args, groups=groups, n_boot=200, seed=8))


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_patients() -> None:
    widths = []
    for n_patients in (20, 80, 320):
        y, p, groups = clustered_sample(n_patients)
        value, low, high = bootstrap_ci(accuracy_statistic, y, p >= 0.5, groups=groups, n_boot=500, seed=0)
        assert value == pytest.approx(accuracy_score(y, p >= 0.5))
        assert low <= value <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_keeps_patients_whole() -> None:
    """Every slice of a patient gets the same multiplicity, and about 63% of patients appear."""
    n_patients, slices = 50, 7
    groups = np.repeat(np.arange(n_patients), slices)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(groups))  # rows of one patient need not be adjacent

    def whole_and_distinct(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        per_patient = [weights[:, codes == g] for g in range(n_patients)]
        whole = np.all([(w == w[:, :1]).all(axis=1) for w in per_patient], axis=0)
        distinct = np.sum([w[:, 0] > 0 for w in per_patient], axis=0)
        return np.column_stack([whole, distinct])

    codes = groups[shuffled]
    value, low, high = bootstrap_ci(whole_and_distinct, codes, groups=codes, n_boot=300, seed=3)
    assert value[0] == low[0] == high[0] == 1.0
    assert value[1] == n_patients
    assert 20 <= low[1] < high[1] <= 42


def test_bootstrap_nan_statistic_and_validation() -> None:
    y, p, groups = clustered_sample(10)

    def undefined(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.full(len(weights), np.nan)

    assert all(np.isnan(bootstrap_ci(undefined, y, groups=groups, n_boot=10, seed=0)))
    with pytest.raises(ValueError):
        bootstrap_ci(undefined, y, groups=groups, n_boot=0, seed=0)
    with pytest.raises(ValueError):
        bootstrap_ci(undefined, y[:-1], groups=groups, n_boot=10, seed=0)


# --- patient rule ---------------------------------------------------------------------------


def test_minimum_positive_slices_avoids_float_error() -> None:
    assert minimum_positive_slices(np.array([30, 40, 20, 5, 1]), 0.1).tolist() == [3, 4, 2, 1, 1]
    with pytest.raises(ValueError):
        minimum_positive_slices(np.array([10]), 0.0)


def test_patient_rule_on_crafted_table() -> None:
    """a: 1 of 20 slices flagged; b: 2 of 20; c: none flagged but labelled; d: 3 of 30."""
    flags = {"a": [1] + [0] * 19, "b": [1, 1] + [0] * 18, "c": [0] * 10, "d": [1, 1, 1] + [0] * 27}
    df = pd.DataFrame(
        [
            {"patient_id": pid, "prob_any": 0.9 if f else 0.1, "any": int(pid == "c" and i == 0)}
            for pid, fs in flags.items()
            for i, f in enumerate(fs)
        ]
    )
    at5 = patient_predictions(df, 0.5, 0.05).set_index("patient_id")
    at10 = patient_predictions(df, 0.5, 0.10).set_index("patient_id")
    assert at5["pred"].to_dict() == {"a": 1, "b": 1, "c": 0, "d": 1}
    assert at10["pred"].to_dict() == {"a": 0, "b": 1, "c": 0, "d": 1}
    assert at10.loc["d", "required"] == 3
    assert at5["label"].to_dict() == {"a": 0, "b": 0, "c": 1, "d": 0}
    assert patient_predictions(df, 0.95, 0.05)["pred"].sum() == 0


# --- evaluation -----------------------------------------------------------------------------


def evaluation_tables(n_patients: int = 30, slices: int = 12) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A predictions table (val and test rows) with one subtype head, and its slice labels.

    Every third patient has no positive slice, so both sets have negative patients.
    """
    y, p, patients = clustered_sample(n_patients, slices)
    y = np.where(patients % 3 == 1, 0, y)
    rng = np.random.default_rng(5)
    ids = [f"s{i}" for i in range(len(y))]
    epidural = y * rng.integers(0, 2, len(y))
    predictions = pd.DataFrame(
        {
            "slice_id": ids,
            "patient_id": [f"p{k}" for k in patients],
            "set": np.where(patients < n_patients // 3, "val", "test"),
            "fold": 0,
            "prob_any": p,
            "prob_epidural": np.clip(p * epidural + rng.random(len(y)) * 0.3, 0, 1),
        }
    )
    labels = pd.DataFrame({"slice_id": ids, "any": y, "epidural": epidural, "subdural": 0})
    return predictions, labels


def test_evaluate_predictions_layout_and_values() -> None:
    predictions, labels = evaluation_tables()
    m = evaluate_predictions(
        predictions, labels, thresholds=[0.5, 0.9], patient_fractions=[0.05, 0.1], n_boot=100, seed=0
    )
    test = predictions[predictions["set"] == "test"].merge(labels, on="slice_id")
    counts = {"n_slices", "n_patients", "n_positive_slices", "n_positive_patients"}
    assert set(m) == {*counts, "slice", "patient", "subtypes"}
    assert (m["n_slices"], m["n_patients"], m["n_positive_slices"]) == (len(test), 20, int(test["any"].sum()))
    assert set(m["slice"]) == {"roc_auc", "pr_auc", "threshold_0.5", "threshold_0.9"}
    assert set(m["patient"]) == {"fraction_0.05", "fraction_0.1"}
    assert set(m["patient"]["fraction_0.1"]) == {"threshold_0.5", "threshold_0.9"}
    assert set(m["subtypes"]) == {"epidural"}  # subdural has labels but no prob_subdural head
    block = m["slice"]["threshold_0.5"]
    assert set(block) == {*RATE_KEYS, "tp", "fp", "tn", "fn"}
    expected = binary_metrics(test["any"], test["prob_any"], 0.5)
    for key in RATE_KEYS:
        assert block[key]["value"] == pytest.approx(expected[key], abs=1e-6)
        assert block[key]["ci_low"] <= block[key]["value"] <= block[key]["ci_high"]
    assert block["tp"] == expected["tp"]
    assert m["slice"]["roc_auc"]["value"] == pytest.approx(roc_auc_score(test["any"], test["prob_any"]), abs=1e-6)
    patients = patient_predictions(test, 0.5, 0.1)
    patient_expected = binary_metrics(patients["label"], patients["pred"], 0.5)
    patient_block = m["patient"]["fraction_0.1"]["threshold_0.5"]
    assert patient_block["tp"] == patient_expected["tp"]
    assert patient_block["sensitivity"]["value"] == pytest.approx(patient_expected["sensitivity"], abs=1e-6)
    json.dumps(m, allow_nan=False)


def test_evaluate_predictions_nan_becomes_null_and_is_deterministic() -> None:
    predictions, labels = evaluation_tables()
    predictions["prob_any"] = 0.1  # nothing is ever called positive
    kwargs = {"thresholds": [0.5], "patient_fractions": [0.05], "n_boot": 50, "seed": 1}
    m = evaluate_predictions(predictions, labels, **kwargs)
    assert m["slice"]["threshold_0.5"]["ppv"] == {"value": None, "ci_low": None, "ci_high": None}
    assert m["patient"]["fraction_0.05"]["threshold_0.5"]["sensitivity"]["value"] == 0.0
    assert json.dumps(m, allow_nan=False) == json.dumps(evaluate_predictions(predictions, labels, **kwargs))


def test_evaluate_predictions_subtype_with_missing_labels() -> None:
    predictions, labels = evaluation_tables()
    labels["epidural"] = labels["epidural"].astype(float)
    labels.loc[labels.index[::2], "epidural"] = np.nan  # study-level dataset: some slices unlabelled
    m = evaluate_predictions(predictions, labels, thresholds=[0.5], patient_fractions=[], n_boot=20, seed=0)
    test_ids = predictions.loc[predictions["set"] == "test", "slice_id"]
    assert m["subtypes"]["epidural"]["n_slices"] == labels.set_index("slice_id").loc[test_ids, "epidural"].notna().sum()


def test_evaluate_predictions_refuses_unlabelled_slices_and_empty_sets() -> None:
    predictions, labels = evaluation_tables()
    kwargs = {"thresholds": [0.5], "patient_fractions": [0.05], "n_boot": 10, "seed": 0}
    missing = predictions.loc[predictions["set"] == "test", "slice_id"].iloc[0]
    with pytest.raises(ValueError, match="no 'any' label"):
        evaluate_predictions(predictions, labels[labels["slice_id"] != missing], **kwargs)
    with pytest.raises(ValueError, match="no predictions"):
        evaluate_predictions(predictions, labels, subset="holdout", **kwargs)


# --- plot tables ----------------------------------------------------------------------------


def test_curve_tables() -> None:
    y, p = random_scores(5000)
    p = np.abs(p - np.random.default_rng(2).random(len(p)) * 1e-3)  # many distinct thresholds
    roc = roc_table(y, p)
    pr = pr_table(y, p, max_points=50)
    assert list(roc.columns) == ["fpr", "tpr"] and 100 < len(roc) <= 200
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    assert roc["fpr"].is_monotonic_increasing
    assert list(pr.columns) == ["recall", "precision"] and len(pr) <= 50
    assert pr["recall"].is_monotonic_increasing and pr["recall"].iloc[-1] == 1.0
    assert roc_table(Y, P).shape[1] == 2 and len(roc_table(Y, P)) <= len(Y) + 1
    calibration = calibration_table(y, p, n_bins=5)
    assert list(calibration.columns) == ["mean_predicted", "fraction_positive"] and len(calibration) <= 5
    assert calibration["fraction_positive"].between(0, 1).all()
    confusion = confusion_rows(Y, P, 0.5)
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == len(Y)
    assert ((confusion.actual == 1) & (confusion.predicted == 1)).sum() == binary_metrics(Y, P, 0.5)["tp"]
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_table([1, 1], [0.2, 0.3])


def test_output_check_fails_saturated_and_one_sided_models_whatever_their_ranking():
    from ich.metrics import output_check

    y = np.array([0] * 8 + [1] * 4)
    good = np.array([0.05, 0.1, 0.2, 0.3, 0.1, 0.02, 0.4, 0.2, 0.7, 0.9, 0.6, 0.8])
    assert output_check(y, good)["ok"]
    saturated = 0.995 + good / 200  # same ranking, everything at ~1.0
    check = output_check(y, saturated)
    assert not check["ok"] and check["at_one"] == 1.0 and check["specificity"] == 0.0
    all_negative = good / 2  # same ranking, nothing reaches 0.5
    assert not output_check(y, all_negative)["ok"]


# --- operating points chosen on validation --------------------------------------------------


def test_youden_and_sensitivity_thresholds_by_hand() -> None:
    # sorted by score: 0.9+ 0.8+ 0.7- 0.6+ 0.5- 0.4+ 0.2- 0.1-
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1])
    # J at 0.8: 2/4 - 0 = 0.5; at 0.6: 3/4 - 1/4 = 0.5; at 0.4: 1 - 2/4 = 0.5: the highest wins
    assert youden_threshold(y, p) == 0.8
    assert sensitivity_threshold(y, p, 0.75) == 0.6
    assert sensitivity_threshold(y, p, 0.95) == 0.4  # the highest threshold reaching every positive
    with pytest.raises(ValueError, match="only one class"):
        youden_threshold(np.ones(4, int), np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match="min_sensitivity"):
        sensitivity_threshold(y, p, 0.0)


def test_operating_points_use_validation_rows_only() -> None:
    predictions, labels = evaluation_tables()
    points = choose_operating_points(predictions, labels)
    scrambled = predictions.copy()
    test = scrambled["set"] == "test"
    scrambled.loc[test, "prob_any"] = np.random.default_rng(0).permutation(scrambled.loc[test, "prob_any"].to_numpy())
    assert choose_operating_points(scrambled, labels) == points  # test rows never move a threshold
    val = predictions[predictions["set"] == "val"].merge(labels, on="slice_id")
    assert points["n_slices"] == len(val) and points["chosen_on"] == "val"
    at = points["slice_sensitivity"]
    assert at["val_sensitivity"] >= 0.95
    above = val["prob_any"][val["prob_any"] > at["threshold"]]
    assert (val.loc[above.index, "any"].sum() / val["any"].sum()) < 0.95  # the next score up misses the target
    studies = study_scores(val)
    assert len(studies) == points["n_patients"]
    assert studies.set_index("patient_id")["score"].to_dict() == val.groupby("patient_id")["prob_any"].max().to_dict()
    assert 0 <= points["patient_youden"]["threshold"] <= 1
    with pytest.raises(ValueError, match="no 'val' predictions"):
        choose_operating_points(predictions[predictions["set"] == "test"], labels)


def test_another_study_score_is_chosen_only_when_it_ranks_validation_patients_better() -> None:
    # four patients, two slices each; the maximum slice probability ranks patient c (negative, one
    # bright slice) above patient b (positive), the mean of the top slices ranks c below d only,
    # and the study output ranks all four correctly
    table = pd.DataFrame(
        {
            "patient_id": list("aabbccdd"),
            "prob_any": [0.1, 0.2, 0.3, 0.6, 0.9, 0.1, 0.8, 0.7],
            "any": [0, 0, 0, 1, 0, 0, 1, 1],
        }
    )
    top = "mean_top3_slice_probability"
    assert choose_study_score(table) == (top, {"max_slice_probability": 0.5, top: 0.75})
    assert study_scores(table, top)["score"].tolist() == pytest.approx([0.15, 0.45, 0.5, 0.75])
    with pytest.raises(ValueError, match="'study_probability' not available"):
        study_scores(table, "study_probability")
    better = table.assign(prob_study=[0.1, 0.1, 0.7, 0.7, 0.3, 0.3, 0.9, 0.9])
    score, aucs = choose_study_score(better)
    assert score == "study_probability" and aucs == {"max_slice_probability": 0.5, top: 0.75, "study_probability": 1.0}
    one_slice = pd.DataFrame({"patient_id": list("abcd"), "prob_any": [0.1, 0.6, 0.9, 0.8], "any": [0, 1, 0, 1]})
    tied = one_slice.assign(prob_study=[0.1, 0.7, 0.95, 0.9])  # every score 0.5 here: the maximum is kept
    assert choose_study_score(tied)[0] == "max_slice_probability"
    assert pool_slice_probabilities([0.2, 0.9, 0.5, 0.7], top) == pytest.approx(0.7)
    assert pool_slice_probabilities([0.2, 0.9, 0.5, 0.7], "max_slice_probability") == 0.9
    with pytest.raises(ValueError, match="not a pooling"):
        pool_slice_probabilities([0.2], "study_probability")


def test_evaluate_at_operating_points_and_headline() -> None:
    predictions, labels = evaluation_tables()
    points = choose_operating_points(predictions, labels)
    m = evaluate_predictions(
        predictions, labels, thresholds=[0.5], patient_fractions=[0.05], n_boot=100, seed=0, operating_points=points
    )
    test = predictions[predictions["set"] == "test"].merge(labels, on="slice_id")
    youden = m["operating_points"]["slice_youden"]
    expected = binary_metrics(test["any"], test["prob_any"], points["slice_youden"]["threshold"])
    assert youden["tp"] == expected["tp"] and youden["chosen_on"] == "val"
    assert youden["specificity"]["value"] == pytest.approx(expected["specificity"], abs=1e-6)
    studies = study_scores(test)
    patient = m["operating_points"]["patient_youden"]
    decided = binary_metrics(studies["label"], studies["score"], points["patient_youden"]["threshold"])
    assert (patient["tp"], patient["fp"], patient["tn"], patient["fn"]) == tuple(
        decided[k] for k in ("tp", "fp", "tn", "fn")
    )
    auc = m["patient"]["study_score"]["roc_auc"]
    assert auc["value"] == pytest.approx(roc_auc_score(studies["label"], studies["score"]), abs=1e-6)
    assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    top = headline(m)
    assert set(top) == {
        "slice_roc_auc",
        "slice_pr_auc",
        "patient_roc_auc",
        "patient_sensitivity",
        "patient_specificity",
    }
    assert top["patient_sensitivity"] == patient["sensitivity"]["value"]
    assert sum(len(v) if isinstance(v, dict) else 1 for v in top.values()) == 11
    json.dumps(m, allow_nan=False)


# --- calibration ----------------------------------------------------------------------------


def test_platt_recovers_a_known_stretch_and_shift_and_lowers_the_error() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    distorted = 1 / (1 + np.exp(-(3 * true_logit + 2)))  # logits three times too large, shifted up by 2
    slope, intercept = fit_platt(y, distorted)
    assert slope == pytest.approx(1 / 3, rel=0.1)
    assert intercept == pytest.approx(-2 / 3, abs=0.1)  # (z - 2) / 3 undoes 3 z + 2
    calibrated = apply_platt(distorted, slope, intercept)
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, distorted) / 4
    assert roc_auc_score(y, calibrated) == pytest.approx(roc_auc_score(y, distorted))  # monotone


def test_platt_on_a_perfectly_separated_validation_has_one_answer_on_any_machine() -> None:
    # wa2d_cnn2's validation in the demo: every positive above every negative. With 0/1 targets the
    # fit ran up the slope until a tolerance stopped it, at a point the last bits of the sums
    # decided (dvc.lock then differed between CPUs); Platt's targets give one optimum
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], [120, 48])
    p = np.where(y == 1, rng.uniform(0.97, 1.0, y.size), rng.uniform(0.0, 0.96, y.size))
    slope, intercept = fit_platt(y, p)
    assert SLOPE_BOUNDS[0] < slope < SLOPE_BOUNDS[1]
    for noise in (1e-13, -1e-13):  # another machine's rounding of the same numbers
        other = fit_platt(y, p * (1 + noise * rng.standard_normal(y.size)))
        assert (round(other[0], 6), round(other[1], 6)) == (round(slope, 6), round(intercept, 6))


def test_platt_keeps_the_map_monotone_when_validation_ranks_backwards() -> None:
    y = np.array([0, 0, 0, 1, 1, 1] * 20)
    backwards = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1] * 20)
    slope, _ = fit_platt(y, backwards)
    assert slope == pytest.approx(0.05)  # the lower bound: flat, never inverted
    with pytest.raises(ValueError, match="positive"):
        apply_platt(backwards, -1.0, 0.0)
    with pytest.raises(ValueError, match="unknown calibration method 'temperature'"):
        calibrate(backwards, {"method": "temperature", "temperature": 2.0})


def test_expected_calibration_error_by_hand() -> None:
    # bin [0.1, 0.2): mean 0.1, 1 of 2 positive -> gap 0.4; bin [0.9, 1]: mean 0.95, 2 of 2 -> gap 0.05
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 1.0])
    assert expected_calibration_error(y, p) == pytest.approx((2 * 0.4 + 2 * 0.05) / 4)
    with pytest.raises(ValueError, match="only one class"):
        fit_platt([1, 1], [0.2, 0.9])


def test_operating_points_carry_a_validation_calibration_and_evaluate_reports_test_ece() -> None:
    predictions, labels = evaluation_tables()
    points = choose_operating_points(predictions, labels)
    val = predictions[predictions["set"] == "val"].merge(labels, on="slice_id")
    fit = points["calibration"]
    assert (fit["slope"], fit["intercept"]) == pytest.approx(fit_platt(val["any"], val["prob_any"]), abs=1e-6)
    calibrated = calibrate(val["prob_any"], fit)
    assert log_loss(val["any"], calibrated) <= log_loss(val["any"], val["prob_any"])  # what the fit minimises
    m = evaluate_predictions(
        predictions, labels, thresholds=[0.5], patient_fractions=[], n_boot=20, seed=0, operating_points=points
    )
    test = predictions[predictions["set"] == "test"].merge(labels, on="slice_id")
    assert m["calibration"]["ece"] == pytest.approx(expected_calibration_error(test["any"], test["prob_any"]), abs=1e-6)


def test_points_weigh_every_cohort_equally_so_no_site_loses_its_specificity() -> None:
    """A large site whose scores sit low and a small one whose normals score high: pooled, the large
    site chooses a point that flags every normal of the small one; balanced, both keep specificity."""
    from ich.metrics.operating_points import balanced_thresholds

    rng = np.random.default_rng(0)
    big_y, small_y = rng.integers(0, 2, 2000), rng.integers(0, 2, 200)
    big_p = np.clip(0.2 + 0.3 * big_y + rng.normal(0, 0.08, 2000), 0, 1)
    small_p = np.clip(0.6 + 0.3 * small_y + rng.normal(0, 0.05, 200), 0, 1)
    y, p = np.concatenate([big_y, small_y]), np.concatenate([big_p, small_p])
    sites = np.array(["big"] * 2000 + ["small"] * 200)
    pooled, balanced = youden_threshold(y, p), balanced_thresholds(y, p, sites)

    def specificity(t: float, site: str) -> float:
        return float((p[(sites == site) & (y == 0)] < t).mean())

    assert specificity(pooled, "small") < 0.1 and specificity(balanced, "small") > 0.5
    assert specificity(balanced, "big") > 0.5
    screening = balanced_thresholds(y, p, sites, 0.95)
    assert all((p[(sites == s) & (y == 1)] >= screening).mean() >= 0.95 for s in ("big", "small"))
    # one site (or a site with one class only, which does not vote): the pooled choices exactly
    assert balanced_thresholds(big_y, big_p, ["big"] * 2000) == youden_threshold(big_y, big_p)
    only_bleeds = np.array(["big"] * 2000 + ["phe"] * 50)
    y2, p2 = np.concatenate([big_y, np.ones(50, int)]), np.concatenate([big_p, np.full(50, 0.9)])
    assert balanced_thresholds(y2, p2, only_bleeds) == youden_threshold(big_y, big_p)
    predictions, labels = evaluation_tables()
    labels = labels.assign(cohort=np.where(np.arange(len(labels)) % 2, "a", "b"))
    points = choose_operating_points(predictions, labels)
    assert set(points["slice_youden"]["val_by_cohort"]) == {"a", "b"}

"""Classification metrics, patient-level bootstrap confidence intervals and plot tables."""

from ich.metrics.ci import bootstrap_ci, resample_counts
from ich.metrics.classification import (
    COUNT_KEYS,
    RANKING_KEYS,
    RATE_KEYS,
    binary_metrics,
    confusion_counts,
    metric_by_name,
    output_check,
    ranking_metrics,
    rates_from_counts,
)
from ich.metrics.curves import calibration_table, confusion_rows, pr_table, roc_table
from ich.metrics.model_evaluation import (
    evaluate_predictions,
    fraction_key,
    headline,
    patient_predictions,
    threshold_key,
)
from ich.metrics.operating_points import choose_operating_points, study_scores

__all__ = [
    "COUNT_KEYS",
    "RANKING_KEYS",
    "RATE_KEYS",
    "binary_metrics",
    "bootstrap_ci",
    "calibration_table",
    "choose_operating_points",
    "confusion_counts",
    "confusion_rows",
    "evaluate_predictions",
    "fraction_key",
    "headline",
    "metric_by_name",
    "output_check",
    "patient_predictions",
    "pr_table",
    "ranking_metrics",
    "rates_from_counts",
    "resample_counts",
    "roc_table",
    "study_scores",
    "threshold_key",
]

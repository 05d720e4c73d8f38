"""Classification metrics, patient-level bootstrap confidence intervals and plot tables.

The names below load their module when first used, so that importing one submodule (as
``ich predict`` does for calibration and pooling) does not import scikit-learn with the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "COUNT_KEYS": "ich.metrics.classification",
    "RANKING_KEYS": "ich.metrics.classification",
    "RATE_KEYS": "ich.metrics.classification",
    "binary_metrics": "ich.metrics.classification",
    "bootstrap_ci": "ich.metrics.ci",
    "calibration_table": "ich.metrics.curves",
    "choose_operating_points": "ich.metrics.operating_points",
    "confusion_counts": "ich.metrics.classification",
    "confusion_rows": "ich.metrics.curves",
    "evaluate_predictions": "ich.metrics.model_evaluation",
    "fraction_key": "ich.metrics.model_evaluation",
    "headline": "ich.metrics.model_evaluation",
    "metric_by_name": "ich.metrics.classification",
    "output_check": "ich.metrics.classification",
    "patient_predictions": "ich.metrics.model_evaluation",
    "pr_table": "ich.metrics.curves",
    "ranking_metrics": "ich.metrics.classification",
    "rates_from_counts": "ich.metrics.classification",
    "resample_counts": "ich.metrics.ci",
    "roc_table": "ich.metrics.curves",
    "study_scores": "ich.metrics.operating_points",
    "threshold_key": "ich.metrics.model_evaluation",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'ich.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = sorted(_WHERE)

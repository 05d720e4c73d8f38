"""Plot tables for DVC (``dvc plots``): ROC, precision-recall, calibration and confusion rows.

The tables are git-tracked so that ``dvc plots diff`` works in review; long curves are therefore
thinned deterministically to a bounded number of points, always keeping both end points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from ich.metrics.classification import check_binary

MAX_POINTS = 200
"""Default upper bound on the rows of a curve table."""


def thin(table: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """At most ``max_points`` evenly spaced rows of ``table``, first and last included."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(table) <= max_points:
        return table.reset_index(drop=True)
    rows = np.unique(np.round(np.linspace(0, len(table) - 1, max_points)).astype(int))
    return table.iloc[rows].reset_index(drop=True)


def _require_both_classes(y: np.ndarray) -> None:
    """A curve needs positives and negatives; say so instead of returning a NaN curve."""
    if np.unique(y).size < 2:
        raise ValueError("a ROC or PR curve needs both positive and negative labels")


def roc_table(y_true: ArrayLike, y_prob: ArrayLike, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """ROC curve as ``fpr, tpr`` rows, from (0, 0) to (1, 1)."""
    y, p = check_binary(y_true, y_prob)
    _require_both_classes(y)
    fpr, tpr, _ = roc_curve(y, p)
    return thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}), max_points)


def pr_table(y_true: ArrayLike, y_prob: ArrayLike, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Precision-recall curve as ``recall, precision`` rows, by increasing recall."""
    y, p = check_binary(y_true, y_prob)
    _require_both_classes(y)
    precision, recall, _ = precision_recall_curve(y, p)
    return thin(pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]}), max_points)


def calibration_table(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Reliability diagram: ``mean_predicted, fraction_positive`` per non-empty bin of equal width."""
    y, p = check_binary(y_true, y_prob)
    fraction_positive, mean_predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    return pd.DataFrame({"mean_predicted": mean_predicted, "fraction_positive": fraction_positive})


def confusion_rows(y_true: ArrayLike, y_prob: ArrayLike, threshold: float) -> pd.DataFrame:
    """One ``actual, predicted`` row (0/1) per sample: DVC's confusion template counts the rows itself."""
    y, p = check_binary(y_true, y_prob)
    return pd.DataFrame({"actual": y, "predicted": (p >= threshold).astype(np.int64)})

"""Binary classification metrics with standard definitions.

Definitions follow the usual confusion-matrix conventions (sensitivity = TP / (TP + FN),
balanced accuracy = (TPR + TNR) / 2). Two of the source papers deviate: one calls balanced
accuracy "AUC", another writes sensitivity as TP / (TP + TN); neither variant is used here.

Every ratio whose denominator is zero (for instance specificity on a set without negatives) is
NaN rather than an exception or a silent 0: an undefined number must stay visibly undefined in
the metrics files (it is written as JSON ``null``).

Point estimates use scikit-learn. The ``weighted_*`` functions compute the same quantities for a
whole batch of sample-weight vectors at once; scikit-learn has no batched form, and the cluster
bootstrap (``ich.metrics.ci``) needs a thousand resamples in seconds, not minutes.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import ArrayLike, NDArray

RATE_KEYS: tuple[str, ...] = (
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "balanced_accuracy",
)
"""Threshold-dependent ratios, in the order ``rates_from_counts`` returns them."""

COUNT_KEYS: tuple[str, ...] = ("tp", "fp", "tn", "fn")
"""Confusion-matrix cells reported next to the ratios."""

RANKING_KEYS: tuple[str, ...] = ("roc_auc", "pr_auc")
"""Threshold-free metrics, in the order ``ranking_metrics`` returns them."""


def check_binary(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate a label/probability pair and return them as int and float arrays.

    Metrics on silently misaligned or non-binary inputs give plausible-looking wrong numbers,
    so mismatched lengths, labels other than 0/1 and NaN probabilities are errors.
    """
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"y_true and y_prob must be 1-D of equal length, got {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 and 1")
    if np.isnan(p).any():
        raise ValueError("y_prob contains NaN")
    return y.astype(np.int64), p


def safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> NDArray[np.float64]:
    """Element-wise ``numerator / denominator`` that is NaN (not an error) where the denominator is 0."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    return np.divide(num, den, out=out, where=den != 0)


def rates_from_counts(tp: ArrayLike, fp: ArrayLike, tn: ArrayLike, fn: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Every ratio in ``RATE_KEYS`` from confusion counts, element-wise.

    Works on scalars and on arrays of counts alike, so the point estimate and all bootstrap
    resamples share one set of formulas. Balanced accuracy is NaN when either class is absent
    (scikit-learn would instead average the recalls of the classes present).
    """
    tp, fp, tn, fn = (np.asarray(c, dtype=float) for c in (tp, fp, tn, fn))
    sensitivity = safe_divide(tp, tp + fn)
    specificity = safe_divide(tn, tn + fp)
    return {
        "accuracy": safe_divide(tp + tn, tp + fp + tn + fn),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": safe_divide(tp, tp + fp),
        "npv": safe_divide(tn, tn + fn),
        "f1": safe_divide(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (sensitivity + specificity) / 2,
    }


def confusion_counts(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, int]:
    """Confusion counts (``COUNT_KEYS``) of 0/1 labels against 0/1 (or boolean) decisions."""
    y = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred).astype(np.int64)
    from sklearn.metrics import confusion_matrix  # where used: ich predict starts without scikit-learn

    tn, fp, fn, tp = (int(c) for c in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


def binary_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float) -> dict[str, float]:
    """Ratios (``RATE_KEYS``) and confusion counts (``COUNT_KEYS``) at ``prob >= threshold``.

    Counts are ints, ratios floats (NaN where undefined).
    """
    y, p = check_binary(y_true, y_prob)
    counts = confusion_counts(y, p >= threshold)
    return {**{key: float(value) for key, value in rates_from_counts(**counts).items()}, **counts}


def ranking_metrics(y_true: ArrayLike, y_prob: ArrayLike) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision); both NaN when either class is absent.

    PR-AUC is defined without negatives, but it is then trivially 1 and says nothing about
    discrimination, so it is NaN there too, like ROC-AUC.
    """
    y, p = check_binary(y_true, y_prob)
    if np.unique(y).size < 2:
        return dict.fromkeys(RANKING_KEYS, float("nan"))
    from sklearn.metrics import average_precision_score, roc_auc_score  # where used, as above

    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p))}


def output_check(y_true: ArrayLike, y_prob: ArrayLike, *, bound: float = 0.01, max_at_bound: float = 0.9) -> dict:
    """Whether a model's probabilities are usable, not only well ranked.

    A model can rank slices well while calling nearly everything positive (or negative), or
    squash every output against 0 or 1. The outputs pass when at most ``max_at_bound`` of the
    probabilities lie within ``bound`` of 0, and at most that share within ``bound`` of 1, and
    when at the 0.5 threshold both sensitivity and specificity are at least 0.5.

    Returns:
        ``at_zero`` and ``at_one`` (shares of probabilities at either bound), ``sensitivity`` and
        ``specificity`` at 0.5, and ``ok``.
    """
    y, p = check_binary(y_true, y_prob)
    at_zero, at_one = float(np.mean(p <= bound)), float(np.mean(p >= 1 - bound))
    rates = binary_metrics(y, p, 0.5)
    ok = max(at_zero, at_one) <= max_at_bound and rates["sensitivity"] >= 0.5 and rates["specificity"] >= 0.5
    return {
        "at_zero": at_zero,
        "at_one": at_one,
        "sensitivity": rates["sensitivity"],
        "specificity": rates["specificity"],
        "ok": bool(ok),
    }


def metric_by_name(name: str, y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """One metric chosen by a string, for parameters such as the ensemble's selection metric.

    ``"roc_auc"`` and ``"pr_auc"`` are threshold-free; ``"<rate>@<threshold>"`` (for example
    ``"accuracy@0.5"``, ``"balanced_accuracy@0.5"``, ``"f1@0.5"``) is any of ``RATE_KEYS`` at a
    probability threshold.
    """
    if name in RANKING_KEYS:
        return ranking_metrics(y_true, y_prob)[name]
    match = re.fullmatch(r"(\w+)@(\d*\.?\d+)", name)
    if match and match[1] in RATE_KEYS:
        return binary_metrics(y_true, y_prob, float(match[2]))[match[1]]
    raise ValueError(
        f"unknown metric {name!r}: use one of {RANKING_KEYS} or '<rate>@<threshold>' with rate in {RATE_KEYS}"
    )


def weighted_confusion_counts(
    y_true: NDArray[np.int64], y_pred: NDArray[np.bool_], weights: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """Confusion counts for each row of a ``(k, n)`` sample-weight matrix.

    ``y_pred`` is ``(n,)`` or ``(n, T)`` (one column per threshold); each count then has shape
    ``(k,)`` or ``(k, T)``. Integer weights are resample multiplicities, so row ``b`` gives the
    counts of bootstrap resample ``b`` without materialising it; all thresholds share one
    matrix product, which dominates the cost.
    """
    cells = 2 * y_true.reshape(-1, *([1] * (y_pred.ndim - 1))) + y_pred.astype(np.int64)  # 0 tn, 1 fp, 2 fn, 3 tp
    one_hot = (cells[..., None] == np.arange(4)).reshape(len(y_true), -1).astype(float)
    per_cell = (weights @ one_hot).reshape(len(weights), *y_pred.shape[1:], 4)
    return {"tp": per_cell[..., 3], "fp": per_cell[..., 1], "tn": per_cell[..., 0], "fn": per_cell[..., 2]}


def weighted_ranking_metrics(
    y_true: NDArray[np.int64], y_prob: NDArray[np.float64], weights: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """ROC-AUC and average precision for each row of a ``(k, n)`` sample-weight matrix.

    Same construction as scikit-learn (cumulative weighted TP/FP counts at each distinct score,
    trapezoidal ROC area, step-wise average precision), evaluated for all rows in one pass; the
    tests check it equals ``roc_auc_score`` / ``average_precision_score``. NaN in rows where
    either class has zero weight.
    """
    order = np.argsort(-y_prob, kind="stable")
    labels = y_true[order]
    scores = y_prob[order]
    tie_ends = np.r_[scores[1:] != scores[:-1], True]
    w = weights[:, order]
    tps = np.cumsum(w * labels, axis=1)[:, tie_ends]
    fps = np.cumsum(w * (1 - labels), axis=1)[:, tie_ends]
    n_pos, n_neg = tps[:, -1], fps[:, -1]
    d_tp = np.diff(tps, axis=1, prepend=0.0)
    d_fp = np.diff(fps, axis=1, prepend=0.0)
    roc_area = np.sum(d_fp * (tps - d_tp / 2), axis=1)
    precision = np.nan_to_num(safe_divide(tps, tps + fps))  # 0/0 only where d_tp is 0 too
    pr_area = np.sum(d_tp * precision, axis=1)
    defined = (n_pos > 0) & (n_neg > 0)
    return {
        "roc_auc": np.where(defined, safe_divide(roc_area, n_pos * n_neg), np.nan),
        "pr_auc": np.where(defined, safe_divide(pr_area, n_pos), np.nan),
    }

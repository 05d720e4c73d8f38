"""Probability calibration by Platt scaling on the logit, fitted on validation.

A classifier's probabilities can rank slices well and still be too confident (or too timid), and
by different amounts from fold to fold: a fold's probabilities may be stretched, or shifted
towards one class (a loss weighted towards the rare positives shifts them up). Platt scaling
(Platt 1999) maps every probability ``p`` to ``sigmoid(slope * logit(p) + intercept)`` with the
two numbers fitted on the validation slices (minimum binary cross-entropy against Platt's
smoothed targets, :func:`fit_platt`). It corrects the
stretch, as temperature scaling (Guo 2017; ``intercept = 0``, ``slope = 1 / T``) does, and the
shift too, which a temperature cannot. ``slope`` is kept within :data:`SLOPE_BOUNDS`, so the map
is monotone increasing: rankings and ROC-AUC are unchanged and a threshold chosen on the raw
scale maps one-to-one onto the calibrated scale.

The expected calibration error (ECE) is the slice-weighted mean gap between the mean predicted
probability and the observed positive fraction over ``n_bins`` equal-width probability bins.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_expit, logit

from ich.metrics.classification import check_binary

SLOPE_BOUNDS = (0.05, 20.0)
"""Search interval for the slope; a fit at a bound means the validation set cannot pin it down
(a lower bound keeps a model that ranks validation backwards from being inverted)."""

_EPS = 1e-6


def _logits(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, _EPS, 1 - _EPS))


def apply_platt(y_prob: ArrayLike, slope: float, intercept: float) -> np.ndarray:
    """``sigmoid(slope * logit(p) + intercept)`` for every probability ``p``."""
    if slope <= 0:
        raise ValueError(f"slope must be positive (a monotone map), got {slope}")
    return expit(slope * _logits(np.asarray(y_prob, dtype=float)) + intercept)


def fit_platt(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[float, float]:
    """``(slope, intercept)`` minimising the binary cross-entropy of ``y_prob`` against Platt's targets.

    The targets are Platt 1999's: ``(N+ + 1) / (N+ + 2)`` for positives and ``1 / (N- + 2)`` for
    negatives instead of 1 and 0. With 0/1 targets a validation set that the model separates
    perfectly has no finite optimum: the fit runs up the slope until a tolerance stops it, and
    where it stops depends on the last bits of the sums, which differ between CPUs' vector units.
    The smoothed targets give a unique optimum, which the exact gradient and tight tolerances
    reach on any machine to far below the six decimals that are written.
    """
    from scipy.optimize import minimize  # where fitted: ich predict only applies a fit

    y, p = check_binary(y_true, y_prob)
    if np.unique(y).size < 2:
        raise ValueError("cannot fit a calibration: the labels have only one class")
    z = _logits(p)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        s = params[0] * z + params[1]
        loss = -np.mean(target * log_expit(s) + (1 - target) * log_expit(-s))
        residual = expit(s) - target
        return float(loss), np.array([np.mean(residual * z), np.mean(residual)])

    fit = minimize(
        loss_and_gradient,
        x0=np.array([1.0, 0.0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[SLOPE_BOUNDS, (None, None)],
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 1000},
    )
    return float(fit.x[0]), float(fit.x[1])


def calibrate(y_prob: ArrayLike, calibration: Mapping) -> np.ndarray:
    """``y_prob`` calibrated by a stored fit (the ``calibration`` block of ``operating_points.json``)."""
    if calibration.get("method") != "platt":
        raise ValueError(f"unknown calibration method {calibration.get('method')!r}; re-run the pipeline")
    return apply_platt(y_prob, calibration["slope"], calibration["intercept"])


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins of ``[0, 1]`` (the last bin includes 1)."""
    y, p = check_binary(y_true, y_prob)
    if len(y) == 0:
        raise ValueError("cannot compute a calibration error without samples")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    confidence = np.bincount(bins, weights=p, minlength=n_bins)
    positives = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(confidence[filled] - positives[filled]) / counts[filled]
    return float(np.sum(gaps * counts[filled]) / len(y))

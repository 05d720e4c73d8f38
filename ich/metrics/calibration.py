"""Probability calibration by temperature scaling (Guo 2017), fitted on validation.

A classifier's probabilities can rank slices well and still be too confident (or too timid), and
by different amounts from fold to fold. Temperature scaling divides every logit by one number
``T`` fitted on the validation slices (minimum binary cross-entropy); ``T > 1`` softens, ``T < 1``
sharpens. It is monotone, so rankings and ROC-AUC are unchanged and a threshold chosen on the
raw scale maps one-to-one onto the calibrated scale.

The expected calibration error (ECE) is the slice-weighted mean gap between the mean predicted
probability and the observed positive fraction over ``n_bins`` equal-width probability bins.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit

from ich.metrics.classification import check_binary

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Search interval for ``T``; a fit at a bound means the validation set cannot pin ``T`` down."""

_EPS = 1e-6


def _logits(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, _EPS, 1 - _EPS))


def apply_temperature(y_prob: ArrayLike, temperature: float) -> np.ndarray:
    """Probabilities with every logit divided by ``temperature``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return expit(_logits(np.asarray(y_prob, dtype=float)) / temperature)


def fit_temperature(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """The temperature that minimises the binary cross-entropy of ``(y_true, y_prob)``."""
    y, p = check_binary(y_true, y_prob)
    if np.unique(y).size < 2:
        raise ValueError("cannot fit a temperature: the labels have only one class")
    z = _logits(p)

    def loss(temperature: float) -> float:
        q = np.clip(expit(z / temperature), _EPS, 1 - _EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return float(minimize_scalar(loss, bounds=TEMPERATURE_BOUNDS, method="bounded").x)


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

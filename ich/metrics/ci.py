"""Confidence intervals by a seeded, patient-level (cluster) percentile bootstrap.

Slices of one patient are strongly correlated (same anatomy, same scanner, one bleed spanning
several slices). Resampling slices independently would pretend there are far more independent
observations than there are and give intervals that are too narrow. Each resample therefore
draws *patients* with replacement and keeps every slice of a drawn patient; a patient drawn
twice counts twice.

A resample is represented by integer sample weights (how many times each slice's patient was
drawn) instead of a copied table, so a statistic can evaluate a whole batch of resamples with one
matrix operation (see ``ich.metrics.classification.weighted_*``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

BatchStatistic = Callable[..., ArrayLike]
"""``statistic(*arrays, weights)``: ``weights`` has shape ``(k, n)`` (one row per resample, one
column per row of the arrays); returns shape ``(k,)`` for one statistic or ``(k, m)`` for ``m``."""

_MAX_WEIGHT_CELLS = 2_000_000
"""Resamples are evaluated in batches of at most this many weight cells, bounding memory."""


def resample_counts(n_groups: int, n_boot: int, seed: int) -> NDArray[np.int64]:
    """How often each group is drawn in each resample: shape ``(n_boot, n_groups)``, rows sum to ``n_groups``.

    Drawing ``n_groups`` groups uniformly with replacement is a multinomial draw; depending only
    on ``(n_groups, n_boot, seed)`` makes every metric of one evaluation use the same resamples.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)


def bootstrap_ci(
    statistic: BatchStatistic,
    *arrays: ArrayLike,
    groups: ArrayLike,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Point estimate and ``1 - alpha`` percentile interval of ``statistic``, resampling ``groups``.

    ``groups`` gives the cluster (patient) of each row of ``arrays``. Returns ``(value, low,
    high)``, each of shape ``()`` for a scalar statistic or ``(m,)`` for ``m`` statistics. The
    value is the statistic on the data as they are (all weights 1). Resamples where the
    statistic is undefined (NaN, e.g. AUC without positives) are left out of the percentiles;
    bounds are NaN when every resample is. Deterministic for a given seed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arrays_np = tuple(np.asarray(a) for a in arrays)
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    if any(len(a) != len(codes) for a in arrays_np):
        raise ValueError("every array must have one entry per element of groups")
    if len(codes) == 0:
        raise ValueError("cannot bootstrap an empty sample")
    value = np.asarray(statistic(*arrays_np, weights=np.ones((1, len(codes)))), dtype=float)[0]
    counts = resample_counts(int(codes.max()) + 1, n_boot, seed)
    batch = max(1, _MAX_WEIGHT_CELLS // len(codes))
    resampled = np.concatenate(
        [
            np.asarray(statistic(*arrays_np, weights=counts[start : start + batch, codes].astype(float)), dtype=float)
            for start in range(0, n_boot, batch)
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: bounds are NaN, as documented
        low, high = np.nanpercentile(resampled, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return value, low, high

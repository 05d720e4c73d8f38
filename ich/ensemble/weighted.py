"""Weighted-average ensemble of classifier probabilities, weights chosen by grid search.

The weights must be chosen on VALIDATION predictions only; choosing them on the test set would
leak the test labels into the model and inflate every reported test metric. These functions
cannot tell which set they are given: the caller (the ``ensemble`` stage) guarantees it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ich.metrics.classification import metric_by_name

DEFAULT_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
"""Weights tried per model: 0.0 to 0.5 in steps of 0.1."""


def weighted_average(probs: Mapping[str, ArrayLike], weights: Mapping[str, float]) -> NDArray[np.float64]:
    """``sum_m w_m p_m / sum_m w_m``: a convex combination, so the result is still a probability.

    ``probs`` and ``weights`` must name the same models; a model can be switched off with
    weight 0, but not every weight can be 0.
    """
    if set(probs) != set(weights):
        raise ValueError(f"probs and weights name different models: {sorted(probs)} vs {sorted(weights)}")
    if any(w < 0 or not math.isfinite(w) for w in weights.values()):
        raise ValueError(f"weights must be finite and non-negative, got {dict(weights)}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    stacked = np.stack([np.asarray(probs[name], dtype=float) for name in weights])
    return np.tensordot(np.array(list(weights.values())), stacked, axes=1) / total


def grid_search_weights(
    val_probs: Mapping[str, ArrayLike],
    y_true: ArrayLike,
    grid: Sequence[float] = DEFAULT_GRID,
    metric: str = "roc_auc",
) -> tuple[dict[str, float], pd.DataFrame]:
    """Score every combination of grid weights on validation data and keep the best.

    Combinations are ``itertools.product(grid, repeat=len(val_probs))`` with models in the
    order of ``val_probs``; the all-zero combination is skipped. ``metric`` is a name for
    ``ich.metrics.classification.metric_by_name`` (``"roc_auc"``, ``"accuracy@0.5"``, ...).
    Ties are frequent (weights that differ by a common factor give the same average), so the
    winner is the first best combination in product order: with an ascending grid that prefers
    smaller weights for the earlier models. Undefined (NaN) scores never win.

    Returns the best weights and a table with one row per combination scored:
    ``weight_<model>`` columns and ``score``.
    """
    names = list(val_probs)
    if not names:
        raise ValueError("grid search needs at least one model")
    rows = []
    for combo in itertools.product(grid, repeat=len(names)):
        if not any(combo):
            continue
        weights = dict(zip(names, combo, strict=True))
        score = metric_by_name(metric, y_true, weighted_average(val_probs, weights))
        rows.append({**{f"weight_{n}": w for n, w in weights.items()}, "score": score})
    table = pd.DataFrame(rows)
    if table.empty or table["score"].isna().all():
        raise ValueError(f"no grid point has a defined {metric!r} (grid {list(grid)})")
    best = table.loc[table["score"].idxmax()]
    return {n: float(best[f"weight_{n}"]) for n in names}, table

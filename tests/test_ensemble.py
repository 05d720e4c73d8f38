"""Weighted-average ensemble and its validation grid search."""

from __future__ import annotations

import numpy as np
import pytest

from ich.ensemble import DEFAULT_GRID, grid_search_weights, weighted_average


def informative_and_noise(n: int = 400, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels, model ``a`` informative but imperfect, model ``b`` pure noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, {"a": np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, n), 0, 1), "b": rng.random(n)}


def test_weighted_average_is_normalised() -> None:
    probs = {"a": np.array([0.0, 1.0, 0.5]), "b": np.array([1.0, 1.0, 0.1])}
    np.testing.assert_allclose(weighted_average(probs, {"a": 0.2, "b": 0.2}), [0.5, 1.0, 0.3])
    np.testing.assert_allclose(weighted_average(probs, {"a": 0.3, "b": 0.1}), weighted_average(probs, {"a": 3, "b": 1}))
    np.testing.assert_allclose(weighted_average(probs, {"a": 0.0, "b": 0.4}), probs["b"])


@pytest.mark.parametrize(
    "weights", [{"a": 0.0, "b": 0.0}, {"a": -0.1, "b": 0.2}, {"a": 0.1}, {"a": 0.1, "b": float("nan")}]
)
def test_weighted_average_rejects_bad_weights(weights: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        weighted_average({"a": np.zeros(2), "b": np.ones(2)}, weights)


def test_grid_search_drops_the_noise_model() -> None:
    y, probs = informative_and_noise()
    best, table = grid_search_weights(probs, y)
    assert best == {"a": 0.1, "b": 0.0}  # any a > 0 with b = 0 ties; the first in product order wins
    assert len(table) == len(DEFAULT_GRID) ** 2 - 1
    assert list(table.columns) == ["weight_a", "weight_b", "score"]
    assert not ((table.weight_a == 0) & (table.weight_b == 0)).any()
    assert table["score"].max() == table.loc[(table.weight_a == 0.1) & (table.weight_b == 0.0), "score"].item()


def test_grid_search_three_models_and_selection_metric() -> None:
    y, probs = informative_and_noise()
    probs["c"] = 1 - probs["a"]  # anti-informative
    best, table = grid_search_weights(probs, y, metric="balanced_accuracy@0.5")
    assert len(table) == 6**3 - 1
    assert best["a"] > 0 and best["c"] == 0.0


def test_grid_search_tie_break_prefers_first_in_product_order() -> None:
    y, probs = informative_and_noise()
    best, table = grid_search_weights({"a": probs["a"], "a2": probs["a"].copy()}, y, grid=[0.0, 0.5, 1.0])
    assert table["score"].nunique() == 1
    assert best == {"a": 0.0, "a2": 0.5}


def test_grid_search_one_model() -> None:
    y, probs = informative_and_noise()
    best, table = grid_search_weights({"a": probs["a"]}, y)
    assert best == {"a": 0.1} and len(table) == len(DEFAULT_GRID) - 1


def test_grid_search_errors() -> None:
    y, probs = informative_and_noise()
    with pytest.raises(ValueError, match="unknown metric"):
        grid_search_weights(probs, y, metric="auc")
    with pytest.raises(ValueError, match="no grid point"):
        grid_search_weights(probs, np.zeros_like(y))  # ROC-AUC undefined without positives
    with pytest.raises(ValueError, match="at least one model"):
        grid_search_weights({}, y)

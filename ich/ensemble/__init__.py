"""Ensembles of classifier probabilities."""

from ich.ensemble.members import align, fit_ensemble
from ich.ensemble.weighted import DEFAULT_GRID, grid_search_weights, weighted_average

__all__ = ["DEFAULT_GRID", "align", "fit_ensemble", "grid_search_weights", "weighted_average"]

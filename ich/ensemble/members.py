"""Line up the members' prediction tables and apply the validation-chosen weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from ich.ensemble.weighted import grid_search_weights, weighted_average

KEY_COLUMNS = ["slice_id", "patient_id", "set", "fold"]


def align(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per slice with a ``prob_any_<model>`` column per member; raises if members disagree."""
    merged: pd.DataFrame | None = None
    for name, table in tables.items():
        part = table[KEY_COLUMNS + ["prob_any"]].rename(columns={"prob_any": f"prob_any_{name}"})
        if merged is None:
            merged = part
            continue
        before = len(merged)
        merged = merged.merge(part, on=KEY_COLUMNS, how="inner", validate="one_to_one")
        if len(merged) != before or len(part) != before:
            raise ValueError(f"ensemble member {name!r} predicts a different set of slices than the others")
    if merged is None:
        raise ValueError("the ensemble needs at least one member")
    return merged


def fit_ensemble(
    tables: Mapping[str, pd.DataFrame],
    labels: pd.DataFrame,
    *,
    grid: Sequence[float],
    metric: str,
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Choose weights on the validation rows, then average every row.

    Returns ``(weights, grid table, predictions)``; predictions follow the Predictions contract.
    """
    merged = align(tables)
    val = merged[merged["set"] == "val"].merge(labels[["slice_id", "any"]], on="slice_id", how="left")
    if val.empty or val["any"].isna().any():
        raise ValueError("the ensemble needs labelled validation predictions for every member")
    val_probs = {name: val[f"prob_any_{name}"].to_numpy() for name in tables}
    weights, table = grid_search_weights(val_probs, val["any"].to_numpy().astype(int), grid, metric)
    predictions = merged[KEY_COLUMNS].copy()
    predictions["prob_any"] = weighted_average({n: merged[f"prob_any_{n}"].to_numpy() for n in tables}, weights)
    return weights, table, predictions

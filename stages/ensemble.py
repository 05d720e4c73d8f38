"""Stage ``ensemble``: weighted average of the members, weights grid-searched on validation only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ich.ensemble import fit_ensemble
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics import choose_operating_points
from ich.params import load_params


def main() -> None:
    p = load_params()["ensemble"]
    index = pd.read_csv("data/converted/index.csv")
    tables = {m: pd.read_csv(Path("data/models") / m / "predictions.csv") for m in p["members"]}
    weights, grid, predictions = fit_ensemble(tables, index, grid=p["grid"], metric=p["metric"])
    with atomic_dir("data/ensemble") as out:
        write_csv(out / "predictions.csv", predictions)
        write_json(out / "weights.json", weights)
        write_json(out / "operating_points.json", choose_operating_points(predictions, index))
    write_csv("plots/ensemble/grid.csv", grid.round(6))
    write_json(
        "metrics/ensemble.json",
        {
            "weights": weights,
            "val_score": round(float(grid["score"].max()), 6),
        },
    )
    print(f"ensemble weights {weights} (validation {p['metric']} {grid['score'].max():.4f})")


if __name__ == "__main__":
    main()

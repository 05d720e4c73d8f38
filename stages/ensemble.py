"""Stage ``ensemble``: weighted average of the members, weights grid-searched on validation only."""

from __future__ import annotations

import pandas as pd

from ich import layout
from ich.ensemble import fit_ensemble
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics import choose_operating_points
from ich.params import load_params


def main() -> None:
    p = load_params()["ensemble"]
    index = pd.read_csv(layout.INDEX)
    tables = {m: pd.read_csv(layout.MODELS / m / "predictions.csv") for m in p["members"]}
    weights, grid, predictions = fit_ensemble(tables, index, grid=p["grid"], metric=p["metric"])
    with atomic_dir(layout.ENSEMBLE) as out:
        write_csv(out / "predictions.csv", predictions)
        write_json(out / "weights.json", weights)
        write_json(out / "operating_points.json", choose_operating_points(predictions, index))
    write_csv(layout.PLOTS / "ensemble" / "grid.csv", grid.round(6))
    write_json(
        layout.METRICS / "ensemble.json",
        {
            "weights": weights,
            "val_score": round(float(grid["score"].max()), 6),
        },
    )
    print(f"ensemble weights {weights} (validation {p['metric']} {grid['score'].max():.4f})")


if __name__ == "__main__":
    main()

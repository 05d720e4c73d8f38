"""Stage ``evaluate_segmentation``: every segmenter's test maps, evaluated the same way.

Writes ``metrics/segmentation/<name>.json`` (the headline figures: Dice, Jaccard, volume
error, detection), the full summary ``data/segmentation/summary.json`` (per segmenter: Dice/
Jaccard per slice, subtype and patient, bleed volume error, detection at every threshold), the
per-slice and per-patient tables under ``data/segmentation/<name>/`` (what
``experiments/crossval_segmentation.py`` pools over folds), and as plots the reference vs predicted volume per patient and overlays of the test
slices with the most bleed (green: reference, red: prediction).
"""

from __future__ import annotations

import json

import pandas as pd

from ich import layout
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics.segmentation import segmentation_by_patient
from ich.params import load_params
from ich.segmentation import read_post_process
from ich.segmentation.map_evaluation import (
    per_slice_table,
    segmentation_headline,
    segmenter_metrics,
    write_segmentation_plots,
)

ROOT = layout.CONVERTED
PLOTS = layout.PLOTS / "segmentation"


def main() -> None:
    params = load_params()
    p = params["evaluate_segmentation"]
    index = pd.read_csv(ROOT / "index.csv")
    cohort = json.loads(layout.SOURCE.read_text())
    results = {"cohort": cohort["name"], "synthetic": cohort["synthetic"], "set": "test", "segmenters": {}}
    tables, predictions, posts = {}, {}, {}
    for name in params["segmenters"]:
        maps = layout.SEGMENTERS / name
        predictions[name], posts[name] = pd.read_csv(maps / "predictions.csv"), read_post_process(maps)
        tables[name] = per_slice_table(predictions[name], index, ROOT, maps, posts[name], p["thresholds"])
        results["segmenters"][name] = segmenter_metrics(tables[name])
    with atomic_dir(layout.SEGMENTATION) as out:
        write_json(out / "summary.json", results)
        for name, table in tables.items():
            write_csv(out / name / "per_slice.csv", table)
            write_csv(out / name / "patients.csv", segmentation_by_patient(table[table["operating"]]))
    with atomic_dir(PLOTS) as plots:  # rewritten whole: a segmenter dropped from params leaves no stale plot
        write_segmentation_plots(
            plots, tables, predictions, index, ROOT, layout.SEGMENTERS, posts,
            overlays=p["overlays"], overlay_size=p["overlay_size"],
        )  # fmt: skip
    with atomic_dir(layout.METRICS / "segmentation") as headlines:
        for name, block in results["segmenters"].items():
            write_json(headlines / f"{name}.json", segmentation_headline(block))
    for name, block in results["segmenters"].items():
        overlap, volume = block["slice"]["with_bleed"], block["volume"]
        threshold = posts[name].threshold
        print(
            f"{name} (threshold {threshold:g}): test Dice {overlap['dice']['mean']} Jaccard {overlap['jaccard']['mean']} over {overlap['n']} slices"
            f" with bleed; volume error {volume['mean_abs_error_ml']} mL (mean absolute, {volume['n_patients']} patients)"
        )


if __name__ == "__main__":
    main()

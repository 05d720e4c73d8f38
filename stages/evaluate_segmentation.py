"""Stage ``evaluate_segmentation``: every segmenter's test maps, evaluated the same way.

Writes ``metrics/segmentation/<name>.json`` (the headline figures: Dice, Jaccard, volume
error, detection), the full summary ``data/segmentation/summary.json`` (per segmenter: Dice/
Jaccard per slice, subtype and patient, bleed volume error, detection at every threshold), the
per-slice and per-patient tables under ``data/segmentation/<name>/`` (what
``bench/crossval_segmentation.py`` pools over folds), and as plots the reference vs predicted volume per patient and overlays of the test
slices with the most bleed (green: reference, red: prediction).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pandas as pd

from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics.segmentation import segmentation_by_patient
from ich.params import load_params
from ich.segmentation import PostProcess
from ich.segmentation.evaluate import (
    overlay_slices,
    overlay_strip,
    per_slice_table,
    segmentation_headline,
    segmenter_metrics,
    volume_points,
)

ROOT = Path("data/converted")
PLOTS = Path("plots/segmentation")


def main() -> None:
    params = load_params()
    p = params["evaluate_segmentation"]
    post = PostProcess(**params["segment"]["postprocess"])
    index = pd.read_csv(ROOT / "index.csv")
    cohort = json.loads(Path("data/raw/source.json").read_text())
    results = {"cohort": cohort["name"], "synthetic": cohort["synthetic"], "set": "test", "segmenters": {}}
    tables, predictions = {}, {}
    for name in params["segmenters"]:
        maps = Path("data/segmenters") / name
        predictions[name] = pd.read_csv(maps / "predictions.csv")
        tables[name] = per_slice_table(predictions[name], index, ROOT, maps, post, p["thresholds"])
        results["segmenters"][name] = segmenter_metrics(tables[name], post.threshold)
    with atomic_dir("data/segmentation") as out:
        write_json(out / "summary.json", results)
        for name, table in tables.items():
            write_csv(out / name / "per_slice.csv", table)
            write_csv(out / name / "patients.csv", segmentation_by_patient(table[table["threshold"] == post.threshold]))
    # Rewritten whole, so a segmenter dropped from params.yaml leaves no stale plot behind.
    with atomic_dir(PLOTS) as plots:
        (plots / "volume").mkdir()
        (plots / "overlays").mkdir()  # stays empty with `overlays: 0` (e.g. data that must not enter git)
        shown = overlay_slices(next(iter(tables.values())), p["overlays"]) if tables else []
        for name, table in tables.items():
            write_csv(plots / "volume" / f"{name}.csv", volume_points(table, post.threshold))
            if shown:
                maps = Path("data/segmenters") / name
                strip = overlay_strip(shown, predictions[name], index, ROOT, maps, post, p["overlay_size"], label=name)
                if not cv2.imwrite(str(plots / "overlays" / f"{name}.png"), strip, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
                    raise OSError(f"cannot write the overlays of {name}")
    with atomic_dir("metrics/segmentation") as headlines:
        for name, block in results["segmenters"].items():
            write_json(headlines / f"{name}.json", segmentation_headline(block))
    for name, block in results["segmenters"].items():
        overlap, volume = block["slice"]["with_bleed"], block["volume"]
        print(
            f"{name}: test Dice {overlap['dice']['mean']} Jaccard {overlap['jaccard']['mean']} over {overlap['n']} slices"
            f" with bleed; volume error {volume['mean_abs_error_ml']} mL (mean absolute, {volume['n_patients']} patients)"
        )


if __name__ == "__main__":
    main()

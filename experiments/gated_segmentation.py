"""What ``ich predict``'s outline gate does to a cross-validated segmenter: masks kept only on the
slices the classifier puts at or above its validation-chosen slice threshold.

Reads two finished cross-validations of one profile, run on the same patient-level folds: a
classifier's (``experiments/crossval.py``: every fold's test predictions and operating points)
and a segmenter's (``experiments/crossval_segmentation.py``: every fold's per-slice table at its
validation-chosen map threshold). On the pooled test slices it compares the segmenter alone with
the segmenter gated by the classifier of the same fold: Dice and Jaccard over the slices with
bleed (Hssayeni 2020's figure, with 95% patient-bootstrap intervals), the share of normal slices
with any marked pixel, and the marked area per patient against the reference (pixels: a
pre-windowed release has no spacing, so no mL). Nothing is trained.

    python experiments/gated_segmentation.py --classification experiments/out/crossval-ct-ich-jpg \\
        --segmentation experiments/out/crossval-segmentation-ct-ich-jpg --model lite0_paste --segmenter lite0_unet
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crossval_segmentation import overlap_intervals, pool

from ich.predict.names import FLAG_POINTS  # crossval puts the repository on sys.path


def flagged_test_slices(classification: Path, model: str, folds: list[int], flag_point: str) -> pd.Series:
    """Every test slice of ``folds`` -> whether its probability reaches its fold's validation-chosen
    ``flag_point`` threshold."""
    parts = []
    for k in folds:
        predictions = pd.read_csv(classification / f"fold{k}" / f"{model}.csv")
        points = json.loads((classification / f"fold{k}" / f"{model}.operating_points.json").read_text())
        if points["chosen_on"] != "val":
            raise ValueError(f"fold {k}: {model}'s operating points were chosen on {points['chosen_on']}, not val")
        cut = float(points[flag_point]["threshold"])
        parts.append(pd.Series(predictions["prob_any"].to_numpy() >= cut, index=predictions["slice_id"]))
    return pd.concat(parts)


def slices_above_threshold(classification: Path, model: str, folds: list[int], flag_point: str) -> set[str]:
    """Test slices whose probability reaches their fold's validation-chosen ``flag_point`` threshold."""
    flagged = flagged_test_slices(classification, model, folds, flag_point)
    return set(flagged.index[flagged])


def gated(table: pd.DataFrame, kept: set[str]) -> pd.DataFrame:
    """``table`` with an empty prediction on every slice not in ``kept`` (an empty slice against an
    empty reference scores 1, against bleed 0, as :func:`ich.metrics.segmentation.overlap_counts`)."""
    out = table.copy()
    drop = ~out["slice_id"].isin(kept)
    score = np.where(out["ref_pixels"] == 0, 1.0, 0.0)
    out.loc[drop, ["pred_pixels", "intersection"]] = 0
    for column in ("dice", "jaccard"):
        out.loc[drop, column] = score[drop.to_numpy()]
    return out


def summary(table: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Overlap on bleeding slices, specks on normal slices, and marked area per patient."""
    rows = table[table["operating"]]
    normal = rows[rows["ref_pixels"] == 0]
    bleeding = rows[rows["ref_pixels"] > 0]
    area = rows.groupby("patient_id")[["ref_pixels", "pred_pixels"]].sum()
    no_bleed = area["ref_pixels"] == 0
    return {
        **overlap_intervals(table, n_boot, seed),
        "bleeding_slices_with_any_marked_pixel": round(float((bleeding["pred_pixels"] > 0).mean()), 4),
        "normal_slices_with_any_marked_pixel": round(float((normal["pred_pixels"] > 0).mean()), 4),
        "n_normal_slices": len(normal),
        "patients_without_bleed_with_marked_pixels": f"{int((area.loc[no_bleed, 'pred_pixels'] > 0).sum())} of {int(no_bleed.sum())}",
        "marked_pixels_per_patient_without_bleed_mean": round(float(area.loc[no_bleed, "pred_pixels"].mean()), 1),
        "area_abs_error_pixels_per_patient_with_bleed_mean": round(
            float((area.loc[~no_bleed, "pred_pixels"] - area.loc[~no_bleed, "ref_pixels"]).abs().mean()), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classification", type=Path, required=True, help="an experiments/crossval.py --out")
    parser.add_argument(
        "--segmentation", type=Path, required=True, help="an experiments/crossval_segmentation.py --out"
    )
    parser.add_argument("--model", required=True, help="the classifier that gates (a model of the classification run)")
    parser.add_argument("--segmenter", required=True)
    parser.add_argument("--flag-point", default="slice_youden", choices=FLAG_POINTS)
    parser.add_argument("--folds", default="0,1,2,3,4", help="comma-separated test folds both runs hold")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    folds = [int(k) for k in args.folds.split(",")]
    table = pool(args.segmentation, folds, args.segmenter)
    flagged = flagged_test_slices(args.classification, args.model, folds, args.flag_point)
    kept = set(flagged.index[flagged])
    tested = set(table["slice_id"])
    if not kept & tested:
        raise SystemExit(
            "no test slice of the segmentation run is above the classifier's threshold: other folds or ids?"
        )
    classified = set(flagged.index)
    if tested != classified:
        raise SystemExit(f"the two runs tested other slices ({len(tested ^ classified)} differ): not the same folds")
    results = {
        "folds": folds,
        "gate": f"{args.model} at its {args.flag_point} threshold (chosen on each fold's validation)",
        args.segmenter: summary(table, args.n_bootstrap, args.seed),
        f"{args.segmenter} gated": summary(gated(table, kept), args.n_bootstrap, args.seed),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

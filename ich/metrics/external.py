"""External validation figures: one model on a cohort it never saw, at the points validation chose.

Nothing here chooses anything: thresholds, the study score and the calibration all come from the
model's validation operating points (:mod:`ich.metrics.operating_points`), and the external rows
are only measured against them. Every interval is a 95% bootstrap over studies (an external
cohort's study is its unit; two studies of one patient are rare in such sets and unknowable when
they are pseudonymised).

Layout::

    {"n_studies", "n_positive_studies", "n_slices", "label_level": "slice" | "study",
     "study": {"score", "threshold", "roc_auc": {...}, "pr_auc": {...},
               "sensitivity": {...}, "specificity": {...}, ..., "tp", "fp", "tn", "fn"},
     "calibration": {"ece", "ece_calibrated"},           # study level
     "slice": {"roc_auc", "pr_auc", "slice_youden": {...}, "slice_sensitivity": {...}},   # slice labels only
     "site_calibration": {"level", "chosen_on", "reported_on", "transferred": {...}, "local": {...}}}   # local_point
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ich.metrics.calibration import calibrate, expected_calibration_error
from ich.metrics.model_evaluation import JsonBlock, operating_point_blocks, ranking_and_decision, study_block
from ich.metrics.operating_points import study_scores
from ich.metrics.site_calibration import site_calibration

SLICE_POINTS = ("slice_youden", "slice_sensitivity")


def external_block(
    table: pd.DataFrame, points: dict, *, n_boot: int, seed: int, local_point: bool = False
) -> JsonBlock:
    """Figures of one model from its external predictions ``table``; with ``local_point``, also an
    operating point chosen on half of the cohort's studies and reported on the other half
    (:func:`ich.metrics.site_calibration.site_calibration`, ``site_calibration``).

    One row per slice: ``study``, ``prob_any`` (and ``prob_study`` for a study model), ``any``
    (the slice's label, or its study's) and ``label_level`` (``slice`` or ``study``). Slice
    figures are given only when every slice carries its own label: a study label copied to its
    slices says nothing about which slice bleeds.
    """
    if table.empty:
        raise ValueError("no external predictions to evaluate")
    if table["any"].isna().any():
        raise ValueError(f"{int(table['any'].isna().sum())} external slices have no label")
    rows = table.rename(columns={"study": "patient_id"})
    studies = study_scores(rows, points["patient_youden"]["study_score"])
    ranking, at_point = study_block(rows, points, n_boot=n_boot, seed=seed)
    calibrated = calibrate(studies["score"].to_numpy(dtype=float), points["calibration"])
    labels = studies["label"].to_numpy()
    block: JsonBlock = {
        "n_studies": len(studies),
        "n_positive_studies": int(labels.sum()),
        "n_slices": len(rows),
        "label_level": "slice" if (rows["label_level"] == "slice").all() else "study",
        "study": {"threshold": points["patient_youden"]["threshold"], **ranking, **at_point},
        "calibration": {
            "ece": round(expected_calibration_error(labels, studies["score"]), 6),
            "ece_calibrated": round(expected_calibration_error(labels, calibrated), 6),
        },
    }
    if labels.min() == labels.max():
        which = "positive" if labels[0] else "negative"
        undefined = "specificity" if labels[0] else "sensitivity"
        block["study"]["note"] = (
            f"every study is {which}: study ROC-AUC, PR-AUC and {undefined} are undefined here; "
            "the slice figures measure the cohort"
        )
    if block["label_level"] == "slice":
        y, p, groups = rows["any"].to_numpy(), rows["prob_any"].to_numpy(dtype=float), rows["patient_id"].to_numpy()
        decided = p >= points["slice_youden"]["threshold"]
        ranks, _ = ranking_and_decision(y, p, decided, groups, n_boot=n_boot, seed=seed)
        _, at_points = operating_point_blocks(rows, points, n_boot=n_boot, seed=seed)
        block["slice"] = {**ranks, **{name: at_points[name] for name in SLICE_POINTS}}
    if local_point:
        try:
            block["site_calibration"] = site_calibration(rows, points, n_boot=n_boot, seed=seed)
        except ValueError as exc:  # a cohort too small or one-sided for two halves: said, not failed
            block["site_calibration"] = {"not_measured": str(exc)}
    return block


def external_headline(block: JsonBlock) -> JsonBlock:
    """The figures ``metrics/external/<cohort>/<model>.json`` holds, named as the test set's
    (:func:`ich.metrics.headline`) so that ``dvc metrics show`` lines them up: study ROC-AUC
    (``patient_roc_auc``, a study being an external cohort's unit) with its interval, sensitivity
    and specificity at the validation-chosen point, the calibrated ECE, the study count, and
    slice ROC-AUC where slices are labelled."""
    study = block["study"]
    top: JsonBlock = {
        "n_studies": block["n_studies"],
        "patient_roc_auc": study["roc_auc"],
        "patient_sensitivity": study["sensitivity"]["value"],
        "patient_specificity": study["specificity"]["value"],
        "ece_calibrated": block["calibration"]["ece_calibrated"],
    }
    if "slice" in block:
        top["slice_roc_auc"] = block["slice"]["roc_auc"]
    if "local" in block.get("site_calibration", {}):  # the reporting half at the point chosen on the other half
        local = block["site_calibration"]["local"]
        top["site_calibrated"] = {
            "level": block["site_calibration"]["level"],
            "threshold": local["threshold"],
            "sensitivity": local["sensitivity"]["value"],
            "specificity": local["specificity"]["value"],
        }
    return top


def external_table_rows(blocks: dict[str, JsonBlock]) -> pd.DataFrame:
    """One row per model of the headline figures (value and interval), for a printed table."""

    def cell(value: dict | float | None) -> str:
        if isinstance(value, dict):
            if value.get("value") is None:
                return "n/a"
            return f"{value['value']:.3f} ({value['ci_low']:.3f}-{value['ci_high']:.3f})"
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"

    rows = []
    for model, block in blocks.items():
        study = block["study"]
        rows.append(
            {
                "model": model,
                "study ROC-AUC": cell(study["roc_auc"]),
                "sensitivity": cell(study["sensitivity"]),
                "specificity": cell(study["specificity"]),
                "ECE": cell(block["calibration"]["ece_calibrated"]),
                "slice ROC-AUC": cell(block["slice"]["roc_auc"] if "slice" in block else None),
            }
        )
        site = block.get("site_calibration", {})
        if "not_measured" in site:
            rows[-1]["local point"] = f"not measured: {site['not_measured']}"
        elif site:  # the reporting half: transferred point, then the local one
            for name in ("transferred", "local"):
                point = site[name]
                rows[-1][f"{name} sens/spec ({site['level']})"] = (
                    f"{cell(point['sensitivity'])} / {cell(point['specificity'])} at {point['threshold']:.3f}"
                )
    return pd.DataFrame(rows)

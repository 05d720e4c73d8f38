"""An operating point for a new site: chosen on half of a labelled local cohort, reported on the other half.

A threshold chosen on one hospital's validation patients does not keep its specificity at
another hospital (the CT-ICH model's patient threshold: specificity 0.38 on another hospital's
slices). Ranking travels better than calibration: the standard remedy is to choose the point
again on a labelled sample of the local studies and measure it on studies that played no part in
the choice. :func:`site_calibration` splits the cohort's studies in two halves (stratified by
study label, seeded; a patient's studies are one unit when the cohort says which patient a study
belongs to), chooses Youden's threshold on the first half, and reports the second half at that
local point beside the transferred (validation-chosen) one, with study-bootstrap intervals.
:func:`site_points` chooses the points on the whole cohort, for ``ich calibrate``: the same
cohort layout and the same levels, written as a point file that ``ich predict --points`` uses.

Studies are the unit when the cohort has positive and negative studies (the study score the
model's validation chose); a cohort whose studies are all positive (PHE-SICH-CT-IDS) is
calibrated at the slice level (the slice flag point), when its slices carry their own labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ich.metrics.model_evaluation import JsonBlock, decision_blocks
from ich.metrics.operating_points import rates_at, sensitivity_threshold, study_scores, youden_threshold


def calibration_halves(studies: pd.DataFrame, seed: int) -> tuple[set[str], set[str]]:
    """Split ``studies`` (one row each: ``patient_id``, ``label``) into a choosing and a reporting half.

    Stratified by label: each label's units are shuffled by ``seed`` and dealt alternately, so
    both halves get positives and negatives where the cohort has both. Units are patients, so no
    patient has studies in both halves.
    """
    units = studies.groupby("patient_id", sort=True)["label"].max()
    rng = np.random.default_rng(seed)
    choose, report = set(), set()
    for label in sorted(units.unique()):
        ids = units.index[units == label].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        choose.update(ids[0::2].tolist())
        report.update(ids[1::2].tolist())
    if not choose or not report:
        raise ValueError(f"site calibration needs at least two patients, got {len(units)}")
    return choose, report


def _level(table: pd.DataFrame, points: dict) -> tuple[str, pd.DataFrame]:
    """``(level, rows)``: one row per unit with ``patient_id``, ``label`` and ``score``."""
    studies = study_scores(table, points["patient_youden"]["study_score"])
    if studies["label"].nunique() == 2:
        return "study", studies
    if not (table["label_level"] == "slice").all():
        raise ValueError(
            "site calibration needs positive and negative studies, or slices labelled one by one: "
            f"every study here is {'positive' if studies['label'].iloc[0] else 'negative'}"
        )
    rows = pd.DataFrame(
        {"patient_id": table["patient_id"], "label": table["any"].astype(int), "score": table["prob_any"].astype(float)}
    )
    if rows["label"].nunique() != 2:
        raise ValueError("site calibration needs positive and negative slices")
    return "slice", rows


def site_calibration(table: pd.DataFrame, points: dict, *, n_boot: int, seed: int) -> JsonBlock:
    """Choose an operating point on half of ``table``'s patients and report the other half.

    ``table``: one model's external predictions, one row per slice, with ``patient_id`` (the
    study's patient or the study itself), ``prob_any`` (and ``prob_study`` for a study model),
    ``any`` and ``label_level``. ``points``: the model's validation operating points, whose
    ``patient_youden`` (study level) or ``slice_youden`` (slice level) is the transferred point.
    """
    level, rows = _level(table, points)
    units = rows.groupby("patient_id", sort=True)["label"].max().rename("label").reset_index()
    choose, report = calibration_halves(units, seed)
    chosen_rows, reported = rows[rows["patient_id"].isin(choose)], rows[rows["patient_id"].isin(report)]
    if chosen_rows["label"].nunique() != 2 or reported["label"].nunique() != 2:
        raise ValueError(f"site calibration: each half needs positive and negative {level}s")
    local = youden_threshold(chosen_rows["label"], chosen_rows["score"], what=f"site {level}")
    transferred = float(points["patient_youden" if level == "study" else "slice_youden"]["threshold"])
    y = reported["label"].to_numpy()
    p = reported["score"].to_numpy()
    decisions = np.column_stack([p >= transferred, p >= local])
    at_transferred, at_local = decision_blocks(
        y, decisions, reported["patient_id"].to_numpy(), n_boot=n_boot, seed=seed
    )
    return {
        "level": level,
        "seed": seed,
        "chosen_on": {
            "patients": len(choose),
            f"{level}s": len(chosen_rows),
            "positive": int(chosen_rows["label"].sum()),
        },
        "reported_on": {"patients": len(report), f"{level}s": len(reported), "positive": int(y.sum())},
        "transferred": {"threshold": transferred, "chosen_on": points["chosen_on"], **at_transferred},
        "local": {"threshold": local, "chosen_on": f"half of this cohort's patients ({len(choose)})", **at_local},
    }


def site_points(table: pd.DataFrame, points: dict, *, cohort: str) -> dict:
    """The model's operating points chosen again on a site's whole labelled cohort (``ich calibrate``).

    ``table`` and ``points`` as for :func:`site_calibration`. The patient point is chosen on the
    site's studies when it has positive and negative ones (with the study score the model's
    validation chose); the slice points on its slices labelled one by one when they hold both
    classes (PHE-SICH-CT-IDS: slice points only). What the site cannot say is kept as transferred,
    and ``site.points_chosen`` lists what it chose. The result has the layout of a model's
    ``operating_points.json``, so ``ich predict --points`` uses it in its place; its ``val_*``
    rates are those of the site's own rows (in-sample: :func:`site_calibration`'s half split says
    how they hold on studies that played no part).
    """
    chosen: list[str] = []
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in points.items()}
    studies = study_scores(table, points["patient_youden"]["study_score"])
    if studies["label"].nunique() == 2:
        ys, ps = studies["label"].to_numpy(), studies["score"].to_numpy(dtype=float)
        threshold = youden_threshold(ys, ps, "site study")
        out["patient_youden"].update(threshold=threshold, **rates_at(ys, ps, threshold))
        chosen.append("patient_youden")
    slices = table[table["label_level"] == "slice"]
    if slices["any"].nunique() == 2:
        y, p = slices["any"].to_numpy().astype(int), slices["prob_any"].to_numpy(dtype=float)
        youden = youden_threshold(y, p, "site slice")
        out["slice_youden"] = {"threshold": youden, **rates_at(y, p, youden)}
        minimum = float(points["slice_sensitivity"].get("min_sensitivity", 0.95))
        sensitive = sensitivity_threshold(y, p, minimum, "site slice")
        out["slice_sensitivity"] = {"min_sensitivity": minimum, "threshold": sensitive, **rates_at(y, p, sensitive)}
        chosen += ["slice_youden", "slice_sensitivity"]
    if not chosen:
        raise ValueError(
            f"{cohort}: a site point needs positive and negative studies, or slices labelled one by one with both"
        )
    out.update(
        chosen_on=f"site cohort {cohort}",
        n_patients=int(table["patient_id"].nunique()),
        n_slices=len(table),
        site={"points_chosen": chosen, "transferred_from": points["chosen_on"]},
    )
    return out

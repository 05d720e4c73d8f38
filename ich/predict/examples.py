"""Which test studies the ``report`` stage renders: the most and least confident of each class.

A reader learns most from the extremes: a clear positive and a clear negative show what the
pipeline does when it is sure, a borderline positive and negative where it is not. Studies are
ranked by the deciding model's study score on its test predictions (:func:`ich.metrics.study_scores`;
the one its operating points chose on validation).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ich.metrics.operating_points import STUDY_SCORE, study_scores

CASES = (
    ("positive_most_confident", 1, False),
    ("positive_least_confident", 1, True),
    ("negative_most_confident", 0, True),
    ("negative_least_confident", 0, False),
)
"""``(name, label, ascending score)``: the first study of each ranking is that case."""


def example_cases(
    predictions: pd.DataFrame, index: pd.DataFrame, per_case: int = 1, score: str = STUDY_SCORE
) -> pd.DataFrame:
    """``case, patient_id, label, score`` of the chosen test patients (each patient at most once).

    ``predictions`` follows the Predictions contract; ``index`` is the slice index (labels);
    ``score`` the study score (``patient_youden.study_score`` of the operating points). A class
    absent from the test set gives no case of it.
    """
    test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "any"]], on="slice_id", how="left")
    if test.empty:
        raise ValueError("no test predictions to choose example studies from")
    studies = study_scores(test, score)
    chosen: list[dict] = []
    taken: set[str] = set()
    for name, label, ascending in CASES:
        ranked = studies[studies["label"] == label].sort_values(["score", "patient_id"], ascending=[ascending, True])
        for row in ranked[~ranked["patient_id"].isin(taken)].head(per_case).to_dict("records"):
            taken.add(row["patient_id"])
            suffix = "" if per_case == 1 else f"_{len([c for c in chosen if c['case'].startswith(name)]) + 1}"
            chosen.append({"case": name + suffix, **row})
    return pd.DataFrame(chosen, columns=["case", "patient_id", "score", "label"])


def study_manifest_rows(manifest: pd.DataFrame, index: pd.DataFrame, raw_dir: str, patient_id: str) -> list[dict]:
    """The raw-cohort manifest rows of ``patient_id``'s first study (by ``study_id``), in manifest order.

    The index's ``source_path`` is the manifest path resolved against ``raw_dir`` (NIfTI slices
    add ``#k``), which is how a converted slice finds the file it came from.
    """
    slices = index[index["patient_id"] == patient_id]
    if slices.empty:
        raise ValueError(f"patient {patient_id} has no slice in the index")
    study = slices[slices["study_id"] == slices["study_id"].min()]
    sources = set(study["source_path"].str.replace(r"#\d+$", "", regex=True))
    resolved = [p if Path(p).is_absolute() else str(Path(raw_dir) / p) for p in manifest["path"]]
    rows = manifest[[p in sources for p in resolved]]
    if rows.empty:
        raise ValueError(f"no manifest row of {raw_dir}/manifest.csv is a source of study {study['study_id'].iloc[0]}")
    return rows.to_dict("records")

"""``ich predict``'s classification over many studies at once, as one predictions table.

For evaluating a trained project on images it never converted (another site's, an external
cohort's, or :mod:`ich.data.site_shift`'s simulated ones) exactly as a user's ``ich predict``
would see them: each folder is read by :func:`ich.predict.inputs.read_study` and classified by
:func:`ich.predict.infer.run_study` with each deciding model's artefacts (no segmenter, no CAMs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ich.metrics.operating_points import STUDY_PROBABILITY
from ich.predict.artefacts import Artefacts
from ich.predict.infer import run_study
from ich.predict.inputs import read_study


def classify_folders(deciders: Mapping[str, Artefacts], folders: Mapping[str, str | Path]) -> pd.DataFrame:
    """Classify every study of ``folders`` (name -> a study folder, or one image or DICOM file: a
    one-slice study) with every deciding model of ``deciders`` (name -> its artefacts).

    Each study is read once, with the first decider's conversion (all deciders of one project
    share it). One row per model and slice: ``model, study, source_path, sop_uid, study_uid,
    position, prob_any``, and ``prob_study`` (NaN for the others) where a decider's operating
    points chose a study model's own output as the study score (the Predictions contract,
    docs/contracts.md). A folder without a usable slice raises
    :class:`ich.predict.inputs.StudyInputError` naming it.
    """
    if not folders:
        raise ValueError("no study folders to predict")
    if not deciders:
        raise ValueError("no deciding model to predict with")
    first = next(iter(deciders.values()))
    convert, slab_mm = first.convert, first.training["slice_thickness_mm"]
    parts = []
    for name, folder in folders.items():
        study = read_study(folder, convert, slab_mm)
        slices = {
            "study": name,
            "source_path": [s.source_path for s in study.slices],
            "sop_uid": [s.sop_uid for s in study.slices],
            "study_uid": study.study_uid,
            "position": range(len(study.slices)),
        }
        for model, artefacts in deciders.items():
            result = run_study(study, artefacts, max_cams=0)
            table = {"model": model, **slices, "prob_any": result.slice_probs}
            if artefacts.operating_points["patient_youden"]["study_score"] == STUDY_PROBABILITY:
                table["prob_study"] = result.study_score
            parts.append(pd.DataFrame(table))
    return pd.concat(parts, ignore_index=True)


def predict_folders(artefacts: Artefacts, folders: Mapping[str, str | Path]) -> pd.DataFrame:
    """:func:`classify_folders` with one deciding model: its rows, without the ``model`` column."""
    return classify_folders({artefacts.decider: artefacts}, folders).drop(columns="model")

"""``ich predict``'s classification over many studies at once, as one predictions table.

For evaluating a trained project on images it never converted (another site's, or
:mod:`ich.data.site_shift`'s simulated ones) exactly as a user's ``ich predict`` would see them:
each folder is read by :func:`ich.predict.inputs.read_study` and classified by
:func:`ich.predict.infer.run_study` with the deciding model's artefacts (no segmenter, no CAMs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ich.metrics.operating_points import STUDY_PROBABILITY
from ich.predict.artefacts import Artefacts
from ich.predict.infer import run_study
from ich.predict.inputs import read_study


def predict_folders(artefacts: Artefacts, folders: Mapping[str, str | Path]) -> pd.DataFrame:
    """Classify every study of ``folders`` (name -> a study folder, or one image or DICOM file: a one-slice study).

    One row per slice: ``study, source_path, prob_any``, and ``prob_study`` when the decider's
    operating points chose a study model's own output as the study score (the Predictions
    contract, docs/contracts.md). A folder without a usable slice raises
    :class:`ich.predict.inputs.StudyInputError` naming it.
    """
    if not folders:
        raise ValueError("no study folders to predict")
    own_study_output = artefacts.operating_points["patient_youden"]["study_score"] == STUDY_PROBABILITY
    parts = []
    for name, folder in folders.items():
        study = read_study(folder, artefacts.convert)
        result = run_study(study, artefacts, max_cams=0)
        table = {"study": name, "source_path": [s.source_path for s in study.slices], "prob_any": result.slice_probs}
        if own_study_output:
            table["prob_study"] = result.study_score
        parts.append(pd.DataFrame(table))
    return pd.concat(parts, ignore_index=True)

"""``ich predict``: one CT study in, a report (JSON, HTML) and a DICOM Segmentation out.

:func:`predict_study` is the whole chain; :mod:`ich.cli` is its command line and the ``report``
stage runs it on example test studies. The steps, one module each: read the study
(:mod:`~ich.predict.inputs`), load and check the trained pipeline (:mod:`~ich.predict.artefacts`),
run it (:mod:`~ich.predict.infer`), write the report (:mod:`~ich.predict.report`), the SEG
(:mod:`~ich.predict.seg`) and the NIfTI mask. Many studies at once: :mod:`~ich.predict.batch`;
an external cohort: :mod:`~ich.predict.external`.

The names below load on first use, so that ``ich --help`` does not wait for PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ENSEMBLE": "ich.predict.names",
    "FLAG_POINTS": "ich.predict.names",
    "Artefacts": "ich.predict.artefacts",
    "StaleArtefactError": "ich.predict.bundle",
    "load_artefacts": "ich.predict.artefacts",
    "StudyResult": "ich.predict.infer",
    "run_study": "ich.predict.infer",
    "Study": "ich.predict.inputs",
    "StudyInputError": "ich.predict.inputs",
    "read_study": "ich.predict.inputs",
    "predict_study": "ich.predict.run",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ich.predict' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)

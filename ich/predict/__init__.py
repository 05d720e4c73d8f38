"""``ich predict``: one CT study in, a report (JSON, HTML) and a DICOM Segmentation out.

:func:`predict_study` is the whole chain; :mod:`ich.cli` is its command line and the ``report``
stage runs it on example test studies. The steps, one module each: read the study
(:mod:`~ich.predict.inputs`), load and check the trained pipeline (:mod:`~ich.predict.artefacts`),
run it (:mod:`~ich.predict.infer`), write the report (:mod:`~ich.predict.report`) and the SEG
(:mod:`~ich.predict.seg`).
"""

from ich.predict.artefacts import ENSEMBLE, Artefacts, StaleArtefactError, load_artefacts
from ich.predict.infer import FLAG_POINTS, StudyResult, run_study
from ich.predict.inputs import Study, StudyInputError, read_study
from ich.predict.run import predict_study

__all__ = [
    "ENSEMBLE",
    "FLAG_POINTS",
    "Artefacts",
    "StaleArtefactError",
    "Study",
    "StudyInputError",
    "StudyResult",
    "load_artefacts",
    "predict_study",
    "read_study",
    "run_study",
]

"""The whole ``ich predict`` chain for one study: read, run, write the report and the SEG."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ich.predict.artefacts import Artefacts
from ich.predict.infer import StudyResult, run_study, timed
from ich.predict.inputs import Study
from ich.predict.report import write_report
from ich.predict.seg import SegmentationNotWritten, write_segmentation


def predict_study(
    study: Study,
    out_dir: str | Path,
    artefacts: Artefacts,
    *,
    flag_point: str = "slice_youden",
    max_cams: int = 8,
    created: datetime | None = None,
) -> tuple[dict, StudyResult]:
    """Predict ``study`` (from :func:`ich.predict.read_study`) into ``out_dir``.

    Writes ``report.json``, ``report.html`` and, for a DICOM study with a segmenter, ``seg.dcm``.
    ``created`` dates the SEG (default: now). Returns the report and the result, whose
    ``timings`` hold the seconds of every step.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = run_study(study, artefacts, flag_point=flag_point, max_cams=max_cams)
    outputs = {"report_json": "report.json", "report_html": "report.html"}
    with timed(result.timings, "seg"):
        outputs["seg"] = _segmentation(study, result, artefacts, out_dir / "seg.dcm", created or datetime.now())
    with timed(result.timings, "render"):
        report = write_report(out_dir, study, result, artefacts, outputs)
    return report, result


def _segmentation(study: Study, result: StudyResult, artefacts: Artefacts, path: Path, created: datetime) -> str:
    """Write the SEG; what ``report.json`` says about it."""
    if result.masks is None:
        return "not written: no segmenter loaded"
    version = artefacts.versions[f"data/segmenters/{artefacts.segmenter.name}"]
    try:
        write_segmentation(study, result.masks, path, model_version=version, created=created)
    except SegmentationNotWritten as exc:
        return f"not written: {exc}"
    return path.name

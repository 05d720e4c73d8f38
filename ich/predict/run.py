"""The whole ``ich predict`` chain for one study: read, run, write the report, the SEG and the mask.

Everything is written into a sibling working folder first and moved into place only when the
whole study has succeeded, so a failure leaves no half-written report behind; files of an earlier
report in the same folder that this one does not replace are removed.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

from ich import layout
from ich.predict.artefacts import Artefacts
from ich.predict.infer import StudyResult, run_study, timed
from ich.predict.inputs import Study
from ich.predict.mask_file import MaskNotWritten, write_mask_nifti
from ich.predict.report import write_report
from ich.predict.seg import SegmentationNotWritten, write_segmentation

OUTPUT_FILES = ("report.json", "report.html", "seg.dcm", "mask.nii.gz")
"""Every file a study's report may consist of: one left in ``out_dir`` by an earlier study and not
written now is removed, so no file in the folder belongs to another study."""


def predict_study(
    study: Study,
    out_dir: str | Path,
    artefacts: Artefacts,
    *,
    flag_point: str = "slice_youden",
    max_cams: int = 8,
    outline: str = "above_threshold",
    created: datetime | None = None,
) -> tuple[dict, StudyResult]:
    """Predict ``study`` (from :func:`ich.predict.read_study`) into ``out_dir``.

    Writes ``report.json``, ``report.html`` and, with a segmenter, ``mask.nii.gz`` for input with
    geometry (DICOM, NIfTI) and ``seg.dcm`` for DICOM input with a FrameOfReferenceUID; the
    report says why a file was not written. ``created`` dates the SEG (default: now). Returns
    the report and the result, whose ``timings`` hold the seconds of every step.
    """
    out_dir = Path(out_dir)
    result = run_study(study, artefacts, flag_point=flag_point, max_cams=max_cams, outline=outline)
    work = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        outputs = {"report_json": "report.json", "report_html": "report.html"}
        with timed(result.timings, "seg"):
            outputs["seg"] = _segmentation(study, result, artefacts, work / "seg.dcm", created or datetime.now())
            outputs["mask"] = _mask(study, result, work / "mask.nii.gz")
        with timed(result.timings, "render"):
            report = write_report(work, study, result, artefacts, outputs)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = {path.name for path in work.iterdir()}
        for stale in sorted(set(OUTPUT_FILES) - written):  # an earlier study's, which this report disowns
            (out_dir / stale).unlink(missing_ok=True)
        for name in sorted(written):
            os.replace(work / name, out_dir / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report, result


def _segmentation(study: Study, result: StudyResult, artefacts: Artefacts, path: Path, created: datetime) -> str:
    """Write the SEG; what ``report.json`` says about it."""
    if result.masks is None:
        return "not written: no segmenter loaded"
    version = artefacts.versions[(layout.SEGMENTERS / artefacts.segmenter.name).as_posix()]
    try:
        write_segmentation(study, result.masks, path, model_version=version, created=created)
    except SegmentationNotWritten as exc:
        return f"not written: {exc}"
    return path.name


def _mask(study: Study, result: StudyResult, path: Path) -> str:
    """Write the NIfTI mask; what ``report.json`` says about it."""
    if result.masks is None:
        return "not written: no segmenter loaded"
    try:
        write_mask_nifti(study, result.masks, path)
    except MaskNotWritten as exc:
        return f"not written: {exc}"
    return path.name

"""The whole ``ich predict`` chain for one study: read, run, write the report, the SEG and the mask.

Everything is written into a working folder of this run's own inside the output folder (so the
final moves never cross a file system, a mount point such as a container's ``-v host:/out``
included) and moved into place only when the whole study has succeeded, so a failure leaves no
half-written report behind. The moves happen under a lock on the output folder, so two runs into
one folder leave the files of one of them, never a mix. Only files an earlier report in the
folder lists as its own are replaced or removed: a file of the user's of the same name (a
ground-truth ``mask.nii.gz`` beside the study) is refused, never overwritten
(:func:`ich.predict.outputs.refuse_foreign_outputs`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ich import layout
from ich.predict.artefacts import Artefacts
from ich.predict.infer import StudyResult, run_study, timed
from ich.predict.inputs import Study
from ich.predict.mask_file import MaskNotWritten, write_mask_nifti
from ich.predict.outputs import OutputRefusedError, refuse_foreign_outputs
from ich.predict.report import write_report
from ich.predict.seg import SegmentationNotWritten, write_segmentation

WORK_PREFIX = ".ich-predict-"
"""The working folder of one run inside the output folder."""


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (no lock file is left behind)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


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
    made = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=out_dir))
        try:
            outputs = {"report_json": "report.json", "report_html": "report.html"}
            with timed(result.timings, "seg"):
                outputs["seg"] = _segmentation(study, result, artefacts, work / "seg.dcm", created or datetime.now())
                outputs["mask"] = _mask(study, result, work / "mask.nii.gz")
            with timed(result.timings, "render"):
                report = write_report(work, study, result, artefacts, outputs)
            with _locked(out_dir):
                own = refuse_foreign_outputs(out_dir)
                written = {path.name for path in work.iterdir()}
                for stale in sorted(own - written):  # an earlier study's, which this report disowns
                    (out_dir / stale).unlink(missing_ok=True)
                for name in sorted(written - {"report.json"}) + ["report.json"]:  # the list of files last
                    os.replace(work / name, out_dir / name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except (OSError, OutputRefusedError) as error:
        for folder in made:  # as they were: nothing of this run is left
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(error, OutputRefusedError):
            raise
        raise OutputRefusedError(
            f"{out_dir}: the report could not be written there ({error.strerror or error})"
        ) from None
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

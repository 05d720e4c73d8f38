"""The bleed mask as a DICOM Segmentation object (highdicom), so a PACS or viewer shows it over the study.

The U-Net works on the converted slice (framed, resized); each mask is mapped back onto the
source image's pixel grid (:meth:`ich.data.framing.Frame.restore` after a nearest-neighbour
resize), so frame ``i`` of the SEG lies exactly on source instance ``i``. One binary segment,
coded as SNOMED CT "Hemorrhage" (a morphologically abnormal structure), one frame per source
slice (empty frames kept, so the SEG is complete along z).
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ich.predict.inputs import Study

SOFTWARE = "ich predict"


def source_grid_masks(study: Study, masks: np.ndarray) -> np.ndarray:
    """``masks`` (N, size, size) 0/1 on the converted slices -> (N, rows, cols) bool on the source images."""
    out = []
    for s, mask in zip(study.slices, masks, strict=True):
        side = cv2.resize(mask.astype(np.uint8), (s.frame.side, s.frame.side), interpolation=cv2.INTER_NEAREST_EXACT)
        out.append(s.frame.restore(side, s.source_shape).astype(bool))
    return np.stack(out)


# Type 2 attributes (present, possibly empty) that highdicom copies from the source images;
# anonymised exports often drop them altogether.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


class SegmentationNotWritten(ValueError):
    """The study cannot carry a DICOM Segmentation; the message says why."""


def _source(path: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for keyword in _TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def write_segmentation(
    study: Study, masks: np.ndarray, path: str | Path, *, model_version: str, created: datetime
) -> Path:
    """Write the SEG of ``masks`` over ``study`` (which must come from DICOM) to ``path``.

    Its UIDs derive from the source series, the model version and ``created``, and every
    date and time in it is ``created``: the same inputs give the same bytes (the ``report``
    stage's examples are reproducible; ``ich predict`` passes the current time).
    """
    if study.kind != "dicom":
        raise SegmentationNotWritten(f"a DICOM Segmentation needs DICOM input, this study is {study.kind}")
    import highdicom as hd  # 0.3 s to import: only a study that gets a SEG pays for it

    sources = [_source(s.source_path) for s in study.slices]

    def uid(what: str) -> str:
        return generate_uid(
            entropy_srcs=["ich predict SEG", study.series_uid, model_version, created.isoformat(), what]
        )

    if any("FrameOfReferenceUID" not in ds for ds in sources):
        raise SegmentationNotWritten(
            "the source images have no FrameOfReferenceUID to place a SEG on (mask.nii.gz holds the mask)"
        )
    if not all(np.isfinite([s.spacing_row_mm, s.spacing_col_mm]).all() for s in study.slices):
        raise SegmentationNotWritten("the source images have no valid PixelSpacing (missing, zero or negative)")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="ich U-Net (Hssayeni 2020)", family=codes.cid7162.ArtificialIntelligence, version=model_version[:64]
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Hemorrhage",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Hemorrhage,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    with warnings.catch_warnings():
        # copied from the source as it is: an anonymised one-word PatientName ("ANON") is the
        # source's business, not a defect of the SEG
        warnings.filterwarnings(
            "ignore", message=".*unlikely to represent the intended person name", category=UserWarning
        )
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=source_grid_masks(study, masks),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=uid("series"),
            series_number=9901,
            sop_instance_uid=uid("instance"),
            instance_number=1,
            manufacturer="ich (open source)",
            manufacturer_model_name=SOFTWARE,
            software_versions=model_version[:64],
            device_serial_number="none",
            series_description="ICH bleed mask (research use only)",
            omit_empty_frames=False,
            content_date=created.date(),
            content_time=created.time(),
        )
    seg.InstanceCreationDate, seg.InstanceCreationTime = seg.ContentDate, seg.ContentTime
    for item in seg.get("ContributingEquipmentSequence", []):  # highdicom stamps itself with the clock
        item.ContributionDateTime = created.strftime("%Y%m%d%H%M%S.%f")
    dimension_uid = uid("dimensions")
    for item in [*seg.DimensionOrganizationSequence, *seg.DimensionIndexSequence]:
        item.DimensionOrganizationUID = dimension_uid
    path = Path(path)
    seg.save_as(path)
    return path

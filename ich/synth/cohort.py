"""Write a synthetic head-CT cohort as real DICOM files with RSNA-style labels and masks.

Layout under ``out_dir`` (the raw-cohort contract of ``docs/contracts.md``)::

    dicom/<PatientID>/<SOPInstanceUID>.dcm   int16 + RescaleSlope/Intercept -> HU
    masks/<SOPInstanceUID>.png               0/255 bleed mask, same matrix as the slice
    stage_2_train.csv                        RSNA 2019 format: ID_<sop>_<subtype>,Label
    manifest.csv, labels.csv, source.json    the pipeline's raw-cohort tables

The cohort is a deterministic function of its parameters: UIDs come from
:func:`pydicom.uid.generate_uid` with the seed as entropy, and every random draw from a
generator seeded per patient, so a patient does not change when the cohort grows.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ich.io.raw_cohort import write_raw_cohort
from ich.labels import LABELS, SUBTYPES
from ich.synth.phantom import FIELD_OF_VIEW_MM, Head, random_head, render_slice

RESCALE_INTERCEPT = -1024.0
SLICE_THICKNESS_MM = 5.0


@dataclass(frozen=True)
class CohortConfig:
    """Size and composition of a synthetic cohort."""

    n_patients: int = 60
    slices_per_study: int = 16
    matrix: int = 256
    positive_fraction: float = 0.5
    seed: int = 0


def _uid(seed: int, *parts: object) -> str:
    return generate_uid(entropy_srcs=[f"ich-synth-{seed}", *map(str, parts)])


def _patient_head(config: CohortConfig, index: int) -> Head:
    rng = np.random.default_rng([config.seed, index])
    subtypes: tuple[str, ...] = ()
    if rng.random() < config.positive_fraction:
        n = 1 if rng.random() < 0.7 else 2
        subtypes = tuple(rng.choice(SUBTYPES, size=n, replace=False).tolist())
    return random_head(rng, config.slices_per_study, subtypes)


def ct_dataset(
    hu: np.ndarray,
    *,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    sop_uid: str,
    z_mm: float,
    instance_number: int,
    pixel_spacing_mm: float,
) -> Dataset:
    """A CT image DICOM dataset holding ``hu`` as int16 with RescaleIntercept -1024."""
    stored = np.clip(np.round(hu - RESCALE_INTERCEPT), -32768, 32767).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.StudyDescription = "SYNTHETIC HEAD CT (ich.synth)"
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [-FIELD_OF_VIEW_MM / 2, -FIELD_OF_VIEW_MM / 2, z_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    ds.SliceThickness = SLICE_THICKNESS_MM
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = RESCALE_INTERCEPT
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    ds.PixelData = stored.tobytes()
    return ds


def _write_patient(args: tuple[CohortConfig, int, str]) -> list[dict]:
    """Render and write one patient's study; return one record per slice."""
    config, index, out = args
    out_dir = Path(out)
    head = _patient_head(config, index)
    patient_id = f"SYN{index:05d}"
    study_uid = _uid(config.seed, patient_id, "study")
    series_uid = _uid(config.seed, patient_id, "series")
    spacing = FIELD_OF_VIEW_MM / config.matrix
    (out_dir / "dicom" / patient_id).mkdir(parents=True, exist_ok=True)
    records = []
    for k in range(config.slices_per_study):
        sop_uid = _uid(config.seed, patient_id, k)
        hu, masks = render_slice(head, k, config.slices_per_study, config.matrix, seed=[config.seed, index, k])
        ds = ct_dataset(
            hu,
            patient_id=patient_id,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=_uid(config.seed, patient_id, "frame of reference"),
            sop_uid=sop_uid,
            z_mm=k * SLICE_THICKNESS_MM,
            instance_number=k + 1,
            pixel_spacing_mm=spacing,
        )
        ds.save_as(out_dir / "dicom" / patient_id / f"{sop_uid}.dcm", enforce_file_format=True)
        union = np.zeros(hu.shape, dtype=bool)
        for mask in masks.values():
            union |= mask
        mask_rel = f"masks/{sop_uid}.png"
        cv2.imwrite(str(out_dir / mask_rel), union.astype(np.uint8) * 255)
        labels = {s: int(s in masks) for s in SUBTYPES}
        records.append(
            {
                "sop_uid": sop_uid,
                "path": f"dicom/{patient_id}/{sop_uid}.dcm",
                "mask_path": mask_rel,
                "any": int(bool(masks)),
                **labels,
            }
        )
    return records


def write_cohort(
    out_dir: str | Path,
    *,
    n_patients: int = 60,
    slices_per_study: int = 16,
    matrix: int = 256,
    positive_fraction: float = 0.5,
    seed: int = 0,
    workers: int = 1,
) -> pd.DataFrame:
    """Generate the cohort into ``out_dir`` and return its slice-level labels.

    Patients render in ``workers`` processes; output does not depend on ``workers``.
    """
    if matrix not in (256, 512):
        raise ValueError(f"synthetic matrix must be 256 or 512, got {matrix}")
    config = CohortConfig(n_patients, slices_per_study, matrix, positive_fraction, seed)
    out = Path(out_dir)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(config, i, str(out)) for i in range(n_patients)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            per_patient = list(pool.map(_write_patient, jobs))
    else:
        per_patient = [_write_patient(job) for job in jobs]
    slices = pd.DataFrame([r for records in per_patient for r in records])

    rsna = slices.melt(id_vars="sop_uid", value_vars=list(LABELS), var_name="subtype", value_name="Label")
    rsna["ID"] = "ID_" + rsna["sop_uid"] + "_" + rsna["subtype"]
    rsna[["ID", "Label"]].to_csv(out / "stage_2_train.csv", index=False)

    labels = slices[["sop_uid", *LABELS]].rename(columns={"sop_uid": "key"})
    labels.insert(0, "level", "slice")
    write_raw_cohort(
        out,
        manifest=slices[["path", "mask_path"]].assign(format="dicom"),
        labels=labels,
        source={
            "name": "synthetic",
            "synthetic": True,
            "has_hu": True,
            "citation": "Synthetic head-CT phantom cohort generated by ich.synth (not patient data).",
            "config": config.__dict__,
        },
    )
    return slices

import cv2
import numpy as np
import pandas as pd
import pydicom

from ich.io.dicom import read_ct_slice
from ich.labels import LABELS, SUBTYPES
from ich.synth import ct_dataset
from ich.synth.phantom import random_head, render_slice


def test_generated_dicom_reads_back_to_the_intended_hu(tmp_path):
    hu = np.round(np.random.default_rng(0).uniform(-1000, 1500, (256, 256))).astype(np.float32)
    ds = ct_dataset(
        hu,
        patient_id="P",
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        frame_of_reference_uid="1.2.3.6",
        sop_uid="1.2.3.4.5",
        z_mm=12.5,
        instance_number=3,
        pixel_spacing_mm=0.9,
    )
    ds.save_as(tmp_path / "s.dcm", enforce_file_format=True)
    raw = pydicom.dcmread(tmp_path / "s.dcm")
    assert raw.Modality == "CT" and raw.pixel_array.dtype == np.int16
    assert raw.FrameOfReferenceUID == "1.2.3.6"  # real CT has one; a DICOM SEG needs it
    assert float(raw.RescaleIntercept) == -1024.0
    ct = read_ct_slice(tmp_path / "s.dcm")
    np.testing.assert_array_equal(ct.hu, hu)
    assert ct.z == 12.5 and ct.pixel_spacing == (0.9, 0.9)


def test_anatomy_has_the_specified_densities():
    head = random_head(np.random.default_rng(0), 16, ())
    hu, masks = render_slice(head, 8, 16, 256, seed=0)
    assert masks == {}
    assert hu.min() < -900  # air
    assert np.percentile(hu, 99.5) > 700  # skull
    centre = hu[96:160, 96:160]
    brain = centre[(centre > 15) & (centre < 60)]
    assert 20 <= np.median(brain) <= 45
    assert ((centre > -5) & (centre < 15)).mean() > 0.02  # ventricles (CSF)


def test_each_subtype_renders_with_blood_density_and_expected_place():
    for i, subtype in enumerate(SUBTYPES):
        head = random_head(np.random.default_rng(10 + i), 16, (subtype,))
        lesion = head.lesions[0]
        k = (lesion.first_slice + lesion.last_slice) // 2
        clean = head.__class__(**{**head.__dict__, "noise_hu": 0.0})
        hu, masks = render_slice(clean, k, 16, 256, seed=0)
        if subtype == "intraventricular" and subtype not in masks:
            continue  # the lesion's central slice can fall outside the ventricles' slab
        assert subtype in masks, subtype
        inside = np.median(hu[masks[subtype]])
        assert 40 <= inside <= 95, (subtype, inside)
        dilated = cv2.dilate(masks[subtype].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        touches_bone = (hu[dilated] > 500).any()
        # extra-axial bleeds lie against the skull; parenchymal and ventricular ones do not
        if subtype != "subarachnoid":  # sulci reach the cortex, so either is plausible
            assert touches_bone == (subtype in ("epidural", "subdural")), subtype


def test_cohort_is_deterministic_and_labelled_in_rsna_format(tiny_cohort, tmp_path):
    from ich.synth import write_cohort

    again = write_cohort(tmp_path / "raw", n_patients=12, slices_per_study=8, matrix=256, positive_fraction=0.5, seed=1)
    first = pd.read_csv(tiny_cohort["raw"] / "stage_2_train.csv")
    second = pd.read_csv(tmp_path / "raw" / "stage_2_train.csv")
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 12 * 8 * len(LABELS)
    assert (
        first["ID"]
        .str.match(r"^ID_[0-9.]+_(any|epidural|intraparenchymal|intraventricular|subarachnoid|subdural)$")
        .all()
    )
    a = pydicom.dcmread(next((tiny_cohort["raw"] / "dicom").rglob("*.dcm")))
    b = pydicom.dcmread(tmp_path / "raw" / "dicom" / a.PatientID / f"{a.SOPInstanceUID}.dcm")
    assert a.PixelData == b.PixelData
    # "any" is the union of the subtypes, and lesions span adjacent slices
    assert (again["any"] == again[list(SUBTYPES)].max(axis=1)).all()
    assert 0 < again["any"].mean() < 0.5

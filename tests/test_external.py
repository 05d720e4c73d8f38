"""External validation and its inputs, on tiny data: the site export, the cohort reader, the figures,
the windows a study gets for networks trained on pre-windowed images, and the NIfTI mask geometry."""

from __future__ import annotations

import json

import cv2
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml

from ich.data.cohort_conversion import ConvertConfig, convert_cohort, render_slice
from ich.data.site_export import ScannerProtocol, export_site, first_channel_window
from ich.data.site_shift import SiteShift
from ich.data.windowing import window
from ich.io.nifti import mask_volume_like, read_nifti_slice
from ich.io.raw_cohort import COHORT_FILE, SourceError, cohort_description
from ich.metrics.external import external_block, external_headline
from ich.predict.external import label_predictions, read_external_cohort
from ich.predict.familiarity import slice_statistics, study_statistics, unfamiliar
from ich.predict.mask_file import LPS_TO_RAS, MaskNotWritten, dicom_affine
from ich.predict.provenance import study_conversion
from ich.synth import write_cohort
from tests.conftest import REPO
from tests.dicom_fixtures import make_ct_dataset, phantom_hu, save, write_study

POINTS = {
    "chosen_on": "val",
    "slice_youden": {"threshold": 0.5},
    "slice_sensitivity": {"threshold": 0.3},
    "patient_youden": {"study_score": "max_slice_probability", "threshold": 0.6},
    "calibration": {"method": "platt", "slope": 1.0, "intercept": 0.0},
}


def _table(level: str = "slice") -> pd.DataFrame:
    """Four studies of three slices: two bleeding (one slice each), two normal."""
    rows = []
    for study, probs, bleed in [
        ("a", [0.1, 0.9, 0.2], 1),
        ("b", [0.2, 0.7, 0.1], 1),
        ("c", [0.1, 0.4, 0.2], 0),
        ("d", [0.65, 0.2, 0.1], 0),
    ]:
        for k, p in enumerate(probs):
            label = int(bleed and k == 1) if level == "slice" else bleed
            rows.append({"study": study, "prob_any": p, "any": label, "label_level": level})
    return pd.DataFrame(rows)


def test_external_figures_use_the_validation_points_and_never_choose():
    block = external_block(_table(), POINTS, n_boot=50, seed=0)
    assert block["n_studies"] == 4 and block["n_positive_studies"] == 2 and block["label_level"] == "slice"
    study = block["study"]
    assert study["threshold"] == 0.6 and study["score"] == "max_slice_probability"
    # max scores a 0.9, b 0.7 (bleeding), c 0.4, d 0.65 (normal): at 0.6, tp 2, fp 1
    assert (study["tp"], study["fp"], study["tn"], study["fn"]) == (2, 1, 1, 0)
    assert study["roc_auc"]["value"] == 1.0
    slices = block["slice"]
    assert slices["slice_youden"]["threshold"] == 0.5 and (
        slices["slice_youden"]["tp"],
        slices["slice_youden"]["fp"],
    ) == (2, 1)
    assert slices["slice_sensitivity"]["fp"] == 2  # 0.4 and 0.65 reach 0.3
    top = external_headline(block)
    assert top["patient_roc_auc"] == study["roc_auc"] and top["slice_roc_auc"] == slices["roc_auc"]
    assert top["patient_sensitivity"] == study["sensitivity"]["value"] and top["n_studies"] == 4


def test_study_labels_give_study_figures_only():
    block = external_block(_table("study"), POINTS, n_boot=50, seed=0)
    assert block["label_level"] == "study" and "slice" not in block
    assert block["n_positive_studies"] == 2
    with pytest.raises(ValueError, match="no label"):
        external_block(_table().assign(any=np.nan), POINTS, n_boot=50, seed=0)


def test_no_stage_but_external_reads_what_external_cohorts_produce():
    """External results are never used for any choice: only external@ stages read the cohort or its figures."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        deps = [str(d) for d in stage.get("do", stage).get("deps", [])]
        reads = [d for d in deps if d.startswith(("data/external", "metrics/external", "data/site", "${item"))]
        assert name == "external" or not reads, (name, reads)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {c["path"] for c in params["external"]["cohorts"].values()} <= {"data/site/dicom", "data/site/png"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A converted synthetic cohort of four patients (two bleeding) and its raw DICOM."""
    root = tmp_path_factory.mktemp("cohort")
    write_cohort(root / "raw", n_patients=4, slices_per_study=4, positive_fraction=0.5, seed=3)
    config = ConvertConfig(size=64, workers=1)
    index, _ = convert_cohort(root / "raw", root / "converted", config)
    index = index.assign(
        source_path=[str(root / "raw" / p) if not p.startswith("/") else p for p in index["source_path"]]
    )
    return root, index


def test_the_site_export_reads_back_through_the_source_adapters(converted, tmp_path):
    root, index = converted
    source = json.loads((root / "raw" / "source.json").read_text())
    window_hu = first_channel_window(source, [[0, 80]])
    assert window_hu == (0.0, 80.0)
    shift = SiteShift(source_window=window_hu)
    written = export_site(index, root / "converted", tmp_path, formats=("dicom", "png"), shift=shift,
                          scanner=ScannerProtocol(), seed=0, origin={"name": "phantoms", "synthetic": True})  # fmt: skip
    assert written == {"png": 4, "dicom": 4}
    files = sorted((tmp_path / "dicom").rglob("*.dcm"))
    assert len(files) == len(index)
    ds = pydicom.dcmread(files[0])
    assert "FrameOfReferenceUID" not in ds and ds.RescaleIntercept == -1000 and ds.PixelRepresentation == 0
    assert ds.Rows != ds.Columns and 320 <= ds.Rows <= 512  # cropped to the head, another matrix
    original = pydicom.dcmread(index.sort_values(["study_id", "slice_order"])["source_path"].iloc[0])
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert float(ds.PixelSpacing[0]) < float(original.PixelSpacing[0])  # a finer grid over a smaller field

    dicom = read_external_cohort("site_dicom", {"source": "folder", "path": str(tmp_path / "dicom")})
    images = read_external_cohort("site_png", {"source": "images", "layout": "generic", "path": str(tmp_path / "png")})
    for cohort in (dicom, images):
        assert len(cohort.folders) == 4 and cohort.unreadable == []
        assert cohort.source["synthetic"] is True, "an export of phantoms stays phantoms, whichever adapter reads it"
        assert cohort.source["name"].startswith("phantoms as another site sends them")
    assert len(dicom.slice_labels) == len(images.slice_labels) == len(index)
    assert dicom.slice_labels["any"].sum() == images.slice_labels["any"].sum() == index["any"].sum()

    # labels join to what the predictions name: SOPInstanceUIDs for DICOM, files for images
    table = pd.DataFrame(
        {
            "study": "x",
            "source_path": [str(p) for p in files],
            "sop_uid": [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in files],
            "study_uid": "",
        }
    )
    labelled, left_out = label_predictions(dicom, table)
    assert left_out == [] and (labelled["label_level"] == "slice").all()
    assert labelled["any"].sum() == index["any"].sum()
    assert not labelled["source_path"].str.startswith("/").any()  # relative to the cohort: the same on every machine


def test_a_study_folder_holding_two_studies_is_refused(tmp_path):
    write_study(tmp_path / "both", 2, patient_id="A", study_uid="1.2.3.1")
    write_study(tmp_path / "both" / "inner", 2, patient_id="B", study_uid="1.2.3.2")
    labels = pd.DataFrame({"key": ["1.2.3.1", "1.2.3.2"], "any": [0, 1]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(ValueError, match="one study per folder"):
        read_external_cohort("two", {"source": "folder", "path": str(tmp_path)})


CT_ICH_TRAINING = {
    "channels": "brain+bone",
    "windows": {"brain": {"level": 40, "width": 120}, "bone": {"level": 700, "width": 3200}},
}


def test_a_dicom_study_is_windowed_as_the_pre_windowed_training_images_were(tmp_path):
    hu = phantom_hu(256, 256, seed=1, lesion=True)
    dicom = save(make_ct_dataset(hu=hu), tmp_path / "slice.dcm")
    brain, bone = (window(hu, lo, hi) for lo, hi in ((-20, 100), (-900, 2300)))
    cv2.imwrite(str(tmp_path / "brain.jpg"), brain, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "bone.jpg"), bone, [cv2.IMWRITE_JPEG_QUALITY, 95])

    config, why = study_conversion(ConvertConfig(size=128), {**CT_ICH_TRAINING})
    assert config.windows == ((-20.0, 100.0), (-20.0, 100.0), (-900.0, 2300.0)) and "source.json" in why
    from_dicom = render_slice({"path": str(dicom), "format": "dicom"}, config)["image"]
    row = {"path": str(tmp_path / "brain.jpg"), "format": "image", "bone_path": str(tmp_path / "bone.jpg"),
           "slice_key": "s", "patient_id": "", "study_id": "", "series_id": "", "z": 0}  # fmt: skip
    from_images = render_slice(row, config)["image"]
    difference = np.abs(from_dicom.astype(int) - from_images.astype(int))
    assert difference.mean() < 1.5 and np.percentile(difference, 99) <= 12  # JPEG quality 95, nothing more
    # the convert stage's own windows ([0, 80] brain) are another contrast altogether
    plain = render_slice({"path": str(dicom), "format": "dicom"}, ConvertConfig(size=128))["image"]
    assert np.abs(plain.astype(int) - from_images.astype(int)).mean() > 10

    same, why = study_conversion(ConvertConfig(size=128), {"channels": "hu", "windows": None})
    assert same == ConvertConfig(size=128) and "as the training slices" in why
    unknown, why = study_conversion(ConvertConfig(size=128), {"channels": "grey", "windows": None})
    assert unknown == ConvertConfig(size=128) and "record no windows" in why


@pytest.mark.parametrize("transposed", [False, True])
def test_a_nifti_mask_lies_on_the_input_grid(tmp_path, transposed):
    affine = np.diag([-0.8, 0.9, 5.0, 1.0]) if not transposed else np.array(
        [[0, 0.9, 0, -50], [-0.8, 0, 0, 20], [0, 0, 5.0, -30], [0, 0, 0, 1]], dtype=float
    )  # fmt: skip
    volume = np.zeros((40, 30, 5), dtype=np.float32)
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "ct.nii.gz"))
    shape = read_nifti_slice(tmp_path / "ct.nii.gz", 0).data.shape
    planes = {k: (np.random.default_rng(k).random(shape) > 0.7).astype(np.uint8) for k in (1, 3)}
    mask = mask_volume_like(tmp_path / "ct.nii.gz", planes)
    nib.save(mask, str(tmp_path / "mask.nii.gz"))
    back = nib.load(str(tmp_path / "mask.nii.gz"))
    assert np.allclose(back.affine, affine)
    for k in range(5):
        expected = planes.get(k, np.zeros(shape, np.uint8))
        assert np.array_equal(read_nifti_slice(tmp_path / "mask.nii.gz", k).data, expected), k


def test_the_dicom_affine_maps_voxels_onto_the_image_positions(tmp_path):
    paths = [str(p) for p in write_study(tmp_path / "s", 4, rows=256, cols=300, spacing_z=2.5, z0=-10)]
    affine = dicom_affine(paths)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        for i, j in [(0, 0), (299, 0), (0, 255), (123, 45)]:  # column i, row j
            lps = (
                np.array(ds.ImagePositionPatient, dtype=float)
                + i * col_mm * np.array([1, 0, 0])
                + j * row_mm * np.array([0, 1, 0])
            )
            ras = LPS_TO_RAS[:3, :3] @ lps
            assert np.allclose((affine @ [i, j, k, 1])[:3], ras)
    with pytest.raises(MaskNotWritten, match="share one position"):
        dicom_affine([paths[0], paths[0]])


def test_image_statistics_and_what_lies_far_outside_the_training_studies():
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:80, 20:80] = (120, 120, 60)  # a head of 36% of the frame, soft tissue at 120
    image[20:25, 20:80] = 255  # bone, left out of the soft-tissue level
    stats = slice_statistics(image)
    assert stats["head_fraction"] == pytest.approx(0.36)
    assert stats["brain_level"] == pytest.approx(120)
    assert stats["channel_spread"] == pytest.approx(60 * 55 / 60)  # 60 in 55 tissue rows of 60, 0 in the bone
    reference = {"head_fraction": [0.3, 0.4], "brain_level": [100, 130], "channel_spread": [40, 60]}
    assert unfamiliar(study_statistics([image, image]), reference) == []
    grey = image.copy()
    grey[..., 2] = grey[..., 0]
    notes = unfamiliar(study_statistics([grey]), reference)
    assert notes == ["its channels differ by 0.0 grey levels inside the head (training studies 40.0-60.0)"]
    assert unfamiliar({**stats, "head_fraction": 0.44}, reference) == []  # within half the range's width
    assert "head covers 90%" in unfamiliar({**stats, "head_fraction": 0.9}, reference)[0]


def test_a_cohort_description_is_checked(tmp_path):
    assert cohort_description(tmp_path) == {}
    (tmp_path / COHORT_FILE).write_text('{"name": "site B", "synthetic": false}')
    assert cohort_description(tmp_path) == {"name": "site B", "synthetic": False}
    for text, message in [
        ('{"synthetic": "no"}', "must be true or false"),
        ('{"patients": 3}', "unknown keys"),
        ("[1]", "unknown keys"),
        ("{", "not JSON"),
    ]:
        (tmp_path / COHORT_FILE).write_text(text)
        with pytest.raises(SourceError, match=message) as caught:
            cohort_description(tmp_path)
        assert COHORT_FILE in str(caught.value)


def test_a_cohort_the_models_trained_on_is_not_external():
    """The CT-ICH profile scores PHE-SICH as another hospital; once `download.source: combined`
    trains on it, `external@phe_sich` is refused (its held-out patients are evaluate's by_cohort)."""
    from ich.predict.external import refuse_a_training_cohort

    profile = yaml.safe_load((REPO / "profiles" / "ct-ich-jpg.yaml").read_text())
    phe = profile["external"]["cohorts"]["phe_sich"]
    refuse_a_training_cohort("phe_sich", phe, profile["download"])  # CT-ICH alone: PHE-SICH is external
    combined = {**profile["download"], "source": "combined"}
    with pytest.raises(ValueError, match="phe_sich.*trained on"):
        refuse_a_training_cohort("phe_sich", phe, combined)
    with pytest.raises(ValueError, match="trained on"):
        refuse_a_training_cohort("ct", {"source": "images", "path": profile["download"]["path"]}, profile["download"])

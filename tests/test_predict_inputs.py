"""``ich predict``'s input side on small files: what is read as one study, what is skipped, what is refused."""

from __future__ import annotations

import json

import cv2
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ich.data.cohort_conversion import ConvertConfig
from ich.data.framing import frame_for
from ich.io.digest import dvc_md5
from ich.predict import StudyInputError, read_study
from ich.predict.examples import example_cases
from ich.predict.inputs import study_from_manifest
from ich.predict.seg import source_grid_masks
from tests.dicom_fixtures import (
    _variant,
    make_ct_dataset,
    phantom_grey,
    phantom_hu,
    save,
    write_garbage,
    write_non_ct,
    write_study,
)
from tests.not_head_ct import NOT_HEAD_CT, abdomen_hu

CONFIG = ConvertConfig(size=64, workers=1)


def test_a_dicom_folder_is_one_study_ordered_by_z_with_its_spacing(tmp_path):
    paths = write_study(tmp_path / "study", 4, z0=10.0, spacing_z=5.0)
    paths[0].rename(tmp_path / "study" / "zz_last_name_lowest_z.dcm")  # order comes from z, not names
    study = read_study(tmp_path / "study", CONFIG)
    assert study.kind == "dicom"
    assert [s.z for s in study.slices] == [10.0, 15.0, 20.0, 25.0]
    assert study.slice_spacing_mm == 5.0
    assert study.slices[0].image.shape == (64, 64, 3)
    assert study.slices[0].spacing_row_mm == pytest.approx(0.5 * 256 / 64)
    assert all(s.sop_uid for s in study.slices)
    assert study.channels == ["HU windows [0, 80], [-20, 180], [-150, 230]"]


def test_the_axial_ct_series_is_chosen_and_the_others_are_listed(tmp_path):
    study_uid = "1.2.826.0.1.3680043.8.498.1"
    write_study(tmp_path / "s" / "thick", 3, study_uid=study_uid, spacing_z=5.0)
    write_study(tmp_path / "s" / "thin", 6, study_uid=study_uid, spacing_z=1.0, seed=10)
    study = read_study(tmp_path / "s", CONFIG)
    assert len(study.slices) == 3  # 5 mm is preferred (dicomtree.select_series)
    assert len(study.other_series) == 1 and "not used" in study.other_series[0]["reason"]


def test_unreadable_and_non_ct_files_inside_a_study_are_skipped_and_listed(tmp_path):
    folder = tmp_path / "study"
    write_study(folder, 3, study_uid="1.2.826.0.1.3680043.8.498.2")
    write_garbage(folder / "garbage")
    _variant(
        folder / "scout.dcm",
        lambda ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        study_uid="1.2.826.0.1.3680043.8.498.2",
    )
    study = read_study(folder, CONFIG)
    assert len(study.slices) == 3
    skipped = {s["path"].split("/")[-1]: s["reason"] for s in study.skipped}
    assert skipped["garbage"] == "not a DICOM file (no 'DICM' prefix)"
    listed = {s["path"].split("/")[-1]: s["reason"] for s in study.other_series}
    assert listed["scout.dcm"].startswith("a CT localizer (scout; ImageType") and "LOCALIZER" in listed["scout.dcm"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d.mkdir(), "nothing to read: no file"),
        (lambda d: (d.mkdir(), (d / "notes.txt").write_text("x")), "none DICOM or an image"),
        (lambda d: (d.mkdir(), write_garbage(d / "a"), write_garbage(d / "b")), "none of its 2 files"),
        (lambda d: (d.mkdir(), write_non_ct(d / "mr.dcm")), "no CT image series"),
        (
            lambda d: (write_study(d / "one", 2, study_uid="1.2.3.1"), write_study(d / "two", 2, study_uid="1.2.3.2")),
            "holds 2 studies",
        ),
    ],
    ids=["empty", "text-only", "unreadable", "no-ct", "two-studies"],
)
def test_bad_input_is_refused_with_the_path_and_the_problem(tmp_path, make, message):
    folder = tmp_path / "input"
    make(folder)
    with pytest.raises(StudyInputError, match=message) as info:
        read_study(folder, CONFIG)
    assert str(folder) in str(info.value)


def test_two_studies_are_listed_so_the_user_can_pick_one(tmp_path):
    write_study(tmp_path / "in" / "one", 2, study_uid="1.2.3.1")
    write_study(tmp_path / "in" / "two", 2, study_uid="1.2.3.2")
    with pytest.raises(StudyInputError) as info:
        read_study(tmp_path / "in", CONFIG)
    assert "1.2.3.1" in str(info.value) and "1.2.3.2" in str(info.value)


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(StudyInputError, match="no such file or folder"):
        read_study(tmp_path / "nope", CONFIG)


def test_a_nifti_volume_is_read_slice_by_slice_in_hu(tmp_path):
    hu = np.stack([phantom_hu(seed=k) for k in range(5)], axis=2)
    for row, col in ((60, 118), (176, 118), (118, 60), (118, 176)):  # noiseless brain, wherever the axes go
        hu[row : row + 20, col : col + 20, :] = 40.0
    affine = np.diag([0.8, 0.8, 4.0, 1.0])
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "head.nii.gz")
    study = read_study(tmp_path / "head.nii.gz", CONFIG)
    assert study.kind == "nifti" and len(study.slices) == 5
    assert study.slice_spacing_mm == pytest.approx(4.0)
    assert study.slices[0].image[32, 17, 0] == pytest.approx(255 * 40 / 80, abs=1)  # brain window [0, 80]


def test_an_image_folder_is_ordered_by_natural_name_and_says_it_has_one_window(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for k in (10, 2, 1):
        image = np.zeros((200, 300), dtype=np.uint8)
        image[:, 50:250] = phantom_grey(200, 200, seed=k)
        cv2.imwrite(str(folder / f"{k}.png"), image)
    (folder / "readme.txt").write_text("ignored")
    study = read_study(folder, CONFIG)
    assert study.kind == "images" and not study.has_hu
    assert [s.source_path.split("/")[-1] for s in study.slices] == ["1.png", "2.png", "10.png"]
    assert study.channels == ["one grey window (R = G = B)"]
    assert np.isnan(study.slice_spacing_mm)


def test_bleed_masks_beside_the_slices_are_listed_not_read_as_slices(tmp_path):
    """The CT-ICH layout: ``brain/<S>_HGE_Seg.jpg`` is the mask of ``brain/<S>.jpg``."""
    folder = tmp_path / "brain"
    folder.mkdir()
    for k in (1, 2, 3):
        cv2.imwrite(str(folder / f"{k}.jpg"), phantom_grey(100, 100, seed=k))
    cv2.imwrite(str(folder / "2_HGE_Seg.jpg"), np.full((100, 100), 255, np.uint8))
    cv2.imwrite(str(folder / "3_Mask.png"), np.full((100, 100), 255, np.uint8))  # any mask exported beside them
    study = read_study(folder, CONFIG)
    assert [s.source_path.split("/")[-1] for s in study.slices] == ["1.jpg", "2.jpg", "3.jpg"]
    assert study.skipped == [
        {"path": str(folder / "2_HGE_Seg.jpg"), "reason": "a bleed mask (<slice>_HGE_Seg), not a slice"},
        {"path": str(folder / "3_Mask.png"), "reason": "a mask ('mask' in its name), not a slice"},
    ]


def test_a_study_from_manifest_rows_converts_as_convert_does(tiny_cohort):
    index = tiny_cohort["index"]
    manifest = pd.read_csv(tiny_cohort["raw"] / "manifest.csv", dtype=str, keep_default_na=False)
    first = index[index["study_id"] == index["study_id"].iloc[0]]
    sources = set(first["source_path"])
    rows = [r for r in manifest.to_dict("records") if str(tiny_cohort["raw"] / r["path"]) in sources]
    study = study_from_manifest(rows, tiny_cohort["raw"], ConvertConfig(size=64, workers=1), name="s")
    converted = [
        cv2.imread(str(tiny_cohort["converted"] / p), cv2.IMREAD_COLOR)[..., ::-1] for p in first["image_path"]
    ]
    assert len(study.slices) == len(converted)
    for s, png in zip(study.slices, converted, strict=True):
        assert np.array_equal(s.image, png)


def test_masks_go_back_to_the_source_grid_through_the_frame(tmp_path):
    image = np.zeros((300, 200, 3), dtype=np.uint8)
    image[100:200, 50:150] = 200
    frame = frame_for(image, "pad")
    framed = frame.apply(image[..., 0])
    assert np.array_equal(frame.restore(framed, image.shape[:2]), image[..., 0])

    class _Slice:
        pass

    s = _Slice()
    s.frame, s.source_shape = frame, (300, 200)
    study = type("S", (), {"slices": [s]})()
    mask = (cv2.resize(framed, (64, 64), interpolation=cv2.INTER_NEAREST_EXACT) > 0).astype(np.uint8)
    back = source_grid_masks(study, mask[None])[0]
    assert back.shape == (300, 200)
    truth = image[..., 0] > 0
    assert back[truth].all()  # nothing of the square is lost on the way back
    assert (back & truth).sum() / (back | truth).sum() > 0.9  # one 64 px pixel is 4.7 source pixels


def test_dvc_md5_is_the_hash_dvc_lock_records(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "b.txt").write_text("b")
    (folder / "a.txt").write_text("a")
    listing = [
        {"md5": "0cc175b9c0f1b6a831c399e269772661", "relpath": "a.txt"},
        {"md5": "92eb5ffee6ae2fec3ad71c777531578f", "relpath": "b.txt"},
    ]
    import hashlib

    assert dvc_md5(folder) == hashlib.md5(json.dumps(listing).encode()).hexdigest() + ".dir"
    assert dvc_md5(folder / "a.txt") == "0cc175b9c0f1b6a831c399e269772661"


def test_example_cases_are_the_extremes_of_each_class():
    scores = {"A": 0.9, "B": 0.6, "C": 0.1, "D": 0.4, "E": 0.2}
    labels = {"A": 1, "B": 1, "C": 0, "D": 0, "E": 0}
    predictions = pd.DataFrame(
        {"slice_id": list(scores), "patient_id": list(scores), "set": "test", "prob_any": list(scores.values())}
    )
    index = pd.DataFrame({"slice_id": list(labels), "any": list(labels.values())})
    cases = example_cases(predictions, index).set_index("case")["patient_id"].to_dict()
    assert cases == {
        "positive_most_confident": "A",
        "positive_least_confident": "B",
        "negative_most_confident": "C",
        "negative_least_confident": "D",
    }


def test_a_folder_with_dicom_in_it_is_a_dicom_study_whatever_else_it_holds(tmp_path):
    folder = tmp_path / "study"
    write_study(folder, 3)
    for k in range(5):  # previews outnumber the slices
        cv2.imwrite(str(folder / f"preview{k}.png"), np.full((128, 128), 90, np.uint8))
    study = read_study(folder, CONFIG)
    assert study.kind == "dicom" and len(study.slices) == 3
    assert sorted(s["reason"] for s in study.skipped) == ["an image file in a DICOM study (not read)"] * 5


def _write_pngs(folder, image: np.ndarray, n: int = 4) -> None:
    folder.mkdir()
    for k in range(n):
        cv2.imwrite(str(folder / f"{k}.png"), image)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((128, 128), np.uint8), "no slice shows a head.*4 are blank"),
        (np.full((128, 128), 255, np.uint8), "no slice shows a head.*4 saturated"),
        (np.linspace(24, 2024, 128 * 128).reshape(128, 128).astype(np.uint16), "16-bit grey image with values 24-2024"),
    ],
    ids=["black", "white", "16-bit-ct-numbers"],
)
def test_a_study_no_network_can_assess_is_refused_not_called_negative(tmp_path, image, message):
    _write_pngs(tmp_path / "study", image)
    with pytest.raises(StudyInputError, match=message) as info:
        read_study(tmp_path / "study", CONFIG)
    assert str(tmp_path / "study") in str(info.value)


def test_a_windowed_16_bit_image_is_still_read(tmp_path):
    _write_pngs(tmp_path / "study16", phantom_grey(128, 128, peak=65535), n=2)  # a full-range 16-bit export
    _write_pngs(tmp_path / "study8", phantom_grey(128, 128), n=2)
    sixteen, eight = read_study(tmp_path / "study16", CONFIG), read_study(tmp_path / "study8", CONFIG)
    assert np.abs(sixteen.slices[0].image.astype(int) - eight.slices[0].image).max() <= 1


def test_a_degenerate_orientation_is_refused_when_read_naming_the_file(tmp_path):
    write_study(tmp_path / "study", 3, orientation=(0, 0, 0, 0, 0, 0))
    with pytest.raises(StudyInputError, match=r"3 x ImageOrientationPatient \[0, 0, 0, 0, 0, 0\] is not two"):
        read_study(tmp_path / "study", CONFIG)
    skew = write_study(tmp_path / "skew", 1, orientation=(1, 0, 0, 0.7, 0.7, 0))[0]
    with pytest.raises(StudyInputError, match=f"not two orthogonal unit vectors.*the first: {skew}"):
        read_study(tmp_path / "skew", CONFIG)


def test_a_sheared_nifti_says_so_and_scales_its_voxels_by_the_affine(tmp_path):
    hu = np.stack([phantom_hu(128, 128, seed=k) for k in range(4)], axis=2)
    sheared = np.array([[0.5, -0.9, 0, 100], [-0.9, 0, 0, 90], [0, 0, 5.0, -20], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(hu, sheared), tmp_path / "sheared.nii.gz")
    study = read_study(tmp_path / "sheared.nii.gz", CONFIG)
    assert "sheared" in study.geometry_note
    det = abs(np.linalg.det(sheared[:3, :3]))
    assert study.voxel_scale == pytest.approx(det / (np.hypot(0.5, 0.9) * 0.9 * 5.0))
    nib.save(nib.Nifti1Image(hu, np.diag([0.9, 0.9, 5.0, 1.0])), tmp_path / "square.nii.gz")
    square = read_study(tmp_path / "square.nii.gz", CONFIG)
    assert square.voxel_scale == 1.0 and square.geometry_note == ""


def test_a_single_image_file_is_its_own_study(tmp_path):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), np.zeros((128, 128), np.uint8))
    with pytest.raises(StudyInputError, match=f"^{path}: no slice shows a head"):
        read_study(path, CONFIG)


@pytest.mark.parametrize("make", NOT_HEAD_CT.values(), ids=NOT_HEAD_CT.keys())
def test_what_is_not_a_head_ct_is_refused_naming_what_was_seen(tmp_path, make):
    path = make(tmp_path / "study")
    with pytest.raises(
        StudyInputError, match=f"^{path}: (not a head CT the networks can assess|no slice shows a head)"
    ):
        read_study(path, CONFIG)


def test_a_head_ct_needs_brain_inside_the_skull_on_a_quarter_of_its_slices(tmp_path):
    """Not on every one: a study's skull-base and vertex slices show none."""
    uids = {"study_uid": "1.2.826.0.1.3680043.8.498.1", "series_uid": "1.2.826.0.1.3680043.8.498.1.1"}
    write_study(tmp_path / "head", 4, **uids)
    face = np.where(phantom_hu() > 500, 40.0, phantom_hu())  # no bone ring: a slice through the face
    save(make_ct_dataset(hu=face, z=-5.0, instance_number=9, **uids), tmp_path / "head" / "face.dcm")
    assert len(read_study(tmp_path / "head", CONFIG).slices) == 5
    write_study(tmp_path / "abdomen", 1, **uids)
    for k in range(1, 6):
        abdomen = make_ct_dataset(hu=abdomen_hu(k), z=5.0 * k, instance_number=k + 1, **uids)
        save(abdomen, tmp_path / "abdomen" / f"{k}.dcm")
    with pytest.raises(StudyInputError, match="1 of its 6 slices show brain enclosed by skull.*2 needed"):
        read_study(tmp_path / "abdomen", CONFIG)


@pytest.mark.parametrize("spacing_z", [5.0, 1.25], ids=["thick", "thin-slabs"])
def test_a_series_of_mixed_matrix_sizes_is_refused_when_read_naming_files(tmp_path, spacing_z):
    """Half the slices resampled to 512 px with their pixel spacing halved: refused before any network
    runs (a thin series used to fail in the slab averaging, a thick one at the very end, in the SEG)."""
    uids = {"study_uid": "1.2.826.0.1.3680043.8.498.2", "series_uid": "1.2.826.0.1.3680043.8.498.2.1"}
    n = 8 if spacing_z < 5 else 4
    for k in range(n):
        rows = 512 if k % 2 else 256
        ds = make_ct_dataset(
            hu=phantom_hu(rows, rows, seed=k),
            z=spacing_z * k,
            instance_number=k + 1,
            pixel_spacing=(0.5 * 256 / rows,) * 2,
            slice_thickness=spacing_z,
            **uids,
        )
        save(ds, tmp_path / "study" / f"{k:04d}.dcm")
    pattern = rf"differ in matrix size \({n // 2} of 256x256 \(e\.g\. .*0000\.dcm\); {n // 2} of 512x512 \(e\.g\. .*0001\.dcm\)\)"
    with pytest.raises(StudyInputError, match=pattern):
        read_study(tmp_path / "study", CONFIG, slab_mm=5.0)


def test_missing_slices_one_position_and_a_tied_series_are_said(tmp_path):
    uids = {"study_uid": "1.2.826.0.1.3680043.8.498.3", "series_uid": "1.2.826.0.1.3680043.8.498.3.1"}
    paths = write_study(tmp_path / "gap", 8, **uids)
    for path in paths[3:6]:  # three slices missing: a 20 mm step in a 5 mm series
        path.unlink()
    study = read_study(tmp_path / "gap", CONFIG)
    assert "a gap of 20 mm between z 10 and 30 mm where the series steps 5 mm: about 3 slices missing?" in (
        study.geometry_note
    )
    write_study(tmp_path / "flat", 4, spacing_z=0.0, **uids)
    with pytest.raises(StudyInputError, match=r"all its 4 slices lie at one position \(z 0 mm\)"):
        read_study(tmp_path / "flat", CONFIG)
    study_uid = "1.2.826.0.1.3680043.8.498.4"
    write_study(tmp_path / "two" / "a", 3, study_uid=study_uid, series_uid=f"{study_uid}.1")
    write_study(tmp_path / "two" / "b", 3, study_uid=study_uid, series_uid=f"{study_uid}.2")
    other = read_study(tmp_path / "two", CONFIG).other_series
    assert len(other) == 1 and "ranked equal to it, chosen by SeriesInstanceUID order" in other[0]["reason"]


def test_a_nifti_whose_qform_and_sform_disagree_says_which_it_used(tmp_path):
    hu = np.stack([phantom_hu(128, 128, seed=k) for k in range(4)], axis=2)
    image = nib.Nifti1Image(hu, np.diag([0.9, 0.9, 5.0, 1.0]))
    moved = np.diag([0.9, 0.9, 5.0, 1.0])
    moved[:3, 3] = [3.0, 4.0, 0.0]  # the qform 5 mm off
    image.set_qform(moved, code=1)
    nib.save(image, tmp_path / "two.nii.gz")
    note = read_study(tmp_path / "two.nii.gz", CONFIG).geometry_note
    assert "qform and sform disagree (a voxel up to 5 mm apart): read by its sform" in note
    image.set_qform(np.diag([0.9, 0.9, 5.0, 1.0]), code=1)
    nib.save(image, tmp_path / "one.nii.gz")
    assert read_study(tmp_path / "one.nii.gz", CONFIG).geometry_note == ""


def test_a_head_ct_converted_small_is_still_a_head_ct(tmp_path):
    """The tests' tiny projects convert slices to 32 px: the skull is a pixel wide there."""
    write_study(tmp_path / "head", 3)
    assert len(read_study(tmp_path / "head", ConvertConfig(size=32, workers=1)).slices) == 3
    with pytest.raises(StudyInputError, match="not a head CT"):
        read_study(NOT_HEAD_CT["abdomen-dicom"](tmp_path / "abdomen"), ConvertConfig(size=32, workers=1))

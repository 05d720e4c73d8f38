"""Every way a file can be unusable gets a specific reason; odd-but-valid files still read."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from ich.io.dicom import read_ct_slice, read_dicom_header
from ich.io.image_files import read_windowed_image
from ich.io.nifti import NAN_AS, iter_nifti_slices
from ich.io.unusable import UnusableSliceError
from tests.dicom_fixtures import (
    BAD_VARIANTS,
    VALID_VARIANTS,
    make_ct_dataset,
    phantom_hu,
    save,
    write_ct_slice,
    write_missing_position,
    write_study,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = write_ct_slice(tmp_path_factory.mktemp("ref") / "ref.dcm")
    return read_ct_slice(path)


@pytest.mark.parametrize("name", sorted(BAD_VARIANTS))
def test_bad_variant_is_quarantined_with_specific_reason(tmp_path, name):
    writer, fragment = BAD_VARIANTS[name]
    path = writer(tmp_path / f"{name}.dcm")
    with pytest.raises(UnusableSliceError) as info:
        read_ct_slice(path)
    assert fragment in info.value.reason, info.value.reason
    assert str(path) not in info.value.reason  # the caller prefixes the file
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {info.value.reason}"


@pytest.mark.parametrize("name", sorted(VALID_VARIANTS))
def test_valid_variant_reads_to_the_same_hu(tmp_path, name, reference):
    ct = read_ct_slice(VALID_VARIANTS[name](tmp_path / f"{name}.dcm"))
    assert ct.hu.dtype == np.float32
    np.testing.assert_array_equal(ct.hu, reference.hu)


def test_reference_slice_fields(reference):
    assert reference.shape == (256, 256)
    assert reference.patient_id == "FIXTURE-001"
    assert reference.z == 0.0 and reference.z_source == "ImagePositionPatient"
    assert reference.pixel_spacing == (0.5, 0.5) and reference.slice_thickness == 5.0
    assert reference.window_center == 40 and reference.window_width == 80
    assert reference.notes == ()
    np.testing.assert_allclose(reference.hu, phantom_hu(256, 256, seed=0))


def test_multi_valued_window_takes_first_and_records(tmp_path):
    ct = read_ct_slice(VALID_VARIANTS["multi_window"](tmp_path / "w.dcm"))
    assert (ct.window_center, ct.window_width) == (40.0, 80.0)
    assert ct.notes == ("multi-valued WindowCenter/WindowWidth ([40.0, 450.0] / [80.0, 1500.0]): first value used",)


def test_monochrome1_keeps_hu_and_says_so(tmp_path):
    ct = read_ct_slice(VALID_VARIANTS["monochrome1"](tmp_path / "m1.dcm"))
    assert ct.photometric == "MONOCHROME1"
    assert any("MONOCHROME1" in n for n in ct.notes)


def test_no_preamble_is_read_with_force_and_noted(tmp_path):
    ct = read_ct_slice(VALID_VARIANTS["no_preamble"](tmp_path / "np.dcm"))
    assert any("force=True" in n for n in ct.notes)


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    hu = phantom_hu(256, 256, seed=3)
    ct = read_ct_slice(write_ct_slice(tmp_path / "s.dcm", hu=hu, slope=0.5, intercept=-2048))
    np.testing.assert_allclose(ct.hu, hu, atol=0.5)


def test_bits_stored_12_unsigned_masks_unused_high_bits(tmp_path):
    ds = make_ct_dataset(pixel_representation=0)
    stored = np.frombuffer(ds.PixelData, dtype=np.uint16).reshape(256, 256).copy()
    ds.BitsStored, ds.HighBit = 12, 11
    noisy = stored | 0xF000  # junk in the 4 unused bits (e.g. old overlay planes)
    ds.PixelData = noisy.tobytes()
    ct = read_ct_slice(save(ds, tmp_path / "b12.dcm"))
    np.testing.assert_array_equal(ct.hu, (stored & 0x0FFF).astype(np.float32) - 1024)


def test_accepted_sizes_parameter(tmp_path):
    path = write_ct_slice(tmp_path / "s.dcm", rows=300, cols=300, hu=np.zeros((300, 300), np.float32))
    assert read_ct_slice(path).shape == (300, 300)  # inside the default 256..1024
    with pytest.raises(UnusableSliceError, match=r"unexpected matrix size 300x300: accepted rows/columns are 256, 512"):
        read_ct_slice(path, accepted_sizes={256, 512})
    small = BAD_VARIANTS["bad_matrix"][0](tmp_path / "small.dcm")
    assert read_ct_slice(small, accepted_sizes=None).shape == (128, 128)


def test_missing_position_fallbacks(tmp_path):
    path = write_missing_position(tmp_path / "p.dcm")
    ct = read_ct_slice(path, allow_z_fallback=True)
    assert ct.z_source == "SliceLocation" and ct.z == 0.0
    assert any("SliceLocation" in n for n in ct.notes)

    ds = make_ct_dataset(instance_number=7)
    del ds.ImagePositionPatient
    del ds.SliceLocation
    path = save(ds, tmp_path / "i.dcm")
    with pytest.raises(UnusableSliceError, match="missing ImagePositionPatient"):
        read_ct_slice(path)
    ct = read_ct_slice(path, allow_z_fallback=True)
    assert ct.z_source == "InstanceNumber" and ct.z == 7.0
    assert any("not mm" in n for n in ct.notes)

    del ds.InstanceNumber
    path = save(ds, tmp_path / "none.dcm")
    with pytest.raises(UnusableSliceError, match="missing ImagePositionPatient, SliceLocation and InstanceNumber"):
        read_ct_slice(path, allow_z_fallback=True)


def test_missing_patient_id_can_be_allowed(tmp_path):
    path = BAD_VARIANTS["missing_patient"][0](tmp_path / "p.dcm")
    assert read_ct_slice(path, require_patient_id=False).patient_id == ""


def test_obliquity_check_can_be_disabled(tmp_path):
    path = BAD_VARIANTS["sagittal"][0](tmp_path / "s.dcm")
    assert read_ct_slice(path, max_obliquity_deg=None).shape == (256, 256)


def test_feet_first_orientation_still_gives_head_positive_z(tmp_path):
    path = write_ct_slice(tmp_path / "ff.dcm", z=42.0, orientation=(-1, 0, 0, 0, 1, 0))
    assert read_ct_slice(path).z == pytest.approx(42.0)


def test_missing_spacing_is_noted_not_fatal(tmp_path):
    ds = make_ct_dataset()
    del ds.PixelSpacing
    ct = read_ct_slice(save(ds, tmp_path / "nosp.dcm"))
    assert np.isnan(ct.pixel_spacing).all()
    assert any("PixelSpacing" in n for n in ct.notes)


def _raw(ds, tag: int, vr: str, value: bytes) -> None:
    """Put a raw (unvalidated) element, as a scanner would write it."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def test_unparseable_values_do_not_crash(tmp_path):
    ds = make_ct_dataset()
    _raw(ds, 0x00281050, "DS", b"abc ")  # WindowCenter
    _raw(ds, 0x00180050, "DS", b"x5")  # SliceThickness
    ct = read_ct_slice(save(ds, tmp_path / "odd.dcm"))
    assert ct.window_center is None and ct.slice_thickness is None
    _raw(ds, 0x00281053, "DS", b"x ")  # RescaleSlope
    with pytest.raises(UnusableSliceError, match="invalid RescaleSlope"):
        read_ct_slice(save(ds, tmp_path / "slope.dcm"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UnusableSliceError, match="file not found"):
        read_ct_slice(tmp_path / "nope.dcm")
    with pytest.raises(UnusableSliceError, match="not a regular file"):
        read_ct_slice(tmp_path)


def test_write_study_is_one_series_with_increasing_z(tmp_path):
    paths = write_study(tmp_path / "study", n_slices=4, lesion_slices=(2,))
    slices = [read_ct_slice(p) for p in paths]
    assert len({s.study_uid for s in slices}) == 1 and len({s.series_uid for s in slices}) == 1
    assert [s.z for s in slices] == [0.0, 5.0, 10.0, 15.0]
    assert len({s.sop_uid for s in slices}) == 4
    assert (slices[2].hu == 70).sum() > 0 and (slices[1].hu > 60).sum() < (slices[2].hu > 60).sum()


def test_read_dicom_header(tmp_path):
    path = write_ct_slice(tmp_path / "h.dcm", patient_id="H1")
    assert read_dicom_header(path, ["PatientID"]).PatientID == "H1"
    with pytest.raises(UnusableSliceError, match="not a DICOM file"):
        read_dicom_header(BAD_VARIANTS["garbage"][0](tmp_path / "g.dcm"))


# ----------------------------------------------------------------------------- bad images / volumes


def test_bad_images_have_reasons(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = {
        truncated: "truncated or corrupted image",
        text: "not an image file",
        empty: "empty image file",
        tmp_path / "missing.png": "image file not found",
    }
    for path, fragment in cases.items():
        with pytest.raises(UnusableSliceError) as info:
            read_windowed_image(path)
        assert fragment in info.value.reason
    other = tmp_path / "bone.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(other)
    with pytest.raises(UnusableSliceError, match="bone window image is 32x32, brain window image is 64x64"):
        read_windowed_image(good, bone_path=other)


def test_bad_nifti_have_reasons(tmp_path):
    import nibabel as nib

    text = tmp_path / "x.nii"
    text.write_text("nope")
    with pytest.raises(UnusableSliceError, match="unreadable NIfTI"):
        list(iter_nifti_slices(text))
    flat = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.int16), np.eye(4)), flat)
    with pytest.raises(UnusableSliceError, match=r"not a 3D volume \(shape \(4, 4\)\)"):
        list(iter_nifti_slices(flat))
    vol = tmp_path / "v.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), vol)
    with pytest.raises(UnusableSliceError, match=r"slice index 3 outside the volume \(0..2\)"):
        list(iter_nifti_slices(vol, only=3))
    nan = tmp_path / "nan.nii"
    data = np.zeros((4, 4, 2), np.float32)
    data[0, 0, 1] = np.nan  # outside a resampled volume's circular field of view: air
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan)
    assert [s.data.min() for s in iter_nifti_slices(nan)] == [0.0, NAN_AS]
    data[0, 0, 1] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan)
    with pytest.raises(UnusableSliceError, match="infinite voxel values in slice 1"):
        list(iter_nifti_slices(nan))
    unknown = nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), None)
    unknown.header.set_zooms((0, 0, 0))
    unknown.header.set_qform(None, code=0)
    unknown.header.set_sform(None, code=0)
    nib.save(unknown, tmp_path / "zero.nii")
    with pytest.raises(
        UnusableSliceError, match=r"voxel size 0 x 0 x 0 mm in its header \(pixdim\): the spacing is unknown"
    ):
        list(iter_nifti_slices(tmp_path / "zero.nii"))
    header = nib.Nifti1Header()  # a header declaring a huge volume over a few bytes: never read whole
    header.set_data_shape((16000, 16000, 4))
    header.set_data_dtype(np.int16)
    (tmp_path / "huge.nii").write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(UnusableSliceError, match="declares 16000 x 16000 x 4 voxels: planes over 2048"):
        list(iter_nifti_slices(tmp_path / "huge.nii"))
    with pytest.raises(UnusableSliceError, match="file not found"):
        list(iter_nifti_slices(tmp_path / "missing.nii"))

"""read_ct_slice on real DICOM files: pydicom's bundled test files and the pydicom-data package.

Only files already on disk are used (``download=False``); a missing one skips its test.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from ich.io import dicom as dicom_io
from ich.io.dicom import CTSlice, read_ct_slice
from ich.io.unusable import UnusableSliceError


def data_file(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = get_testdata_file(name, download=False)
        except Exception:  # pragma: no cover - depends on the installed data packages
            found = None
    if not found:
        pytest.skip(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return Path(found)


def relabel_as_ct(source: Path, dest: Path) -> Path:
    """Copy a non-CT test file as a CT slice (header only; pixel data bytes untouched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(source)
        ds.Modality = "CT"
        ds.RescaleSlope = ds.get("RescaleSlope", 1)
        ds.RescaleIntercept = ds.get("RescaleIntercept", 0)
        ds.ImagePositionPatient = ds.get("ImagePositionPatient", [0, 0, 0])
        ds.ImageOrientationPatient = ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])
        ds.PatientID = ds.get("PatientID") or "TEST"
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            if not ds.get(keyword):
                setattr(ds, keyword, pydicom.uid.generate_uid())
        ds.save_as(dest)
    return dest


# ----------------------------------------------------------------------------- uncompressed CT


def test_ct_small_reads_to_plausible_hu():
    path = data_file("CT_small.dcm")
    with pytest.raises(UnusableSliceError, match="unexpected matrix size 128x128"):
        read_ct_slice(path)  # 128x128 is outside the default 256..1024
    ct = read_ct_slice(path, accepted_sizes=None)
    assert isinstance(ct, CTSlice)
    assert ct.hu.dtype == np.float32 and ct.shape == (128, 128)
    # what is actually there: air-like corners around -850 HU, soft tissue around 0 HU
    assert ct.hu[:8, :8].mean() < -800
    assert -100 < float(np.median(ct.hu)) < 100
    assert ct.hu.min() >= -1100 and ct.hu.max() < 3100
    assert ct.patient_id == "1CT1"
    assert ct.z == pytest.approx(-75.699997)
    assert ct.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert ct.slice_thickness == pytest.approx(5.0)
    assert ct.z_source == "ImagePositionPatient"
    assert ct.sop_uid and ct.study_uid and ct.series_uid


def test_cq500_head_slice_has_brain_and_skull_hu():
    """693_UNCR is a CQ500 head CT slice shipped by pydicom-data."""
    ct = read_ct_slice(data_file("693_UNCR.dcm"))
    assert ct.shape == (512, 512)
    assert ct.patient_id == "CQ500-CT-310"
    assert ct.hu.min() == -3024  # the scanner's padding outside the field of view
    assert 15 < ct.hu[246:266, 246:266].mean() < 45  # brain parenchyma in the centre
    assert 0.01 < (ct.hu > 700).mean() < 0.10  # skull
    assert ct.window_center == 40 and ct.window_width == 100
    assert ct.z == pytest.approx(47.0)


# ----------------------------------------------------------------------------- compressed twins


@pytest.mark.parametrize(
    ("compressed", "uncompressed"),
    [
        ("693_J2KR.dcm", "693_UNCR.dcm"),  # JPEG 2000 lossless CT
        ("693_J2KI.dcm", "693_UNCI.dcm"),  # JPEG 2000 lossy CT and its decoded twin
    ],
)
def test_compressed_ct_decodes_identically_to_its_twin(compressed, uncompressed):
    a = read_ct_slice(data_file(compressed))
    b = read_ct_slice(data_file(uncompressed))
    assert a.transfer_syntax.startswith("1.2.840.10008.1.2.4.9")
    np.testing.assert_array_equal(a.hu, b.hu)
    assert (a.sop_uid, a.z, a.pixel_spacing) == (b.sop_uid, b.z, b.pixel_spacing)


@pytest.mark.parametrize(
    ("compressed", "uncompressed", "syntax"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", "1.2.840.10008.1.2.4.80"),  # JPEG-LS
        ("MR_small_jp2klossless.dcm", "MR_small.dcm", "1.2.840.10008.1.2.4.90"),  # JPEG 2000
        ("MR_small_RLE.dcm", "MR_small.dcm", "1.2.840.10008.1.2.5"),  # RLE
        ("JPEG2000.dcm", "JPEG2000_UNC.dcm", "1.2.840.10008.1.2.4.91"),  # JPEG 2000 (part 1)
    ],
)
def test_compressed_syntaxes_decode_identically(tmp_path, compressed, uncompressed, syntax):
    """Non-CT twins relabelled as CT (pixel data untouched) exercise each decoder."""
    a = read_ct_slice(relabel_as_ct(data_file(compressed), tmp_path / "a.dcm"), accepted_sizes=None)
    b = read_ct_slice(relabel_as_ct(data_file(uncompressed), tmp_path / "b.dcm"), accepted_sizes=None)
    assert a.transfer_syntax == syntax
    np.testing.assert_array_equal(a.hu, b.hu)


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("JPEG-LL.dcm", "1.2.840.10008.1.2.4.70"),  # JPEG lossless SV1 (libjpeg)
        ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51"),  # JPEG extended 12-bit (libjpeg)
    ],
)
def test_jpeg_family_decodes(tmp_path, name, syntax):
    ct = read_ct_slice(relabel_as_ct(data_file(name), tmp_path / "x.dcm"), accepted_sizes=None)
    assert ct.transfer_syntax == syntax
    assert ct.shape == (1024, 256)
    reference = read_ct_slice(relabel_as_ct(data_file("JPEG2000_UNC.dcm"), tmp_path / "u.dcm"), accepted_sizes=None)
    # copies of the same NM image encoded separately: same anatomy (not bit-identical)
    assert np.corrcoef(ct.hu.ravel(), reference.hu.ravel())[0, 1] > 0.9


def test_jpeg_lossless_ct_with_multivalued_window():
    """bad_sequence.dcm: a real JPEG-lossless CT slice with WindowCenter [40, 450]."""
    ct = read_ct_slice(data_file("bad_sequence.dcm"))
    assert ct.transfer_syntax == "1.2.840.10008.1.2.4.70"
    assert ct.window_center == 40 and ct.window_width == 350
    assert any("multi-valued WindowCenter" in note for note in ct.notes)
    assert -1100 < ct.hu.min() and ct.hu.max() < 3100


def test_oblique_gantry_tilt_uses_distance_along_the_normal():
    """J2K_pixelrep_mismatch.dcm: JPEG 2000 CT with a ~22 degree tilted orientation."""
    ct = read_ct_slice(data_file("J2K_pixelrep_mismatch.dcm"))
    ds = pydicom.dcmread(data_file("J2K_pixelrep_mismatch.dcm"), stop_before_pixels=True)
    position = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    normal /= np.linalg.norm(normal)
    assert ct.z == pytest.approx(float(position @ normal))
    assert ct.z != pytest.approx(float(position[2]))
    with pytest.raises(UnusableSliceError, match="not an axial slice"):
        read_ct_slice(data_file("J2K_pixelrep_mismatch.dcm"), max_obliquity_deg=10)


def test_explicit_vr_un_j2k_ct_without_window():
    ct = read_ct_slice(data_file("explicit_VR-UN.dcm"))
    assert ct.window_center is None and ct.shape == (512, 512)
    assert ct.hu.min() == -1024


# ----------------------------------------------------------------------------- real bad files


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("MR_small.dcm", "non-CT modality 'MR'"),
        ("SC_rgb.dcm", "non-CT modality 'OT'"),
        ("RG1_UNCR.dcm", "non-CT modality 'CR'"),
        ("rtdose_1frame.dcm", "non-CT modality 'RTDOSE'"),
        ("eCT_Supplemental.dcm", "multi-frame image (2 frames)"),
        ("MR_truncated.dcm", "truncated file: ends inside element (7FE0,0010)"),
        ("no_meta.dcm", "not a DICOM file"),
        ("meta_missing_tsyntax.dcm", "missing Modality"),
    ],
)
def test_real_unusable_files_are_quarantined_with_reason(name, fragment):
    with pytest.raises(UnusableSliceError) as info:
        read_ct_slice(data_file(name))
    assert fragment in info.value.reason
    assert info.value.path.endswith(name)
    assert str(info.value).startswith(info.value.path)


def test_real_truncated_pixel_data(tmp_path):
    dest = relabel_as_ct(data_file("MR_small.dcm"), tmp_path / "t.dcm")
    data = dest.read_bytes()
    dest.write_bytes(data[:-1000])  # an interrupted copy: the end of the pixel data is missing
    with pytest.raises(UnusableSliceError, match=r"truncated file: ends inside element \(7FE0,0010\)"):
        read_ct_slice(dest, accepted_sizes=None)


def test_real_truncated_compressed_file(tmp_path):
    """pydicom silently returns an empty dataset here; we must call it truncated."""
    dest = tmp_path / "cut.dcm"
    data = data_file("693_J2KR.dcm").read_bytes()
    dest.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UnusableSliceError, match="truncated file: ends inside an undefined-length element"):
        read_ct_slice(dest)


def test_real_undecodable_jpeg_is_quarantined(tmp_path):
    """JPEG-lossy.dcm: 12-bit JPEG that neither libjpeg nor Pillow decode."""
    dest = relabel_as_ct(data_file("JPEG-lossy.dcm"), tmp_path / "j.dcm")
    with pytest.raises(UnusableSliceError, match=r"pixel data cannot be decoded \(JPEG Extended"):
        read_ct_slice(dest, accepted_sizes=None)


def test_missing_decoder_names_syntax_and_plugin(monkeypatch, tmp_path):
    jpegls = relabel_as_ct(data_file("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "jls.dcm")

    class NoPlugin:
        is_available = False

    monkeypatch.setattr(dicom_io, "_get_decoder", lambda uid: NoPlugin())
    with pytest.raises(UnusableSliceError) as info:
        read_ct_slice(data_file("693_J2KR.dcm"))
    assert info.value.reason == (
        "compressed transfer syntax JPEG 2000 Image Compression (Lossless Only) "
        "(1.2.840.10008.1.2.4.90) has no installed decoder: pip install pylibjpeg pylibjpeg-openjpeg"
    )
    with pytest.raises(UnusableSliceError, match="JPEG-LS Lossless.*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_ct_slice(jpegls, accepted_sizes=None)


def test_installed_decoders_cover_the_usual_syntaxes():
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    for uid in (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    ):
        assert get_decoder(UID(uid)).is_available, uid


def test_an_empty_file_is_called_empty_when_only_its_header_is_read(tmp_path):
    (tmp_path / "0001").write_bytes(b"")
    with pytest.raises(UnusableSliceError, match=r"empty file \(0 bytes\)"):
        dicom_io.read_dicom_header(tmp_path / "0001")

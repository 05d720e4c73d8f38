"""Source adapters (raw-cohort contract), NIfTI/image readers and download helpers, offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from ich.io.digest import sha256_file
from ich.io.image_files import compose_windows, image_channels, read_grey, read_image, read_windowed_image
from ich.io.nifti import iter_nifti_slices, nifti_slice_count, read_nifti_mask_slice
from ich.io.raw_cohort import LABEL_COLUMNS, MANIFEST_COLUMNS, read_raw_cohort, write_raw_cohort
from ich.labels import LABELS
from ich.sources import SOURCES, fetch, materialise, source_options
from ich.sources.common import SourceError
from ich.sources.cq500 import majority_labels
from ich.sources.rsna import pivot_labels
from tests.dicom_fixtures import write_ct_slice, write_study


def check_contract(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    manifest, labels, source = read_raw_cohort(out)
    assert list(manifest.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert list(labels.columns[: len(LABEL_COLUMNS)]) == list(LABEL_COLUMNS)
    assert {"name", "synthetic", "has_hu", "citation"} <= set(source)
    assert set(manifest["format"]) <= {"dicom", "nifti", "image"}
    assert set(labels["level"]) <= {"slice", "study"}
    assert set(labels["any"]) <= {"0", "1"}
    for label in LABELS[1:]:
        assert set(labels[label]) <= {"0", "1", ""}
    ided = manifest[manifest["format"] != "dicom"]
    for column in ("patient_id", "study_id", "series_id", "slice_key"):
        assert (ided[column] != "").all()
    return manifest, labels, source


# ----------------------------------------------------------------------------- dispatch


def test_dispatch_names_and_unknown_source(tmp_path):
    assert set(SOURCES) == {"synthetic", "ct-ich", "rsna", "cq500", "folder", "images", "combined"}
    with pytest.raises(ValueError, match="unknown source 'kaggle'"):
        materialise("kaggle", {}, tmp_path)


def test_synthetic_dispatches_lazily_to_ich_synth(monkeypatch, tmp_path):
    import ich.synth

    calls = []
    monkeypatch.setattr(ich.synth, "write_cohort", lambda out, **kw: calls.append((out, kw)))
    materialise("synthetic", {"n_patients": 2, "seed": 1, "path": ""}, tmp_path)
    assert calls == [(tmp_path, {"n_patients": 2, "seed": 1})]


def test_local_source_without_path_is_a_clear_error(tmp_path):
    for name in ("ct-ich", "rsna", "cq500", "folder", "images"):
        with pytest.raises(SourceError, match="parameter 'path'"):
            materialise(name, {"path": ""}, tmp_path / name)
    with pytest.raises(SourceError, match="does not exist"):
        materialise("images", {"path": str(tmp_path / "nowhere")}, tmp_path / "x")


# ----------------------------------------------------------------------------- common writer


def test_write_raw_cohort_validates(tmp_path):
    good_manifest = [
        {
            "path": "a.png",
            "format": "image",
            "patient_id": "p",
            "study_id": "s",
            "series_id": "e",
            "slice_key": "k",
            "z": 1,
        }
    ]
    good_labels = [{"level": "slice", "key": "k", "any": 1}]
    info = {"name": "t", "synthetic": False, "has_hu": False, "citation": ""}
    write_raw_cohort(tmp_path, good_manifest, good_labels, info, [{"path": "x", "reason": "y"}])
    manifest, labels, source = check_contract(tmp_path)
    assert labels.iloc[0]["epidural"] == ""  # unknown subtypes stay empty
    assert source["issues"] == [{"path": "x", "reason": "y"}] and source["counts"]["manifest_image"] == 1
    assert not list(tmp_path.glob("*.partial"))

    bad_cases = [
        ([{**good_manifest[0], "format": "jpeg"}], good_labels, info, "unknown format"),
        ([{**good_manifest[0], "patient_id": ""}], good_labels, info, "patient_id is required"),
        (good_manifest * 2, good_labels, info, "duplicate path"),
        (good_manifest, good_labels * 2, info, "duplicate keys"),
        (good_manifest, [{"level": "series", "key": "k", "any": 1}], info, "unknown level"),
        (good_manifest, [{"level": "slice", "key": "k", "any": 2}], info, "not a 0/1 label"),
        (good_manifest, [{"level": "slice", "key": "k", "any": ""}], info, "'any' is missing"),
        (good_manifest, good_labels, {"name": "t"}, "source.json lacks"),
        ([], good_labels, info, "empty manifest"),
    ]
    for manifest_rows, label_rows, source_info, message in bad_cases:
        with pytest.raises((SourceError, ValueError), match=message):
            write_raw_cohort(tmp_path / "bad", manifest_rows, label_rows, source_info)


# ----------------------------------------------------------------------------- images


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_read_image_channel_mapping(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    out = read_image(_png(tmp_path / "g.png", grey))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out == grey[..., None]).all()

    grey16 = grey.astype(np.uint16) * 257
    assert (read_image(_png(tmp_path / "g16.png", grey16))[..., 0] == grey).all()

    rgb = np.dstack([grey, 255 - grey, np.full_like(grey, 7)])
    assert (read_image(_png(tmp_path / "rgb.png", rgb)) == rgb).all()
    rgba = np.dstack([rgb, np.zeros_like(grey)])
    assert (read_image(_png(tmp_path / "rgba.png", rgba)) == rgb).all()  # alpha dropped

    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    palette.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (8, 8, 3)

    la = Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), mode="LA")
    la.save(tmp_path / "la.png")
    assert (read_image(tmp_path / "la.png")[..., 2] == grey).all()

    assert read_grey(tmp_path / "rgb.png").shape == (8, 8)
    brain, bone = grey, 255 - grey
    stacked = compose_windows(brain, bone)
    assert (stacked[..., 0] == brain).all() and (stacked[..., 1] == brain).all() and (stacked[..., 2] == bone).all()
    assert (compose_windows(brain)[..., 2] == brain).all()
    _png(tmp_path / "bone.png", bone)
    two = read_windowed_image(tmp_path / "g.png", bone_path=tmp_path / "bone.png")
    assert (two == stacked).all()
    assert (read_windowed_image(tmp_path / "g.png", bone_path="") == out).all()
    # what the index's channels column says about each
    assert image_channels(out, bone=False) == "grey"
    assert image_channels(read_image(tmp_path / "rgb.png"), bone=False) == "rgb"
    assert image_channels(two, bone=True) == "brain+bone"


CT_ICH_HEADER = (
    "PatientNumber,SliceNumber,Intraventricular,Intraparenchymal,Subarachnoid,Epidural,Subdural,"
    "No_Hemorrhage,Fracture_Yes_No"
)


def _ct_ich_jpg_tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [CT_ICH_HEADER]
    for patient, n in ((49, 3), (50, 2)):
        for s in range(1, n + 1):
            positive = patient == 50 and s == 2
            rows.append(f"{patient},{s},0,{int(positive)},0,0,0,{int(not positive)},0")
            for window in ("brain", "bone"):
                if (patient, s, window) in ((50, 1, "bone"),):
                    continue
                if (patient, s, window) == (49, 3, "brain"):
                    continue
                path = root / "Patients_CT" / f"{patient:03d}" / window / f"{s}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(path)
    extra = root / "Patients_CT" / "050" / "brain" / "9.jpg"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(extra)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "Patients_CT" / "050" / "brain" / "2_HGE_Seg.jpg")
    (root / "hemorrhage_diagnosis.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    return root


def test_images_ct_ich_jpg_layout(tmp_path):
    root = _ct_ich_jpg_tree(tmp_path / "ctich")
    out = tmp_path / "raw"
    materialise("images", {"path": str(root)}, out)  # layout auto-detected
    manifest, labels, source = check_contract(out)
    assert source["name"] == "ct-ich-jpg" and source["has_hu"] is False and source["synthetic"] is False
    assert "R = brain window, G = brain window, B = bone window" in source["channels"]
    assert len(labels) == 5 and labels["any"].tolist() == ["0", "0", "0", "0", "1"]
    assert labels.set_index("key").loc["ctich_050_2", "intraparenchymal"] == "1"
    keys = manifest["slice_key"].tolist()
    assert "ctich_049_3" not in keys  # brain image missing: no manifest row, label kept
    assert "ctich_050_9" in keys  # image on disk without a label row: kept for convert to report
    row = manifest.set_index("slice_key").loc["ctich_050_1"]
    assert row["bone_path"] == "" and "bone window image missing" in row["note"]
    assert manifest.set_index("slice_key").loc["ctich_050_2", "mask_path"].endswith("2_HGE_Seg.jpg")
    assert all(Path(p).is_absolute() for p in manifest["path"])
    reasons = {Path(i["path"]).name + ":" + i["reason"].split(":")[0] for i in source["issues"]}
    assert reasons == {
        "3.jpg:brain window image missing",
        "1.jpg:bone window image missing",
        "9.jpg:image not listed in hemorrhage_diagnosis.csv",
    }
    first = manifest.iloc[0]
    image = read_windowed_image(first["path"], first["bone_path"] or None)
    assert image.shape == (20, 20, 3)


def test_images_generic_layout(tmp_path):
    root = tmp_path / "pngs"
    _png(root / "a" / "1.png", np.full((10, 12), 50, np.uint8))
    _png(root / "a" / "2.png", np.full((10, 12), 60, np.uint8))
    _png(root / "a" / "2_mask.png", np.zeros((10, 12), np.uint8))
    _png(root / "b" / "1.png", np.zeros((10, 12, 3), np.uint8))
    pd.DataFrame(
        {
            "image": ["a/1.png", "a/2.png", "b/1.png", "b/missing.png"],
            "patient_id": ["A", "A", "B", "B"],
            "any": [0, 1, 0, 1],
            "subdural": [0, 1, 0, ""],
            "mask": ["", "a/2_mask.png", "", ""],
        }
    ).to_csv(root / "labels.csv", index=False)
    out = tmp_path / "raw"
    materialise("images", {"path": str(root), "layout": "generic", "name": "my-pngs", "citation": "me"}, out)
    manifest, labels, source = check_contract(out)
    assert source["name"] == "my-pngs" and source["has_hu"] is False
    assert manifest["slice_key"].tolist() == ["a/1.png", "a/2.png", "b/1.png"]
    assert manifest["study_id"].tolist() == ["A", "A", "B"] and manifest["z"].tolist() == ["0", "1", "0"]
    assert manifest["mask_path"].iloc[1].endswith("2_mask.png")
    assert labels["subdural"].tolist() == ["0", "1", "0", ""] and labels["epidural"].tolist() == [""] * 4
    assert [i["reason"] for i in source["issues"]] == ["image missing: label row without an image"]
    assert source["single_slice_studies"] is False  # study A has two images


def test_two_cohorts_combined_keep_their_ids_and_each_slice_its_cohort(tmp_path):
    """A DICOM cohort and a pre-windowed one as one raw cohort: converted, every slice says its
    cohort, ids are those each source gives, and a patient id found in both is refused."""
    from ich.data.cohort_conversion import ConvertConfig, convert_cohort
    from ich.data.split import patient_labels

    root = tmp_path / "pngs"
    for patient in ("A", "B"):
        for z in range(2):
            _png(root / patient / f"{z}.png", np.full((40, 40), 60 + 40 * z, np.uint8))
    pd.DataFrame(
        {"image": ["A/0.png", "A/1.png", "B/0.png", "B/1.png"], "patient_id": ["A", "A", "B", "B"], "any": [1, 1, 0, 0]}
    ).to_csv(root / "labels.csv", index=False)
    cohorts = {
        "phantoms": {"source": "synthetic", "n_patients": 2, "slices_per_study": 3, "seed": 0},
        "site_b": {"source": "images", "path": str(root), "layout": "generic", "name": "site-b"},
    }
    raw = tmp_path / "raw"
    materialise("combined", {"cohorts": cohorts}, raw)
    manifest, _, source = check_contract(raw)
    assert manifest["cohort"].value_counts().to_dict() == {"phantoms": 6, "site_b": 4}
    assert source["name"] == "synthetic + site-b" and set(source["cohorts"]) == {"phantoms", "site_b"}
    index, quarantine = convert_cohort(raw, tmp_path / "converted", ConvertConfig(size=32, workers=1))
    assert quarantine.empty and index["cohort"].value_counts().to_dict() == {"phantoms": 6, "site_b": 4}
    assert patient_labels(index).groupby("cohort")["any"].count().to_dict() == {"phantoms": 2, "site_b": 2}
    with pytest.raises(ValueError, match="more than one cohort"):
        patient_labels(index.assign(patient_id=index["patient_id"].iloc[0]))

    clash = {**cohorts, "again": {"source": "images", "path": str(root), "layout": "generic"}}
    with pytest.raises(SourceError, match="patient id 'A' is in cohorts 'site_b' and 'again'"):
        materialise("combined", {"cohorts": clash}, tmp_path / "clash")
    with pytest.raises(SourceError, match="two or more"):
        materialise("combined", {"cohorts": {"only": cohorts["site_b"]}}, tmp_path / "one")


def test_images_of_single_slices_from_another_site_survive_convert(tmp_path):
    """One pre-windowed image per patient, of several sizes: each image is its own study, kept."""
    from ich.data.cohort_conversion import ConvertConfig, convert_cohort

    root = tmp_path / "site"
    sizes = [(40, 40), (30, 50), (64, 48)]
    for i, shape in enumerate(sizes):
        _png(root / f"{i}.png", np.full(shape, 40 * (i + 1), np.uint8))
    pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "patient_id": ["p0", "p1", "p2"], "any": [1, 0, 1]}).to_csv(
        root / "labels.csv", index=False
    )
    raw = tmp_path / "raw"
    materialise("images", {"path": str(root)}, raw)
    assert json.loads((raw / "source.json").read_text())["single_slice_studies"] is True
    index, quarantine = convert_cohort(raw, tmp_path / "converted", ConvertConfig(size=32, min_slices_per_study=2))
    assert len(index) == 3 and quarantine.empty
    assert (index["channels"] == "grey").all()  # one window each: the index says so


def test_a_conversion_that_keeps_nothing_fails_naming_the_reasons(tmp_path):
    """DICOM studies of one slice each are all below min_slices_per_study: an error, not 0 slices."""
    from ich.data.cohort_conversion import ConvertConfig, convert_cohort

    root = tmp_path / "site"
    for i in range(2):
        _png(root / f"{i}.png", np.full((20, 20), 90, np.uint8))
    pd.DataFrame({"image": ["0.png", "1.png"], "patient_id": ["p0", "p1"], "any": [1, 0]}).to_csv(
        root / "labels.csv", index=False
    )
    raw = tmp_path / "raw"
    materialise("images", {"path": str(root)}, raw)
    source = json.loads((raw / "source.json").read_text())
    (raw / "source.json").write_text(json.dumps({**source, "single_slice_studies": False}))
    with pytest.raises(ValueError, match=r"every one of 2 source items was quarantined \(2 x study has fewer than 2"):
        convert_cohort(raw, tmp_path / "converted", ConvertConfig(size=16, min_slices_per_study=2))


def test_images_without_a_known_layout_say_every_place_they_looked(tmp_path):
    (tmp_path / "site").mkdir()
    with pytest.raises(SourceError) as error:
        materialise("images", {"path": str(tmp_path / "site")}, tmp_path / "raw")
    message = str(error.value)
    for place in ("Patients_CT", "hemorrhage_diagnosis.csv", "head_ct", "labels.csv (generic"):
        assert place in message, message


def test_the_source_section_path_wins_and_a_conflict_is_an_error(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert source_options({"source": "images", "path": "", "images": {"path": str(a)}})[1]["path"] == str(a)
    assert source_options({"source": "images", "path": str(a), "images": {"layout": "generic"}})[1] == {
        "layout": "generic",
        "path": str(a),
    }
    assert source_options({"source": "ct-ich", "path": str(a), "ct_ich": {"path": str(a)}})[0] == "ct-ich"
    with pytest.raises(SourceError, match=r"download.path .* and download.images.path .* disagree"):
        source_options({"source": "images", "path": str(a), "images": {"path": str(b)}})


def test_images_headct_layout(tmp_path):
    root = tmp_path / "headct"
    for i in range(3):
        _png(root / "head_ct" / "head_ct" / f"{i:03d}.png", np.full((30, 40, 3), i * 50, np.uint8))
    (root / "labels.csv").write_text("id, hemorrhage\n0,1\n1,0\n2,1\n3,0\n")
    out = tmp_path / "raw"
    materialise("images", {"path": str(root)}, out)
    manifest, labels, source = check_contract(out)
    assert source["name"] == "head-ct-hemorrhage" and "own patient" in source["note"]
    assert manifest["patient_id"].tolist() == ["headct_000", "headct_001", "headct_002"]
    assert labels["any"].tolist() == ["1", "0", "1", "0"]
    assert len(source["issues"]) == 1


# ----------------------------------------------------------------------------- NIfTI / ct-ich


def _volume(shape=(6, 5, 4), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int16)


def test_nifti_orientation_is_independent_of_storage(tmp_path):
    vol = _volume()
    ras = np.diag([0.5, 0.7, 5.0, 1.0])
    ras[:3, 3] = [-10, -20, 30]
    nib.save(nib.Nifti1Image(vol, ras), tmp_path / "ras.nii")
    lps = ras.copy()  # same anatomy stored with x and y reversed (as many DICOM converters do)
    lps[0, 0], lps[1, 1] = -0.5, -0.7
    lps[0, 3], lps[1, 3] = -10 + 0.5 * 5, -20 + 0.7 * 4
    nib.save(nib.Nifti1Image(vol[::-1, ::-1, :], lps), tmp_path / "lps.nii.gz")
    swapped = np.zeros((4, 4))  # axes stored (A, R, S) with S reversed
    swapped[0, 1], swapped[1, 0], swapped[2, 2], swapped[3, 3] = 0.5, 0.7, -5.0, 1.0
    swapped[:3, 3] = [-10, -20, 45]
    nib.save(nib.Nifti1Image(np.transpose(vol, (1, 0, 2))[:, :, ::-1], swapped), tmp_path / "swapped.nii")

    a = list(iter_nifti_slices(tmp_path / "ras.nii"))
    b = list(iter_nifti_slices(tmp_path / "lps.nii.gz"))
    c = list(iter_nifti_slices(tmp_path / "swapped.nii"))
    assert [s.z for s in a] == [30, 35, 40, 45] == [s.z for s in b] == [s.z for s in c][::-1]
    for x, y, z in zip(a, b, c[::-1], strict=True):
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.data, z.data)
    # display orientation: rows run anterior -> posterior, columns patient right -> left
    np.testing.assert_array_equal(a[0].data, vol[::-1, ::-1, 0].T.astype(np.float32))
    assert a[0].spacing == pytest.approx((0.7, 0.5, 5.0))
    hu, spacing, z = next(iter_nifti_slices(tmp_path / "swapped.nii", only=0))
    np.testing.assert_array_equal(hu, a[3].data)
    assert next(iter_nifti_slices(tmp_path / "ras.nii", only=2, header_only=True)).data is None
    assert nifti_slice_count(tmp_path / "lps.nii.gz") == 4


def test_nifti_masks_align_with_ct(tmp_path):
    vol = _volume()
    mask = np.zeros(vol.shape, np.uint8)
    mask[1, 2, 3] = 255
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "ct.nii")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii")
    slices = list(iter_nifti_slices(tmp_path / "ct.nii"))
    masks = [read_nifti_mask_slice(tmp_path / "mask.nii", k) for k in range(len(slices))]
    assert [int(m.sum()) for m in masks] == [0, 0, 0, 1]
    m = masks[3]
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    assert slices[3].data[m == 1][0] == vol[1, 2, 3]


def _ct_ich_tree(root: Path) -> Path:
    (root / "ct_scans").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = [CT_ICH_HEADER]
    for patient, depth in ((49, 3), (50, 2), (59, 2)):
        for s in range(1, depth + 1):
            bleed = patient == 49 and s == 2
            rows.append(f"{patient},{s},0,0,0,{int(bleed)},0,{int(not bleed)},0")
        if patient == 59:
            continue  # the release omits some patients' scans
        volume = nib.Nifti1Image(_volume((8, 8, depth), patient), np.diag([0.4, 0.4, 5, 1]))
        nib.save(volume, root / "ct_scans" / f"{patient:03d}.nii")
        if patient == 49:
            mask = np.zeros((8, 8, depth), np.uint8)
            mask[2:4, 2:4, 1] = 255
            nib.save(nib.Nifti1Image(mask, np.diag([0.4, 0.4, 5, 1])), root / "masks" / "049.nii")
    (root / "hemorrhage_diagnosis_raw_ct.csv").write_text("\n".join(rows) + "\n")
    return root


def test_ct_ich_nifti_source(tmp_path):
    root = _ct_ich_tree(tmp_path / "release" / "ct-ich-1.3.1")
    out = tmp_path / "raw"
    materialise("ct-ich", {"path": str(tmp_path / "release")}, out)  # finds the single sub-folder
    manifest, labels, source = check_contract(out)
    assert source["name"] == "ct-ich" and source["has_hu"] is True
    assert manifest["format"].tolist() == ["nifti", "nifti"]
    assert manifest["slice_key"].tolist() == ["ctich_049", "ctich_050"]
    assert manifest["mask_path"].iloc[0].endswith("masks/049.nii") and manifest["mask_path"].iloc[1] == ""
    assert Path(manifest["path"].iloc[0]) == (root / "ct_scans" / "049.nii").resolve()
    positives = labels[labels["any"] == "1"]["key"].tolist()
    assert positives == ["ctich_049_1"]  # SliceNumber 2 -> slice index 1
    assert labels.set_index("key").loc["ctich_049_1", "epidural"] == "1"
    mask = read_nifti_mask_slice(manifest["mask_path"].iloc[0], 1)
    assert mask.sum() == 4
    reasons = " | ".join(i["reason"] for i in source["issues"])
    assert "no CT volume for patient 059: 2 label rows without images" in reasons
    assert "no mask volume" in reasons


def test_ct_ich_checksums_of_a_local_copy(tmp_path):
    root = _ct_ich_tree(tmp_path / "ct")
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    lines = [f"{sha256_file(p)} {p.relative_to(root).as_posix()}" for p in files]
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    materialise("ct-ich", {"path": str(root)}, tmp_path / "ok")
    with open(root / "ct_scans" / "050.nii", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(fetch.ChecksumError, match="ct_scans/050.nii: sha256"):
        materialise("ct-ich", {"path": str(root)}, tmp_path / "bad")
    # verify: false reads the tampered tree, as the user asked
    materialise("ct-ich", {"path": str(root), "verify": False}, tmp_path / "unverified")
    manifest = pd.read_csv(tmp_path / "unverified" / "manifest.csv")
    assert manifest["path"].str.endswith("050.nii").any()


# ----------------------------------------------------------------------------- rsna


def test_rsna_pivot_and_source(tmp_path):
    root = tmp_path / "rsna"
    sops = ["ID_aaa", "ID_bbb", "ID_ccc"]
    for i, sop in enumerate(sops):
        write_ct_slice(root / "stage_2_train" / f"{sop}.dcm", sop_uid=sop, z=5.0 * i, rows=256, cols=256)
    rows = ["ID,Label"]
    for sop in sops + ["ID_ddd"]:
        for label in LABELS:
            value = int(sop == "ID_bbb" and label in ("any", "subdural"))
            rows.append(f"{sop}_{label},{value}")
    rows.append("ID_aaa_any,0")  # an exact repeat (the real file has some)
    rows.append("ID_ccc_epidural,1")  # a conflicting repeat
    (root / "stage_2_train.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "raw"
    materialise("rsna", {"path": str(root)}, out)
    manifest, labels, source = check_contract(out)
    assert manifest["format"].tolist() == ["dicom"] * 3 and (manifest["patient_id"] == "").all()
    assert labels["key"].tolist() == ["ID_aaa", "ID_bbb", "ID_ccc", "ID_ddd"]
    table = labels.set_index("key")
    assert table.loc["ID_bbb", "subdural"] == "1" and table.loc["ID_bbb", "any"] == "1"
    assert table.loc["ID_ccc", "epidural"] == "1"  # conflict resolved as positive
    assert [i["reason"] for i in source["issues"]] == ["conflicting repeated label rows; positive kept"]
    from ich.io.dicom import read_ct_slice

    assert read_ct_slice(manifest["path"].iloc[1]).sop_uid == "ID_bbb"  # key joins the header


def test_rsna_pivot_rejects_bad_rows():
    with pytest.raises(SourceError, match="unknown subtype"):
        pivot_labels(pd.DataFrame({"ID": ["ID_a_bleed"], "Label": ["1"]}))
    with pytest.raises(SourceError, match="Label must be 0 or 1"):
        pivot_labels(pd.DataFrame({"ID": ["ID_a_any"], "Label": ["2"]}))


# ----------------------------------------------------------------------------- cq500


CQ500_COLUMNS = ["name", "Category"] + [
    f"{r}:{f}"
    for r in ("R1", "R2", "R3")
    for f in (
        "ICH",
        "IPH",
        "IVH",
        "SDH",
        "EDH",
        "SAH",
        "BleedLocation-Left",
        "BleedLocation-Right",
        "ChronicBleed",
        "Fracture",
        "CalvarialFracture",
        "OtherFracture",
        "MassEffect",
        "MidlineShift",
    )
]


def _reads_row(name: str, votes: dict[str, tuple[int, int, int]]) -> dict:
    row = {c: 0 for c in CQ500_COLUMNS}
    row["name"], row["Category"] = name, "B1"
    for finding, (a, b, c) in votes.items():
        row[f"R1:{finding}"], row[f"R2:{finding}"], row[f"R3:{finding}"] = a, b, c
    return row


def test_cq500_majority_vote_and_series_choice(tmp_path):
    root = tmp_path / "cq500"
    study = "1.2.826.0.1.3680043.8.498.100"
    base = root / "CQ500CT0 CQ500CT0" / "Unknown Study"
    thin = write_study(base / "CT PLAIN THIN", 3, patient_id="CQ500-CT-0", study_uid=study, spacing_z=0.625)
    thick = write_study(base / "CT 5mm", 2, patient_id="CQ500-CT-0", study_uid=study, spacing_z=5.0)
    other = write_study(root / "CQ500CT1 CQ500CT1" / "Unknown Study" / "CT Plain", 2, patient_id="CQ500-CT-1")
    orphan = write_study(root / "CQ500CT7 CQ500CT7" / "s", 2, patient_id="CQ500-CT-7")
    (root / "CQ500CT1 CQ500CT1" / "Unknown Study" / "CT Plain" / "broken.dcm").write_bytes(b"xx")
    reads = pd.DataFrame(
        [
            _reads_row("CQ500-CT-0", {"ICH": (1, 1, 0), "SDH": (1, 0, 0), "IPH": (1, 1, 1)}),
            _reads_row("CQ500-CT-1", {"ICH": (0, 0, 1)}),
            _reads_row("CQ500-CT-2", {}),
        ]
    )
    reads.to_csv(root / "reads.csv", index=False)
    out = tmp_path / "raw"
    materialise("cq500", {"path": str(root)}, out)
    manifest, labels, source = check_contract(out)
    paths = set(manifest["path"])
    assert {str(p.resolve()) for p in thick} <= paths and not {str(p.resolve()) for p in thin} & paths
    assert {str(p.resolve()) for p in other} <= paths and {str(p.resolve()) for p in orphan} <= paths
    assert any(p.endswith("broken.dcm") for p in paths)  # unreadable files stay in (convert quarantines)
    assert (labels["level"] == "study").all()
    table = labels.set_index("key")
    assert table.loc[study, ["any", "intraparenchymal", "subdural", "epidural"]].tolist() == ["1", "1", "0", "0"]
    assert len(labels) == 2 and (labels["any"] == "1").sum() == 1
    reasons = " | ".join(i["reason"] for i in source["issues"])
    assert "(3 files) not used: one series per study" in reasons
    assert "patient 'CQ500-CT-7' has no row in reads.csv" in reasons
    assert "reads.csv row without any image" in reasons


def test_cq500_majority_function():
    votes = majority_labels(pd.DataFrame([_reads_row("a", {"ICH": (1, 0, 0), "EDH": (1, 1, 0)})]))
    assert votes.iloc[0][["any", "epidural"]].tolist() == [0, 1]
    with pytest.raises(SourceError, match="lacks columns"):
        majority_labels(pd.DataFrame({"name": ["a"], "R1:ICH": [1]}))


# ----------------------------------------------------------------------------- folder


def test_folder_source_patient_keys_and_slice_labels(tmp_path):
    root = tmp_path / "tree"
    a = write_study(root / "pa" / "axial", 3, patient_id="PA")
    b = write_study(root / "pb" / "x", 2, patient_id="PB")
    (root / "notes.txt").write_text("not dicom")
    from ich.io.dicom import read_ct_slice

    sop_b = read_ct_slice(b[1]).sop_uid
    pd.DataFrame(
        {"level": ["study", "slice", "study"], "key": ["PA", sop_b, "PZ"], "any": [1, 1, 0], "subdural": [1, "", ""]}
    ).to_csv(root / "labels.csv", index=False)
    out = tmp_path / "raw"
    materialise("folder", {"path": str(root), "key_field": "PatientID", "name": "clinic"}, out)
    manifest, labels, source = check_contract(out)
    assert len(manifest) == 5 and source["name"] == "clinic" and source["has_hu"] is True
    study_a = read_ct_slice(a[0]).study_uid
    table = labels.set_index("key")
    assert table.loc[study_a, "any"] == "1" and table.loc[study_a, "level"] == "study"
    assert table.loc[sop_b, "level"] == "slice"
    assert "PZ" in table.index  # unknown key kept: convert reports it
    with pytest.raises(SourceError, match="key_field"):
        materialise("folder", {"path": str(root), "key_field": "Name"}, tmp_path / "x")


# ----------------------------------------------------------------------------- fetch: checksums


def test_parse_sha256sums():
    digest = "a" * 64
    text = f"\ufeff{digest}  ct_scans/049.nii\n{'B' * 64} *masks/049.nii\n\n# comment\n{digest} ./README.md\n"
    assert fetch.parse_sha256sums(text) == {
        "ct_scans/049.nii": digest,
        "masks/049.nii": "b" * 64,
        "README.md": digest,
    }
    with pytest.raises(fetch.FetchError, match="line 1"):
        fetch.parse_sha256sums("nothex  file\n")
    for unsafe in ("../etc/passwd", "/abs/path", "a/../../b", "C:/x"):
        with pytest.raises(fetch.FetchError, match="unsafe path"):
            fetch.parse_sha256sums(f"{digest}  {unsafe}\n")


def test_verify_checksums(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello")
    good = hashlib.sha256(b"hello").hexdigest()
    fetch.verify_checksums(tmp_path, {"a.txt": good})
    with pytest.raises(fetch.ChecksumError) as info:
        fetch.verify_checksums(tmp_path, {"a.txt": "0" * 64, "b.txt": good})
    assert set(info.value.problems) == {"a.txt", "b.txt"} and info.value.problems["b.txt"] == "missing"


# ----------------------------------------------------------------------------- fetch: extraction


def _zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo("link")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, symlink)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for member in members:
            payload = (data or {}).get(member.name)
            if payload is not None:
                member.size = len(payload)
                tf.addfile(member, io.BytesIO(payload))
            else:
                tf.addfile(member)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_safe_extract_accepts_normal_archives(tmp_path):
    files = fetch.safe_extract(_zip(tmp_path / "ok.zip", {"d/a.txt": b"1", "b.txt": b"2"}), tmp_path / "z")
    assert sorted(p.name for p in files) == ["a.txt", "b.txt"] and (tmp_path / "z" / "d" / "a.txt").read_bytes() == b"1"
    tar = _tar(
        tmp_path / "ok.tgz",
        [
            _member("d/a.txt"),
            _member("d/link", tarfile.SYMTYPE, "a.txt"),
            _member("d/hard", tarfile.LNKTYPE, "d/a.txt"),
        ],
        {"d/a.txt": b"hi"},
    )
    fetch.safe_extract(tar, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "a.txt").read_bytes() == b"hi"


@pytest.mark.parametrize(
    ("kind", "builder", "message"),
    [
        ("zip", lambda p: _zip(p, {"../evil.txt": b"x"}), "outside the target folder"),
        ("zip", lambda p: _zip(p, {"/abs/evil.txt": b"x"}), "outside the target folder"),
        ("zip", lambda p: _zip(p, {"ok.txt": b"x"}, symlink="../../etc"), "symlink"),
        ("tar", lambda p: _tar(p, [_member("../evil.txt")], {"../evil.txt": b"x"}), "outside the target folder"),
        ("tar", lambda p: _tar(p, [_member("/tmp/evil.txt")], {"/tmp/evil.txt": b"x"}), "outside the target folder"),
        ("tar", lambda p: _tar(p, [_member("l", tarfile.SYMTYPE, "../../etc/passwd")]), "points outside"),
        ("tar", lambda p: _tar(p, [_member("l", tarfile.SYMTYPE, "/etc/passwd")]), "is absolute"),
        ("tar", lambda p: _tar(p, [_member("h", tarfile.LNKTYPE, "../../etc/passwd")]), "outside the target folder"),
        ("tar", lambda p: _tar(p, [_member("dev", tarfile.CHRTYPE)]), "device"),
    ],
)
def test_safe_extract_refuses_escapes(tmp_path, kind, builder, message):
    archive = builder(tmp_path / f"bad.{'zip' if kind == 'zip' else 'tgz'}")
    dest = tmp_path / "dest"
    with pytest.raises(fetch.UnsafeArchiveError, match=message):
        fetch.safe_extract(archive, dest)
    assert not any(dest.rglob("*"))  # nothing written
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_non_archives(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"plain")
    with pytest.raises(fetch.FetchError, match="not a zip or tar"):
        fetch.safe_extract(tmp_path / "x.bin", tmp_path / "d")


# ----------------------------------------------------------------------------- fetch: urls, credentials


def test_physionet_url_building():
    assert fetch.physionet_url("ct-ich", "1.3.1") == "https://physionet.org/files/ct-ich/1.3.1/"
    assert (
        fetch.physionet_url("ct-ich", "1.3.1", "ct_scans/049.nii")
        == "https://physionet.org/files/ct-ich/1.3.1/ct_scans/049.nii"
    )
    assert fetch.physionet_url("ct-ich", "1.3.1", "a b.csv").endswith("/a%20b.csv")
    for project, version, path in (("CT ICH", "1.3.1", ""), ("ct-ich", "latest", ""), ("ct-ich", "1.3.1", "../x")):
        with pytest.raises(fetch.FetchError):
            fetch.physionet_url(project, version, path)


def test_credentials_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PHYSIONET_USERNAME", raising=False)
    monkeypatch.delenv("PHYSIONET_PASSWORD", raising=False)
    assert fetch.physionet_credentials() is None
    monkeypatch.setenv("PHYSIONET_USERNAME", "alice")
    monkeypatch.setenv("PHYSIONET_PASSWORD", "s3cret")
    assert fetch.physionet_credentials() == ("alice", "s3cret")

    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    assert not fetch.kaggle_credentials_available()
    with pytest.raises(fetch.FetchError, match="KAGGLE_USERNAME and KAGGLE_KEY"):
        fetch.kaggle_competition_download(fetch.RSNA_COMPETITION, tmp_path / "k")
    monkeypatch.setenv("KAGGLE_USERNAME", "bob")
    monkeypatch.setenv("KAGGLE_KEY", "k3y")
    assert fetch.kaggle_credentials_available()
    monkeypatch.setitem(sys.modules, "kaggle", None)
    monkeypatch.setitem(sys.modules, "kaggle.api", None)
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", None)
    with pytest.raises(fetch.FetchError, match="pip install kaggle"):
        fetch.kaggle_competition_download(fetch.RSNA_COMPETITION, tmp_path / "k")
    assert fetch.redact_url("https://u:p@physionet.org/files/x/") == "https://physionet.org/files/x/"


# ----------------------------------------------------------------------------- fetch: downloads (local server)


class _Handler(http.server.SimpleHTTPRequestHandler):
    auth_required = False

    def log_message(self, *args):  # keep test output (and credentials) out of logs
        pass

    def do_GET(self):
        if self.auth_required and not self.headers.get("Authorization"):
            self.send_response(401)
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args, **kwargs):
        return _Handler(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    _Handler.auth_required = False


def test_download_file_verifies_and_is_atomic(server, tmp_path):
    root, base = server
    (root / "f.bin").write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    dest = fetch.download_file(f"{base}/f.bin", tmp_path / "d" / "f.bin", expected_sha256=good)
    assert dest.read_bytes() == b"payload"
    with pytest.raises(fetch.ChecksumError):
        fetch.download_file(f"{base}/f.bin", tmp_path / "d" / "g.bin", expected_sha256="0" * 64)
    assert not (tmp_path / "d" / "g.bin").exists() and not list((tmp_path / "d").glob("*.partial"))
    with pytest.raises(fetch.FetchError, match="HTTP 404"):
        fetch.download_file(f"{base}/missing", tmp_path / "d" / "m")


def test_physionet_download_end_to_end_offline(server, tmp_path, monkeypatch):
    root, base = server
    project = root / "files" / "ct-ich" / "1.3.1"
    _ct_ich_tree(project)
    files = [p for p in sorted(project.rglob("*")) if p.is_file()]
    (project / "SHA256SUMS.txt").write_text(
        "".join(f"{sha256_file(p)}  {p.relative_to(project).as_posix()}\n" for p in files)
    )
    monkeypatch.setattr(fetch, "PHYSIONET_BASE", f"{base}/files")
    monkeypatch.setenv("PHYSIONET_USERNAME", "alice")
    monkeypatch.setenv("PHYSIONET_PASSWORD", "s3cret-pw")
    _Handler.auth_required = True
    out = tmp_path / "raw"
    materialise("ct-ich", {"download": True}, out)
    manifest, labels, source = check_contract(out)
    assert manifest["path"].tolist() == ["ct-ich-1.3.1/ct_scans/049.nii", "ct-ich-1.3.1/ct_scans/050.nii"]
    assert (out / manifest["path"].iloc[0]).is_file()

    monkeypatch.delenv("PHYSIONET_PASSWORD")
    with pytest.raises(fetch.FetchError) as info:
        materialise("ct-ich", {"download": True}, tmp_path / "raw2")
    assert "access denied (401)" in str(info.value) and "PHYSIONET_USERNAME" in str(info.value)

    monkeypatch.setenv("PHYSIONET_PASSWORD", "s3cret-pw")
    (project / "ct_scans" / "050.nii").write_bytes(b"corrupted on the server")
    with pytest.raises(fetch.ChecksumError) as info:
        materialise("ct-ich", {"download": True}, tmp_path / "raw3")
    assert "s3cret-pw" not in str(info.value) and "alice" not in str(info.value)


def test_environment_is_not_leaked_into_source_json(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSIONET_PASSWORD", "s3cret-pw")
    root = _ct_ich_tree(tmp_path / "ct")
    materialise("ct-ich", {"path": str(root)}, tmp_path / "raw")
    assert "s3cret-pw" not in (tmp_path / "raw" / "source.json").read_text()
    assert json.loads((tmp_path / "raw" / "source.json").read_text())["name"] == "ct-ich"
    assert os.environ["PHYSIONET_PASSWORD"] == "s3cret-pw"

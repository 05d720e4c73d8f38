"""The ``images`` adapter on the real CT-ICH Kaggle JPG release (skipped when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ich.io.image_files import read_image, read_windowed_image
from ich.io.raw_cohort import read_raw_cohort
from ich.sources import materialise
from tests.conftest import SHARED_DATA

ROOT = Path(os.environ.get("ICH_CT_ICH_JPG", str(SHARED_DATA / "ct-ich-jpg")))
pytestmark = pytest.mark.skipif(
    not (ROOT / "hemorrhage_diagnosis.csv").is_file(),
    reason=f"CT-ICH JPG release not found at {ROOT} (set ICH_CT_ICH_JPG to its folder)",
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    materialise("images", {"path": str(ROOT), "layout": "ct-ich-jpg"}, out)
    return read_raw_cohort(out)


def test_counts_match_the_release(cohort):
    manifest, labels, source = cohort
    assert manifest["patient_id"].nunique() == 82
    assert sorted(manifest["patient_id"].unique())[:2] == ["049", "050"]
    assert len(labels) == 2501 and len(manifest) == 2501
    assert set(labels["key"]) == set(manifest["slice_key"])
    positive = labels[labels["any"] == "1"]
    assert len(positive) == 318
    assert positive["key"].str.split("_").str[1].nunique() == 36
    per_subtype = {
        s: int((labels[s] == "1").sum())
        for s in ("intraventricular", "intraparenchymal", "subarachnoid", "epidural", "subdural")
    }
    assert per_subtype == {
        "intraventricular": 24,
        "intraparenchymal": 73,
        "subarachnoid": 18,
        "epidural": 173,
        "subdural": 56,
    }
    assert source["has_hu"] is False and source["synthetic"] is False and source["name"] == "ct-ich-jpg"
    assert "Hssayeni" in source["citation"] and source["license"] == "CC BY 4.0"


def test_missing_bone_image_is_reported_and_flagged(cohort):
    manifest, _, source = cohort
    assert source["issues"] == [
        {
            "path": str((ROOT / "Patients_CT" / "084" / "bone").resolve() / "36.jpg"),  # sources resolve links
            "reason": "bone window image missing: B channel = brain window",
        }
    ]
    flagged = manifest[manifest["note"] != ""]
    assert flagged["slice_key"].tolist() == ["ctich_084_36"]
    assert flagged["bone_path"].tolist() == [""]
    assert (manifest.drop(flagged.index)["bone_path"] != "").all()


def test_images_read_as_three_channel_uint8(cohort):
    manifest, _, _ = cohort
    rows = manifest.set_index("slice_key").loc[["ctich_049_1", "ctich_066_20", "ctich_130_10", "ctich_084_36"]]
    for key, row in rows.iterrows():
        image = read_windowed_image(row["path"], row["bone_path"] or None)
        assert image.shape == (650, 650, 3) and image.dtype == np.uint8, key
        assert (image[..., 0] == image[..., 1]).all()
        if row["bone_path"]:
            assert not (image[..., 2] == image[..., 0]).all()  # a distinct bone window
            bone = read_image(row["bone_path"])
            assert (image[..., 2] == bone[..., 0]).all()
        else:
            assert (image[..., 2] == image[..., 0]).all()
        assert image.max() > 200 and image.min() < 10  # windowed head: skull bright, air dark


def test_z_orders_slices_by_number(cohort):
    manifest, _, _ = cohort
    patient = manifest[manifest["patient_id"] == "049"]
    assert patient["z"].astype(int).tolist() == list(range(1, len(patient) + 1))


@pytest.mark.skipif(
    not (SHARED_DATA / "phe-sich-ct" / "labels.csv").is_file() or not (SHARED_DATA / "rsna-ich-png").is_dir(),
    reason="PHE-SICH-CT or the RSNA slices not in ../shared/data",
)
def test_the_profiles_three_sites_combine_with_slice_labels_only_for_phe_sich(tmp_path):
    """The CT-ICH profile's `download.combined`: the three releases as one raw cohort, CT-ICH's bleed
    masks kept, PHE-SICH's edema masks never read (its positives train their label only), RSNA's
    slices each a patient of their own."""
    import yaml

    from tests.conftest import REPO

    section = yaml.safe_load((REPO / "profiles" / "ct-ich-jpg.yaml").read_text())["download"]["combined"]
    cohorts = {name: {**c, "path": str(REPO / c["path"])} for name, c in section["cohorts"].items()}
    materialise("combined", {"cohorts": cohorts}, tmp_path)
    manifest, labels, source = read_raw_cohort(tmp_path)
    patients = manifest.groupby("cohort")["patient_id"].nunique().to_dict()
    assert patients == {"ct_ich": 82, "phe_sich": 60, "rsna": 3991}
    phe = manifest[manifest["cohort"] == "phe_sich"]
    assert len(phe) == 1785 and (phe["mask_path"] == "").all()
    assert (manifest.loc[manifest["cohort"] == "ct_ich", "mask_path"] != "").sum() == 318
    assert labels["key"].is_unique and len(labels) >= len(manifest)
    assert (manifest.loc[manifest["cohort"] == "rsna", "mask_path"] == "").all()
    assert source["name"] == "ct-ich-jpg + phe-sich-ct + rsna-ich-png" and not source["synthetic"]

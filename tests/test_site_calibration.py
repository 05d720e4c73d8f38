"""An operating point for a new site (ich.metrics.site_calibration) and external figures of a cohort
without normal studies (ich.metrics.external)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ich.metrics.external import external_block, external_headline
from ich.metrics.site_calibration import calibration_halves, site_calibration
from ich.predict.external import read_external_cohort
from tests.conftest import REPO, SHARED_DATA

POINTS = {
    "patient_youden": {"study_score": "max_slice_probability", "threshold": 0.3},
    "slice_youden": {"threshold": 0.3},
    "slice_sensitivity": {"threshold": 0.2},
    "calibration": {"method": "platt", "slope": 1.0, "intercept": 0.0},
    "chosen_on": "val",
}


def _cohort(n_studies: int, *, normal_studies: bool, seed: int = 0) -> pd.DataFrame:
    """Ten slices a study; this site's scores run high (a normal slice at 0.3-0.6, a bleed at 0.6-1),
    so the validation point 0.3 calls nearly every slice positive here."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_studies):
        bleeding = (k % 2 == 0) or not normal_studies
        labels = [0] * 7 + [1] * 3 if bleeding else [0] * 10
        for label in labels:
            score = rng.uniform(0.6, 1.0) if label else rng.uniform(0.3, 0.6)
            rows.append({"patient_id": f"P{k:03d}", "study": f"P{k:03d}", "any": label, "prob_any": score})
    return pd.DataFrame(rows).assign(label_level="slice")


def test_halves_share_no_patient_and_both_hold_each_label():
    studies = pd.DataFrame({"patient_id": [f"P{k}" for k in range(20)], "label": [k % 3 == 0 for k in range(20)]})
    choose, report = calibration_halves(studies.assign(label=studies["label"].astype(int)), seed=3)
    assert not choose & report and choose | report == set(studies["patient_id"])
    labels = studies.set_index("patient_id")["label"]
    assert labels[list(choose)].nunique() == labels[list(report)].nunique() == 2
    assert calibration_halves(studies.assign(label=studies["label"].astype(int)), seed=3) == (choose, report)
    assert calibration_halves(studies.assign(label=studies["label"].astype(int)), seed=4) != (choose, report)


def test_a_study_level_point_chosen_on_half_the_site_restores_specificity():
    table = _cohort(40, normal_studies=True)
    block = site_calibration(table, POINTS, n_boot=100, seed=0)
    assert block["level"] == "study" and block["chosen_on"]["patients"] + block["reported_on"]["patients"] == 40
    assert block["transferred"]["threshold"] == 0.3 and block["transferred"]["specificity"]["value"] == 0.0
    assert block["local"]["threshold"] > 0.55
    assert block["local"]["specificity"]["value"] == 1.0 and block["local"]["sensitivity"]["value"] == 1.0


def test_a_cohort_without_normal_studies_is_calibrated_and_measured_by_its_slices():
    table = _cohort(20, normal_studies=False)
    block = external_block(table.drop(columns="patient_id"), POINTS, n_boot=100, seed=0, local_point=True)
    assert block["n_positive_studies"] == block["n_studies"] == 20
    assert block["study"]["roc_auc"]["value"] is None and "every study is positive" in block["study"]["note"]
    assert block["slice"]["roc_auc"]["value"] == 1.0
    site = block["site_calibration"]
    assert (
        site["level"] == "slice" and site["local"]["specificity"]["value"] > site["transferred"]["specificity"]["value"]
    )
    headline = external_headline(block)
    assert headline["patient_roc_auc"]["value"] is None and headline["site_calibrated"]["level"] == "slice"


def test_a_cohort_of_positive_studies_without_slice_labels_cannot_be_calibrated():
    table = _cohort(10, normal_studies=False).assign(label_level="study")
    with pytest.raises(ValueError, match="every study here is positive"):
        site_calibration(table, POINTS, n_boot=10, seed=0)


PHE_SICH = SHARED_DATA / "phe-sich-ct"


@pytest.mark.skipif(not (PHE_SICH / "labels.csv").is_file(), reason=f"PHE-SICH-CT-IDS not found at {PHE_SICH}")
def test_the_second_hospital_reads_as_the_profile_names_it():
    """external@phe_sich: 60 patient folders, every slice labelled, no bleed mask read (its masks are edema)."""
    section = yaml.safe_load((REPO / "profiles" / "ct-ich-jpg.yaml").read_text())["external"]["cohorts"]["phe_sich"]
    cohort = read_external_cohort("phe_sich", {**section, "path": str(PHE_SICH)})
    assert len(cohort.folders) == 60 and cohort.unreadable == []
    assert len(cohort.slice_labels) == 1785 and int(cohort.slice_labels["any"].sum()) == 336
    assert cohort.study_labels.empty and cohort.source["synthetic"] is False
    assert all(folder.parent.name == "images" for folder in cohort.folders.values())


def test_a_cohort_too_small_for_two_halves_says_so_and_keeps_its_figures():
    table = _cohort(3, normal_studies=True).drop(columns="patient_id")
    block = external_block(table, POINTS, n_boot=20, seed=0, local_point=True)
    assert "positive and negative" in block["site_calibration"]["not_measured"]
    assert block["study"]["roc_auc"]["value"] is not None and "site_calibrated" not in external_headline(block)

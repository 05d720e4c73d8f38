"""experiments/other_sites.py and window_reference.py: the figures of a scored set, what a project has
seen, and the estimator's error on exports of known windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ich.data.exports import ExportSetting
from ich.data.window_estimate import reference_from_hu
from ich.synth.phantom import random_head, render_slice
from tests.conftest import load_script


@pytest.fixture(scope="module")
def other_sites():
    return load_script("experiments/other_sites.py")


def test_a_scored_set_gives_auc_flags_dice_and_what_was_not_read(other_sites):
    rng = np.random.default_rng(0)
    rows, labels, references = [], {}, {}
    for study in range(20):
        for k in range(5):
            source = f"s{study}/{k}.png"
            label = int(study % 2 == 0 and k == 2)
            mask = np.zeros((8, 8), bool)
            reference = np.zeros((8, 8), bool)
            if label:
                mask[2:5, 2:5] = reference[2:6, 2:6] = True
            labels[source], references[source] = label, reference
            rows.append(
                {
                    "study": f"s{study}",
                    "source": source,
                    "prob": float(rng.uniform(0.6, 1.0) if label else rng.uniform(0.0, 0.7)),
                    "flag": 0.5,
                    "mask": mask,
                    "window_estimated": study != 3,
                    "unlike_training": study in (3, 4),
                }
            )
    refused = [{"study": "s99", "slices": 4, "reason": "no slice shows a head"}]
    block = other_sites.block(rows, labels, refused, seed=0, references=references)
    y = np.array([labels[r["source"]] for r in rows])
    p = np.array([r["prob"] for r in rows])
    assert block["slices"] == 100 and block["bleeding"] == 10
    assert block["normal_slices_flagged"] == pytest.approx(float((p[y == 0] >= 0.5).mean()), abs=1e-4)
    assert block["sensitivity"] == 1.0 and block["slice_roc_auc_ci"][0] <= block["slice_roc_auc"] <= 1
    assert block["dice"] == pytest.approx(2 * 9 / (9 + 16), abs=1e-4)
    assert block["slices_scored_as_sent"] == 5 and block["refused_slices"] == 4
    assert block["studies_marked_unlike_training"] == 2 and block["studies"] == 20


def test_what_a_project_trained_or_chose_on_is_not_scored_as_unseen(other_sites, tmp_path):
    (tmp_path / "data" / "converted").mkdir(parents=True)
    (tmp_path / "data" / "split").mkdir(parents=True)
    pd.DataFrame(
        {"patient_id": ["a", "b", "c"], "source_path": [str(tmp_path / f"{p}.png") for p in "abc"], "any": 0}
    ).to_csv(tmp_path / "data" / "converted" / "index.csv", index=False)
    pd.DataFrame({"patient_id": ["a", "b", "c"], "set": ["train", "val", "test"]}).to_csv(
        tmp_path / "data" / "split" / "split.csv", index=False
    )
    seen = other_sites.seen_sources(tmp_path)
    assert seen == {str(tmp_path / "a.png"), str(tmp_path / "b.png")}
    labels = pd.DataFrame({"image": ["a.png", "a2.png", "c.png", "d.png"], "patient_id": ["A", "A", "C", "D"]})
    assert other_sites.unseen(labels, tmp_path, seen)["image"].tolist() == ["c.png", "d.png"]


def test_the_estimator_error_is_measured_per_image_and_per_study():
    reference_script = load_script("experiments/window_reference.py")
    rng = np.random.default_rng(5)
    studies = {}
    for p in range(4):
        head = random_head(rng, 12, ())
        studies[f"p{p}"] = [render_slice(head, k, 12, 256, seed=[5, p, k])[0] for k in range(3, 10)]
    reference = reference_from_hu([hu for s in list(studies.values())[:2] for hu in s], "phantoms")
    held_out = dict(list(studies.items())[2:])
    errors = reference_script.errors(held_out, ExportSetting((-60.0, 140.0)), reference, seed=0)
    assert errors["study"]["n"] == 2 and errors["image"]["n"] == 14
    assert errors["study"]["level_abs_error_hu"]["median"] <= 8
    assert 0.75 <= errors["study"]["width_ratio"]["median"] <= 1.33

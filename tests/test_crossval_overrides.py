"""experiments/crossval.py's ablation switches: ``--set`` changes only keys the profile has, a
variant run is published beside the profile's own entries instead of replacing them, and a work
copy is resumed only with the code it ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, load_script


@pytest.fixture(scope="module")
def crossval():
    return load_script("experiments/crossval.py")


PROFILE = {"train": {"lite0": {"pretrained": "imagenet", "refit": True}}, "split": {"folds": 5}}


def test_set_changes_one_value_and_leaves_the_profile_alone(crossval):
    changed = crossval.with_overrides(PROFILE, ["train.lite0.pretrained=none", "train.lite0.refit=false"])
    assert changed["train"]["lite0"] == {"pretrained": "none", "refit": False}
    assert PROFILE["train"]["lite0"]["pretrained"] == "imagenet"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lite0.pretrain=none", "no key 'train.lite0.pretrain'"),
        ("trian.lite0.refit=1", "no section"),
        ("x", "dotted"),
    ],
)
def test_set_refuses_unknown_keys(crossval, override, message):
    with pytest.raises(ValueError, match=message):
        crossval.with_overrides(PROFILE, [override])


def test_a_variant_is_published_beside_the_profiles_entries(crossval, tmp_path):
    published = tmp_path / "crossval.json"
    published.write_text(json.dumps({"profile": "p.yaml", "runs": {"lite0": {"folds": [0]}}, "models": {"lite0": 0.9}}))
    results = {
        "profile": "p.yaml",
        "overrides": ["train.lite0.pretrained=none"],
        "folds": [0, 1],
        "ensemble_weights_per_fold": {0: {"lite0": 1.0}, 1: {"lite0": 1.0}},
        "pooled_at_operating_points": {"lite0": 0.8, "ensemble": 0.8},
    }
    merged = crossval.publishable(results, published, ["lite0", "ensemble"], "scratch")
    assert merged["models"] == {"lite0": 0.9, "lite0[scratch]": 0.8, "ensemble(lite0)[scratch]": 0.8}
    assert merged["runs"]["lite0[scratch]"]["overrides"] == ["train.lite0.pretrained=none"]
    assert merged["runs"]["lite0"] == {"folds": [0]}


def test_the_combined_ablation_runs_from_a_copy_with_every_cohort_path_made_absolute(crossval):
    """`--set download.source=combined` on the real profile: each fold's params read the three sites
    from absolute paths (the DAG runs in a copy elsewhere), and only the test fold changes."""

    from tools.profile import resolve_profile

    profile = resolve_profile(REPO / "profiles" / "ct-ich-jpg.yaml")
    params = crossval.profile_for_fold(crossval.with_overrides(profile, ["download.source=combined"]), 3, None)
    assert params["download"]["source"] == "combined" and params["split"]["test_fold"] == 3
    cohorts = params["download"]["combined"]["cohorts"]
    assert set(cohorts) == {"ct_ich", "phe_sich", "rsna"}
    for section in cohorts.values():
        assert Path(section["path"]).is_absolute()
        assert Path(section["path"]).name in {"ct-ich-jpg", "phe-sich-ct", "rsna-ich-png"}
    assert profile["download"]["combined"]["cohorts"]["phe_sich"]["path"] == "../shared/data/phe-sich-ct"


def test_a_work_copy_is_resumed_only_with_the_code_it_ran(crossval, tmp_path):
    workdir = tmp_path / "work"
    crossval.prepare_workdir(workdir)
    assert (workdir / "dvc.yaml").is_file() and (workdir / "CODE_VERSION").is_file()
    crossval.prepare_workdir(workdir)  # the same code: resumed
    changed = workdir / "ich" / "labels.py"
    changed.write_text(changed.read_text() + "\n# another version\n")
    with pytest.raises(SystemExit, match=r"holds other code than this checkout \(1 files differ, e.g. ich/labels.py"):
        crossval.prepare_workdir(workdir)

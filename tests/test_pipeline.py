"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ich.predict.bundle import Bundle
from tests.dicom_fixtures import write_study
from tests.tiny_project import git_commit, make_tiny_project, run, set_param, stages_run

pytestmark = pytest.mark.slow


KILLED_AFTER_FIRST_EPOCH = """
import runpy, sys
import ich.train.loop as loop
save = loop.save_atomic
def save_then_die(obj, path):
    save(obj, path)
    if isinstance(obj, dict) and obj.get("epoch") == 0:
        sys.exit(9)
loop.save_atomic = save_then_die
sys.argv = ["stages/train.py", sys.argv[1]]
runpy.run_path("stages/train.py", run_name="__main__")
"""


def _leave_checkpoint_of_killed_run(root: Path, model: str) -> Path:
    """Run ``train@model`` on today's inputs and kill it right after its first checkpoint."""
    run([sys.executable, "-c", KILLED_AFTER_FIRST_EPOCH, model], root, expect=9)
    checkpoint = root / "data" / "checkpoints" / f"train_{model}.pt"
    assert checkpoint.exists()
    return checkpoint


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_tiny_project(tmp_path_factory.mktemp("project"))
    output = run(["dvc", "repro"], root)
    assert stages_run(output) == {
        "download",
        "convert",
        "split",
        "train@wa2d_cnn3",
        "train@wa2d_cnn1",
        "ensemble",
        "evaluate",
        "explain",
        "train_segmenter@unet",
        "train_segmenter@threshold_band",
        "evaluate_segmentation",
        "bundle",
        "report",
        "site",
        "external@site_dicom",
        "external@site_png",
    }
    return root


def test_repro_writes_metrics_and_leaves_a_clean_status(project):
    metrics = json.loads((project / "data" / "evaluation" / "classification.json").read_text())
    assert metrics["synthetic"] is True and metrics["cohort"] == "synthetic"
    assert set(metrics["models"]) == {"wa2d_cnn3", "wa2d_cnn1", "ensemble"}
    auc = metrics["models"]["ensemble"]["slice"]["roc_auc"]
    assert set(auc) == {"value", "ci_low", "ci_high"}
    block = metrics["models"]["wa2d_cnn3"]["slice"]["threshold_0.5"]
    assert {"accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy"} <= set(block)
    assert "fraction_0.05" in metrics["models"]["wa2d_cnn3"]["patient"]
    for name in ("wa2d_cnn3", "ensemble"):
        folder = project / "data" / ("ensemble" if name == "ensemble" else f"models/{name}")
        points = json.loads((folder / "operating_points.json").read_text())
        at = metrics["models"][name]["operating_points"]["patient_youden"]
        assert at["threshold"] == points["patient_youden"]["threshold"] and at["chosen_on"] == "val"
        outputs = metrics["models"][name]["outputs"]
        assert set(outputs) == {"at_zero", "at_one", "sensitivity", "specificity", "ok"}
        assert outputs["ok"] is (
            max(outputs["at_zero"], outputs["at_one"]) <= 0.9
            and min(outputs["sensitivity"], outputs["specificity"]) >= 0.5
        )
        top = json.loads((project / "metrics" / "classification" / f"{name}.json").read_text())
        assert top["slice_roc_auc"] == metrics["models"][name]["slice"]["roc_auc"]
        assert top["patient_specificity"] == at["specificity"]["value"]
    shown = run(["dvc", "metrics", "show", "--md"], project)
    # one row per file: the external cohorts add a row per model and cohort, named as the test
    # set's figures so that they add no column but the study count and the ECE
    assert len(shown) < 25_000, "the metrics a reviewer reads stay short"
    assert shown.splitlines()[0].count("|") < 60, "no metric file brings columns of its own"
    convert = json.loads((project / "metrics" / "convert.json").read_text())
    assert convert["slices"] == 60 and convert["quarantined_files"] == 0
    assert (project / "plots" / "evaluate" / "roc" / "ensemble.csv").exists()
    assert (project / "plots" / "explain" / "wa2d_cnn3.png").stat().st_size > 1000
    cases = (project / "data" / "reports" / "cases.csv").read_text().splitlines()
    assert len(cases) > 1 and all(
        (project / "data" / "reports" / c.split(",")[0] / "report.html").exists() for c in cases[1:]
    )
    for cohort in ("site_dicom", "site_png"):  # the test studies as another site sends them, read back
        figures = {
            p.stem: json.loads(p.read_text()) for p in (project / "metrics" / "external" / cohort).glob("*.json")
        }
        assert set(figures) == {"wa2d_cnn3", "wa2d_cnn1", "ensemble"}
        full = json.loads((project / "data" / "external" / cohort / "evaluation.json").read_text())
        assert full["synthetic"] is True and full["unlabelled_studies"] == []
        for name, block in full["models"].items():
            folder = project / "data" / ("ensemble" if name == "ensemble" else f"models/{name}")
            points = json.loads((folder / "operating_points.json").read_text())
            assert block["study"]["threshold"] == points["patient_youden"]["threshold"]  # chosen on validation
            assert block["n_studies"] == metrics["models"][name]["n_patients"] and block["label_level"] == "slice"
            assert figures[name]["patient_roc_auc"] == block["study"]["roc_auc"]
    assert "up to date" in run(["dvc", "status"], project)
    assert stages_run(run(["dvc", "repro"], project)) == set()
    assert not list((project / "data" / "checkpoints").glob("*.pt")), "finished stages leave no checkpoint"


def test_an_evaluate_parameter_reruns_only_evaluate(project):
    set_param(project, ["evaluate", "n_bootstrap"], 60)
    assert stages_run(run(["dvc", "repro"], project)) == {"evaluate"}


def test_one_model_parameter_reruns_only_its_chain(project):
    set_param(project, ["train", "wa2d_cnn1", "lr"], 0.002)
    assert stages_run(run(["dvc", "repro"], project)) == {
        "train@wa2d_cnn1",
        "ensemble",
        "evaluate",
        "explain",
        "bundle",
        "report",
        "external@site_dicom",
        "external@site_png",
    }
    assert "up to date" in run(["dvc", "status"], project)


def _predictions(root: Path, model: str) -> bytes:
    return (root / "data" / "models" / model / "predictions.csv").read_bytes()


def _trained_from_scratch(output: str, model: str) -> None:
    assert f"ignoring data/checkpoints/train_{model}.pt" in output
    assert "resuming" not in output
    assert "epoch 0:" in output


def test_new_pixels_retrain_from_scratch_despite_a_checkpoint(project):
    """The stale-checkpoint bug: a changed convert.image_size resumed an old run and shipped old weights."""
    before = _predictions(project, "wa2d_cnn3")
    _leave_checkpoint_of_killed_run(project, "wa2d_cnn3")
    set_param(project, ["convert", "image_size"], 40)
    output = run(["dvc", "repro", "train@wa2d_cnn3"], project)
    assert {"convert", "train@wa2d_cnn3"} <= stages_run(output), output
    _trained_from_scratch(output, "wa2d_cnn3")
    assert _predictions(project, "wa2d_cnn3") != before
    assert not (project / "data" / "checkpoints" / "train_wa2d_cnn3.pt").exists()


def test_an_edit_under_ich_io_reruns_and_retrains_the_stages_that_read_slices(project):
    before = _predictions(project, "wa2d_cnn1")
    _leave_checkpoint_of_killed_run(project, "wa2d_cnn1")
    slices = project / "ich" / "io" / "slices.py"
    # a real behaviour change of the slice reader: every slice comes back mirrored
    slices.write_text(
        slices.read_text()
        + "\n\n_read_slice = read_slice\n\n\ndef read_slice(*args, **kwargs):\n    return _read_slice(*args, **kwargs)[:, ::-1]\n"
    )
    output = run(["dvc", "repro"], project)
    assert {
        "train@wa2d_cnn1",
        "train@wa2d_cnn3",
        "explain",
        "train_segmenter@unet",
        "evaluate_segmentation",
    } <= stages_run(output)
    assert _predictions(project, "wa2d_cnn1") != before
    _trained_from_scratch(output, "wa2d_cnn1")
    assert "up to date" in run(["dvc", "status"], project)


def test_the_bundle_is_a_model_artifact_that_dvc_hands_over(project, tmp_path):
    git_commit(project, "trained")
    # a version is a GTO-format Git tag on the commit whose dvc.lock records the bundle
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "ich-pipeline@v0.1.0", "-m", "v0.1.0"],
        project,
    )
    run(["dvc", "artifacts", "get", str(project), "ich-pipeline", "-o", str(tmp_path / "got")], tmp_path)
    assert (tmp_path / "got" / "manifest.json").read_bytes() == (project / "data/bundle/manifest.json").read_bytes()
    study = write_study(tmp_path / "study", 3)[0].parent
    predict = ["predict", str(study), "--bundle", str(tmp_path / "got"), "--out", str(tmp_path / "r")]
    run([sys.executable, "-m", "ich", *predict], tmp_path)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["provenance"]["bundle_md5"] == Bundle.open(project / "data/bundle").md5

"""End to end: the real ``dvc repro`` on a tiny configuration in a temporary copy of the repo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ich.project import copy_project
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _tiny(params: dict) -> dict:
    params["download"]["synthetic"].update(n_patients=10, slices_per_study=6, workers=1)
    params["convert"].update(image_size=32, workers=1)
    params["models"] = ["wa2d_cnn3", "wa2d_cnn1"]
    params["train"] = {
        name: {
            "arch": name,
            "input_size": 32,
            "epochs": 1,
            "batch_size": 16,
            "optimizer": "adam",
            "lr": 0.001,
            "seed": 0,
        }
        for name in params["models"]
    }
    params["ensemble"]["members"] = params["models"]
    params["ensemble"]["grid"] = [0.0, 0.5, 1.0]
    params["evaluate"]["n_bootstrap"] = 50
    params["explain"] = {"models": ["wa2d_cnn3"], "n_cases": 2}
    params["segment"]["unet"].update(base_width=4, crop=16, stride=8, epochs=1, batch_size=16)
    params["evaluate_segmentation"]["overlay_size"] = 64
    return params


def _run(args: list[str], cwd: Path, expect: int = 0) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout + done.stderr


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
    _run([sys.executable, "-c", KILLED_AFTER_FIRST_EPOCH, model], root, expect=9)
    checkpoint = root / "data" / "checkpoints" / f"{model}.pt"
    assert checkpoint.exists()
    return checkpoint


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    copy_project(REPO, root)
    params = _tiny(yaml.safe_load((REPO / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], root)
    output = _run(["dvc", "repro"], root)
    assert _ran(output) == {
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
    }
    return root


def _set(root: Path, section: list[str], value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    node = params
    for key in section[:-1]:
        node = node[key]
    node[section[-1]] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_writes_metrics_and_leaves_a_clean_status(project):
    metrics = json.loads((project / "metrics" / "classification.json").read_text())
    assert metrics["synthetic"] is True and metrics["cohort"] == "synthetic"
    assert set(metrics["models"]) == {"wa2d_cnn3", "wa2d_cnn1", "ensemble"}
    auc = metrics["models"]["ensemble"]["slice"]["roc_auc"]
    assert set(auc) == {"value", "ci_low", "ci_high"}
    block = metrics["models"]["wa2d_cnn3"]["slice"]["threshold_0.5"]
    assert {"accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy"} <= set(block)
    assert "fraction_0.05" in metrics["models"]["wa2d_cnn3"]["patient"]
    convert = json.loads((project / "metrics" / "convert.json").read_text())
    assert convert["slices"] == 60 and convert["quarantined_files"] == 0
    assert (project / "plots" / "evaluate" / "roc" / "ensemble.csv").exists()
    assert (project / "plots" / "explain" / "wa2d_cnn3.png").stat().st_size > 1000
    assert "up to date" in _run(["dvc", "status"], project)
    assert _ran(_run(["dvc", "repro"], project)) == set()
    assert not list((project / "data" / "checkpoints").glob("*.pt")), "finished stages leave no checkpoint"


def test_an_evaluate_parameter_reruns_only_evaluate(project):
    _set(project, ["evaluate", "n_bootstrap"], 60)
    assert _ran(_run(["dvc", "repro"], project)) == {"evaluate"}


def test_one_model_parameter_reruns_only_its_chain(project):
    _set(project, ["train", "wa2d_cnn1", "lr"], 0.002)
    assert _ran(_run(["dvc", "repro"], project)) == {"train@wa2d_cnn1", "ensemble", "evaluate", "explain"}
    assert "up to date" in _run(["dvc", "status"], project)


def _predictions(root: Path, model: str) -> bytes:
    return (root / "data" / "models" / model / "predictions.csv").read_bytes()


def _trained_from_scratch(output: str, model: str) -> None:
    assert f"ignoring data/checkpoints/{model}.pt" in output
    assert "resuming" not in output
    assert "epoch 0:" in output


def test_new_pixels_retrain_from_scratch_despite_a_checkpoint(project):
    """The stale-checkpoint bug: a changed convert.image_size resumed an old run and shipped old weights."""
    before = _predictions(project, "wa2d_cnn3")
    _leave_checkpoint_of_killed_run(project, "wa2d_cnn3")
    _set(project, ["convert", "image_size"], 40)
    output = _run(["dvc", "repro", "train@wa2d_cnn3"], project)
    assert {"convert", "train@wa2d_cnn3"} <= _ran(output), output
    _trained_from_scratch(output, "wa2d_cnn3")
    assert _predictions(project, "wa2d_cnn3") != before
    assert not (project / "data" / "checkpoints" / "wa2d_cnn3.pt").exists()


def test_an_edit_under_ich_io_reruns_and_retrains_the_stages_that_read_slices(project):
    before = _predictions(project, "wa2d_cnn1")
    _leave_checkpoint_of_killed_run(project, "wa2d_cnn1")
    slices = project / "ich" / "io" / "slices.py"
    # a real behaviour change of the slice reader: every slice comes back mirrored
    slices.write_text(
        slices.read_text()
        + "\n\n_read_slice = read_slice\n\n\ndef read_slice(*args, **kwargs):\n    return _read_slice(*args, **kwargs)[:, ::-1]\n"
    )
    output = _run(["dvc", "repro"], project)
    assert {"train@wa2d_cnn1", "train@wa2d_cnn3", "explain", "train_segmenter@unet", "evaluate_segmentation"} <= _ran(
        output
    )
    assert _predictions(project, "wa2d_cnn1") != before
    _trained_from_scratch(output, "wa2d_cnn1")
    assert "up to date" in _run(["dvc", "status"], project)

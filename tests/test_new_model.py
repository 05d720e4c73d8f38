"""A new classifier is one file plus its params section (README, "Add a model").

The test writes a tiny architecture into ``ich/models/`` of a tiny copy of the project, lists it
in ``params.yaml`` with its own ``train`` section, and runs the real ``dvc repro`` and
``ich predict``: the model trains, is evaluated, joins the ensemble and serves a study, and git
sees no other change than that file and ``params.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ich.synth.cohort import write_cohort
from tests.tiny_project import add_in_one_file, make_tiny_project, run

pytestmark = pytest.mark.slow

MODEL_FILE = '''"""A tiny classifier declared in one file, for tests/test_new_model.py."""

from torch import Tensor, nn

from ich.models.registry import register


class TinyNet(nn.Module):
    """One convolution, global pooling, a linear head."""

    def __init__(self, in_channels: int, num_outputs: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def cam_layer(self) -> nn.Module:
        return self.features[0]


@register("tiny_net")
def tiny_net(*, in_channels: int, num_outputs: int, input_size: int, width: int = 8) -> TinyNet:
    return TinyNet(in_channels, num_outputs, width)
'''

SECTION = {
    "arch": "tiny_net",
    "arch_options": {"width": 6},
    "input_size": 32,
    "epochs": 2,
    "batch_size": 16,
    "optimizer": "adam",
    "lr": 0.01,
    "seed": 0,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_tiny_project(tmp_path_factory.mktemp("new-model"))

    def edit(params: dict) -> None:
        params["models"].append("tiny_net")
        params["train"]["tiny_net"] = SECTION
        params["ensemble"]["members"] = params["models"]
        params["explain"]["models"] = ["tiny_net"]

    add_in_one_file(root, "tiny_net", MODEL_FILE, edit, targets=("evaluate", "explain", "bundle"))
    return root


def test_a_model_in_one_file_trains_is_evaluated_and_joins_the_ensemble(project):
    trained = json.loads((project / "metrics" / "train" / "tiny_net.json").read_text())
    assert trained["best_epoch"] < SECTION["epochs"] and trained["parameters"] == 3 * 6 * 9 + 6 + 6 + 1
    evaluation = json.loads((project / "metrics" / "classification" / "tiny_net.json").read_text())
    assert 0 <= evaluation["slice_roc_auc"]["value"] <= 1 and 0 <= evaluation["patient_roc_auc"]["value"] <= 1
    assert (project / "plots" / "explain" / "tiny_net.png").stat().st_size > 0
    predictions = pd.read_csv(project / "data" / "models" / "tiny_net" / "predictions.csv")
    assert set(predictions["set"]) >= {"val", "test"} and predictions["prob_any"].between(0, 1).all()
    assert "tiny_net" in json.loads((project / "data" / "ensemble" / "weights.json").read_text())


def test_a_model_in_one_file_serves_a_study_through_ich_predict(project, tmp_path):
    write_cohort(tmp_path / "study", n_patients=1, slices_per_study=6, matrix=256, positive_fraction=1.0, seed=3)
    out = tmp_path / "report"
    run(
        ["ich", "predict", str(tmp_path / "study" / "dicom" / "SYN00000"), "--model", "tiny_net", "--out", str(out)],
        project,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["decision"]["model"] == "tiny_net" and report["gradcam_model"] == "tiny_net"
    assert len(report["slices"]) == 6 and all(0 <= s["probability"] <= 1 for s in report["slices"])

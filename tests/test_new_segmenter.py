"""A new segmenter is one file plus its params section (README, "Add a segmenter"), and reads the channel policy.

As ``tests/test_new_model.py`` does for a classifier: the test writes a tiny segmentation network
into ``ich/models/`` of a tiny copy of the project, registered with ``segments=True``, names it in
``segmenters`` with its own ``segment`` section, and runs the real ``dvc repro`` and
``ich predict``: it trains, is evaluated, is packed into the bundle and outlines a study, no
classifier list names it, and git sees no other change than that file and ``params.yaml``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ich.synth.cohort import write_cohort
from tests.tiny_project import add_in_one_file, make_tiny_project, run

pytestmark = pytest.mark.slow

SEGMENTER_FILE = '''"""A tiny segmentation network declared in one file, for tests/test_new_segmenter.py."""

from torch import Tensor, nn

from ich.models.registry import register


class TinySegmenter(nn.Module):
    """Two convolutions: a bleed-map logit per pixel."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@register("tiny_seg", segments=True)
def tiny_seg(*, in_channels: int, num_outputs: int, input_size: int, base_width: int = 8) -> TinySegmenter:
    return TinySegmenter(in_channels, base_width)
'''

SECTION = {
    "method": "tiny_seg",
    "base_width": 4,
    "crop": 32,
    "stride": 16,
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.01,
    "seed": 0,
    # the channel policy with two windows cut from the demo's brain window ([0, 80] HU, convert.windows[0])
    "brain_window_only": True,
    "derived_windows": {"source": [0, 80], "windows": [[40, 80], [95, 100]]},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_tiny_project(tmp_path_factory.mktemp("new-segmenter"))

    def edit(params: dict) -> None:
        params["segmenters"].append("tiny_seg")
        params["segment"]["tiny_seg"] = SECTION

    add_in_one_file(root, "tiny_seg", SEGMENTER_FILE, edit, targets=("evaluate_segmentation", "bundle"))
    return root


def test_a_segmenter_in_one_file_trains_is_evaluated_and_packed(project):
    trained = json.loads((project / "metrics" / "segment" / "tiny_seg.json").read_text())
    assert trained["method"] == "tiny_seg" and trained["parameters"] == 3 * 4 * 9 + 4 + 4 + 1
    evaluation = json.loads((project / "metrics" / "segmentation" / "tiny_seg.json").read_text())
    assert 0 <= evaluation["dice_slices"] <= 1 and 0 <= evaluation["jaccard_slices"] <= 1
    manifest = json.loads((project / "data" / "bundle" / "manifest.json").read_text())
    assert manifest["segmenters"]["tiny_seg"]["method"] == "tiny_seg"
    assert "tiny_seg" not in manifest["classifiers"]
    listed = run(
        [sys.executable, "-c", "import ich.models as m; print(m.available(), m.available(segments=True))"], project
    )
    classifiers, segmenters = listed.strip().splitlines()[-1].split("] [")
    assert "tiny_seg" not in classifiers and "tiny_seg" in segmenters


def test_a_segmenter_in_one_file_outlines_a_study_through_ich_predict(project, tmp_path):
    write_cohort(tmp_path / "study", n_patients=1, slices_per_study=6, matrix=256, positive_fraction=1.0, seed=3)
    out = tmp_path / "report"
    study = tmp_path / "study" / "dicom" / "SYN00000"
    run(
        ["ich", "predict", str(study), "--segmenter", "tiny_seg", "--outline", "every_slice", "--out", str(out)],
        project,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["bleed"]["segmenter"] == "tiny_seg" and report["outputs"]["mask"] == "mask.nii.gz"
    assert all("bleed_pixels" in s for s in report["slices"])


def test_a_segmenter_cut_from_another_brain_window_is_not_packed(project, tmp_path):
    """Its derived windows would show other HU than it learned: the bundle refuses it, naming it."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".dvc", ".git"))
    network = copy / "data" / "segmenters" / "tiny_seg" / "network.json"
    described = json.loads(network.read_text())
    assert described["spec"]["derived_windows"] == SECTION["derived_windows"]
    described["spec"]["derived_windows"]["source"] = [-20, 100]
    network.write_text(json.dumps(described))
    pack = "from ich.predict.pack import pack_networks; pack_networks('.', 'bundle', ['wa2d_cnn3'], 'tiny_seg')"
    output = run([sys.executable, "-c", pack], copy, expect=1)  # the copy's registry knows tiny_seg
    assert "segmenter tiny_seg: derived_windows.source is [-20, 100] HU but its slices show" in output
    assert "[0, 80] HU" in output

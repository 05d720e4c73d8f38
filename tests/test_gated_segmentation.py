"""experiments/gated_segmentation.py: the outline gate of ``ich predict`` measured on pooled folds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def gate():
    return load_script("experiments/gated_segmentation.py")


def _row(slice_id, patient, ref, pred, inter, dice):
    return {
        "slice_id": slice_id,
        "patient_id": patient,
        "fold": 0,
        "threshold": 0.05,
        "operating": True,
        "ref_pixels": ref,
        "pred_pixels": pred,
        "intersection": inter,
        "dice": dice,
        "jaccard": dice / (2 - dice),
    }


def test_a_slice_below_the_classifiers_threshold_loses_its_mask(gate, tmp_path):
    table = pd.DataFrame(
        [
            _row("bleed-kept", "A", 100, 80, 60, 2 * 60 / 180),
            _row("bleed-dropped", "A", 50, 10, 5, 2 * 5 / 60),
            _row("speck-dropped", "B", 0, 12, 0, 0.0),
            _row("speck-kept", "B", 0, 7, 0, 0.0),
            _row("clean", "B", 0, 0, 0, 1.0),
        ]
    )
    fold = tmp_path / "fold0"
    fold.mkdir()
    pd.DataFrame(
        {
            "slice_id": table["slice_id"],
            "patient_id": table["patient_id"],
            "set": "test",
            "fold": 0,
            "prob_any": [0.9, 0.2, 0.1, 0.7, 0.05],
        }
    ).to_csv(fold / "m.csv", index=False)
    points = {"chosen_on": "val", "slice_youden": {"threshold": 0.5}, "slice_sensitivity": {"threshold": 0.15}}
    (fold / "m.operating_points.json").write_text(json.dumps(points))

    kept = gate.slices_above_threshold(tmp_path, "m", [0], "slice_youden")
    assert kept == {"bleed-kept", "speck-kept"}
    out = gate.gated(table, kept).set_index("slice_id")
    assert out.loc["bleed-dropped", ["pred_pixels", "intersection", "dice", "jaccard"]].tolist() == [0, 0, 0.0, 0.0]
    assert out.loc["speck-dropped", ["pred_pixels", "dice", "jaccard"]].tolist() == [0, 1.0, 1.0]
    assert out.loc["bleed-kept"].equals(table.set_index("slice_id").loc["bleed-kept"])
    figures = gate.summary(gate.gated(table, kept), n_boot=20, seed=0)
    assert figures["normal_slices_with_any_marked_pixel"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["bleeding_slices_with_any_marked_pixel"] == 0.5
    assert figures["dice"]["value"] == pytest.approx(60 / 180)
    assert gate.slices_above_threshold(tmp_path, "m", [0], "slice_sensitivity") == {
        "bleed-kept",
        "bleed-dropped",
        "speck-kept",
    }

    points["chosen_on"] = "test"
    (fold / "m.operating_points.json").write_text(json.dumps(points))
    with pytest.raises(ValueError, match="chosen on test, not val"):
        gate.slices_above_threshold(tmp_path, "m", [0], "slice_youden")

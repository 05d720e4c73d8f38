"""Training and ``ich predict`` give a network the same input for the same slices.

Training reads the converted PNGs through :class:`ich.data.datasets.SliceDataset`; prediction
renders a study again and stacks it with :func:`ich.predict.infer.network_inputs`. Were the two
to drift (another resize, channel order or neighbour rule), every report would score inputs the
networks never learned from, and nothing else would show it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from ich.data.cohort_conversion import ConvertConfig
from ich.data.datasets import SliceDataset
from ich.networks.classifier import ClassifierSpec
from ich.predict.infer import network_inputs
from ich.predict.inputs import study_from_manifest


@pytest.mark.parametrize(
    ("input_size", "grey", "context"), [(64, False, 0), (48, True, 0), (32, True, 1), (40, False, 2)]
)
def test_a_training_item_and_a_prediction_input_of_the_same_slices_are_equal(tiny_cohort, input_size, grey, context):
    index = tiny_cohort["index"]
    study_id = index["study_id"].iloc[0]
    table = index[index["study_id"] == study_id].sort_values("slice_order").reset_index(drop=True)
    manifest = pd.read_csv(tiny_cohort["raw"] / "manifest.csv", dtype=str, keep_default_na=False)
    rows = [r for r in manifest.to_dict("records") if str(tiny_cohort["raw"] / r["path"]) in set(table["source_path"])]
    study = study_from_manifest(rows, tiny_cohort["raw"], ConvertConfig(size=64, workers=1), name=study_id)

    training = SliceDataset(table, tiny_cohort["converted"], input_size=input_size, grey=grey, context=context)
    spec = ClassifierSpec("wa2d_cnn3", input_size=input_size, brain_window_only=grey, context=context)
    predicted = network_inputs(study, SimpleNamespace(spec=spec))

    assert predicted.dtype == torch.uint8 and len(predicted) == len(training) == len(table)
    for k in range(len(table)):
        assert torch.equal(predicted[k], training[k][0]), f"slice {k} differs"
    assert predicted.shape[1] == (1 if grey else 3) * (2 * context + 1)
    assert not torch.equal(predicted[0], predicted[-1])  # the slices are not all alike

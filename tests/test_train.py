from dataclasses import replace

import pandas as pd
import pytest
import torch

from ich.train.classify import ClassifierSpec, train_classifier
from ich.train.loop import TrainConfig

SPEC = ClassifierSpec("wa2d_cnn3", input_size=64, augment=False)
CONFIG = TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(cohort, split, config=CONFIG, spec=SPEC, **kw):
    return train_classifier(cohort["index"], split, cohort["converted"], spec, config, **kw)


def test_training_lowers_the_loss_and_predicts_val_and_test(tiny_cohort, tiny_split):
    model, result, predictions = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=4))
    losses = [e["train_loss"] for e in result.history]
    assert losses[-1] < losses[0]
    assert list(predictions.columns) == ["slice_id", "patient_id", "set", "fold", "prob_any"]
    assert set(predictions["set"]) == {"val", "test"}
    expected = tiny_cohort["index"].merge(tiny_split[tiny_split["set"] != "train"], on="patient_id")
    assert len(predictions) == len(expected)
    assert predictions["prob_any"].between(0, 1).all()
    assert 0 <= result.best_epoch < 4


def test_two_cpu_runs_with_one_seed_give_identical_weights(tiny_cohort, tiny_split):
    a, _, pa = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=2))
    b, _, pb = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=2))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    pd.testing.assert_frame_equal(pa, pb)


def test_resume_from_a_checkpoint_continues_the_same_run(tiny_cohort, tiny_split, tmp_path):
    full, full_result, _ = _train(tiny_cohort, tiny_split)
    ckpt = tmp_path / "ckpt.pt"
    _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=2), checkpoint=ckpt)
    # The interrupted run saved epoch 1; a 3-epoch run with the same fingerprint must resume there.
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1
    resumed, resumed_result, _ = _train(tiny_cohort, tiny_split, checkpoint=ckpt, config=CONFIG)
    assert [e["epoch"] for e in resumed_result.history] == [0, 1, 2]
    assert resumed_result.history == full_result.history
    for (k, va), vb in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(va, vb), k


def test_balancing_and_multilabel_outputs(tiny_cohort, tiny_split):
    spec = replace(SPEC, outputs="all")
    _, _, predictions = _train(
        tiny_cohort, tiny_split, config=replace(CONFIG, epochs=1), spec=spec, balance_policy="weighted_sampler"
    )
    assert [c for c in predictions.columns if c.startswith("prob_")] == [
        "prob_any", "prob_epidural", "prob_intraparenchymal", "prob_intraventricular", "prob_subarachnoid", "prob_subdural",
    ]


def test_training_reads_slices_packed_in_archives(tiny_cohort, tiny_split, tmp_path):
    from ich.data.convert import ConvertConfig, convert_cohort

    index, _ = convert_cohort(tiny_cohort["raw"], tmp_path, ConvertConfig(size=64, workers=1, shard_size=16))
    assert index["image_path"].str.contains(r"\.zip/").all()
    _, _, packed = train_classifier(index, tiny_split, tmp_path, SPEC, replace(CONFIG, epochs=1))
    _, _, loose = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=1))
    pd.testing.assert_frame_equal(packed, loose)

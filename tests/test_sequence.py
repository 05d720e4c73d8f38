"""The study-level sequence model (CNN + bidirectional GRU over a study) and its augmentations (window dropout, intensity)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ich.data.datasets import SliceDataset, StudyDataset
from ich.data.transforms import BatchPreparation
from ich.metrics import choose_operating_points, study_scores
from ich.models import build
from ich.networks.classifier import ClassifierSpec
from ich.train.classify import train_classifier
from ich.train.loop import TrainConfig
from ich.train.study import StudyLoss

SPEC = ClassifierSpec("study_gru", input_size=32)
CONFIG = TrainConfig(epochs=2, batch_size=1, lr=3e-3, scheduler="none", seed=0)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_study_model_gives_one_logit_per_slice_and_one_for_the_study():
    model = build("study_gru", in_channels=3, num_outputs=2, input_size=32).eval()
    out = model(torch.randn(2, 5, 3, 32, 32))
    assert out.shape == (2, 6, 2)
    with pytest.raises(ValueError, match="takes studies"):
        model(torch.randn(5, 3, 32, 32))


def test_a_slice_score_depends_on_its_neighbours_through_the_gru():
    # at initialisation the effect is about 1e-6, too small for a difference of outputs to
    # show reliably; the gradient shows whether the dependency exists at all
    torch.manual_seed(0)
    model = build("study_gru", in_channels=3, num_outputs=1, input_size=32).eval()
    study = torch.randn(1, 6, 3, 32, 32, requires_grad=True)
    logits = model(study)[0, :, 0]
    (first,) = torch.autograd.grad(logits[0], study, retain_graph=True)
    assert first[0, 5].abs().sum() > 0  # the first slice's logit sees the last slice
    (whole,) = torch.autograd.grad(logits[-1], study)
    assert (whole[0].flatten(1).abs().sum(1) > 0).all()  # the study logit sees every slice


def test_a_study_dataset_yields_whole_studies_in_slice_order(tiny_cohort):
    index = tiny_cohort["index"].sample(frac=1, random_state=0).reset_index(drop=True)  # rows shuffled
    slices = SliceDataset(index, tiny_cohort["converted"], input_size=32)
    studies = StudyDataset(slices, index)
    assert len(studies) == index["study_id"].nunique()
    x, y = studies[0]
    rows = studies.rows[0]
    assert x.shape == (len(rows), 3, 32, 32) and y.shape == (len(rows), 1)
    assert index.loc[rows, "slice_order"].tolist() == sorted(index.loc[rows, "slice_order"])
    assert len(set(index.loc[rows, "study_id"])) == 1
    assert studies.labels().tolist() == index.groupby("study_id")["any"].max().sort_index().astype(int).tolist()


def test_a_whole_study_is_prepared_as_its_slices_are():
    prepare = BatchPreparation(3, augment=False).eval()
    x = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(prepare(x), prepare(x.flatten(0, 1)).unflatten(0, (2, 4)))


def test_intensity_augmentation_changes_the_display_only_when_training():
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    prepare = BatchPreparation(3, augment=True, intensity=0.3, degrees=0, translate=0, scale=0, flip=False)
    plain = BatchPreparation(3, augment=False).eval()
    torch.manual_seed(0)
    changed = prepare.train()(x)
    assert not torch.allclose(changed, plain(x))
    assert torch.equal(prepare.eval()(x), plain(x))
    # the same change on every channel: a display change, not a new window
    grey = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8).expand(4, 3, 16, 16)
    torch.manual_seed(0)
    out = prepare.train()(grey) * prepare.std + prepare.mean
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_intensity_zero_draws_no_random_numbers():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(0)
    BatchPreparation(3, augment=True).train()(x)
    after_default = torch.rand(1)
    torch.manual_seed(0)
    BatchPreparation(3, augment=True, intensity=0.0).train()(x)
    assert torch.equal(torch.rand(1), after_default)


def test_study_loss_adds_the_study_term():
    targets = torch.tensor([[[0.0], [1.0], [0.0]]])
    output = torch.zeros(1, 4, 1)
    loss = StudyLoss(study_weight=0.0)(output, targets)
    assert loss == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(output[:, :3], targets)))
    assert StudyLoss(study_weight=1.0)(output, targets) > loss


def test_training_the_study_model_predicts_every_slice_and_its_study(tiny_cohort, tiny_split):
    _, result, predictions = train_classifier(
        tiny_cohort["index"], tiny_split, tiny_cohort["converted"], SPEC, CONFIG, balance_policy="weighted_sampler"
    )
    assert len(result.history) == 2
    expected = tiny_cohort["index"].merge(tiny_split[tiny_split["set"] != "train"], on="patient_id")
    assert len(predictions) == len(expected)
    assert set(predictions.columns) == {"slice_id", "patient_id", "set", "fold", "prob_any", "prob_study"}
    merged = predictions.merge(tiny_cohort["index"][["slice_id", "study_id", "any"]], on="slice_id")
    assert (merged.groupby("study_id")["prob_study"].nunique() == 1).all()  # one value per study
    assert predictions[["prob_any", "prob_study"]].stack().between(0, 1).all()
    # the study probability is a patient score downstream, if validation prefers it
    scores = study_scores(merged, "study_probability")
    assert np.allclose(scores["score"], merged.groupby("patient_id")["prob_study"].max().sort_index())
    points = choose_operating_points(predictions, tiny_cohort["index"])
    choice = points["patient_youden"]
    assert set(choice["val_roc_auc_by_study_score"]) == {
        "max_slice_probability",
        "mean_top3_slice_probability",
        "study_probability",
    }
    best = max(choice["val_roc_auc_by_study_score"].values())
    assert choice["val_roc_auc_by_study_score"][choice["study_score"]] == best


def test_a_study_model_takes_one_study_per_step(tiny_cohort, tiny_split):
    with pytest.raises(ValueError, match="batch_size: 1"):
        train_classifier(
            tiny_cohort["index"], tiny_split, tiny_cohort["converted"], SPEC, replace(CONFIG, batch_size=4)
        )


def test_the_eager_cache_returns_what_decoding_on_demand_returns(tiny_cohort):
    index = tiny_cohort["index"]
    cached = SliceDataset(index, tiny_cohort["converted"], input_size=32, cache=True, context=1)
    lazy = SliceDataset(index, tiny_cohort["converted"], input_size=32, cache=False, context=1)
    for i in (0, len(index) // 2, len(index) - 1):
        assert torch.equal(cached[i][0], lazy[i][0])
    assert pd.Series(cached.targets[:, 0].numpy()).equals(pd.Series(lazy.targets[:, 0].numpy()))

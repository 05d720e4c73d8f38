"""Slice context (2.5D): neighbour stacks from the index, datasets, models and training with them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ich.data.context import neighbour_rows
from ich.data.datasets import read_slice_image
from ich.networks.classifier import ClassifierSpec, build_classifier
from ich.train.classify import ClassifierTraining, train_classifier
from ich.train.loop import TrainConfig
from tests.test_models import CLASSIFIERS


def test_neighbours_follow_slice_order_within_each_study_and_repeat_at_the_edges():
    # rows deliberately out of order; study b has a gap in slice_order (2 is missing)
    table = pd.DataFrame(
        {
            "study_id": ["a", "b", "a", "a", "b", "b", "a"],
            "slice_order": [2, 0, 0, 3, 3, 1, 1],
        }
    )
    stacks = neighbour_rows(table, 1)
    order_of = lambda rows: [(table.at[r, "study_id"], int(table.at[r, "slice_order"])) for r in rows]  # noqa: E731
    assert order_of(stacks[2]) == [("a", 0), ("a", 0), ("a", 1)]  # first slice: the edge repeats
    assert order_of(stacks[0]) == [("a", 1), ("a", 2), ("a", 3)]
    assert order_of(stacks[3]) == [("a", 2), ("a", 3), ("a", 3)]
    assert order_of(stacks[4]) == [("b", 1), ("b", 3), ("b", 3)]  # the gap is skipped, not padded
    assert (stacks[:, 1] == np.arange(len(table))).all()  # every row is its own centre
    wide = neighbour_rows(table, 3)
    assert order_of(wide[1]) == [("b", 0)] * 4 + [("b", 1), ("b", 3), ("b", 3)]
    assert (neighbour_rows(table, 0) == np.arange(len(table))[:, None]).all()


def test_ambiguous_or_unordered_tables_are_errors():
    with pytest.raises(ValueError, match="slice_order 1 twice"):
        neighbour_rows(pd.DataFrame({"study_id": ["a", "a"], "slice_order": [1, 1]}), 1)
    with pytest.raises(ValueError, match="slice_order"):
        neighbour_rows(pd.DataFrame({"study_id": ["a"]}), 1)
    with pytest.raises(ValueError, match=">= 0"):
        neighbour_rows(pd.DataFrame({"study_id": ["a"], "slice_order": [0]}), -1)


@pytest.mark.parametrize("grey", [False, True])
def test_the_dataset_stacks_every_window_of_each_neighbour(tiny_cohort, grey):
    index = tiny_cohort["index"]
    spec = ClassifierSpec("wa2d_cnn3", input_size=32, brain_window_only=grey, context=1)
    image, _ = spec.dataset(index, tiny_cohort["converted"])[0]
    per_slice = spec.slice_channels
    assert image.shape == (3 * per_slice, 32, 32)
    stack = neighbour_rows(index, 1)[0]
    for slot, row in enumerate(stack):
        expected = read_slice_image(tiny_cohort["converted"] / index.at[row, "image_path"], 32, grey)
        assert np.array_equal(image[slot * per_slice : (slot + 1) * per_slice].numpy(), expected.transpose(2, 0, 1))


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_every_classifier_takes_a_stack(name):
    side = CLASSIFIERS[name]
    spec = ClassifierSpec(name, input_size=side, context=2)
    model = build_classifier(spec).eval()
    assert spec.slice_channels * spec.stack == 15
    assert model(torch.randn(2, 15, side, side)).shape == (2, 1)
    prepared = spec.preparation()(torch.zeros(1, 15, side, side, dtype=torch.uint8))
    assert prepared.shape == (1, 15, side, side)
    assert torch.allclose(prepared[0, :3], prepared[0, 12:])  # every slice normalised alike


def test_training_with_context_runs_end_to_end(tiny_cohort, tiny_split, one_thread):
    spec = ClassifierSpec("wa2d_cnn3", input_size=32, context=1)
    model, result, predictions = train_classifier(
        tiny_cohort["index"],
        tiny_split,
        tiny_cohort["converted"],
        spec,
        TrainConfig(epochs=2, batch_size=16, scheduler="none", seed=0),
    )
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 9
    assert len(result.history) == 2 and predictions["prob_any"].between(0, 1).all()


def test_window_dropout_shows_training_images_as_their_brain_window_only():
    spec = ClassifierSpec("wa2d_cnn3", input_size=8, context=1)
    x = torch.randint(0, 256, (4, 9, 8, 8), dtype=torch.uint8)
    train = ClassifierTraining(window_dropout=1.0).preparation(spec).train()
    train.degrees = train.translate = train.scale = 0.0  # isolate the dropout from the affine map
    train.flip = False
    out = train(x).view(4, 3, 3, 8, 8)
    raw = x.float().view(4, 3, 3, 8, 8) / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for window in range(3):  # every window now carries the brain window, normalised as that window
        expected = (raw[:, :, 0] - mean[window]) / std[window]
        assert torch.allclose(out[:, :, window], expected, atol=1e-5)
    evaluation = ClassifierTraining(window_dropout=1.0).preparation(spec).eval()(x).view(4, 3, 3, 8, 8)
    assert not torch.allclose(evaluation[:, :, 1], evaluation[:, :, 0])  # never at evaluation
    half = ClassifierTraining(window_dropout=0.5).preparation(ClassifierSpec("wa2d_cnn3", input_size=8)).train()
    torch.manual_seed(0)
    dropped = [bool(torch.equal(*half._drop_windows(torch.rand(1, 3, 2, 2)).unbind(1)[:2])) for _ in range(400)]
    assert 0.4 < np.mean(dropped) < 0.6
    with pytest.raises(ValueError, match="need augment"):
        ClassifierTraining(augment=False, window_dropout=0.3)
    with pytest.raises(ValueError, match="grey model"):
        ClassifierTraining(window_dropout=0.3).check(ClassifierSpec("thesis_cnn", brain_window_only=True))


def test_single_image_shows_training_stacks_as_a_one_image_study_sends_them():
    """With ``single_image`` the neighbours of a training slice become the slice itself, exactly the
    stack ich predict builds for a one-image study; never at evaluation; about the share asked."""
    spec = ClassifierSpec("bleedmap_lite0", input_size=8, context=1, brain_window_only=True)
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    train = ClassifierTraining(single_image=1.0).preparation(spec).train()
    train.degrees = train.translate = train.scale = 0.0
    train.flip = False
    out = train(x)
    one_image = network_inputs_of_one_image(x[:, 1:2])
    assert torch.allclose(out, train.eval()(one_image), atol=1e-6)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 2], out[:, 1])
    assert not torch.allclose(train.eval()(x)[:, 0], train.eval()(x)[:, 1])  # never at evaluation
    half = ClassifierTraining(single_image=0.5).preparation(spec).train()
    torch.manual_seed(0)
    repeated = [bool(torch.equal(*half._repeat_centre(torch.rand(1, 3, 2, 2)).unbind(1)[:2])) for _ in range(400)]
    assert 0.4 < np.mean(repeated) < 0.6
    with pytest.raises(ValueError, match="context > 0"):
        ClassifierTraining(single_image=0.3).check(ClassifierSpec("bleedmap_lite0", context=0))
    with pytest.raises(ValueError, match="need augment"):
        ClassifierTraining(augment=False, single_image=0.3)


def network_inputs_of_one_image(centre: torch.Tensor) -> torch.Tensor:
    """What ich predict stacks for one-slice studies (the edge slice repeats, ich.data.context)."""
    table = pd.DataFrame({"study_id": "one", "slice_order": [0]})
    return centre[:, torch.from_numpy(neighbour_rows(table, 1)[0])]

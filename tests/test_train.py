import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ich.networks.classifier import ClassifierSpec
from ich.train import loop
from ich.train.classify import ClassifierTraining, train_classifier
from ich.train.loop import TrainConfig

SPEC = ClassifierSpec("wa2d_cnn3", input_size=64)
PLAIN = ClassifierTraining(augment=False)
CONFIG = TrainConfig(epochs=3, batch_size=16, lr=3e-3, scheduler="none", seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(cohort, split, config=CONFIG, spec=SPEC, training=PLAIN, **kw):
    return train_classifier(cohort["index"], split, cohort["converted"], spec, config, training, **kw)


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
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    pd.testing.assert_frame_equal(pa, pb)


class Killed(Exception):
    """Stands for the process being killed."""


def _kill_after_checkpoint_of(epoch: int, monkeypatch) -> None:
    """Make the loop die right after it has written the checkpoint of ``epoch``."""
    real = loop.save_atomic

    def save_then_die(obj, path):
        real(obj, path)
        if obj["epoch"] == epoch:
            raise Killed

    monkeypatch.setattr(loop, "save_atomic", save_then_die)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
    tiny_cohort, tiny_split, tmp_path, monkeypatch
):
    full, full_result, _ = _train(tiny_cohort, tiny_split)
    ckpt = tmp_path / "ckpt.pt"
    with monkeypatch.context() as patch:
        _kill_after_checkpoint_of(1, patch)
        with pytest.raises(Killed):
            _train(tiny_cohort, tiny_split, checkpoint=ckpt, inputs_digest="pixels-a")
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed, resumed_result, _ = _train(tiny_cohort, tiny_split, checkpoint=ckpt, inputs_digest="pixels-a")
    assert resumed_result.start_epoch == 2
    assert [e["epoch"] for e in resumed_result.history] == [0, 1, 2]
    assert resumed_result.history == full_result.history
    for (k, va), vb in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize(
    "change",
    ["inputs_digest", "labels", "code"],
)
def test_a_checkpoint_of_other_inputs_never_resumes(change, tiny_cohort, tiny_split, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.pt"
    config = replace(CONFIG, epochs=2)
    _train(tiny_cohort, tiny_split, config=config, checkpoint=ckpt, inputs_digest="pixels-a")
    cohort, digest = dict(tiny_cohort), "pixels-a"
    if change == "inputs_digest":  # the images (or the calling script) changed
        digest = "pixels-b"
    elif change == "labels":
        index = cohort["index"].copy()
        index.loc[index.index[0], "any"] = 1 - index.loc[index.index[0], "any"]
        cohort["index"] = index
    else:
        monkeypatch.setattr(loop, "code_digest", lambda: "edited code")
    _, result, _ = _train(cohort, tiny_split, config=config, checkpoint=ckpt, inputs_digest=digest)
    assert result.start_epoch == 0
    assert [e["epoch"] for e in result.history] == [0, 1]


def _drawn_positive_share(monkeypatch, cohort, split, policy: str) -> float:
    """The share of positive slices among those the training loop drew in its epochs."""
    drawn = []

    def recording(dataset, balance, config, epoch):
        rows = loop.epoch_rows(balance, config, epoch)
        drawn.extend(float(dataset.targets[r, 0]) for r in rows)
        return original(dataset, balance, config, epoch)

    original = loop.epoch_loader
    monkeypatch.setattr(loop, "epoch_loader", recording)
    _train(cohort, split, config=replace(CONFIG, epochs=2), balance_policy=policy)
    return float(np.mean(drawn))


def test_the_balancing_policy_reaches_the_training_loop(monkeypatch, tiny_cohort, tiny_split):
    train_ids = set(tiny_split.loc[tiny_split["set"] == "train", "patient_id"])
    index = tiny_cohort["index"]
    share = index.loc[index["patient_id"].isin(train_ids), "any"].mean()
    assert share < 0.4, "the tiny cohort's training slices are mostly negative"
    assert _drawn_positive_share(monkeypatch, tiny_cohort, tiny_split, "none") == pytest.approx(share)
    assert _drawn_positive_share(monkeypatch, tiny_cohort, tiny_split, "weighted_sampler") == pytest.approx(
        0.5, abs=0.12
    )


def test_multilabel_outputs(tiny_cohort, tiny_split):
    spec = replace(SPEC, subtypes=True)
    _, _, predictions = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=1), spec=spec)
    assert [c for c in predictions.columns if c.startswith("prob_")] == [
        "prob_any",
        "prob_epidural",
        "prob_intraparenchymal",
        "prob_intraventricular",
        "prob_subarachnoid",
        "prob_subdural",
    ]


def test_training_reads_slices_packed_in_archives(tiny_cohort, tiny_split, tmp_path):
    from ich.data.cohort_conversion import ConvertConfig, convert_cohort

    index, _ = convert_cohort(tiny_cohort["raw"], tmp_path, ConvertConfig(size=64, workers=1, shard_size=16))
    assert index["image_path"].str.contains(r"\.zip/").all()
    _, _, packed = train_classifier(index, tiny_split, tmp_path, SPEC, replace(CONFIG, epochs=1), PLAIN)
    _, _, loose = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=1))
    pd.testing.assert_frame_equal(packed, loose)


def test_cosine_schedule_decays_the_rate_to_zero_over_the_epochs(tiny_cohort, tiny_split):
    _, result, _ = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=3, scheduler="cosine"))
    rates = [e["lr"] for e in result.history]  # the rate after each epoch's step
    assert rates == pytest.approx([CONFIG.lr * 0.75, CONFIG.lr * 0.25, 0.0], abs=1e-9)


def test_batchnorm_recalibration_replaces_stale_statistics_with_those_of_the_training_rows():
    from torch import nn

    from ich.data.transforms import BatchPreparation

    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    dataset = [(images[i], torch.zeros(1)) for i in range(len(images))]
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    model[0].running_mean.fill_(5.0)  # stale
    prepare = BatchPreparation(3, augment=True).train()
    config = TrainConfig(epochs=10, batch_size=8, scheduler="none", bn_recalibration_batches=2)
    rows = np.arange(len(images))
    loop.recalibrate_batchnorm(model, dataset, rows, config, torch.device("cpu"), prepare)
    chosen = rows[np.linspace(0, len(rows) - 1, 16).round().astype(int)]
    expected = BatchPreparation(3, augment=False)(images[chosen]).mean(dim=(0, 2, 3))
    assert torch.allclose(model[0].running_mean, expected, atol=1e-5)
    assert prepare.training and model.training  # modes restored
    off = nn.Sequential(nn.BatchNorm2d(3))
    off[0].running_mean.fill_(5.0)
    loop.recalibrate_batchnorm(
        off, dataset, rows, replace(config, bn_recalibration_batches=0), torch.device("cpu"), prepare
    )
    assert torch.all(off[0].running_mean == 5.0)


def test_refit_trains_on_validation_patients_too_and_keeps_validation_for_the_points(
    tiny_cohort, tiny_split, monkeypatch
):
    config = replace(CONFIG, epochs=3, scheduler="cosine")
    plain, result, predictions = _train(tiny_cohort, tiny_split, config=config)
    seen: list[tuple[set[str], int]] = []
    real_fit = loop.fit

    def recording_fit(model, train_set, **kw):
        seen.append((len(train_set), kw["config"].epochs, kw["validate"] is None))
        return real_fit(model, train_set, **kw)

    monkeypatch.setattr("ich.train.classify.fit", recording_fit)
    refit, refit_result, refit_predictions = _train(tiny_cohort, tiny_split, config=replace(config, refit=True))
    table = tiny_cohort["index"].merge(tiny_split, on="patient_id")
    n_train, n_val = (int((table["set"] == s).sum()) for s in ("train", "val"))
    assert seen == [(n_train, 3, False), (n_train + n_val, result.best_epoch + 1, True)]
    assert refit_result.best_epoch == result.best_epoch
    val, test = (refit_predictions["set"] == s for s in ("val", "test"))
    # validation predictions come from the network validation chose, the test ones from the refit
    pd.testing.assert_series_equal(refit_predictions.loc[val, "prob_any"], predictions.loc[val, "prob_any"])
    assert not np.allclose(refit_predictions.loc[test, "prob_any"], predictions.loc[test, "prob_any"])
    assert not torch.equal(next(iter(refit.state_dict().values())), next(iter(plain.state_dict().values())))
    with pytest.raises(ValueError, match="plateau"):
        replace(config, refit=True, scheduler="plateau")


def test_a_trained_network_describes_itself_and_inference_builds_from_that(tiny_cohort, tiny_split, tmp_path):
    """network.json beside model.pt holds the spec, what the network reads and what it learnt
    from; the network built from it alone gives the trained network's probabilities."""
    from ich.networks.classifier import (
        NETWORK_FILE,
        build_classifier,
        predict_probs,
        read_network_spec,
        write_network_spec,
    )
    from ich.train.classify import trained_on

    spec = replace(SPEC, context=1, arch_options={"batch_norm": True})
    model, _, predictions = _train(tiny_cohort, tiny_split, config=replace(CONFIG, epochs=1), spec=spec)
    with pytest.raises(FileNotFoundError, match=f"{NETWORK_FILE} is missing"):
        read_network_spec(tmp_path)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    write_network_spec(tmp_path, spec, trained_on({"name": "tiny", "synthetic": True}, predictions, refit=False))
    record = json.loads((tmp_path / NETWORK_FILE).read_text())
    assert record["input"]["channels"] == 9 and record["input"]["slices"] == 3 and record["outputs"] == ["any"]
    assert record["trained_on"]["cohort"] == "tiny" and record["trained_on"]["test_patients"] > 0
    assert "augment" not in record["spec"] and "paste" not in record["spec"]  # training knobs stay training's
    described = read_network_spec(tmp_path)
    assert described == spec
    rebuilt = build_classifier(described, tmp_path / "model.pt")
    data = described.dataset(tiny_cohort["index"].head(8), tiny_cohort["converted"])
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    prepare = described.preparation()
    np.testing.assert_array_equal(
        predict_probs(rebuilt, loader, torch.device("cpu"), prepare),
        predict_probs(model, loader, torch.device("cpu"), prepare),
    )

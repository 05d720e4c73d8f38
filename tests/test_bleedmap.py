"""Pixel-level supervision: the bleed-map network, its loss, and real bleeds pasted into normal slices."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ich.data.batch import MapTargets, MaskedSlices
from ich.data.bleed_paste import BleedBank, intracranial_region
from ich.data.datasets import SliceDataset
from ich.models import available, build, capabilities, register, registry
from ich.models.bleedmap import MapScoredClassifier
from ich.networks.classifier import ClassifierSpec
from ich.train.bleedmap import MapLoss, MapSupervision
from ich.train.classify import ClassifierTraining, train_classifier
from ich.train.loop import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 64


def head(centre=(32, 32), bleed: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A brain-window slice: a bone ring (255) around brain (110), optionally a bleed disc (200) and its mask."""
    image = np.zeros((SIDE, SIDE), np.uint8)
    cv2.circle(image, centre, 28, 255, thickness=-1)
    cv2.circle(image, centre, 25, 110, thickness=-1)
    mask = np.zeros_like(image)
    if bleed is not None:
        row, col, radius = bleed
        cv2.circle(image, (col, row), radius, 200, thickness=-1)
        cv2.circle(mask, (col, row), radius, 255, thickness=-1)
    return image, mask


def bank_of(rows: list[tuple[np.ndarray, np.ndarray, int]], sets: list[str], probability=1.0) -> BleedBank:
    images = torch.from_numpy(np.stack([r[0] for r in rows])[:, None])
    masks = torch.from_numpy(np.stack([r[1] for r in rows]))
    targets = torch.tensor([[float(r[2])] for r in rows])
    table = pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(rows))], "set": sets})
    return BleedBank(images, masks, targets, table, probability=probability)


def test_intracranial_region_is_inside_the_skull_and_not_bone():
    image, _ = head()
    inside = intracranial_region(image)
    assert inside.any() and not (image[inside] == 255).any()
    yy, xx = np.mgrid[:SIDE, :SIDE]
    assert ((yy - 32) ** 2 + (xx - 32) ** 2)[inside].max() < 25**2  # within the inner table
    assert not intracranial_region(np.full((SIDE, SIDE), 110, np.uint8)).any()  # no skull: nowhere


def test_a_pasted_bleed_lies_inside_the_skull_and_its_mask_follows_it():
    donor = head(bleed=(30, 40, 5))
    recipient, _ = head(centre=(30, 34))  # another head, shifted
    bank = bank_of([(*donor, 1)], ["train"])
    torch.manual_seed(0)
    image, mask, targets = bank.maybe_paste(
        torch.from_numpy(recipient[None]), torch.zeros(SIDE, SIDE, dtype=torch.uint8), torch.tensor([0.0, 1.0])
    )
    image, mask = image.numpy()[0], mask.numpy() > 0
    assert targets.tolist() == [1.0, 1.0]  # labelled as the donor's slice; the "mask known" column kept
    assert mask.sum() == (donor[1] > 0).sum()  # the whole bleed, nothing else
    assert intracranial_region(recipient)[mask].all()  # every bleed pixel inside the recipient's skull
    changed = image.astype(int) != recipient.astype(int)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert changed[mask].all() and not changed[~near].any()  # the mask is where the image changed
    assert abs(float(image[mask].mean()) - 200) < 3  # same brain level around it: the bleed's own density
    assert (image[recipient == 255] == 255).all()  # the skull untouched


def test_paste_matches_the_recipients_brain_level():
    donor = head(bleed=(30, 40, 5))
    recipient, _ = head()
    recipient[recipient == 110] = 90  # a darker brain (another display)
    bank = bank_of([(*donor, 1)], ["train"])
    image, mask = bank.paste(torch.from_numpy(recipient[None]), bank.donors[0])
    assert abs(float(image.numpy()[0][mask.numpy() > 0].mean()) - 180) < 3  # 90 + the donor's contrast of 90


def test_no_validation_or_test_patient_is_a_donor():
    donor = head(bleed=(30, 40, 5))
    with pytest.raises(ValueError, match="training slices"):
        bank_of([(*donor, 1), (*head(), 0)], ["train", "val"])
    with pytest.raises(ValueError, match="no training slice has a bleed mask"):
        bank_of([(*head(), 0)], ["train"])


def test_positive_slices_and_draws_without_a_place_are_left_alone():
    bank = bank_of([(*head(bleed=(30, 40, 5)), 1)], ["train"])
    image = torch.from_numpy(head()[0][None])
    empty = torch.zeros(SIDE, SIDE, dtype=torch.uint8)
    same = bank.maybe_paste(image, empty, torch.tensor([1.0, 0.0]))
    assert same[0] is image and same[2].tolist() == [1.0, 0.0]
    no_skull = torch.full((1, SIDE, SIDE), 110, dtype=torch.uint8)
    assert bank.paste(no_skull, bank.donors[0]) is None


def test_bleedmap_network_heads_and_scores():
    x = torch.randn(2, 3, 64, 64)
    for score in ("mean", "class", "peak"):
        net = build("bleedmap_cnn", in_channels=3, num_outputs=6, input_size=64, width=8, score=score).eval()
        logits, bleed_map = net.forward_maps(x)
        assert logits.shape == (2, 6) and bleed_map.shape == (2, 1, 16, 16)
        fused = net(x)
        assert fused.shape == (2, 6)
        assert torch.allclose(fused[:, 1:], logits[:, 1:])  # subtypes from the head alone
        expected = {
            "class": logits[:, 0],
            "peak": bleed_map.flatten(1).amax(1),
            "mean": torch.logit((logits[:, 0].sigmoid() + bleed_map.flatten(1).amax(1).sigmoid()) / 2, eps=1e-7),
        }[score]
        assert torch.allclose(fused[:, 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by 16"):
        build("bleedmap_cnn", in_channels=1, num_outputs=1, input_size=40)


def test_map_loss_supervises_known_masks_only():
    net = build("bleedmap_cnn", in_channels=1, num_outputs=1, input_size=32, width=4)
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, 0, 8:16, 8:16] = 1
    with torch.no_grad():
        output = MapSupervision(net)(MaskedSlices(torch.randn(2, 1, 32, 32), mask))
    assert output[2].shape == (2, 1, 8, 8) and output[2][0].sum() == 4 and output[2][1].sum() == 0
    labels = torch.tensor([[1.0], [0.0]])
    both, neither, first = (MapTargets(labels, torch.tensor(k)) for k in ([1.0, 1.0], [0.0, 0.0], [1.0, 0.0]))
    loss = MapLoss()
    known = float(loss(output, both))
    slice_only = float(MapLoss(map_weight=0)(output, both))
    unknown = float(loss(output, neither))
    assert known > slice_only and unknown == pytest.approx(slice_only)
    # the map term reads a slice's mask only where that mask is known
    moved = output[0], output[1], torch.stack([torch.roll(output[2][0], 3, dims=-1), output[2][1]])
    second = MapTargets(labels, torch.tensor([0.0, 1.0]))
    assert float(loss(moved, second)) == pytest.approx(float(loss(output, second)))
    assert float(loss(moved, both)) != pytest.approx(known)
    assert float(loss(moved, first)) != pytest.approx(float(loss(output, first)))


def test_dataset_carries_the_mask_and_whether_it_is_known(tiny_cohort):
    index = tiny_cohort["index"].copy()
    positive = index.index[index["any"] == 1][0]
    index.loc[positive, "mask_path"] = ""  # a positive slice without a mask: its map is unknown
    data = SliceDataset(index, tiny_cohort["converted"], input_size=32, grey=True, masks=True)
    (image, mask), (labels, known) = data[int(positive)]
    assert image.shape == mask.shape == (1, 32, 32) and labels.tolist() == [1.0] and float(known) == 0.0
    negative = int(index.index[index["any"] == 0][0])
    inputs, targets = data[negative]
    assert targets.labels.tolist() == [0.0] and float(targets.mask_known) == 1.0 and inputs.mask.sum() == 0
    with_mask = int(index.index[(index["any"] == 1) & (index["mask_path"] != "")][0])
    assert data[with_mask][0].mask.max() == 255 and float(data[with_mask][1].mask_known) == 1.0
    # the default collate keeps the names: a batch is MaskedSlices of (B, 1, H, W) and MapTargets
    inputs, targets = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert isinstance(inputs, MaskedSlices) and inputs.image.shape == inputs.mask.shape == (4, 1, 32, 32)
    assert isinstance(targets, MapTargets) and targets.labels.shape == (4, 1) and targets.mask_known.shape == (4,)


def test_bleedmap_trains_on_masks_with_pasted_bleeds_from_training_patients_only(tiny_cohort, tiny_split):
    spec = ClassifierSpec("bleedmap_cnn", input_size=32, brain_window_only=True, context=1, arch_options={"width": 8})
    training = ClassifierTraining(paste=0.5, rewindow={"source": [0, 80]})
    config = TrainConfig(epochs=2, batch_size=16, lr=3e-3, scheduler="none", seed=0)
    table = tiny_cohort["index"].merge(tiny_split[["patient_id", "set", "fold"]], on="patient_id")
    train = table[table["set"] == "train"].reset_index(drop=True)
    data = training.dataset(spec, train, tiny_cohort["converted"])
    assert data.bank is not None and data.bank.patients <= set(train["patient_id"])
    with pytest.raises(ValueError, match="training slices"):
        training.dataset(spec, table, tiny_cohort["converted"])  # validation and test rows: refused
    torch.manual_seed(0)
    pasted = [data[i] for i in np.flatnonzero(train["any"].to_numpy() == 0)]
    gained = [t.labels[0] == 1 and x.mask.any() for x, t in pasted]
    assert 0 < sum(gained) < len(gained)  # about half of the normal slices got a bleed and its mask

    def train():
        cohort = tiny_cohort["index"], tiny_split, tiny_cohort["converted"]
        return train_classifier(*cohort, spec, config, training, balance_policy="loss_weights")

    model, result, predictions = train()
    assert list(predictions.columns) == ["slice_id", "patient_id", "set", "fold", "prob_any"]
    assert predictions["prob_any"].between(0, 1).all() and len(result.history) == 2
    again = train()[2]
    pd.testing.assert_frame_equal(predictions, again)  # pasting and re-windowing are seeded
    with pytest.raises(ValueError, match="bleed-map model"):
        training.check(replace(spec, arch="wa2d_cnn3"))


def test_the_mask_follows_the_image_through_the_augmentation():
    from ich.data.transforms import GREY_MEAN, GREY_STD, BatchPreparation, Rewindow

    square = torch.zeros(8, 1, 32, 32, dtype=torch.uint8)
    square[:, :, 8:20, 10:18] = 255
    prepare = BatchPreparation(1, augment=True, degrees=30, translate=0.2, intensity=0.3).train()
    torch.manual_seed(0)
    out = prepare(MaskedSlices(square, square))
    assert isinstance(out, MaskedSlices)
    image, mask = out.image * GREY_STD[0] + GREY_MEAN[0], out.mask
    assert not torch.equal(mask > 0.5, square.bool())  # moved
    agree = ((image > 0.5) == (mask > 0.5)).float().mean()
    assert agree > 0.99  # wherever the square went, its mask went too
    assert mask.min() >= 0 and mask.max() <= 1  # the mask is neither normalised nor re-displayed
    with pytest.raises(ValueError, match="grey"):
        BatchPreparation(3, augment=True, rewindow=Rewindow(source=(-20, 100)))


class _CoarseMapNet(MapScoredClassifier):
    """A bleed-map network declared only here: its map at stride 8 (the built-in ones use 4)."""

    def __init__(self, in_channels: int, num_outputs: int) -> None:
        super().__init__("mean")
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(8))
        self.map_head, self.head = nn.Conv2d(8, 1, 1), nn.Linear(8, num_outputs)

    def forward_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.head(features.mean(dim=(2, 3))), self.map_head(features)

    def cam_layer(self) -> nn.Module:
        return self.features[0]


def test_a_bleed_map_model_declared_in_one_place_trains_on_masks_with_no_edit_elsewhere(
    tiny_cohort, tiny_split, monkeypatch
):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the test's model leaves with it
    register("coarse_map", bleed_map=True)(
        lambda *, in_channels, num_outputs, input_size: _CoarseMapNet(in_channels, num_outputs)
    )
    spec = ClassifierSpec("coarse_map", input_size=32, brain_window_only=True)
    assert spec.uses_masks and not spec.per_study and "coarse_map" in available(bleed_map=True)
    config = TrainConfig(epochs=1, batch_size=16, lr=3e-3, scheduler="none", seed=0)
    _, result, predictions = train_classifier(
        tiny_cohort["index"], tiny_split, tiny_cohort["converted"], spec, config, ClassifierTraining(paste=0.5),
        balance_policy="loss_weights",
    )  # fmt: skip
    assert predictions["prob_any"].between(0, 1).all() and len(result.history) == 1
    # the map target follows the network's own stride: 32 px input, a 4 x 4 map
    logits, bleed_map, target = MapSupervision(_CoarseMapNet(1, 1))(MaskedSlices(*torch.zeros(2, 2, 1, 32, 32)))
    assert bleed_map.shape == target.shape == (2, 1, 4, 4)
    assert capabilities("study_gru").reads_studies and not capabilities("wa2d_cnn3").bleed_map

"""Tests for the segmenters of Hssayeni 2020 (ich.train.segmenter.fit_unet, ich.train.segmenter.fit_band, ich.train.segmenter.fit), their evaluation (ich.segmentation.map_evaluation)
and their two DVC stages, run as plain functions on the tiny synthetic cohort."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from ich.networks.segmenter import UNetSpec, unet_predictor
from ich.segmentation import (
    POST_PROCESS_FILE,
    AffineRanges,
    PostProcess,
    augment_crop,
    choose_post_process,
    crop_grid,
    extract_crops,
    post_process_candidates,
    read_post_process,
    read_prob_map,
    score_candidates,
    segment_slice,
    write_post_process,
    write_prob_map,
)
from ich.segmentation.inference import predict_prob_map
from ich.segmentation.map_evaluation import overlay_slices, per_slice_table, segmenter_metrics, volume_points
from ich.train.loop import TrainConfig
from ich.train.losses import BceDiceLoss, make_loss
from ich.train.segmenter.data import read_pair, segmentation_parts, training_crops
from ich.train.segmenter.fit import choose_on_validation, predict_split
from ich.train.segmenter.fit_band import band_predictor, fit_band
from ich.train.segmenter.fit_unet import train_unet
from ich.train.segmenter.settings import BandSpec, UNetTraining, band_settings, unet_settings
from tests.conftest import REPO, load_script

# 64 px slices: 32 px crops with stride 16 (3 x 3 per slice), the demo's 64/32 at 128 px halved.
SPEC = UNetSpec(method="unet", base_width=8, crop=32, stride=16)
TRAINING = UNetTraining(loss="bce_dice")
CONFIG = TrainConfig(epochs=20, batch_size=16, lr=3e-3, scheduler="none", seed=0)
POST = PostProcess(threshold=0.5, close_kernel=3, open_kernel=3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parts(tiny_cohort, tiny_split) -> dict[str, pd.DataFrame]:
    return segmentation_parts(tiny_cohort["index"], tiny_split)


def _evaluate(predict, cohort, parts, out: Path) -> dict:
    """Maps of val and test through predict_split, scored on test exactly as the stage does."""
    predictions = predict_split(predict, cohort["converted"], parts, out)
    table = per_slice_table(predictions, cohort["index"], cohort["converted"], out, POST, [0.5, 0.9])
    return segmenter_metrics(table)


# --- the headline: the U-Net beats the band --------------------------------------------------


def test_unet_trained_on_crops_beats_the_threshold_band(tiny_cohort, parts, tmp_path):
    """On the synthetic test patients the U-Net's Dice and Jaccard beat the band's (Hssayeni 2020's comparison).

    BCE alone needs many more epochs than a test can afford on this small cohort (it first
    learns "no bleed" everywhere), so the Dice-augmented loss is used; the demo uses BCE.
    """
    model, result = train_unet(tiny_cohort["converted"], parts, SPEC, TRAINING, CONFIG, [POST])
    assert result.best_score > 0 and len(result.history) == CONFIG.epochs
    unet = _evaluate(unet_predictor(model, SPEC), tiny_cohort, parts, tmp_path / "unet")

    lo, hi, grid = fit_band(tiny_cohort["converted"], parts["train"], BandSpec(), POST)
    assert 100 <= lo <= hi <= 255 and len(grid) > 1
    band = _evaluate(band_predictor(lo, hi, BandSpec()), tiny_cohort, parts, tmp_path / "band")

    for score in ("dice", "jaccard"):
        assert unet["slice"]["with_bleed"][score]["mean"] > band["slice"]["with_bleed"][score]["mean"], score
    assert unet["slice"]["with_bleed"]["dice"]["mean"] > 0.3
    assert unet["volume"]["mean_abs_error_ml"] < band["volume"]["mean_abs_error_ml"]
    # The band's map is 0/1: every threshold of Table 6 gives the same detection.
    table6 = band["detection_by_threshold"]
    assert table6["threshold_0.5"] == table6["threshold_0.9"]


def test_two_cpu_runs_with_one_seed_give_identical_weights(tiny_cohort, parts):
    config = replace(CONFIG, epochs=2)
    a, ra = train_unet(tiny_cohort["converted"], parts, SPEC, TRAINING, config, [POST])
    b, rb = train_unet(tiny_cohort["converted"], parts, SPEC, TRAINING, config, [POST])
    assert ra.history == rb.history
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), name


# --- training pieces ---------------------------------------------------------------------------


def test_training_crops_keep_every_positive_and_undersample_negatives(tiny_cohort, parts):
    for ratio in (0.5, 1.0):
        training = replace(TRAINING, negative_ratio=ratio)
        data = training_crops(tiny_cohort["converted"], parts["train"], SPEC, training, seed=0)
        with_bleed = sum(bool(data.slices[k][1][y : y + 32, x : x + 32].any()) for k, (y, x) in data.crops)
        assert len(data) - with_bleed == round(ratio * with_bleed)
        assert len(data.slices) == len({k for k, _ in data.crops})  # only contributing slices in memory


def test_crop_items_are_the_grid_crops_and_augment_image_and_mask_together(tiny_cohort, parts):
    plain = training_crops(tiny_cohort["converted"], parts["train"], SPEC, replace(TRAINING, augment=None), seed=0)
    which, (y, x) = plain.crops[0]
    image, mask = plain[0]
    assert image.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
    expected = extract_crops(plain.slices[which][0], [(y, x)], 32)[0].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(mask[0].numpy(), plain.slices[which][1][y : y + 32, x : x + 32])

    augmented = training_crops(tiny_cohort["converted"], parts["train"], SPEC, TRAINING, seed=0)
    torch.manual_seed(3)
    first = augmented[0]
    torch.manual_seed(3)
    again = augmented[0]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], image)


def test_augment_crop_without_ranges_is_the_crop_and_keeps_mask_aligned():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    mask = np.zeros((96, 96), dtype=bool)
    mask[40:60, 30:52] = True
    zero = AffineRanges(0.0, 0.0, 0.0, 0.0)
    out_image, out_mask = augment_crop(image, mask, (32, 16), 48, zero, rng)
    np.testing.assert_array_equal(out_image, image[32:80, 16:64])
    np.testing.assert_array_equal(out_mask, mask[32:80, 16:64])
    assert out_mask.dtype == bool
    # With the mask painted into a channel, the warped channel and the warped mask coincide.
    painted = image.copy()
    painted[..., 1] = mask * 255
    for seed in range(5):
        warped, warped_mask = augment_crop(painted, mask, (24, 8), 64, AffineRanges(), np.random.default_rng(seed))
        assert warped.shape == (64, 64, 3)
        assert np.count_nonzero((warped[..., 1] >= 128) != warped_mask) <= 0.05 * warped_mask.sum()
    # The bleed near the crop centre stays in the crop under Hssayeni 2020's ranges.
    assert warped_mask.any()


def test_bce_dice_loss_rewards_the_right_mask_and_is_finite_without_bleed():
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1
    right, wrong = (target * 2 - 1) * 8, (0.5 - target) * 8
    loss = BceDiceLoss()
    assert loss(right, target) < 0.01 < loss(wrong, target)
    assert torch.isfinite(loss(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)))
    assert isinstance(make_loss("bce"), nn.BCEWithLogitsLoss)
    with pytest.raises(ValueError, match="unknown segmentation loss"):
        make_loss("focal")


def test_initialised_unet_is_not_constant_and_its_bleed_map_is_alive():
    from ich.models import build

    torch.manual_seed(0)
    model = build("unet", in_channels=3, num_outputs=1, input_size=32, base_width=8)
    maps, combine = model.head[0], model.head[-1]
    assert combine.weight[0, 0] > 0 > combine.weight[0, 1] and maps.bias[0] == 1.0
    out = model(torch.rand(4, 3, 32, 32))
    assert out.std() > 1e-3


class _ChannelZero(nn.Module):
    """A stand-in network whose bleed probability is the input's first channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x[:, :1].clamp(1e-6, 1 - 1e-6).double()).float()


def test_predict_prob_map_stitches_crop_predictions_back_exactly():
    image = np.random.default_rng(1).integers(1, 255, size=(80, 80, 3), dtype=np.uint8)
    assert len(crop_grid(80, 80, 32, 16)) == 16
    prob = predict_prob_map(_ChannelZero(), image, 32, 16, torch.device("cpu"), batch_size=5)
    np.testing.assert_allclose(prob, image[..., 0] / 255.0, atol=1e-5)


# --- settings ----------------------------------------------------------------------------------


def test_unet_settings_default_to_the_paper_and_reject_unknown_keys():
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["segment"]["defaults"]
    spec, training, config = unet_settings({"method": "unet"}, defaults)
    assert (spec.crop, spec.stride, spec.base_width) == (160, 80, 64)
    assert (training.loss, training.augment, training.negative_ratio) == ("bce", AffineRanges(), 1.0)
    assert (config.lr, config.epochs, config.batch_size, config.scheduler) == (1e-5, 150, 32, "none")
    spec, training, config = unet_settings({"method": "unet", "augment": False, "lr": 0.003, "crop": 64}, defaults)
    assert training.augment is None and spec.crop == 64 and config.lr == 0.003 and config.epochs == 150
    _, training, _ = unet_settings({"method": "unet", "augment": {"rotation_deg": 5}}, defaults)
    assert training.augment == AffineRanges(rotation_deg=5)
    # no default network: a section names its registered segmenter (the names live in ich/models)
    with pytest.raises(ValueError, match="segmenter method must be one of .*got None"):
        unet_settings({"crop": 64}, defaults)
    assert unet_settings({"method": "unet", "augment": True}, defaults)[1].augment == AffineRanges()
    with pytest.raises(ValueError, match="unknown keys"):
        unet_settings({"method": "unet", "epoch": 3}, defaults, where="segment.unet")
    # the loop's own defaults are the classifiers': a segmenter never gets them unasked
    with pytest.raises(ValueError, match="segment.defaults must set every loop key; it lacks scheduler"):
        unet_settings({"method": "unet"}, {k: v for k, v in defaults.items() if k != "scheduler"})


def test_the_code_keeps_params_yaml_segment_defaults_as_its_own():
    """As train.defaults for classifiers (tests/test_params.py): the spec and training classes of a
    network segmenter default to segment.defaults, and segment.defaults sets every key they and the
    loop have."""
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["segment"]["defaults"]
    for cls in (UNetSpec, UNetTraining):
        for field in dataclasses.fields(cls):
            if field.name == "method":
                continue
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            written = AffineRanges(**defaults[field.name]) if field.name == "augment" else defaults[field.name]
            assert default == written, (cls.__name__, field.name, default, written)
    everything = {f.name for cls in (UNetSpec, UNetTraining, TrainConfig) for f in dataclasses.fields(cls)}
    assert set(defaults) == everything - {"method"}

    assert band_settings({"method": "threshold_band", "lo": [1, 2, 1]}).lo == (1, 2, 1)
    with pytest.raises(ValueError, match="unknown keys"):
        band_settings({"method": "threshold_band", "band": [1, 2]})


def test_a_cohort_without_masks_cannot_train_a_segmenter(tiny_cohort, tiny_split):
    index = tiny_cohort["index"].assign(mask_path="")
    with pytest.raises(ValueError, match="no training slice has a reference bleed mask"):
        segmentation_parts(index, tiny_split)


# --- maps and evaluation -----------------------------------------------------------------------


def test_prob_maps_round_trip_within_their_quantisation(tmp_path):
    prob = np.random.default_rng(2).random((20, 30))
    prob[0, :3] = [0.0, 1.0, 0.5]
    write_prob_map(tmp_path / "a" / "p.png", prob)
    back = read_prob_map(tmp_path / "a" / "p.png")
    assert np.abs(back - prob).max() <= 0.5 / 65535 + 1e-12
    assert back[0, 0] == 0.0 and back[0, 1] == 1.0
    np.testing.assert_array_equal(POST.mask(prob), segment_slice(prob, 0.5, 3, 3))
    np.testing.assert_array_equal(POST.mask(prob, 0.8), segment_slice(prob, 0.8, 3, 3))


def test_reference_maps_score_perfectly_at_every_threshold(tiny_cohort, parts, tmp_path):
    """Maps equal to the reference masks: Dice 1 on every bleed slice, perfect detection, no volume error."""
    rows = pd.concat([parts["val"], parts["test"]]).to_dict("records")
    lookup = iter([read_pair(tiny_cohort["converted"], row)[1] for row in rows])  # predict_split's order
    no_post = PostProcess(0.5, 0, 0)
    predictions = predict_split(lambda image: next(lookup).astype(float), tiny_cohort["converted"], parts, tmp_path)
    assert len(predictions) == len(parts["val"]) + len(parts["test"])
    table = per_slice_table(
        predictions, tiny_cohort["index"], tiny_cohort["converted"], tmp_path, no_post, [0.5, 0.7, 0.9]
    )
    assert sorted(table["threshold"].unique()) == [0.5, 0.7, 0.9]
    assert len(table) == 3 * len(parts["test"])
    assert table.loc[table["operating"], "threshold"].eq(0.5).all()
    metrics = segmenter_metrics(table)
    assert metrics["operating_thresholds"] == [0.5]
    assert metrics["slice"]["with_bleed"]["dice"]["mean"] == 1.0
    assert metrics["slice"]["all"]["jaccard"]["min"] == 1.0  # empty on empty scores 1 (the convention)
    assert (
        metrics["volume"]["mean_abs_error_ml"] == 0.0
        and metrics["volume"]["n_patients"] == parts["test"]["patient_id"].nunique()
    )
    for block in metrics["detection_by_threshold"].values():
        assert block["sensitivity"] == 1.0 and block["specificity"] == 1.0
    points = volume_points(table)
    assert list(points.columns) == ["ref_ml", "pred_ml"] and (points["ref_ml"] == points["pred_ml"]).all()
    shown = overlay_slices(table, 2)
    areas = table.drop_duplicates("slice_id").set_index("slice_id")["ref_pixels"]
    assert len(shown) == 2 and areas[shown[0]] == areas.max() and areas[shown[0]] >= areas[shown[1]] > 0


# --- the operating threshold, chosen on validation -------------------------------------------


def _disc(shape=(48, 48), centre=(20, 24), radius=8) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_an_under_confident_map_gets_the_threshold_that_finds_its_bleed():
    """A network that puts 0.3 on bleed and 0.02 elsewhere: 0.5 finds nothing, 0.2 and 0.3 find all of it;
    the tie goes to the higher threshold, and an all-zero candidate scores as it is."""
    ref = _disc()
    prob = np.where(ref, 0.3, 0.02)
    candidates = post_process_candidates({"thresholds": [0.5, 0.2, 0.3, 0.01], "close_kernel": 3, "open_kernel": 3})
    assert [c.threshold for c in candidates] == [0.01, 0.2, 0.3, 0.5]
    scores = score_candidates([(prob, ref), (np.zeros_like(prob), np.zeros_like(ref))], candidates)
    assert scores[0.5] == 0.0 and scores[0.2] == scores[0.3] == 1.0 and 0 < scores[0.01] < 0.2
    assert choose_post_process(scores, candidates) == PostProcess(0.3, 3, 3)


@pytest.mark.parametrize("thresholds", [None, [], [0.5, 0.0], [1.5]])
def test_candidate_thresholds_must_be_probabilities(thresholds):
    with pytest.raises(ValueError, match="segment.postprocess.thresholds"):
        post_process_candidates({"thresholds": thresholds, "close_kernel": 3, "open_kernel": 3})


def test_the_chosen_post_processing_is_stored_and_read_back(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{POST_PROCESS_FILE} is missing"):
        read_post_process(tmp_path)
    write_post_process(tmp_path, PostProcess(0.1, 3, 5), {0.1: 0.4, 0.5: 0.25})
    assert read_post_process(tmp_path) == PostProcess(0.1, 3, 5)
    assert json.loads((tmp_path / POST_PROCESS_FILE).read_text())["validation_jaccard"] == {"0.1": 0.4, "0.5": 0.25}


def test_the_threshold_is_chosen_on_validation_maps_and_never_on_test(tiny_cohort, parts, tmp_path):
    """Validation maps are the under-confident reference (0.4 on bleed), test maps a confident one:
    only the validation maps decide, so 0.3 is chosen although 0.5 would serve the test slices."""
    rows = pd.concat([parts["val"], parts["test"]]).to_dict("records")
    n_val = len(parts["val"])
    masks = iter([read_pair(tiny_cohort["converted"], row)[1] for row in rows])  # predict_split's order
    seen = iter(range(len(rows)))
    predictions = predict_split(
        lambda image: np.where(next(masks), 0.4 if next(seen) < n_val else 0.9, 0.0),
        tiny_cohort["converted"],
        parts,
        tmp_path,
    )
    candidates = [PostProcess(t, 0, 0) for t in (0.2, 0.3, 0.5)]
    chosen = choose_on_validation(tiny_cohort["converted"], parts["val"], predictions, tmp_path, candidates)
    assert chosen == PostProcess(0.3, 0, 0) and read_post_process(tmp_path) == chosen


# --- the stages, without DVC -------------------------------------------------------------------


def _stage(name: str):
    return load_script(f"stages/{name}.py")


def test_segmentation_stages_write_their_outputs(tiny_cohort, tiny_split, tmp_path, monkeypatch):
    shutil.copytree(tiny_cohort["converted"], tmp_path / "data" / "converted")
    tiny_cohort["index"].to_csv(tmp_path / "data" / "converted" / "index.csv", index=False)
    (tmp_path / "data" / "split").mkdir()
    tiny_split.to_csv(tmp_path / "data" / "split" / "split.csv", index=False)
    (tmp_path / "data" / "raw").mkdir()
    (tmp_path / "data" / "raw" / "source.json").write_text(json.dumps({"name": "synthetic", "synthetic": True}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["segment"]["unet"].update(base_width=4, crop=32, stride=16, epochs=2)
    params["evaluate_segmentation"].update(overlays=3, overlay_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)

    train, evaluate = _stage("train_segmenter"), _stage("evaluate_segmentation")
    for name in params["segmenters"]:
        train.main(name)
        predictions = pd.read_csv(Path("data/segmenters") / name / "predictions.csv")
        assert list(predictions.columns) == ["slice_id", "patient_id", "set", "fold", "prob_path"]
        assert all((Path("data/segmenters") / name / p).exists() for p in predictions["prob_path"])
        recorded = json.loads(Path(f"metrics/segment/{name}.json").read_text())
        assert recorded["method"] == params["segment"][name]["method"]
        chosen = read_post_process(Path("data/segmenters") / name)
        assert recorded["threshold"] == chosen.threshold in params["segment"]["postprocess"]["thresholds"]
        assert Path(f"plots/segment/{name}.csv").exists()
    assert (Path("data/segmenters/unet/model.pt")).exists()
    # the folder describes its network: ich predict builds from it, not from params.yaml
    from ich.networks.segmenter import read_segmenter_spec, unet_spec

    assert read_segmenter_spec(Path("data/segmenters/unet")) == unet_spec(params["segment"]["unet"])
    assert pd.read_csv("plots/segment/unet.csv").columns.tolist() == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_jaccard",
        "lr",
    ]

    evaluate.main()
    metrics = json.loads(Path("data/segmentation/summary.json").read_text())
    assert metrics["synthetic"] is True and metrics["set"] == "test"
    assert set(metrics["segmenters"]) == set(params["segmenters"])
    for block in metrics["segmenters"].values():
        assert {"slice", "subtype", "patient", "detection", "volume", "detection_by_threshold"} <= set(block)
        assert set(block["detection_by_threshold"]) == {
            f"threshold_{t:g}" for t in params["evaluate_segmentation"]["thresholds"]
        }
    for name in params["segmenters"]:
        top = json.loads(Path(f"metrics/segmentation/{name}.json").read_text())
        assert top["dice_slices"] == metrics["segmenters"][name]["slice"]["with_bleed"]["dice"]["mean"]
        assert len(top) == 7
        assert Path(f"plots/segmentation/overlays/{name}.png").stat().st_size < 200_000
        assert Path(f"plots/segmentation/volume/{name}.csv").exists()
        per_slice = pd.read_csv(f"data/segmentation/{name}/per_slice.csv")
        chosen = read_post_process(Path("data/segmenters") / name).threshold
        assert per_slice.loc[per_slice["operating"], "threshold"].eq(chosen).all()
        test_patients = set(tiny_split.loc[tiny_split["set"] == "test", "patient_id"])
        index = tiny_cohort["index"]
        assert set(per_slice["slice_id"]) == set(index.loc[index["patient_id"].isin(test_patients), "slice_id"])


def test_normal_slices_without_a_mask_file_count_as_empty_masks(tiny_cohort, tiny_split):
    """As in CT-ICH, where only bleeding slices ship a mask: normal slices train and test with an
    empty mask; a bleeding slice without a mask file has an unknown mask and is left out."""
    index = tiny_cohort["index"].copy()
    index.loc[index["any"] == 0, "mask_path"] = ""
    unknown = index.index[index["any"] == 1][0]
    index.loc[unknown, "mask_path"] = ""
    parts = segmentation_parts(index, tiny_split)
    kept = pd.concat(parts.values())
    assert len(kept) == len(index.merge(tiny_split[["patient_id"]], on="patient_id")) - 1
    assert index.at[unknown, "slice_id"] not in set(kept["slice_id"])
    normal = parts["train"][parts["train"]["any"] == 0].iloc[0]
    image, mask = read_pair(tiny_cohort["converted"], normal)
    assert mask.shape == image.shape[:2] and not mask.any()
    crops = training_crops(
        tiny_cohort["converted"], parts["train"], UNetSpec(method="unet", crop=32, stride=32), UNetTraining(), seed=0
    )
    assert len(crops) > 0
    no_masks = index.assign(mask_path="")
    with pytest.raises(ValueError, match="no training slice has a reference bleed mask"):
        segmentation_parts(no_masks, tiny_split)

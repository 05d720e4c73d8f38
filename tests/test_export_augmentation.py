"""Exports as augmentation: training slices shown as other sites send them, then harmonised as
``ich predict`` harmonises them (issue 33, item 3), for the classifiers and the segmenters."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ich.data.exports import ExportAugmentation, ExportRanges
from ich.data.windowing import window
from ich.synth.phantom import random_head, render_slice

BRAIN, BONE = (-20.0, 100.0), (-900.0, 2300.0)
FIXED = dict(noise_hu=(0.0, 0.0), kernel_share=0.0, resample=(1.0, 1.0), jpeg_share=0.0)


def _release_slices(count: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """Phantom slices as a release such as CT-ICH's keeps them: R = G = brain window, B = bone window."""
    head = random_head(np.random.default_rng(0), 12, ())
    hus = [render_slice(head, k, 12, 128, seed=k)[0] for k in range(5, 5 + count)]
    rgb = [np.stack([window(hu, *BRAIN), window(hu, *BRAIN), window(hu, *BONE)], axis=-1) for hu in hus]
    return np.stack(rgb), hus


def _export_at(level: float, width: float, **error) -> ExportAugmentation:
    ranges = ExportRanges(level=(level, level), width=(width, width), **FIXED)
    exact = {"level_error_hu": 0.0, "width_ratio": (1.0, 1.0)}
    return ExportAugmentation(1.0, BRAIN, BONE, ranges, **{**exact, **error})


def test_an_export_at_the_training_window_with_an_exact_estimate_gives_the_slice_back():
    slices, _ = _release_slices()
    out = _export_at(40, 120)(slices, np.random.default_rng(0))
    assert out.shape == slices.shape and out.dtype == np.uint8
    for channel in range(3):  # grey, as a harmonised export reaches the networks
        assert np.abs(out[..., channel].astype(int) - slices[..., 0]).max() <= 1


def test_a_wide_export_loses_the_brain_windows_steps_and_a_missed_estimate_moves_the_contrast():
    slices, hus = _release_slices()
    brain = np.stack([(hu > 0) & (hu < 80) for hu in hus])
    truth = slices[..., 0].astype(int)
    wide = _export_at(40, 400)(slices, np.random.default_rng(0))[..., 0].astype(int)
    assert 0 < np.abs(wide - truth)[brain].mean() <= 3  # 8 bits over 400 HU: steps of 1.6 HU
    assert (wide[slices[..., 0] == 255] == 255).all() and (wide[slices[..., 0] == 0] == 0).all()
    missed = _export_at(40, 120, width_ratio=(1.4, 1.4))(slices, np.random.default_rng(0))[..., 0].astype(int)
    # read as a wider window than it was: re-mapped with more contrast than the truth
    assert (missed - 128)[brain].std() > 1.2 * (truth - 128)[brain].std()


def test_the_share_the_draws_and_a_grey_release_are_honoured():
    slices, _ = _release_slices(1)
    augmentation = ExportAugmentation(0.5, BRAIN, BONE)
    changed = [not np.array_equal(augmentation(slices, np.random.default_rng(s)), slices) for s in range(200)]
    assert 0.4 < np.mean(changed) < 0.6
    first, again = (augmentation(slices, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    grey = np.repeat(slices[..., :1], 3, axis=-1)  # no bone window kept: nothing to export from
    assert ExportAugmentation(1.0, BRAIN, BONE)(grey, np.random.default_rng(0)) is grey


def test_export_params_are_checked_when_read():
    parsed = ExportAugmentation.from_params(
        {"share": 0.5, "brain": [-20, 100], "bone": [-900, 2300], "width": [80, 400]}
    )
    assert parsed.ranges.width == (80, 400) and parsed.brain == (-20, 100) and parsed.share == 0.5
    with pytest.raises(ValueError, match="unknown keys.*'windw'"):
        ExportAugmentation.from_params({"share": 0.5, "brain": [-20, 100], "bone": [-900, 2300], "windw": 1})
    with pytest.raises(ValueError, match="share"):
        ExportAugmentation(0.0, BRAIN, BONE)
    with pytest.raises(ValueError, match="bone"):
        ExportAugmentation(0.5, BRAIN, (100.0, -900.0))


# --- in training: the tiny cohort keeps windows [0, 80] (R) and [-150, 230] (B) ----------------------

TINY = {"share": 1.0, "brain": [0, 80], "bone": [-150, 230]}


def test_classifier_items_are_exported_seeded_and_pasted_into(tiny_cohort, tiny_split):
    from ich.networks.classifier import ClassifierSpec
    from ich.train.classify import ClassifierTraining, parse_section

    spec = ClassifierSpec("bleedmap_cnn", input_size=32, brain_window_only=True, context=1, arch_options={"width": 8})
    table = tiny_cohort["index"].merge(tiny_split[["patient_id", "set", "fold"]], on="patient_id")
    train = table[table["set"] == "train"].reset_index(drop=True)
    plain = ClassifierTraining(paste=0.5).dataset(spec, train, tiny_cohort["converted"])
    exported = ClassifierTraining(paste=0.5, exports=TINY).dataset(spec, train, tiny_cohort["converted"])
    assert exported.bank is not None and len(exported.bank.donors) == len(plain.bank.donors)
    torch.manual_seed(0)
    first = [exported[i] for i in range(6)]
    torch.manual_seed(0)
    again = [exported[i] for i in range(6)]
    for (x, t), (y, u) in zip(first, again, strict=True):
        assert torch.equal(x.image, y.image) and torch.equal(x.mask, y.mask) and torch.equal(t.labels, u.labels)
    assert first[0][0].image.shape == plain[0][0].image.shape == (3, 32, 32)  # three slices, grey
    assert any(not torch.equal(exported[i][0].image, plain[i][0].image) for i in range(6))
    three_windows = replace(spec, brain_window_only=False)
    item = ClassifierTraining(exports=TINY).dataset(three_windows, train, tiny_cohort["converted"])[0][0].image
    assert item.shape == (9, 32, 32) and torch.equal(item[0], item[1]) and torch.equal(item[0], item[2])

    with pytest.raises(ValueError, match="augment: true"):
        ClassifierTraining(augment=False, exports=TINY)
    with pytest.raises(ValueError, match="unknown keys"):
        parse_section("m", {"arch": "bleedmap_cnn", "exports": {**TINY, "levle": [1, 2]}})


def test_segmenter_crops_are_exported_before_the_affine_map(tiny_cohort, tiny_split):
    from ich.networks.segmenter import UNetSpec
    from ich.train.segmenter.data import segmentation_parts, training_crops
    from ich.train.segmenter.settings import UNetTraining, unet_settings

    spec = UNetSpec(method="unet", base_width=4, crop=32, stride=32, brain_window_only=False)
    parts = segmentation_parts(tiny_cohort["index"], tiny_split)
    training = UNetTraining(augment=None, exports=ExportAugmentation.from_params(TINY))
    plain = training_crops(tiny_cohort["converted"], parts["train"], spec, replace(training, exports=None), seed=0)
    exported = training_crops(tiny_cohort["converted"], parts["train"], spec, training, seed=0)
    torch.manual_seed(1)
    image, mask = exported[0]
    torch.manual_seed(1)
    assert torch.equal(exported[0][0], image)
    assert torch.equal(image[0], image[2]) and not torch.equal(image, plain[0][0])  # grey, and not as released
    assert torch.equal(mask, plain[0][1])  # an export moves no pixel

    from ich.params import load_params

    section = {"method": "unet", "exports": {**TINY, "share": 0.3}}
    assert unet_settings(section, load_params()["segment"]["defaults"])[1].exports.share == 0.3

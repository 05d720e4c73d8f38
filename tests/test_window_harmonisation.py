"""Approximate HU from two windows, simulated site exports, the window estimator and the harmonisation
``ich predict`` applies to grey images (ich.data.approximate_hu, exports, window_estimate)."""

from __future__ import annotations

import numpy as np
import pytest

from ich.data.approximate_hu import hu_from_windows
from ich.data.exports import NAMED_EXPORTS, ExportRanges, ExportSetting, render_export
from ich.data.window_estimate import (
    REFERENCE_FILE,
    IntracranialReference,
    WindowEstimate,
    WindowEstimateError,
    estimate_window,
    harmonise,
    reference_from_hu,
)
from ich.data.windowing import window
from ich.synth.phantom import random_head, render_slice

BRAIN, BONE = (-20.0, 100.0), (-900.0, 2300.0)


def _heads(seed: int, patients: int, slices: int = 12, matrix: int = 256) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    studies = []
    for p in range(patients):
        head = random_head(rng, slices, ())
        studies.append([render_slice(head, k, slices, matrix, seed=[seed, p, k])[0] for k in range(3, slices - 2)])
    return studies


@pytest.fixture(scope="module")
def phantom_reference() -> IntracranialReference:
    return reference_from_hu([hu for study in _heads(1, 4) for hu in study], "synthetic phantoms")


def test_two_windows_give_back_hu_over_the_whole_range():
    hu = np.linspace(-1000, 2000, 4001, dtype=np.float32).reshape(1, -1)
    brain, bone = window(hu, *BRAIN), window(hu, *BONE)
    approx = hu_from_windows(brain, bone, BRAIN, BONE)
    inside = (hu > BRAIN[0] + 1) & (hu < BRAIN[1] - 1)
    assert np.abs(approx - hu)[inside].max() <= 120 / 255  # the brain window's step
    outside = ((hu < BRAIN[0] - 15) | (hu > BRAIN[1] + 15)) & (hu > BONE[0]) & (hu < BONE[1])
    assert np.abs(approx - hu)[outside].max() <= 3200 / 255  # the bone window's step
    # never on the wrong side of the brain window where it saturates
    assert (approx[brain == 255] >= BRAIN[1]).all() and (approx[brain == 0] <= BRAIN[0]).all()
    with pytest.raises(ValueError, match="one shape"):
        hu_from_windows(brain, bone[:, :10], BRAIN, BONE)


def test_an_export_windows_quantises_and_degrades_as_its_setting_says():
    hu = render_slice(random_head(np.random.default_rng(0), 12, ()), 6, 12, 256, seed=0)[0]
    rng = np.random.default_rng(0)
    plain = render_export(hu, ExportSetting((0.0, 80.0)), rng)
    np.testing.assert_array_equal(plain, window(hu, 0.0, 80.0))
    jpeg = render_export(hu, ExportSetting((0.0, 80.0), codec="jpeg", quality=40), rng)
    assert jpeg.shape == plain.shape and 0 < np.abs(jpeg.astype(int) - plain).mean() < 10
    half = render_export(hu, ExportSetting((0.0, 80.0), resample=0.5), rng)
    assert half.shape == plain.shape and not np.array_equal(half, plain)
    noisy = render_export(hu, ExportSetting((0.0, 80.0), noise_hu=6.0, kernel="sharp"), rng)
    brain = (hu > 20) & (hu < 45)
    assert noisy[brain].std() > plain[brain].std()
    drawn = ExportRanges().draw(np.random.default_rng(3))
    assert 20 <= drawn.window[0] / 2 + drawn.window[1] / 2 <= 80
    with pytest.raises(ValueError, match="kernel"):
        ExportSetting((0.0, 80.0), kernel="bone")


@pytest.mark.parametrize("level,width", [(40, 80), (40, 120), (35, 200), (50, 350)])
def test_the_window_of_a_study_is_estimated_from_its_images(phantom_reference, level, width):
    """Held-out phantom studies exported at known windows: the study's estimate lands near them."""
    setting = ExportSetting((level - width / 2, level + width / 2))
    rng = np.random.default_rng(level + width)
    for study in _heads(7, 3):
        estimate = estimate_window([render_export(hu, setting, rng) for hu in study], phantom_reference)
        assert abs(estimate.level - level) <= 8, estimate
        assert 0.75 <= estimate.width / width <= 1.33, estimate


def test_harmonising_an_export_gives_back_the_training_window(phantom_reference):
    study = _heads(9, 1)[0]
    target = (-20.0, 100.0)
    exported = [render_export(hu, ExportSetting((-60.0, 140.0)), np.random.default_rng(0)) for hu in study]
    estimate = estimate_window(exported, phantom_reference)
    for hu, grey in zip(study, exported, strict=True):
        shown, truth = harmonise(grey, estimate, target), window(hu, *target)
        brain = (hu > 0) & (hu < 80)
        assert np.abs(shown[brain].astype(int) - truth[brain]).mean() < 20
        # against showing the export as it came
        assert (
            np.abs(shown[brain].astype(int) - truth[brain]).mean()
            < np.abs(grey[brain].astype(int) - truth[brain]).mean()
        )
    exact = WindowEstimate(-60.0, 140.0, 0.0, 1000)
    np.testing.assert_array_equal(harmonise(np.array([[0, 255]], np.uint8), exact, target), [[0, 255]])


def test_what_is_not_a_head_ct_window_is_refused(phantom_reference):
    hu = _heads(11, 1)[0][4]
    with pytest.raises(WindowEstimateError, match="no closed skull"):
        estimate_window([np.full((256, 256), 90, np.uint8)], phantom_reference)
    with pytest.raises(WindowEstimateError, match="no closed skull"):  # a bone window: no saturated skull
        estimate_window([window(hu, -900.0, 2300.0)], phantom_reference)
    inverted = 255 - window(hu, 0.0, 80.0)
    with pytest.raises(WindowEstimateError):
        estimate_window([inverted], phantom_reference)


def test_the_shipped_reference_is_measured_intracranial_anatomy():
    reference = IntracranialReference.load(REFERENCE_FILE)
    rows = np.array(reference.hu)
    assert reference.slices >= 100 and "CT-ICH" in reference.source
    assert (np.diff(rows, axis=1) >= 0).all()  # quantiles rise
    median = rows[:, rows.shape[1] // 2]
    assert (median > 20).all() and (median < 45).all()  # parenchyma


def test_named_exports_reach_beyond_the_training_ranges():
    ranges = ExportRanges()
    widths = [s.window[1] - s.window[0] for s in NAMED_EXPORTS.values()]
    qualities = [s.quality for s in NAMED_EXPORTS.values() if s.codec == "jpeg"]
    assert max(widths) > ranges.width[1] and min(qualities) < ranges.quality[0]
    assert len(NAMED_EXPORTS) >= 6


def test_ich_predict_harmonises_a_grey_study_and_marks_one_it_cannot(tmp_path):
    """A folder of grey exports at level 40 / width 250 is re-mapped to the training window and the
    estimate stated; the same study in a bone window (no saturated skull) is scored as sent, marked."""
    import cv2

    from ich.data.cohort_conversion import ConvertConfig
    from ich.predict.inputs import read_study

    config = ConvertConfig(size=128, workers=1, windows=((0.0, 80.0),) * 3)
    study_hu = _heads(13, 1)[0]
    for name, setting in (("wide", ExportSetting((-85.0, 165.0))), ("bone", ExportSetting((-900.0, 2300.0)))):
        folder = tmp_path / name
        folder.mkdir()
        for k, hu in enumerate(study_hu):
            cv2.imwrite(str(folder / f"{k}.png"), render_export(hu, setting, np.random.default_rng(k)))
    wide = read_study(tmp_path / "wide", config)
    assert wide.window_estimate is not None and not wide.window_warnings
    assert (
        abs(wide.window_estimate.level - 40) <= 10 and "re-mapped to the training window [0, 80]" in wide.harmonisation
    )

    def spread(images: list[np.ndarray]) -> float:  # the brain's grey levels: IQR of the unsaturated head
        values = np.concatenate([i[(i > 10) & (i < 245)] for i in images])
        return float(np.subtract(*np.percentile(values, [75, 25])))

    sent = [cv2.imread(str(p), 0) for p in sorted((tmp_path / "wide").glob("*.png"))]
    # [0, 80] HU over 255 grey levels again, instead of the export's [-85, 165]
    assert spread([s.image[..., 0] for s in wide.slices]) > 2 * spread(sent)
    bone = read_study(tmp_path / "bone", config)
    assert bone.window_estimate is None and "could not be estimated" in bone.window_warnings[0]
    assert bone.harmonisation == bone.window_warnings[0]

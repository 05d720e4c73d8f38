"""What a segmentation network reads: the release's channels, the brain window alone, or the brain window
with two narrower windows cut from it (``derived_windows``), in training and in ``ich predict`` alike."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ich.data.windowing import recut_window, window
from ich.networks.segmenter import (
    DerivedWindows,
    UNetSpec,
    check_derived_source,
    read_segmenter_spec,
    segmenter_view,
    write_segmenter_spec,
)
from ich.train.segmenter.settings import unet_settings
from tests.conftest import REPO
from tools.profile import resolve_profile

CT_ICH = {"source": [-20, 100], "windows": [[40, 80], [95, 100]]}  # the CT-ICH profile's lite0_unet


def _slice() -> np.ndarray:
    """A release's three-window slice: brain window in R and G, a distinct bone window in B."""
    hu = np.linspace(-100, 400, 64 * 64, dtype=np.float32).reshape(64, 64)
    brain = window(hu, -20, 100)
    return np.stack([brain, brain, window(hu, -900, 2300)], axis=2)


def test_derived_windows_fill_channels_two_and_three_from_the_brain_window():
    image = _slice()
    spec = UNetSpec("lite0_unet", brain_window_only=True, derived_windows=DerivedWindows.from_values(CT_ICH))
    seen = segmenter_view(image, spec)
    assert seen.shape == image.shape and seen.dtype == np.uint8
    np.testing.assert_array_equal(seen[..., 0], image[..., 0])
    np.testing.assert_array_equal(seen[..., 1], recut_window(image[..., 0], (-20, 100), (40, 80)))
    np.testing.assert_array_equal(seen[..., 2], recut_window(image[..., 0], (-20, 100), (95, 100)))
    assert not np.array_equal(seen[..., 1], seen[..., 0]) and not np.array_equal(seen[..., 2], seen[..., 1])
    # what a grey site sends (R = G = B) is read exactly as the release's composition: B is never read
    grey = np.repeat(image[..., :1], 3, axis=2)
    np.testing.assert_array_equal(segmenter_view(grey, spec), seen)
    # without derived windows the brain window fills all three channels; without the policy nothing changes
    plain = dataclasses.replace(spec, derived_windows=None)
    np.testing.assert_array_equal(segmenter_view(image, plain), grey)
    three = UNetSpec("lite0_unet")
    assert segmenter_view(image, three) is image


def test_derived_windows_are_parsed_from_params_and_kept_in_network_json(tmp_path):
    segment = resolve_profile(REPO / "profiles" / "ct-ich-jpg.yaml", REPO)["segment"]
    spec, _, _ = unet_settings(segment["lite0_unet"], segment["defaults"])
    assert spec.derived_windows == DerivedWindows((-20.0, 100.0), ((40.0, 80.0), (95.0, 100.0)))
    write_segmenter_spec(tmp_path, spec)
    assert read_segmenter_spec(tmp_path) == spec  # ich predict and the bundle read what training wrote


def test_derived_windows_that_cannot_be_read_are_refused():
    with pytest.raises(ValueError, match="need brain_window_only"):
        UNetSpec("lite0_unet", derived_windows=DerivedWindows.from_values(CT_ICH))
    with pytest.raises(ValueError, match="two windows"):
        DerivedWindows.from_values({"source": [-20, 100], "windows": [[40, 80]]})
    with pytest.raises(ValueError, match="two windows"):
        DerivedWindows.from_values({"windows": [[40, 80], [95, 100]]})
    with pytest.raises(ValueError, match=r"\[80, 40\] HU must have hi > lo"):
        DerivedWindows.from_values({"source": [-20, 100], "windows": [[80, 40], [95, 100]]})


def test_a_segmenter_cut_from_another_brain_window_is_refused_by_name():
    spec = UNetSpec("lite0_unet", brain_window_only=True, derived_windows=DerivedWindows.from_values(CT_ICH))
    check_derived_source(spec, (-20.0, 100.0), "lite0_unet")
    check_derived_source(UNetSpec("lite0_unet", brain_window_only=True), (0.0, 80.0), "lite0_unet")
    with pytest.raises(ValueError, match=r"segmenter lite0_unet: derived_windows.source is \[-20, 100\] HU.*\[0, 80\]"):
        check_derived_source(spec, (0.0, 80.0), "lite0_unet")

import numpy as np
import pytest
import torch

from ich.data.windowing import DEFAULT_WINDOWS, levels_to_hu, recut_window, rewindow, stack_windows, window


def test_window_against_hand_computed_values():
    hu = np.array([-1000.0, 0.0, 10.0, 40.0, 79.0, 80.0, 2000.0])
    # [0, 80] HU -> 0..255: 10 HU -> 31.875 -> 32; 40 -> 127.5 -> 128; 79 -> 251.8 -> 252
    assert window(hu, 0, 80).tolist() == [0, 0, 32, 128, 252, 255, 255]


def test_subdural_window_is_offset_and_wider():
    hu = np.array([-20.0, 80.0, 180.0])
    assert window(hu, -20, 180).tolist() == [0, 128, 255]


def test_stack_windows_orders_channels_as_given():
    hu = np.full((2, 3), 40.0)
    rgb = stack_windows(hu, DEFAULT_WINDOWS)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    # 40 HU: brain 128, subdural (60/200*255=76.5 -> 77), soft tissue (190/380*255=127.5 -> 128)
    assert rgb[0, 0].tolist() == [128, 77, 128]


def test_invalid_window_and_shape_are_rejected():
    with pytest.raises(ValueError, match="upper bound"):
        window(np.zeros(3), 80, 0)
    with pytest.raises(ValueError, match="2-D"):
        stack_windows(np.zeros((2, 2, 2)))


def test_rewindow_recovers_the_hu_and_keeps_saturated_pixels():
    """CT-ICH's brain window (level 40, width 120 = [-20, 100] HU) shown at level 40, width 80 ([0, 80])."""
    hu = np.array([-500.0, -20.0, 10.0, 40.0, 70.0, 90.0, 100.0, 1000.0])
    levels = window(hu, -20, 100) / 255.0  # the pre-windowed image: at or beyond the bounds, saturated
    assert levels_to_hu(levels[2:-2], (-20, 100)) == pytest.approx(hu[2:-2], abs=0.25)  # 8-bit rounding
    shown = rewindow(levels, (-20, 100), 0.0, 80.0)
    assert shown[2:5] == pytest.approx([10 / 80, 40 / 80, 70 / 80], abs=0.005)
    assert shown[0] == 0 and shown[1] == 0 and (shown[-3:] == 1).all()  # outside [0, 80], and saturated
    # a wider window would show a saturated pixel's HU below white, but that HU is unknown: it stays
    # saturated, while a pixel inside the source window gets its new grey level
    wide = rewindow(levels, (-20, 100), -60.0, 140.0)
    assert wide[0] == 0 and wide[1] == 0 and wide[-2] == 1 and wide[-1] == 1
    assert wide[5] == pytest.approx(150 / 200, abs=0.005)
    tensor = rewindow(torch.from_numpy(levels), (-20, 100), torch.tensor(0.0), torch.tensor(80.0))
    assert np.allclose(tensor.numpy(), shown)


def test_recut_window_shows_a_narrower_window_of_the_brain_window_as_the_hu_would():
    """A blood window ([40, 80] HU) cut from CT-ICH's brain window equals windowing the HU directly inside
    the brain window; bone, saturated in the brain window, stays white in any window cut from it."""
    hu = np.array([[-500.0, 0.0, 30.0, 45.0, 60.0, 75.0, 85.0, 1000.0]])
    brain = window(hu, -20, 100)
    blood = recut_window(brain, (-20, 100), (40, 80))
    assert blood.dtype == np.uint8
    direct = window(levels_to_hu(brain / 255.0, (-20, 100)), 40, 80)
    assert np.abs(blood.astype(int) - direct.astype(int)).max() <= 1
    assert blood[0, :3].tolist() == [0, 0, 0] and blood[0, -2:].tolist() == [255, 255]
    assert 90 < blood[0, 4] < 165  # 60 HU: the middle of the blood window
    saturation = recut_window(brain, (-20, 100), (95, 100))
    assert saturation[0].tolist() == [0] * 7 + [255]  # only bone (saturated) is lit

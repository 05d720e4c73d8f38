import numpy as np
import pytest

from ich.data.windowing import DEFAULT_WINDOWS, stack_windows, window


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

import numpy as np
import pandas as pd
import torch
from torch import nn

from ich.data.transforms import BatchPreparation
from ich.explain import confidence_cases, gradcam_maps, overlay


class BrightnessDetector(nn.Module):
    """Logit = mean of ReLU(channel 0): Grad-CAM of it must light up the bright region."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0

    def cam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def test_gradcam_localises_the_bright_region():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[0, :, 4:12, 20:28] = 255
    images[1, :, 20:30, 2:10] = 255
    maps = gradcam_maps(BrightnessDetector(), images, BatchPreparation(3, augment=False))
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    assert maps[0, 4:12, 20:28].mean() > 0.9 and maps[0, 20:30, 2:10].mean() < 0.1
    assert maps[1, 20:30, 2:10].mean() > 0.9


def test_overlay_and_case_selection():
    rgb = np.zeros((16, 16, 3), np.uint8)
    out = overlay(rgb, np.ones((8, 8), np.float32))
    assert out.shape == (16, 16, 3) and out[..., 0].min() > 0 and out[..., 2].max() == 0  # hot = red end of JET
    predictions = pd.DataFrame({"slice_id": list("abcdef"), "prob_any": [0.99, 0.5, 0.02, 0.45, 0.7, 0.6]})
    cases = confidence_cases(predictions, 2)
    assert cases["slice_id"].tolist() == ["a", "c", "b", "d"]
    assert cases["case"].tolist() == ["most confident"] * 2 + ["least confident"] * 2

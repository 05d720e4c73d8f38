import numpy as np
import pandas as pd
import pytest
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


@pytest.mark.parametrize("context", [0, 1])
def test_explain_figure_draws_each_case_and_its_overlay(tiny_cohort, tmp_path, context):
    from ich.data.datasets import read_slice_image
    from ich.explain.figure import explain_figure, save_figure
    from ich.explain.gradcam import confidence_cases
    from ich.networks.classifier import ClassifierSpec, build_classifier

    index = tiny_cohort["index"]
    spec = ClassifierSpec("wa2d_cnn3", input_size=32, context=context)
    rng = np.random.default_rng(0)
    predictions = index[["slice_id", "patient_id"]].assign(set="test", fold=0, prob_any=rng.uniform(size=len(index)))

    def figure(table):
        inputs = spec.dataset(index, tiny_cohort["converted"])
        return explain_figure("demo", build_classifier(spec), table, index, inputs, spec.preparation(),
                              slice_channels=spec.slice_channels, n_cases=2)  # fmt: skip

    fig = figure(predictions)
    assert len(fig.axes) == 8  # 2 rows x (2 most + 2 least confident)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert sum("most confident" in t for t in titles) == 2 and sum("least confident" in t for t in titles) == 2
    first = confidence_cases(predictions.merge(index[["slice_id", "any"]], on="slice_id"), 2).iloc[0]
    path = tiny_cohort["converted"] / index.set_index("slice_id").loc[first["slice_id"], "image_path"]
    shown = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert np.array_equal(shown, read_slice_image(path, 32))  # the centre slice, whatever the stack
    path = save_figure(fig, tmp_path / "out" / "demo.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no test predictions"):
        figure(predictions.assign(set="val"))

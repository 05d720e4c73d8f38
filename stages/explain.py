"""Stage ``explain``: Grad-CAM overlays of the most and least confident test slices of each model."""

from __future__ import annotations

import pandas as pd

from ich import layout
from ich.explain.figure import explain_figure, save_figure
from ich.networks import default_device
from ich.networks.classifier import build_classifier, read_network_spec
from ich.params import load_params

OUT = layout.PLOTS / "explain"


def main() -> None:
    params = load_params()
    index = pd.read_csv(layout.INDEX)
    for name in params["explain"]["models"]:
        spec = read_network_spec(layout.MODELS / name)
        figure = explain_figure(
            name,
            build_classifier(spec, layout.MODELS / name / "model.pt").to(default_device()),
            pd.read_csv(layout.MODELS / name / "predictions.csv"),
            index,
            spec.dataset(index, layout.CONVERTED),
            spec.preparation(),
            slice_channels=spec.slice_channels,
            n_cases=params["explain"]["n_cases"],
        )
        print(f"wrote {save_figure(figure, OUT / f'{name}.png')}")


if __name__ == "__main__":
    main()

"""Stage ``explain``: Grad-CAM overlays of the most and least confident test slices of each model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ich.data.datasets import read_slice_image  # noqa: E402
from ich.data.transforms import BatchPreparation  # noqa: E402
from ich.explain import confidence_cases, gradcam_maps, overlay  # noqa: E402
from ich.params import load_params  # noqa: E402
from ich.train.classify import build_classifier, parse_section  # noqa: E402

OUT = Path("plots/explain")


def explain_model(name: str, section: dict, index: pd.DataFrame, n_cases: int) -> Path:
    """Write one figure for model ``name``: each case's slice and its Grad-CAM overlay."""
    spec, _ = parse_section(name, section)
    model = build_classifier(spec, Path("data/models") / name / "model.pt")
    predictions = pd.read_csv(Path("data/models") / name / "predictions.csv")
    test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "image_path", "any"]], on="slice_id")
    cases = confidence_cases(test, n_cases)
    images = [read_slice_image(Path("data/converted") / p, spec.input_size, spec.grey) for p in cases["image_path"]]
    batch = torch.stack([torch.from_numpy(i.transpose(2, 0, 1).copy()) for i in images])
    maps = gradcam_maps(model, batch, BatchPreparation(1 if spec.grey else 3, augment=False))
    fig, axes = plt.subplots(2, len(cases), figsize=(2.2 * len(cases), 4.6), squeeze=False)
    for j, (row, image, heat) in enumerate(zip(cases.itertuples(), images, maps, strict=True)):
        rgb = image.repeat(3, axis=2) if image.shape[2] == 1 else image
        axes[0, j].imshow(rgb)
        axes[1, j].imshow(overlay(rgb, heat))
        axes[0, j].set_title(f"{row.case}\np={row.prob_any:.2f} label={int(row.any)}", fontsize=7)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle(f"{name}: Grad-CAM of the 'any ICH' logit (test set)", fontsize=9)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def main() -> None:
    params = load_params()
    p = params["explain"]
    index = pd.read_csv("data/converted/index.csv")
    for name in p["models"]:
        print(f"wrote {explain_model(name, params['train'][name], index, p['n_cases'])}")


if __name__ == "__main__":
    main()

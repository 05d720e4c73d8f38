"""The ``explain`` figure: a classifier's most and least confident test slices with their Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from ich.data.datasets import read_slice_image
from ich.data.transforms import BatchPreparation
from ich.explain.gradcam import confidence_cases, gradcam_maps, overlay


def explain_figure(
    title: str,
    model: nn.Module,
    predictions: pd.DataFrame,
    index: pd.DataFrame,
    image_root: str | Path,
    *,
    input_size: int,
    grey: bool,
    n_cases: int,
) -> Figure:
    """Two rows per case column: the slice as the model saw it, and its Grad-CAM overlay.

    The cases are the ``n_cases`` most and least confident test slices of ``predictions``
    (Predictions contract); ``index`` supplies their image paths and labels.
    """
    test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "image_path", "any"]], on="slice_id")
    if test.empty:
        raise ValueError(f"{title}: no test predictions to explain")
    cases = confidence_cases(test, n_cases)
    images = [read_slice_image(Path(image_root) / p, input_size, grey) for p in cases["image_path"]]
    batch = torch.stack([torch.from_numpy(i.transpose(2, 0, 1).copy()) for i in images])
    maps = gradcam_maps(model, batch, BatchPreparation(1 if grey else 3, augment=False))
    fig = Figure(figsize=(2.2 * len(cases), 4.6))
    axes = fig.subplots(2, len(cases), squeeze=False)
    for j, (row, image, heat) in enumerate(zip(cases.itertuples(), images, maps, strict=True)):
        rgb = image.repeat(3, axis=2) if image.shape[2] == 1 else image
        axes[0, j].imshow(rgb)
        axes[1, j].imshow(overlay(rgb, heat))
        axes[0, j].set_title(f"{row.case}\np={row.prob_any:.2f} label={int(row.any)}", fontsize=7)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle(f"{title}: Grad-CAM of the 'any ICH' logit (test set)", fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """PNG without a timestamp or software tag, so the same figure gives the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight", metadata={"Software": None})
    return path

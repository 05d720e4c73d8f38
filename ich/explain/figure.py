"""The ``explain`` figure: a classifier's most and least confident test slices with their Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from ich.data.datasets import SliceDataset
from ich.data.transforms import BatchPreparation
from ich.explain.gradcam import confidence_cases, gradcam_maps, overlay


def explain_figure(
    title: str,
    model: nn.Module,
    predictions: pd.DataFrame,
    index: pd.DataFrame,
    inputs: SliceDataset,
    prepare: BatchPreparation,
    *,
    slice_channels: int,
    n_cases: int,
) -> Figure:
    """Two rows per case column: the slice as the model saw it, and its Grad-CAM overlay.

    The cases are the ``n_cases`` most and least confident test slices of ``predictions``
    (Predictions contract); ``index`` supplies their labels, and ``inputs`` (row ``i`` = row ``i``
    of ``index``) the network inputs, neighbours included when the model has slice context.
    The figure shows the centre slice's ``slice_channels`` channels.
    """
    rows = index[["slice_id", "any"]].assign(row=np.arange(len(index)))
    test = predictions[predictions["set"] == "test"].merge(rows, on="slice_id")
    if test.empty:
        raise ValueError(f"{title}: no test predictions to explain")
    cases = confidence_cases(test, n_cases)
    batch = torch.stack([inputs[int(r)][0] for r in cases["row"]])
    centre = batch.shape[1] // slice_channels // 2
    shown = batch[:, centre * slice_channels : (centre + 1) * slice_channels]
    images = [image.numpy().transpose(1, 2, 0) for image in shown]
    device = next(model.parameters()).device  # the GPU when the caller put the model there
    maps = gradcam_maps(model, batch.to(device), prepare.to(device))
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

"""Grad-CAM heat maps over classifier inputs, and the overlays a person looks at.

Uses ``pytorch-grad-cam`` on the layer :func:`ich.models.cam_layer` names for each
architecture. Maps explain the "any ICH" logit (output 0 in every model).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from ich.models import cam_layer


def gradcam_maps(model: nn.Module, images: torch.Tensor, prepare: nn.Module) -> np.ndarray:
    """Grad-CAM of the "any" logit for uint8 ``images`` ``(B, C, H, W)``; returns ``(B, H, W)`` in [0, 1]."""
    model.eval()
    prepare.eval()
    pipeline = nn.Sequential(prepare, model)
    # here, not at import: pytorch-grad-cam brings torchvision and matplotlib, which a report
    # without Grad-CAM panels (and overlay) does not need
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=pipeline, target_layers=[cam_layer(model)]) as cam:
        maps = cam(input_tensor=images.float(), targets=[ClassifierOutputTarget(0)] * len(images))
    return np.asarray(maps, dtype=np.float32)


def overlay(image_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a [0, 1] heat map (resized to the image) over an RGB uint8 image with the JET colour map."""
    heat = cv2.resize(heat, (image_rgb.shape[1], image_rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)[..., ::-1]
    return np.uint8((1 - alpha) * image_rgb + alpha * colour)


def confidence_cases(predictions: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` most and ``n`` least confident rows (distance of ``prob_any`` from 0.5), tagged in ``case``."""
    distance = (predictions["prob_any"] - 0.5).abs()
    ranked = predictions.assign(_d=distance).sort_values(["_d", "slice_id"], kind="stable")
    least = ranked.head(n).assign(case="least confident")
    most = ranked.tail(n).iloc[::-1].assign(case="most confident")
    return pd.concat([most, least], ignore_index=True).drop(columns="_d")

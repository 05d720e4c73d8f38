"""Sliding-window inference: a whole slice through a crop-trained network, stitched back."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ich.segmentation.crops import crop_grid, extract_crops, stitch


@torch.no_grad()
def predict_prob_map(
    model: nn.Module, image: np.ndarray, crop: int, stride: int, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """Bleed probability (float64 HxW) of one RGB uint8 slice: crops, sigmoid, stitched by averaging."""
    model.eval()
    coords = crop_grid(image.shape[0], image.shape[1], crop=crop, stride=stride)
    crops = torch.from_numpy(extract_crops(image, coords, crop).transpose(0, 3, 1, 2).copy())
    probs = [
        torch.sigmoid(model(chunk.to(device).float() / 255.0).float())[:, 0].cpu() for chunk in crops.split(batch_size)
    ]
    return stitch(torch.cat(probs).numpy(), coords, image.shape[:2])

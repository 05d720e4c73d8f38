"""Segmentation losses: BCE (Hssayeni 2020) and BCE + soft Dice."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BceDiceLoss(nn.Module):
    """BCE-with-logits plus ``dice_weight`` x (1 - soft Dice), the Dice pooled over the whole batch.

    Pooling over the batch keeps the Dice term defined on batches of bleed-free crops (the
    undersampled negatives), where a per-crop soft Dice would be 0/0; ``smooth`` keeps it finite.
    The Dice term weighs the rare bleed pixels as much as the background, which BCE alone does
    not: on small cohorts BCE learns "no bleed" first and takes many epochs to leave it.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.dice_weight, self.smooth = dice_weight, smooth
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Loss of logits ``(B, 1, H, W)`` against 0/1 targets of the same shape."""
        logits, targets = logits.float(), targets.float()
        prob = torch.sigmoid(logits)
        soft_dice = (2 * (prob * targets).sum() + self.smooth) / (prob.sum() + targets.sum() + self.smooth)
        return self.bce(logits, targets) + self.dice_weight * (1 - soft_dice)


def make_loss(name: str, dice_weight: float = 1.0) -> nn.Module:
    """Hssayeni 2020's ``bce``, or ``bce_dice`` (:class:`BceDiceLoss`), the Dice-augmented variant."""
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "bce_dice":
        return BceDiceLoss(dice_weight)
    raise ValueError(f"unknown segmentation loss {name!r}; expected bce or bce_dice")

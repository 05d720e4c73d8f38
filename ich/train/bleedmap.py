"""Training pieces of the networks with a bleed-map head (registered with ``bleed_map=True``).

Their training inputs are :class:`ich.data.batch.MaskedSlices` (the image and its bleed mask,
which follows every augmentation with the image) and their targets
:class:`ich.data.batch.MapTargets` (the labels and whether the mask is known).
:class:`MapSupervision` wraps the network for the training loop: it returns both heads' logits
with the mask target; :class:`MapLoss` adds the map's loss to the slice loss. Validation and
prediction use the network itself, on images alone.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from ich.data.batch import MapTargets, MaskedSlices


class MapSupervision(nn.Module):
    """``network`` as the training loop sees it: input :class:`~ich.data.batch.MaskedSlices`.

    Returns ``(slice logits, map logits, map target)``: the target is the mask at the map's
    resolution (whatever stride the network's map has), a cell counting as bleed when any of its
    pixels does (max-pooling keeps thin subdural and subarachnoid bleeds), after the
    augmentation's interpolation (> 0.5).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: MaskedSlices) -> tuple[Tensor, Tensor, Tensor]:
        image, mask = x
        logits, bleed_map = self.network.forward_maps(image)
        stride = mask.shape[-1] // bleed_map.shape[-1]
        if tuple(mask.shape[-2:]) != (bleed_map.shape[-2] * stride, bleed_map.shape[-1] * stride):
            raise ValueError(
                f"a map of {tuple(bleed_map.shape[-2:])} does not tile an input of {tuple(mask.shape[-2:])}"
            )
        target = (F.max_pool2d(mask, stride) > 0.5).to(bleed_map.dtype)
        return logits, bleed_map, target


class MapLoss(nn.Module):
    """Slice BCE plus ``map_weight`` x (pixel BCE + soft Dice) of the map, on slices whose mask is known.

    The soft Dice
    is taken over the whole batch's known maps at once, so a batch of normal slices (empty
    masks) gives it no division by zero, and a bleed's few cells weigh against the many empty
    ones that the BCE is dominated by.
    """

    def __init__(self, pos_weight: Tensor | None = None, map_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.slice_loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.map_weight, self.smooth = map_weight, smooth

    def forward(self, output: tuple[Tensor, Tensor, Tensor], targets: MapTargets) -> Tensor:
        logits, bleed_map, target = output
        labels, known = targets
        loss = self.slice_loss(logits, labels)
        if not self.map_weight or not bool(known.any()):
            return loss
        chosen = known > 0
        map_logits, map_target = bleed_map[chosen], target[chosen]
        pixel = F.binary_cross_entropy_with_logits(map_logits, map_target)
        probs = map_logits.sigmoid()
        overlap = (probs * map_target).sum()
        dice = 1 - (2 * overlap + self.smooth) / (probs.sum() + map_target.sum() + self.smooth)
        return loss + self.map_weight * (pixel + dice)

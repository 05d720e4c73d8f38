"""torchvision ResNets with a new head: ``resnet50`` (Saraswathi 2023) and ``resnet152`` (Alqnatri 2021).

Both papers keep the convolutional trunk (transfer learning from ImageNet) and replace the
1000-class layer. ``num_outputs=1`` gives the binary "any hemorrhage" head. With more outputs
the head is the thesis's multi-label design: independent binary heads, one ``Linear(2048, 1)``
per label, evaluated in parallel and concatenated to ``(B, num_outputs)``; with
``num_outputs == len(ich.labels.LABELS)`` head ``i`` predicts ``LABELS[i]`` ("any" first, then
the five subtypes). The thesis had five heads (subtypes only) and a separate binary model; the
extra "any" head lets one network give both.

A ResNet is returned as the torchvision ``ResNet`` it is (``fc`` replaced, and ``conv1`` too
when ``in_channels != 3``), so its state dict keeps torchvision's key names and ImageNet weights
load directly (see :mod:`ich.models.registry`). The ImageNet weights are torchvision's
``IMAGENET1K_V1``, the ones ``pretrained=True`` meant when the papers were written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ich.models.registry import ImageNetSource, TorchvisionWeights, register

if TYPE_CHECKING:
    from torchvision.models import ResNet


class ParallelHeads(nn.Module):
    """``num_outputs`` independent binary heads on the same feature vector.

    Args:
        in_features: width of the pooled feature vector.
        num_outputs: number of heads, each producing one logit.
    """

    def __init__(self, in_features: int, num_outputs: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(in_features, 1) for _ in range(num_outputs))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_outputs)``, column ``i`` from head ``i``."""
        return torch.cat([head(x) for head in self.heads], dim=1)


def with_new_head(model: ResNet, in_channels: int, num_outputs: int) -> ResNet:
    """Replace the stem for ``in_channels`` (if not RGB) and the head for ``num_outputs``."""
    if in_channels != 3:
        stem = model.conv1
        model.conv1 = nn.Conv2d(
            in_channels,
            stem.out_channels,
            kernel_size=stem.kernel_size,
            stride=stem.stride,
            padding=stem.padding,
            bias=False,
        )
        # torchvision's initialisation of its convolutions
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    width = model.fc.in_features
    model.fc = nn.Linear(width, 1) if num_outputs == 1 else ParallelHeads(width, num_outputs)
    return model


def _build(factory: str, in_channels: int, num_outputs: int) -> ResNet:
    import torchvision.models  # here, not at import: a model that is no ResNet never pays for it

    # Each residual branch starts as the identity (last BN scale 0; Goyal et al. 2017): a deep
    # ResNet trained from scratch on few steps then learns like a shallow one first. Loaded
    # ImageNet weights overwrite these scales.
    model = getattr(torchvision.models, factory)(weights=None, zero_init_residual=True)
    return with_new_head(model, in_channels, num_outputs)


@register("resnet50", imagenet=ImageNetSource(TorchvisionWeights("ResNet50_Weights", "IMAGENET1K_V1")))
def resnet50(*, in_channels: int, num_outputs: int, input_size: int) -> ResNet:
    """ResNet-50 as in Saraswathi 2023 (224x224 inputs there; any size works: global pooling)."""
    del input_size  # size-agnostic: global average pooling before the head
    return _build("resnet50", in_channels, num_outputs)


@register("resnet152", imagenet=ImageNetSource(TorchvisionWeights("ResNet152_Weights", "IMAGENET1K_V1")))
def resnet152(*, in_channels: int, num_outputs: int, input_size: int) -> ResNet:
    """ResNet-152 as in Alqnatri 2021 (resize to 256, random crop 224; SGD with momentum)."""
    del input_size  # size-agnostic: global average pooling before the head
    return _build("resnet152", in_channels, num_outputs)

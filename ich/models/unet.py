"""The 4-level U-Net of the CT-ICH paper (Hssayeni 2020) for bleed segmentation.

Contracting path: four blocks of two padded 3x3 convolutions + ReLU, each followed by a 2x2
max-pool; a bottleneck block of two more. Expansive path: four blocks, each an up-convolution
(2x2 transposed convolution, stride 2, halving the channels), concatenation with the matching
contracting block (same size thanks to the padding, so no cropping), then two 3x3 convolutions
+ ReLU. Then one 3x3 convolution to two maps (the paper's "ICH and background" images) and a
1x1 convolution to one map. The 24 convolution layers of the paper are:

====================================== =====
encoder blocks: 4 x 2 (3x3)              8
bottleneck: 2 (3x3)                      2
up-convolutions: 4 (2x2, transposed)     4
decoder blocks: 4 x 2 (3x3)              8
3x3 to two maps, 1x1 to one              2
total                                   24
====================================== =====

The paper's last layer ends in a sigmoid; here the network returns **logits** ``(B, 1, H, W)``
and the sigmoid lives in the loss (``BCEWithLogitsLoss``, numerically stable) and at inference.
The paper does not state the filter counts; ``base_width`` defaults to 64 (doubling per level
to 1024 at the bottleneck) as in the U-Net of Ronneberger et al. that it cites; lower it for
CPU runs. H and W must be multiples of 16 (four pools);
the paper's 160x160 crops are.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ich.models.registry import register

LEVELS = 4


class DoubleConv(nn.Sequential):
    """Two padded 3x3 convolutions, each followed by ReLU (with ``batch_norm``, by BatchNorm then ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, kernel_size=3, padding=1))
            layers += [nn.BatchNorm2d(out_channels)] if batch_norm else []
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net returning one logit map at the input resolution.

    Args:
        in_channels: input channels (1 for a grey slice, 3 for the stacked HU windows).
        base_width: channels of the first level; level ``k`` has ``base_width * 2**k``.
        batch_norm: a BatchNorm after every 3x3 convolution of the blocks (not in the paper). On
            real CT at a CPU budget of a dozen epochs, the paper's network without it stays on
            its all-background plateau (validation Jaccard 0 after three epochs on CT-ICH).
    """

    def __init__(self, in_channels: int, base_width: int = 64, batch_norm: bool = False) -> None:
        super().__init__()
        widths = [base_width * 2**k for k in range(LEVELS + 1)]
        self.encoder = nn.ModuleList(
            DoubleConv(cin, cout, batch_norm)
            for cin, cout in zip([in_channels, *widths[:-2]], widths[:-1], strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1], batch_norm)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k + 1], widths[k], kernel_size=2, stride=2) for k in reversed(range(LEVELS))
        )
        self.decoder = nn.ModuleList(DoubleConv(2 * widths[k], widths[k], batch_norm) for k in reversed(range(LEVELS)))
        self.head = nn.Sequential(
            nn.Conv2d(widths[0], 2, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2, 1, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, 1, H, W)`` for images ``(B, in_channels, H, W)``, H and W multiples of 16."""
        if x.shape[-2] % 2**LEVELS or x.shape[-1] % 2**LEVELS:
            raise ValueError(f"unet needs H and W multiples of {2**LEVELS}, got {tuple(x.shape[-2:])}")
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


def _initialise(model: UNet) -> UNet:
    """He-normal convolutions and a head whose bleed map starts alive, so the network trains.

    He-normal with zero biases is the initialiser of the Keras U-Net the paper built on. Without
    batch normalisation, PyTorch's default shrinks the signal through the 24 layers until the
    network's output is one constant (at ``base_width`` 8) and only the last bias learns.

    The head turns the features into the paper's two maps, "one for the ICH regions and one for the
    background", through a ReLU, and a 1x1 convolution combines them. Background pixels
    outnumber bleed by orders of magnitude, so the first updates push the bleed map below zero
    everywhere; once dead, the network can only say "bleed" by switching the background map
    off, and no probability ever exceeds the sigmoid of the last bias (about 0.5: every
    threshold of the paper's Table 6 above it finds nothing). So the bleed map starts switched on
    (bias 1) and enters the combination with a positive weight, the background map with a
    negative one; the magnitudes stay He-normal draws.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    maps, combine = model.head[0], model.head[-1]  # 3x3 conv to (bleed, background), 1x1 conv to one logit
    with torch.no_grad():
        maps.bias[0] = 1.0
        combine.weight[:, 0].abs_()
        combine.weight[:, 1] = -combine.weight[:, 1].abs()
    return model


@register("unet", segments=True)
def unet(
    *, in_channels: int, num_outputs: int, input_size: int, base_width: int = 64, batch_norm: bool = False
) -> UNet:
    """The U-Net of Hssayeni 2020 (trained on 160x160 crops); ``num_outputs`` must be 1 (bleed mask)."""
    if num_outputs != 1:
        raise ValueError(f"unet segments one class (bleed); num_outputs must be 1, got {num_outputs}")
    del input_size  # fully convolutional: any multiple of 16
    return _initialise(UNet(in_channels, base_width, batch_norm))

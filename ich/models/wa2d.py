"""The three custom 2D CNNs of the WA2D-CNN ensemble (Gudadhe 2024).

The paper gives layer counts and order but not filter widths or the classifier head; we
use widths 32/64/128 per block (doubling after each pool, the usual choice for 256x256
inputs) and a global-average-pool + linear head so the same weights work at any input
size. Layer counts below are the paper's (convolution, max-pool and dropout layers).
The paper trains them from scratch: none has ImageNet weights.

``batch_norm=True`` (params ``options: {batch_norm: true}``) puts a BatchNorm after every
convolution, a deviation from the paper, which has none. Without it the deeper two networks
sit on the chance plateau (training loss ln 2) for the whole of a short CPU run on the demo
cohort; with it all three separate it within five epochs. The real-data profile keeps the
paper's networks.
"""

from __future__ import annotations

from torch import Tensor, nn

from ich.models.registry import register

WIDTHS = (32, 64, 128)


def _conv(cin: int, cout: int, batch_norm: bool) -> list[nn.Module]:
    norm = [nn.BatchNorm2d(cout)] if batch_norm else []
    return [nn.Conv2d(cin, cout, kernel_size=3, padding=1), *norm, nn.ReLU(inplace=True)]


class WA2DCNN(nn.Module):
    """Three blocks of ``convs_per_block`` 3x3 convolutions, a 2x2 max-pool and optional dropout.

    Args:
        in_channels: input channels (3 for the stacked HU windows).
        num_outputs: number of logits.
        convs_per_block: convolutions in each of the three blocks.
        dropout: dropout probability after each block; ``None`` means no dropout layer.
        batch_norm: a BatchNorm after each convolution (not in the paper).
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        convs_per_block: tuple[int, int, int],
        dropout: float | None,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for width, n_convs in zip(WIDTHS, convs_per_block, strict=True):
            for _ in range(n_convs):
                layers += _conv(cin, width, batch_norm)
                cin = width
            layers.append(nn.MaxPool2d(2))
            if dropout is not None:
                layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_outputs)
        # He initialisation: without batch norm, PyTorch's default (gain for leaky ReLU
        # a=sqrt(5)) shrinks activations layer by layer and training often stalls at chance.
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_outputs)`` for images ``(B, in_channels, H, W)``."""
        return self.head(self.pool(self.features(x)).flatten(1))

    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the feature stack, whose output is the last block's map."""
        return self.features


@register("wa2d_cnn1")
def wa2d_cnn1(*, in_channels: int, num_outputs: int, input_size: int, batch_norm: bool = False) -> WA2DCNN:
    """12 layers: 3 x [conv3x3, conv3x3, max-pool, dropout]."""
    del input_size  # size-agnostic: global average pooling before the head
    return WA2DCNN(in_channels, num_outputs, (2, 2, 2), dropout=0.25, batch_norm=batch_norm)


@register("wa2d_cnn2")
def wa2d_cnn2(*, in_channels: int, num_outputs: int, input_size: int, batch_norm: bool = False) -> WA2DCNN:
    """10 layers: 7 conv3x3 (2, 2, 3 per block) and 3 max-pools, no dropout (it overfits)."""
    del input_size  # size-agnostic: global average pooling before the head
    return WA2DCNN(in_channels, num_outputs, (2, 2, 3), dropout=None, batch_norm=batch_norm)


@register("wa2d_cnn3")
def wa2d_cnn3(*, in_channels: int, num_outputs: int, input_size: int, batch_norm: bool = False) -> WA2DCNN:
    """9 layers: 3 x [conv3x3, max-pool, dropout]; the best single model of the paper."""
    del input_size  # size-agnostic: global average pooling before the head
    return WA2DCNN(in_channels, num_outputs, (1, 1, 1), dropout=0.25, batch_norm=batch_norm)

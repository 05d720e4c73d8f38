"""The custom CNN baseline of the bachelor thesis (Alqnatri 2021, first experiment).

Two unpadded 8x8 convolutions (in -> 16 -> 32, each followed by ReLU), a 2x2 max-pool, then
three fully connected layers with ReLU and BatchNorm between them and dropout before the output
layer. The thesis fed one grey channel; ``in_channels`` is free so that the same network also
takes the three stacked HU windows.

The thesis gives neither the widths of the two hidden fully connected layers nor the dropout
rate; we use 128, 64 and 0.5. Because the head flattens the feature map, the first fully
connected layer depends on the input size: ``32 * ((input_size - 14) // 2) ** 2`` inputs (each
8x8 convolution without padding removes 7 pixels, the pool halves). That layer dominates the
parameter count (60 M at 256x256, 13 M at 128x128), which is what this simple design costs.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ich.models.registry import register

KERNEL = 8
WIDTHS = (16, 32)


class ThesisCNN(nn.Module):
    """Conv-conv-pool feature extractor and a three-layer fully connected classifier.

    Args:
        in_channels: input channels (1 in the thesis).
        num_outputs: number of logits.
        input_size: side of the square input; fixes the flatten size.
        hidden: widths of the two hidden fully connected layers.
        dropout: dropout probability before the output layer.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        input_size: int,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        hidden1, hidden2 = hidden
        side = (input_size - 2 * (KERNEL - 1)) // 2
        if side < 1:
            raise ValueError(f"thesis_cnn needs input_size >= {2 * KERNEL}, got {input_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, WIDTHS[0], kernel_size=KERNEL),
            nn.ReLU(inplace=True),
            nn.Conv2d(WIDTHS[0], WIDTHS[1], kernel_size=KERNEL),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(WIDTHS[1] * side * side, hidden1),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden1),
            nn.Linear(hidden1, hidden2),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden2),
            nn.Dropout(dropout),
            nn.Linear(hidden2, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_outputs)`` for images ``(B, in_channels, input_size, input_size)``."""
        return self.classifier(self.features(x).flatten(1))

    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the feature extractor (its output is the pooled 32-channel map)."""
        return self.features


@register("thesis_cnn")
def thesis_cnn(
    *,
    in_channels: int,
    num_outputs: int,
    input_size: int,
    hidden: Sequence[int] = (128, 64),
    dropout: float = 0.5,
) -> ThesisCNN:
    """The thesis baseline; trained from scratch (BCE with logits, Adam 1e-3)."""
    return ThesisCNN(in_channels, num_outputs, input_size, hidden, dropout)

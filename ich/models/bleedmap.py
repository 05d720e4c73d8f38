"""``bleedmap_cnn``: a slice classifier that also draws a coarse bleed map, supervised by the masks.

With few positive patients, a slice label says only *that* a slice bleeds; a mask says *where*,
and so tells the network which of the many bright or odd pixels matter. Pixel-level supervision
is how PatchFCN (Kuo 2019) reached expert-level detection from a few thousand labelled scans.
This network keeps a classifier's interface (images in, slice logits out) and adds a map head:

- an encoder of four blocks [conv3x3-BN-ReLU, conv3x3-BN-ReLU, max-pool 2] (widths
  ``width x (1, 2, 4, 8)``), strides 2, 4, 8 and 16; the first block has one convolution only,
  since at full resolution a second one would cost as much as the three deeper blocks together;
- a map head: the stride-16 features, projected and upsampled x4, joined with the projected
  stride-4 features (fine edges) and convolved to one bleed logit per cell of a stride-4 grid;
- a classification head: global average and maximum pooling of the stride-16 features, dropout
  and a linear layer, one logit per output.

:meth:`BleedMapCNN.forward` returns the slice logits the rest of the pipeline reads. For the
first output ("any") it fuses the classification head with the map's peak as ``score`` says:
``mean`` (default) averages the two probabilities, ``class`` keeps the head alone, ``peak``
the map's maximum alone (PatchFCN's slice score). Further outputs (subtypes) come from the
head. :meth:`BleedMapCNN.forward_maps` returns both heads' raw logits, for training
(:mod:`ich.train.bleedmap`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ich.models.registry import register

SCORES = ("mean", "class", "peak")


def _block(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class MapScoredClassifier(nn.Module):
    """A classifier with a bleed-map head: subclasses give :meth:`forward_maps`; the slice score
    of the first output fuses the two heads as ``score`` says (one of :data:`SCORES`)."""

    def __init__(self, score: str) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"a bleed-map network's score must be one of {SCORES}, got {score!r}")
        self.score = score

    def forward_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw logits of both heads: slice ``(B, num_outputs)`` and map ``(B, 1, H / 4, W / 4)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Slice logits ``(B, num_outputs)``; the first fuses both heads as ``score`` says."""
        logits, bleed_map = self.forward_maps(x)
        if self.score == "class":
            return logits
        peak = bleed_map.flatten(1).amax(dim=1)
        if self.score == "peak":
            first = peak
        else:
            first = torch.logit((torch.sigmoid(logits[:, 0]) + torch.sigmoid(peak)) / 2, eps=1e-7)
        return torch.cat([first[:, None], logits[:, 1:]], dim=1)


def map_head(width: int) -> nn.Sequential:
    """The map head of both networks: joined fine and coarse projections to one bleed logit per cell."""
    return nn.Sequential(
        nn.Conv2d(2 * width, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, 1, 1),
    )


class BleedMapCNN(MapScoredClassifier):
    """Encoder with a bleed-map head and a classification head (see the module docstring).

    Args:
        in_channels: input channels (slices x windows).
        num_outputs: slice logits (1: "any"; 6: "any" and the five subtypes).
        width: channels of the first block; the others double.
        dropout: before the classification head's linear layer.
        score: how the first output fuses the two heads: one of :data:`SCORES`.
    """

    def __init__(
        self, in_channels: int, num_outputs: int, width: int = 32, dropout: float = 0.3, score: str = "mean"
    ) -> None:
        super().__init__(score)
        widths = [width * k for k in (1, 2, 4, 8)]
        self.blocks = nn.ModuleList(
            _block(cin, cout, convs=1 if k == 0 else 2)
            for k, (cin, cout) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True))
        )
        self.fine = nn.Conv2d(widths[1], width, 1)
        self.coarse = nn.Conv2d(widths[3], width, 1)
        self.map_head = map_head(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[3], num_outputs))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw logits of both heads: slice ``(B, num_outputs)`` and map ``(B, 1, H / 4, W / 4)``."""
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        fine, deep = features[1], features[3]
        coarse = F.interpolate(self.coarse(deep), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        bleed_map = self.map_head(torch.cat([self.fine(fine), coarse], dim=1))
        pooled = torch.cat([deep.mean(dim=(2, 3)), deep.amax(dim=(2, 3))], dim=1)
        return self.head(pooled), bleed_map

    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the last encoder block, whose map both heads read."""
        return self.blocks[3]


@register("bleedmap_cnn", bleed_map=True)
def bleedmap_cnn(
    *, in_channels: int, num_outputs: int, input_size: int, width: int = 32, dropout: float = 0.3, score: str = "mean"
) -> BleedMapCNN:
    """Four-block CNN with a stride-4 bleed-map head beside the classification head."""
    if input_size % 16:
        raise ValueError(f"bleedmap_cnn needs an input_size divisible by 16, got {input_size}")
    return BleedMapCNN(in_channels, num_outputs, width=width, dropout=dropout, score=score)

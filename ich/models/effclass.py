"""EfficientClassification, "EffClass" (Cortes-Ferre 2023): EfficientDet-D0 features read by a ResNet18.

The detector's box and class heads are dropped; what remains, the EfficientNet-B0 backbone and
the BiFPN, yields five 64-channel maps (strides 8 to 128: 64x64 down to 4x4 for a 512x512
slice). Each map is brought to 224x224, the input size of the ResNet family, by its own
transposed convolution, whose output channels shrink with the map's resolution (16, 12, 8, 4,
2: fine maps carry more spatial detail). The 42 stacked channels are reduced to a 3-channel
"image" by two convolutions (42 -> 16, k5; 16 -> 3, k3), which a ResNet18 classifies. The paper
lists no nonlinearity between these layers, so there is none.

A transposed convolution maps a side ``n`` to
``(n - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1``; with the paper's settings
every map lands exactly on 224 for a 512 input:

==== ===== ====== ======= ========= ======== ======================================
map  out   kernel stride  padding   dilation  side
==== ===== ====== ======= ========= ======== ======================================
64   16    19     3       1         2         63 * 3 - 2 + 2 * 18 + 1 = 224
32   12    9      7       1         1         31 * 7 - 2 + 1 * 8 + 1 = 224
16   8     24     9       2         4         15 * 9 - 4 + 4 * 23 + 1 = 224
8    4     28     9       1         6         7 * 9 - 2 + 6 * 27 + 1 = 224
4    2     30     8       2         7         3 * 8 - 4 + 7 * 29 + 1 = 224
==== ===== ====== ======= ========= ======== ======================================

Other input sizes (a multiple of 128, the BiFPN's coarsest stride; 128 and 256 for CPU runs)
keep the same layers, so weights transfer between sizes, but the transposed convolutions then
land on unequal sides. Each output is therefore resized bilinearly to the common side
``round(224 * input_size / 512)`` (112 for 256, 56 for 128), which keeps the paper's ratio
between the fused image and the slice; at 512 no resizing happens. At 128 the coarsest BiFPN
map is 1x1, so training (BatchNorm statistics) needs batches of at least two slices.

The paper's ResNet18 ends in two softmax units (hemorrhage / no hemorrhage). Our convention for
binary classifiers is one logit for "any" (sigmoid + BCE), equivalent to a two-way softmax;
``num_outputs > 1`` gives one binary head per label as in :mod:`ich.models.resnet`. The paper
started from a COCO-trained EfficientDet-D0 and an ImageNet ResNet18; ``pretrained="imagenet"``
initialises the ResNet18 only (from torchvision's cache) and leaves the detector part random.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ich.models.registry import ImageNetSource, TorchvisionWeights, register
from ich.models.resnet import with_new_head

PAPER_INPUT = 512
PAPER_FUSED = 224
MAX_STRIDE = 128
FPN_CHANNELS = 64

DECONVS: tuple[tuple[int, int, int, int, int], ...] = (
    # out_channels, kernel, stride, padding, dilation; one row per BiFPN level, finest first
    (16, 19, 3, 1, 2),
    (12, 9, 7, 1, 1),
    (8, 24, 9, 2, 4),
    (4, 28, 9, 1, 6),
    (2, 30, 8, 2, 7),
)
FUSED_CHANNELS = sum(row[0] for row in DECONVS)  # 42


def fused_side(input_size: int) -> int:
    """Side of the fused image fed to the ResNet18: 224 at the paper's 512."""
    return round(PAPER_FUSED * input_size / PAPER_INPUT)


class EffClass(nn.Module):
    """EfficientDet-D0 backbone + BiFPN, transposed-convolution fusion, ResNet18 classifier.

    Args:
        in_channels: input channels (3: the stacked HU windows).
        num_outputs: number of logits.
        input_size: side of the square input; a multiple of 128 (the BiFPN is built for it).
    """

    def __init__(self, in_channels: int, num_outputs: int, input_size: int) -> None:
        super().__init__()
        if input_size % MAX_STRIDE:
            raise ValueError(f"effclass needs input_size a multiple of {MAX_STRIDE}, got {input_size}")
        import effdet  # here, not at module level: importing it costs every stage a second (timm)

        config = effdet.get_efficientdet_config("efficientdet_d0")
        config.image_size = (input_size, input_size)
        config.backbone_args = {**config.backbone_args, "in_chans": in_channels}
        detector = effdet.EfficientDet(config, pretrained_backbone=False)
        # keep the feature path only: the box and class heads are not registered here
        self.backbone = detector.backbone
        self.fpn = detector.fpn
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(FPN_CHANNELS, out, k, stride=s, padding=p, dilation=d) for out, k, s, p, d in DECONVS
        )
        self.fused_side = fused_side(input_size)
        self.reduce = nn.Sequential(
            nn.Conv2d(FUSED_CHANNELS, 16, kernel_size=5, padding=2),
            nn.Conv2d(16, 3, kernel_size=3, padding=1),
        )
        from torchvision.models import resnet18  # here, as in ich.models.resnet

        self.resnet = with_new_head(resnet18(weights=None), 3, num_outputs)

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """The five BiFPN maps, finest first: ``(B, 64, input_size / 2**k, ...)``, k = 3..7."""
        return self.fpn(self.backbone(x))

    def upsample(self, maps: list[Tensor]) -> list[Tensor]:
        """Each map through its transposed convolution, at ``fused_side`` x ``fused_side``."""
        size = (self.fused_side, self.fused_side)
        outputs = []
        for deconv, level in zip(self.deconvs, maps, strict=True):
            y = deconv(level)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            outputs.append(y)
        return outputs

    def fuse(self, x: Tensor) -> Tensor:
        """The 3-channel image the ResNet18 sees: ``(B, 3, fused_side, fused_side)``."""
        return self.reduce(torch.cat(self.upsample(self.pyramid(x)), dim=1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_outputs)`` for images ``(B, in_channels, input_size, input_size)``."""
        return self.resnet(self.fuse(x))

    def cam_layer(self) -> nn.Module:
        """Grad-CAM target: the ResNet18's last stage (the last convolutions, Grad-CAM's choice)."""
        return self.resnet.layer4


@register("effclass", imagenet=ImageNetSource(TorchvisionWeights("ResNet18_Weights", "IMAGENET1K_V1"), target="resnet"))
def effclass(*, in_channels: int, num_outputs: int, input_size: int) -> EffClass:
    """EffClass at ``input_size`` (512 in the paper)."""
    return EffClass(in_channels, num_outputs, input_size)

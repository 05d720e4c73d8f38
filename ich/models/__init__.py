"""Model architectures, one file per family, all reachable through :func:`build`.

Importing this package registers every family, each with its :class:`Capabilities` (what it reads,
whether it has a bleed-map head), which training and inference ask for by name: ``wa2d_cnn1/2/3`` (Gudadhe 2024), ``thesis_cnn``
(Alqnatri 2021), ``resnet50`` (Saraswathi 2023), ``resnet152`` (Alqnatri 2021), ``effclass`` (Cortes-Ferre 2023) and
``unet`` (Hssayeni 2020); the mask-supervised ``bleedmap_cnn`` and ``bleedmap_lite0`` (a bleed map
beside the label: ``available(bleed_map=True)``) and the whole-slice segmenter ``lite0_unet`` (EfficientNet-Lite0
trunks); and the study-level ``study_gru`` (CNN + bidirectional GRU over a study's slices, the RSNA
2019 winners' recipe).
"""

import importlib
import pkgutil

from ich.models.cam import cam_layer
from ich.models.registry import Capabilities, available, build, capabilities, refuse_options, register

for _module in pkgutil.iter_modules(__path__):
    # every module of this package registers its families when imported: a new file is a new model
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Capabilities", "available", "build", "cam_layer", "capabilities", "refuse_options", "register"]

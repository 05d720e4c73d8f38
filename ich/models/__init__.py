"""Model architectures, one file per family, all reachable through :func:`build`.

Importing this package registers every family: ``wa2d_cnn1/2/3`` (seed 001), ``thesis_cnn``
(seed 004), ``resnet50`` (seed 000), ``resnet152`` (seed 004), ``effclass`` (seed 002) and
``unet`` (seed 003).
"""

from ich.models import effclass, resnet, thesis, unet, wa2d  # noqa: F401  (they register)
from ich.models.cam import cam_layer
from ich.models.registry import available, build, register

__all__ = ["available", "build", "cam_layer", "register"]

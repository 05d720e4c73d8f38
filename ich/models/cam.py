"""Which layer Grad-CAM explains, per classifier.

Grad-CAM weights the activations of one convolutional layer by the gradient of a logit; the
last spatial feature map before global pooling (or flattening) gives the best trade-off between
semantics and resolution. torchvision ResNets are used as they are (no extra attributes, which
would duplicate state-dict keys), so they are looked up by type; our own classifiers name their
layer in a ``cam_layer()`` method.
"""

from __future__ import annotations

import sys

from torch import nn


def cam_layer(model: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM should use for ``model``.

    Raises:
        TypeError: ``model`` is not a classifier of this package (e.g. the U-Net).
    """
    torchvision_models = sys.modules.get("torchvision.models")  # a ResNet exists only once it is imported
    if torchvision_models is not None and isinstance(model, torchvision_models.ResNet):
        return model.layer4
    method = getattr(model, "cam_layer", None)
    if callable(method):
        return method()
    raise TypeError(f"no Grad-CAM layer for {type(model).__name__}: not a classifier of ich.models")

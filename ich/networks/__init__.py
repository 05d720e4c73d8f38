"""Trained networks from their description: build one, load its weights, run it.

Training (:mod:`ich.train`) and inference (:mod:`ich.predict`, the ``explain`` stage) both need
a network as its ``train.<model>`` or ``segment.<name>`` section describes it; this package is
that shared part, below both, so that inference never imports training. Training writes the
description beside the weights (:data:`NETWORK_FILE`) and inference builds from it; how a
network was trained (augmentation, pasted bleeds, losses) is training's alone.
"""

import torch

from ich.reproducible import pin_threads

NETWORK_FILE = "network.json"
"""A trained network's description, written beside its ``model.pt``."""


def default_device() -> torch.device:
    """CUDA when available, else the CPU on its pinned threads (:func:`ich.reproducible.pin_threads`)."""
    pin_threads()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


__all__ = ["NETWORK_FILE", "default_device"]

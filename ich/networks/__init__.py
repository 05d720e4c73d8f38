"""Trained networks from their params: build one, load its weights, run it.

Training (:mod:`ich.train`) and inference (:mod:`ich.predict`, the ``explain`` stage) both need
a network as its ``train.<model>`` or ``segment.<name>`` section describes it; this package is
that shared part, below both, so that inference never imports training.
"""

import torch


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


__all__ = ["default_device"]

"""A study-level sequence model: a per-slice CNN encoder and a bidirectional GRU over the study's slices.

The RSNA 2019 winning solutions judged each slice with the whole study in view: a CNN embeds
every slice, then a bidirectional GRU (1st place) or LSTM (2nd place) runs along z, so a
slice's score can use what lies above and below it, and the study gets one score of its own.
This is that recipe sized for a CPU: a four-block CNN encoder (trained together with the GRU,
end to end, one study per step), one bidirectional GRU layer, and two heads:

- per slice: the GRU state beside the slice's own embedding -> one logit per output;
- per study: the maximum and the mean of the GRU states over the study -> one logit per output.

Input ``(B, T, C, H, W)`` (B studies of T slices each, normalised); output ``(B, T + 1, outputs)``:
the T slice logits, then the study logit. Studies of different lengths go one per batch
(``batch_size: 1`` in the ``train`` section), so nothing is padded.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ich.models.registry import register

OutputT = TypeVar("OutputT", Tensor, np.ndarray)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class StudyGRU(nn.Module):
    """CNN slice encoder + bidirectional GRU along z, with slice and study heads."""

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        widths: tuple[int, ...] = (16, 32, 64, 96),
        hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers, cin = [], in_channels
        for width in widths:
            layers.append(_block(cin, width))
            cin = width
        self.encoder = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.gru = nn.GRU(cin, hidden, batch_first=True, bidirectional=True)
        self.slice_head = nn.Linear(2 * hidden + cin, num_outputs)
        self.study_head = nn.Linear(4 * hidden, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"StudyGRU takes studies (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        embeddings = self.pool(self.encoder(x.flatten(0, 1))).unflatten(0, (b, t))
        states, _ = self.gru(embeddings)
        slices = self.slice_head(torch.cat([states, embeddings], dim=2))
        study = self.study_head(torch.cat([states.amax(dim=1), states.mean(dim=1)], dim=1))
        return torch.cat([slices, study[:, None]], dim=1)


def split_study_output(output: OutputT) -> tuple[OutputT, OutputT]:
    """A study model's output ``(..., T + 1, outputs)`` (logits or probabilities, tensor or array) as
    its slices' ``(..., T, outputs)`` and its study's ``(..., outputs)``: the one place that knows
    the study comes last."""
    return output[..., :-1, :], output[..., -1, :]


@register("study_gru", reads_studies=True)
def study_gru(*, in_channels: int, num_outputs: int, input_size: int, hidden: int = 64) -> StudyGRU:
    """The CPU-sized study model (``input_size`` is free: the encoder pools globally)."""
    del input_size
    return StudyGRU(in_channels, num_outputs, hidden=hidden)

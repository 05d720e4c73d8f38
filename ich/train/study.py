"""Training pieces of the study-level sequence models (:mod:`ich.models.sequence`): loss and prediction.

A study model sees one whole study per step (``batch_size: 1``): its output holds one logit per
slice and then the study's own logit (:class:`StudyLoss`). Slices are still what the rest of the
pipeline compares, so predictions come out per slice (``prob_any``...), with the study
probability beside them (``prob_study``, the same on every slice of a study), which ``evaluate``
and the operating points use as the study score.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ich.data.datasets import StudyDataset
from ich.models.sequence import split_study_output


class StudyLoss(nn.Module):
    """BCE over the slice logits plus ``study_weight`` x BCE of the study logit against "any slice positive"."""

    def __init__(self, pos_weight: Tensor | None = None, study_weight: float = 1.0) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.study_weight = study_weight

    def forward(self, output: Tensor, targets: Tensor) -> Tensor:
        slices, study = split_study_output(output)
        return self.bce(slices, targets) + self.study_weight * self.bce(study, targets.amax(dim=1))


@torch.no_grad()
def predict_studies(
    model: nn.Module, studies: StudyDataset, device: torch.device, prepare: nn.Module
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities per slice ``(N, outputs)`` and of its study ``(N,)``, in the table's row order."""
    model.eval()
    prepare = prepare.to(device).eval()
    n = len(studies.slices)
    slice_probs: np.ndarray | None = None
    study_probs = np.empty(n)
    for i in range(len(studies)):
        x, _ = studies[i]
        out = torch.sigmoid(model(prepare(x[None].to(device))).float())[0].cpu().numpy()
        if slice_probs is None:
            slice_probs = np.empty((n, out.shape[1]))
        rows = studies.rows[i]
        slice_probs[rows], study = split_study_output(out)
        study_probs[rows] = study[0]
    return slice_probs, study_probs

"""Class balancing policies for the training set (a ``split`` parameter).

ICH-positive slices are a minority (about 14% in RSNA 2019). The papers balance differently:
Cortes-Ferre 2023 undersamples negatives, Alqnatri 2021 mixes over- and undersampling by class weights,
Gudadhe 2024 weights the loss. Each policy is expressed as what the training loader needs:
which rows to draw, with what sampling weights, and an optional positive-class loss weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POLICIES = ("none", "undersample", "oversample", "weighted_sampler", "loss_weights")


@dataclass(frozen=True)
class Balance:
    """What the training loader does with the training rows.

    Attributes:
        rows: positions (into the training table) that make up one epoch's pool.
        sample_weights: if set, draw ``len(rows)`` samples with replacement using these weights.
        pos_weight: if set, the positive-class weight for ``BCEWithLogitsLoss``.
    """

    rows: np.ndarray
    sample_weights: np.ndarray | None = None
    pos_weight: float | None = None


def balance(labels: np.ndarray, policy: str, *, ratio: float = 1.0, seed: int = 0) -> Balance:
    """Apply ``policy`` to binary training ``labels``.

    Args:
        labels: 0/1 per training slice ("any ICH").
        policy: one of :data:`POLICIES`.
        ratio: for ``undersample``, negatives kept per positive; for ``oversample``, positives
            drawn (with repetition) per negative.
        seed: seed of the draw.
    """
    labels = np.asarray(labels).astype(int)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rows = np.arange(len(labels))
    rng = np.random.default_rng(seed)
    if policy == "none":
        return Balance(rows)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"balancing policy {policy!r} needs both classes in the training set")
    if policy == "undersample":
        keep = min(len(neg), int(round(ratio * len(pos))))
        return Balance(np.sort(np.concatenate([pos, rng.choice(neg, keep, replace=False)])))
    if policy == "oversample":
        extra = max(0, int(round(ratio * len(neg))) - len(pos))
        return Balance(np.sort(np.concatenate([rows, rng.choice(pos, extra, replace=True)])))
    if policy == "weighted_sampler":
        # Inverse class frequency: each class contributes half of the draws on average.
        weights = np.where(labels == 1, 0.5 / len(pos), 0.5 / len(neg))
        return Balance(rows, sample_weights=weights)
    if policy == "loss_weights":
        return Balance(rows, pos_weight=len(neg) / len(pos))
    raise ValueError(f"unknown balancing policy {policy!r}; expected one of {POLICIES}")

"""Does a study look like what the networks learned from? A few image statistics against the training studies.

A network says nothing useful about an image unlike any it saw, and says it with the same
confidence. Three statistics of the converted slices (the networks' own input) catch the usual
ways another site's study differs, each the median over a study's slices:

- ``head_fraction``: the share of the frame the head covers (field of view, cropping, framing);
- ``brain_level``: the mean grey level of soft tissue in the first window (another window,
  another display, another rescale);
- ``channel_spread``: the mean difference between the first and last channel inside the head (a
  grey image where the networks learned several windows, or the other way round).

The training reference is the range of the training studies' medians, from up to
``MAX_STUDIES`` studies of the ``train`` set, ``SLICES_PER_STUDY`` slices each, spread evenly
(read once per :func:`ich.predict.artefacts.load_artefacts`). A study is called unfamiliar in a
statistic when its median lies further outside that range than half the range's width: an
honest "far outside", not a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ich.io.slices import read_slice

MAX_STUDIES = 40
SLICES_PER_STUDY = 5
HEAD_LEVEL = 20  # grey levels above this are head (as ich.data.framing.head_box)
BONE_LEVEL = 235  # and above this, bone or saturated
STATISTICS = {
    "head_fraction": "the head covers {value:.0%} of the frame (training studies {low:.0%}-{high:.0%})",
    "brain_level": "soft tissue has mean grey level {value:.0f} in the first window (training studies {low:.0f}-{high:.0f})",
    "channel_spread": "its channels differ by {value:.1f} grey levels inside the head (training studies {low:.1f}-{high:.1f})",
}


def head_mask(image: np.ndarray) -> np.ndarray:
    """Where a converted slice (RGB uint8 ``(H, W, 3)``) is head: its first window above :data:`HEAD_LEVEL`."""
    return image[..., 0] > HEAD_LEVEL


def slice_statistics(image: np.ndarray) -> dict[str, float]:
    """The statistics of one converted slice (RGB uint8 ``(H, W, 3)``); NaN where it has no head."""
    first = image[..., 0].astype(np.float32)
    head = head_mask(image)
    soft = head & (first < BONE_LEVEL)
    spread = np.abs(first - image[..., 2].astype(np.float32))
    return {
        "head_fraction": float(head.mean()),
        "brain_level": float(first[soft].mean()) if soft.any() else float("nan"),
        "channel_spread": float(spread[head].mean()) if head.any() else float("nan"),
    }


def study_statistics(images: Sequence[np.ndarray]) -> dict[str, float]:
    """The median of each statistic over a study's slices."""
    table = pd.DataFrame([slice_statistics(image) for image in images])
    return {name: float(table[name].median()) for name in STATISTICS}


def _spread_evenly(items: Sequence, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round()]


def training_reference(converted_dir: str | Path, index: pd.DataFrame, split: pd.DataFrame) -> dict[str, list[float]]:
    """``{statistic: [low, high]}``: the range of the training studies' medians."""
    train = index[index["patient_id"].isin(split.loc[split["set"] == "train", "patient_id"])]
    if train.empty:
        raise ValueError("no training slices to describe what the networks saw")
    studies = _spread_evenly(sorted(train["study_id"].unique()), MAX_STUDIES)
    medians = []
    for study in studies:
        rows = train[train["study_id"] == study].sort_values("slice_order")
        paths = _spread_evenly(list(rows["image_path"]), SLICES_PER_STUDY)
        medians.append(study_statistics([read_slice(Path(converted_dir) / p)[..., ::-1] for p in paths]))
    table = pd.DataFrame(medians)
    return {name: [float(table[name].min()), float(table[name].max())] for name in STATISTICS}


def unfamiliar(
    statistics: dict[str, float], reference: dict[str, list[float]], *, ignore: Sequence[str] = ()
) -> list[str]:
    """What lies far outside the training studies, one sentence each; empty when nothing does.
    ``ignore``: statistics that say nothing about what these networks see (``channel_spread`` when
    they all read the brain window alone)."""
    notes = []
    for name, template in STATISTICS.items():
        if name in ignore:
            continue
        value, (low, high) = statistics[name], reference[name]
        margin = (high - low) / 2
        if np.isfinite(value) and not low - margin <= value <= high + margin:
            notes.append(template.format(value=value, low=low, high=high))
        elif not np.isfinite(value):
            notes.append(f"{name.replace('_', ' ')} cannot be measured: no head found in the slices")
    return notes

"""Slice context (2.5D input): each slice seen together with its neighbours in the study.

A radiologist scrolls; a bleed is judged against the slices above and below it (a vessel or a
calcification looks like blood on one slice, not across three). The RSNA 2019 winning solutions
therefore feed each slice with its neighbours stacked as channels. ``context: k`` in a
``train.<model>`` section gives the network the ``2k + 1`` slices centred on the slice, ordered by
``slice_order`` within the study (z, from ``convert``), each with all its windows:
``channels = windows x (2k + 1)``, slice-major (all windows of the lowest slice first, the centre
slice in the middle). At the ends of a study the edge slice repeats, so every slice has a full
stack. It works the same for DICOM-derived and pre-windowed images, since it only reads the
index and the converted slices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def neighbour_rows(table: pd.DataFrame, context: int) -> np.ndarray:
    """Row positions ``(len(table), 2 * context + 1)`` of each row's neighbours, centre in the middle.

    Neighbours are the rows of the same ``study_id`` at ``slice_order`` offsets ``-context ..
    +context`` by rank (gaps in ``slice_order`` are skipped, not padded); beyond either end of the
    study the edge row repeats. ``table`` must hold every slice of each study it contains that
    the stack should see (a patient-level split keeps studies whole).
    """
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    missing = {"study_id", "slice_order"} - set(table.columns)
    if missing:
        raise ValueError(f"slice context needs the index columns {sorted(missing)}")
    studies = table["study_id"].to_numpy()
    orders = table["slice_order"].to_numpy()
    duplicated = pd.DataFrame({"s": studies, "o": orders}).duplicated()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ValueError(f"study {studies[first]} has slice_order {orders[first]} twice: the stack would be ambiguous")
    by_study = np.lexsort((orders, studies))  # rows sorted by study, then slice_order
    sorted_studies = studies[by_study]
    starts = np.r_[0, np.flatnonzero(sorted_studies[1:] != sorted_studies[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(table)])
    start = np.repeat(starts, sizes)  # per sorted row: where its study begins
    rank = np.arange(len(table)) - start
    size = np.repeat(sizes, sizes)
    offsets = np.arange(-context, context + 1)
    target = start[:, None] + np.clip(rank[:, None] + offsets[None, :], 0, size[:, None] - 1)
    result = np.empty((len(table), len(offsets)), dtype=np.int64)
    result[by_study] = by_study[target]
    return result

"""Evaluate stored probability maps on the test set: per-slice tables, metrics, overlays.

Every segmenter is evaluated the same way: its test maps go through its
:class:`~ich.segmentation.maps.PostProcess` at each probability threshold, each mask is compared
with the reference (:func:`ich.metrics.segmentation.overlap_counts`), and the summaries of
:mod:`ich.metrics.segmentation` are taken at its operating threshold (chosen on validation; the
rows marked ``operating``), with slice-level detection at every threshold (Hssayeni 2020's Table 6). Overlays show a few test slices with the reference contour
(green) and the predicted one (red), the same slices for every segmenter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ich.data.resize import resize_square
from ich.io.atomic import write_csv
from ich.io.slices import read_mask, read_slice
from ich.labels import SUBTYPES
from ich.metrics.segmentation import (
    SPACING_COLUMNS,
    overlap_counts,
    segmentation_by_patient,
    segmentation_summary,
)
from ich.segmentation.maps import PostProcess, read_prob_map

REFERENCE_BGR = (0, 220, 0)
PREDICTION_BGR = (0, 0, 255)


def per_slice_table(
    predictions: pd.DataFrame,
    index: pd.DataFrame,
    image_root: str | Path,
    maps_root: str | Path,
    post: PostProcess,
    thresholds: Sequence[float],
    subset: str = "test",
) -> pd.DataFrame:
    """One row per ``subset`` slice and threshold: counts, Dice, Jaccard, labels and spacings.

    ``predictions`` is a segmenter's table (``slice_id, patient_id, set, fold, prob_path``);
    the operating threshold of ``post`` is always included, its rows marked ``operating``
    (so folds pooled later each keep their own). The columns are those the summaries of
    :mod:`ich.metrics.segmentation` read.
    """
    cuts = sorted({float(t) for t in thresholds} | {float(post.threshold)})
    rows = predictions[predictions["set"] == subset]
    extra = [c for c in ("mask_path", *SUBTYPES, *SPACING_COLUMNS) if c in index]
    rows = rows.merge(index[["slice_id", *extra]], on="slice_id", how="left", validate="one_to_one")
    records = []
    for row in rows.to_dict("records"):
        prob = read_prob_map(Path(maps_root) / row["prob_path"])
        ref = read_mask(image_root, row["mask_path"], prob.shape)
        base = {k: row[k] for k in ("slice_id", "patient_id", "fold", *extra) if k != "mask_path"}
        records += [
            {**base, "threshold": t, "operating": t == post.threshold, **overlap_counts(post.mask(prob, t), ref)}
            for t in cuts
        ]
    return pd.DataFrame.from_records(records)


def segmenter_metrics(per_slice: pd.DataFrame) -> dict[str, Any]:
    """Metrics of one segmenter: the full summary at its operating threshold plus detection at every threshold.

    Keys: those of :func:`ich.metrics.segmentation.segmentation_summary` (``slice``,
    ``subtype``, ``patient``, ``detection``, ``volume``) over the ``operating`` rows,
    ``operating_thresholds`` (one, or one per test fold of pooled folds), and
    ``detection_by_threshold.threshold_<t>`` (Hssayeni 2020's Table 6).
    """
    operating = per_slice[per_slice["operating"]]
    summary = segmentation_summary(operating)
    table6 = {
        f"threshold_{t:g}": segmentation_summary(group)["detection"]
        for t, group in per_slice.groupby("threshold", sort=True)
    }
    return {
        **summary,
        "operating_thresholds": sorted({float(t) for t in operating["threshold"]}),
        "detection_by_threshold": table6,
    }


def segmentation_headline(block: dict[str, Any]) -> dict[str, Any]:
    """The figures a reviewer decides on, from a ``segmenter_metrics`` block.

    Mean Dice and Jaccard over test slices and patients with bleed, the bleed-volume error,
    and slice detection (any predicted pixel) at the post-processing threshold.
    """
    slices, patients = block["slice"]["with_bleed"], block["patient"]["with_bleed"]
    return {
        "dice_slices": slices["dice"]["mean"],
        "jaccard_slices": slices["jaccard"]["mean"],
        "dice_patients": patients["dice"]["mean"],
        "volume_mean_abs_error_ml": block["volume"]["mean_abs_error_ml"],
        "volume_mean_abs_relative_error": block["volume"]["mean_abs_relative_error"],
        "detection_sensitivity": block["detection"]["sensitivity"],
        "detection_specificity": block["detection"]["specificity"],
    }


def volume_points(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Reference and predicted bleed volume (mL) per test patient at the operating threshold, without ids (a plot table)."""
    patients = segmentation_by_patient(per_slice[per_slice["operating"]])
    points = patients[["ref_ml", "pred_ml"]].dropna().sort_values(["ref_ml", "pred_ml"])
    return points.round(4).reset_index(drop=True)


def overlay_slices(per_slice: pd.DataFrame, count: int) -> list[str]:
    """The ``count`` test slices with the most reference bleed (ties: by id), largest first.

    Chosen from the reference alone, so every segmenter is shown on the same slices.
    """
    areas = per_slice.drop_duplicates("slice_id")[["slice_id", "ref_pixels"]]
    areas = areas[areas["ref_pixels"] > 0].sort_values(["ref_pixels", "slice_id"], ascending=[False, True])
    return areas["slice_id"].head(count).tolist()


def scaled_contours(mask: np.ndarray, scale: float) -> list[np.ndarray]:
    """Outer contours of a 0/1 mask traced at its own resolution, scaled to an image ``scale`` times its side."""
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [np.rint((c + 0.5) * scale - 0.5).astype(np.int32) for c in found]


def overlay_tile(image: np.ndarray, ref: np.ndarray, pred: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` px BGR tile: the brain window (channel 0) in grey, reference and prediction contours.

    Contours are traced at the slice's resolution and drawn scaled onto the resized image, so a
    small slice is enlarged without blurring the outlines.
    """
    grey = image[..., 0] if image.ndim == 3 else image
    tile = cv2.cvtColor(np.ascontiguousarray(resize_square(grey, size)), cv2.COLOR_GRAY2BGR)
    scale = size / grey.shape[0]
    cv2.drawContours(tile, scaled_contours(ref, scale), -1, REFERENCE_BGR, 1)
    cv2.drawContours(tile, scaled_contours(pred, scale), -1, PREDICTION_BGR, 1)
    return tile


def overlay_strip(
    slice_ids: Sequence[str],
    predictions: pd.DataFrame,
    index: pd.DataFrame,
    image_root: str | Path,
    maps_root: str | Path,
    post: PostProcess,
    size: int,
    label: str = "",
) -> np.ndarray:
    """The :func:`overlay_tile` of each slice at the operating threshold, side by side (BGR).

    ``label`` (the segmenter's name) is written in the first tile with the colour key, so an
    image read on its own says what it shows.
    """
    prob_paths = predictions.set_index("slice_id")["prob_path"]
    rows = index.set_index("slice_id")
    tiles = []
    for slice_id in slice_ids:
        image = read_slice(Path(image_root) / rows.at[slice_id, "image_path"], cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read slice image of {slice_id}")
        pred = post.mask(read_prob_map(Path(maps_root) / prob_paths[slice_id]))
        ref = read_mask(image_root, rows.at[slice_id, "mask_path"], pred.shape)
        tiles.append(overlay_tile(image[..., ::-1], ref, pred, size))
    if label and tiles:
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, size / 640
        cv2.putText(tiles[0], "reference", (4, 4 + int(24 * scale)), font, scale, REFERENCE_BGR, 1, cv2.LINE_AA)
        cv2.putText(tiles[0], label, (4, 4 + int(52 * scale)), font, scale, PREDICTION_BGR, 1, cv2.LINE_AA)
    return np.hstack(tiles)


def write_segmentation_plots(
    plots: Path,
    tables: dict[str, pd.DataFrame],
    predictions: dict[str, pd.DataFrame],
    index: pd.DataFrame,
    image_root: str | Path,
    maps_root: str | Path,
    posts: dict[str, PostProcess],
    *,
    overlays: int,
    overlay_size: int,
) -> None:
    """Into the empty folder ``plots``: ``volume/<name>.csv`` (reference vs predicted volume per
    patient) and ``overlays/<name>.png`` (the same ``overlays`` test slices with the most bleed for
    every segmenter), for every segmenter of ``tables`` (per-slice tables), ``predictions``
    (its stored maps under ``maps_root/<name>``) and ``posts`` (its operating post-processing)."""
    (plots / "volume").mkdir()
    (plots / "overlays").mkdir()  # stays empty with `overlays: 0` (e.g. data that must not enter git)
    shown = overlay_slices(next(iter(tables.values())), overlays) if tables else []
    for name, table in tables.items():
        write_csv(plots / "volume" / f"{name}.csv", volume_points(table))
        if shown:
            maps = Path(maps_root) / name
            strip = overlay_strip(
                shown, predictions[name], index, image_root, maps, posts[name], overlay_size, label=name
            )
            if not cv2.imwrite(str(plots / "overlays" / f"{name}.png"), strip, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
                raise OSError(f"cannot write the overlays of {name}")

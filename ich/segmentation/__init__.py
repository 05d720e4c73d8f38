"""Bleed segmentation as in 003: crops and their reassembly, augmentation, post-processing, and
the intensity-threshold baseline. The U-Net itself lives in :mod:`ich.models.unet`."""

from ich.segmentation.augment import AffineRanges, augment_pair, random_affine_matrix
from ich.segmentation.crops import (
    crop_grid,
    extract_crops,
    positive_crops,
    sample_crops,
    stitch,
    undersample,
)
from ich.segmentation.postprocess import binarize, close_then_open, score_thresholds, segment_slice
from ich.segmentation.threshold import fit_threshold_band, inclusive_grid, predict_threshold_band

__all__ = [
    "AffineRanges",
    "augment_pair",
    "binarize",
    "close_then_open",
    "crop_grid",
    "extract_crops",
    "fit_threshold_band",
    "inclusive_grid",
    "positive_crops",
    "predict_threshold_band",
    "random_affine_matrix",
    "sample_crops",
    "score_thresholds",
    "segment_slice",
    "stitch",
    "undersample",
]

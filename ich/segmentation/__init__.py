"""Bleed segmentation as in Hssayeni 2020: crops and their reassembly, augmentation, post-processing,
probability maps, and the intensity-threshold baseline. The U-Net itself lives in
:mod:`ich.models.unet`, its training in :mod:`ich.train.segmenter.fit_unet`. The evaluation
(:mod:`ich.segmentation.map_evaluation`) is deliberately not imported here, so that training code
(and the DVC stages that train) do not depend on it."""

from ich.segmentation.augment import AffineRanges, augment_crop, augment_pair, random_affine_matrix
from ich.segmentation.crops import (
    crop_grid,
    extract_crops,
    positive_crops,
    sample_crops,
    stitch,
    undersample,
)
from ich.segmentation.maps import (
    POST_PROCESS_FILE,
    PROB_SCALE,
    PostProcess,
    choose_post_process,
    overlap_score,
    post_process_candidates,
    read_post_process,
    read_prob_map,
    score_candidates,
    write_post_process,
    write_prob_map,
)
from ich.segmentation.postprocess import binarize, close_then_open, score_thresholds, segment_slice
from ich.segmentation.threshold import fit_threshold_band, inclusive_grid, predict_threshold_band

__all__ = [
    "POST_PROCESS_FILE",
    "PROB_SCALE",
    "AffineRanges",
    "PostProcess",
    "augment_crop",
    "augment_pair",
    "choose_post_process",
    "binarize",
    "close_then_open",
    "crop_grid",
    "extract_crops",
    "fit_threshold_band",
    "inclusive_grid",
    "overlap_score",
    "post_process_candidates",
    "positive_crops",
    "predict_threshold_band",
    "random_affine_matrix",
    "read_post_process",
    "read_prob_map",
    "sample_crops",
    "score_candidates",
    "score_thresholds",
    "segment_slice",
    "stitch",
    "undersample",
    "write_post_process",
    "write_prob_map",
]

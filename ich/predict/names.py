"""Names the command line offers before anything heavy is imported (``ich --help`` stays fast)."""

ENSEMBLE = "ensemble"
"""The name that selects the weighted ensemble as the deciding model."""

FLAG_POINTS = ("slice_youden", "slice_sensitivity")
"""Validation-chosen slice thresholds a report can flag slices at."""

OUTLINES = ("above_threshold", "every_slice")
"""Which slices keep the segmenter's mask: those at or above the slice threshold (the default), or all."""

NOT_A_FINDING = "not a finding: the study is below the decision"
"""What the segmenter's outline in a negative study is (it outlines something in most studies)."""

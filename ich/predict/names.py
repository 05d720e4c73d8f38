"""Names the command line offers before anything heavy is imported (``ich --help`` stays fast)."""

ENSEMBLE = "ensemble"
"""The name that selects the weighted ensemble as the deciding model."""

FLAG_POINTS = ("slice_youden", "slice_sensitivity")
"""Validation-chosen slice thresholds a report can flag slices at."""

NOT_A_FINDING = "not a finding: the study is below the decision"
"""What the segmenter's outline in a negative study is (it outlines something in most studies)."""

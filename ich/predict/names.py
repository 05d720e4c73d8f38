"""Names the command line offers before anything heavy is imported (``ich --help`` stays fast)."""

ENSEMBLE = "ensemble"
"""The name that selects the weighted ensemble as the deciding model."""

FLAG_POINTS = ("slice_youden", "slice_sensitivity")
"""Validation-chosen slice thresholds a report can flag slices at."""

OUTLINES = {
    "above_threshold": "slices at or above the slice threshold keep the segmenter's mask; the others none",
    "every_slice": "every slice keeps the segmenter's mask (--outline every_slice)",
}
"""Which slices keep the segmenter's mask (the default first), and what the report says of each."""

NOT_A_FINDING = "not a finding: the study is below the decision"
"""What the segmenter's outline in a negative study is (it outlines something in most studies)."""

DISCLAIMER = (
    "Research use only. Not a medical device: not cleared or approved for clinical use, "
    "and not to be used for diagnosis or treatment decisions."
)
SYNTHETIC_WARNING = "demo models trained on synthetic phantoms: this says nothing about this patient"
"""Said before anything else, in the terminal and the page, when the training cohort is synthetic."""

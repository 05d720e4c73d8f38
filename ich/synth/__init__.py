"""Synthetic head-CT cohort (a test and demo cohort, labelled as synthetic wherever reported)."""

from ich.synth.cohort import CohortConfig, ct_dataset, write_cohort

__all__ = ["CohortConfig", "ct_dataset", "write_cohort"]

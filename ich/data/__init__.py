"""From raw slices to what a network sees: HU windowing, framing and resizing, conversion of a
raw cohort, the patient-level split, datasets, class balancing, batch preparation and
augmentation, bleed pasting, and the simulated other site (site shift and site export)."""

"""Training: the shared loop (checkpoints, early stopping, DDP), classifier training, the
study model's loss, the bleed-map supervision, and the segmenters (U-Net, grey-level band)
with their settings, crops and losses. The networks themselves are built by :mod:`ich.networks`."""

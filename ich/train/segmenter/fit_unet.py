"""Train the U-Net of Hssayeni 2020 through the shared loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from ich.data.sampling import Balance
from ich.io.digest import digest_values
from ich.networks import default_device
from ich.networks.segmenter import UNetSpec, build_unet, segmenter_view
from ich.segmentation import PostProcess, score_candidates
from ich.segmentation.inference import predict_prob_map
from ich.train.loop import FitResult, TrainConfig, fit, seed_everything
from ich.train.losses import make_loss
from ich.train.segmenter.data import read_pairs, training_crops
from ich.train.segmenter.settings import UNetTraining


def train_unet(
    root: str | Path,
    parts: Mapping[str, pd.DataFrame],
    spec: UNetSpec,
    training: UNetTraining,
    config: TrainConfig,
    candidates: Sequence[PostProcess],
    *,
    checkpoint: Path | None = None,
    inputs_digest: str = "",
) -> tuple[nn.Module, FitResult]:
    """Train the U-Net on the training crops; keep the epoch with the best validation Jaccard.

    ``checkpoint`` and ``inputs_digest`` as in :func:`ich.train.classify.train_classifier`.

    Validation runs the whole inference chain (crops, stitching, post-processing) on the
    validation slices with bleed, the only ones :func:`ich.segmentation.overlap_score` counts (on
    all of them if none has bleed), so no epoch pays for predicting slices that cannot change the
    choice. An epoch scores as its best post-processing ``candidates`` (thresholds), the one the
    stage then chooses on the same slices. The logged validation loss is the pixel BCE of those
    stitched maps. They stay in memory for the run.
    """
    if parts["val"].empty:
        raise ValueError("the split has no validation slice with a mask: the best epoch cannot be chosen")
    seed_everything(config.seed)
    device = default_device()
    train_set = training_crops(root, parts["train"], spec, training, config.seed)
    val_pairs = list(read_pairs(root, parts["val"]))
    val_pairs = [pair for pair in val_pairs if pair[1].any()] or val_pairs
    val_pairs = [(segmenter_view(image, spec), mask) for image, mask in val_pairs]
    model = build_unet(spec, pretrained=training.pretrained)

    def validate(m: nn.Module) -> tuple[float, float]:
        maps, loss, pixels = [], 0.0, 0
        for image, mask in val_pairs:
            prob = predict_prob_map(m, image, spec.crop, spec.stride, device, spec.inference_batch)
            clipped = np.clip(prob, 1e-7, 1 - 1e-7)
            loss -= float(np.sum(np.where(mask, np.log(clipped), np.log1p(-clipped))))
            pixels += mask.size
            maps.append((prob, mask))
        return loss / pixels, max(score_candidates(maps, candidates).values())

    fingerprint = digest_values(
        asdict(spec),
        asdict(training),
        asdict(config),
        *(asdict(c) for c in candidates),
        *(parts[name].to_csv(index=False) for name in ("train", "val")),
        inputs_digest,
    )
    result = fit(
        model,
        train_set,
        balance=Balance(np.arange(len(train_set))),
        loss_fn=make_loss(training.loss, training.dice_weight).to(device),
        validate=validate,
        config=config,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        device=device,
    )
    return model, result

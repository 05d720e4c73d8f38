"""Fit a segmenter named in ``params.yaml`` (``segment.<name>``) and map the val/test slices.

Both methods end the same way, so one evaluation treats them alike: every validation and test
slice with a reference mask gets a bleed-probability map (:func:`predict_split`, stored as in
:mod:`ich.segmentation.maps`), the validation maps choose the operating threshold among the
candidates (:func:`choose_on_validation`), and that :class:`~ich.segmentation.PostProcess`,
stored beside the segmenter, turns maps into masks in the evaluation and in ``ich predict``.

* a segmentation network of the registry (``ich.models.available(segments=True)``: the U-Net of
  Hssayeni 2020, the EfficientNet-Lite0 U-Net on whole slices, any file that registers one), with
  ``segment.defaults`` under its section: through the shared loop (:mod:`ich.train.segmenter.fit_unet`);
  the best weights go to ``model.pt``.
* ``method: threshold_band``: the grey-level band grid-searched on the training slices
  (:mod:`ich.train.segmenter.fit_band`); the band goes to ``band.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ich.io.atomic import write_json
from ich.networks.segmenter import segmentation_networks, unet_predictor, write_segmenter_spec
from ich.segmentation import (
    PostProcess,
    choose_post_process,
    read_prob_map,
    score_candidates,
    write_post_process,
    write_prob_map,
)
from ich.train.loop import save_atomic
from ich.train.segmenter.data import read_pairs
from ich.train.segmenter.fit_band import band_predictor, fit_band
from ich.train.segmenter.fit_unet import train_unet
from ich.train.segmenter.settings import band_settings, unet_settings

Predictor = Callable[[np.ndarray], np.ndarray]
"""An RGB uint8 slice -> its bleed-probability map."""


@dataclass
class FittedSegmenter:
    """What fitting gives: the predictor, the training curve (or grid) and the metrics to record."""

    predict: Predictor
    curve: pd.DataFrame
    metrics: dict[str, Any]


def _unet(
    name: str, section: Mapping[str, Any], root: str | Path, parts, candidates, out: Path, *, defaults, **resume
) -> FittedSegmenter:
    spec, training, config = unet_settings(section, defaults, where=f"segment.{name}")
    model, result = train_unet(root, parts, spec, training, config, candidates, **resume)
    save_atomic(model.state_dict(), out / "model.pt")
    write_segmenter_spec(out, spec)
    metrics = {
        "method": spec.method,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "best_val_jaccard": round(result.best_score, 6),
    }
    curve = pd.DataFrame(result.history).rename(columns={"val_score": "val_jaccard"})
    return FittedSegmenter(unet_predictor(model, spec), curve, metrics)


def _band(name: str, section: Mapping[str, Any], root: str | Path, parts, candidates, out: Path) -> FittedSegmenter:
    spec = band_settings(section, where=f"segment.{name}")
    lo, hi, grid = fit_band(root, parts["train"], spec, candidates[0])  # a 0/1 map: only the kernels matter
    write_json(out / "band.json", {"lo": lo, "hi": hi, "channel": spec.channel})
    metrics = {
        "method": spec.method,
        "lo": lo,
        "hi": hi,
        f"train_{spec.objective}": round(float(grid["score"].max()), 6),
    }
    return FittedSegmenter(band_predictor(lo, hi, spec), grid, metrics)


BAND = "threshold_band"
"""The one segmenter that is no network: a grey-level band (Hssayeni 2020's baseline)."""


def fit_segmenter(
    name: str,
    section: Mapping[str, Any],
    defaults: Mapping[str, Any],
    root: str | Path,
    parts: Mapping[str, pd.DataFrame],
    candidates: Sequence[PostProcess],
    out: Path,
    *,
    checkpoint: Path | None = None,
    inputs_digest: str = "",
) -> FittedSegmenter:
    """Fit the segmenter of params section ``segment.<name>`` on ``parts`` (train, val), saving it in ``out``.

    ``defaults`` is ``segment.defaults``, under a network's section as ``train.defaults`` is under a
    classifier's (:func:`ich.train.segmenter.settings.unet_settings`); the band takes none of it.
    ``candidates`` are the post-processings (thresholds) validation may choose from.
    ``checkpoint`` and ``inputs_digest`` resume an interrupted U-Net run as in
    :func:`ich.train.classify.train_classifier`; the band has nothing to resume.
    """
    method, networks = section.get("method"), segmentation_networks()
    if method != BAND and method not in networks:
        raise ValueError(
            f"params.yaml segment.{name}.method must be one of {', '.join([*networks, BAND])}, got {method!r}"
        )
    if method == BAND:
        return _band(name, section, root, parts, candidates, out)
    return _unet(
        name,
        section,
        root,
        parts,
        candidates,
        out,
        defaults=defaults,
        checkpoint=checkpoint,
        inputs_digest=inputs_digest,
    )


def predict_split(
    predict: Callable[[np.ndarray], np.ndarray],
    root: str | Path,
    parts: Mapping[str, pd.DataFrame],
    out_dir: Path,
) -> pd.DataFrame:
    """Write the probability map of every validation and test slice under ``out_dir/probs``.

    Returns the segmentation predictions table ``slice_id, patient_id, set, fold, prob_path``
    (``prob_path`` relative to ``out_dir``): the Predictions contract with a map in place of
    ``prob_any``, one row per slice.
    """
    frames = []
    for name in ("val", "test"):
        table = parts[name]
        frame = table[["slice_id", "patient_id", "set", "fold"]].copy()
        frame["prob_path"] = [f"probs/{slice_id}.png" for slice_id in table["slice_id"]]
        for (image, _), rel in zip(read_pairs(root, table), frame["prob_path"], strict=True):
            write_prob_map(out_dir / rel, predict(image))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def choose_on_validation(
    root: str | Path,
    val: pd.DataFrame,
    predictions: pd.DataFrame,
    out_dir: Path,
    candidates: Sequence[PostProcess],
) -> PostProcess:
    """Choose the operating post-processing on the stored validation maps and store it in ``out_dir``.

    ``predictions`` is :func:`predict_split`'s table (its ``val`` rows in the order of ``val``).
    Scored as the U-Net's epochs are (:func:`ich.segmentation.overlap_score`); written with every
    candidate's score to ``out_dir/postprocess.json``, where the evaluation and ``ich predict`` read it.
    """
    maps = predictions.loc[predictions["set"] == "val", "prob_path"]
    pairs = ((read_prob_map(out_dir / rel), mask) for (_, mask), rel in zip(read_pairs(root, val), maps, strict=True))
    scores = score_candidates(pairs, candidates)
    chosen = choose_post_process(scores, candidates)
    write_post_process(out_dir, chosen, scores)
    return chosen

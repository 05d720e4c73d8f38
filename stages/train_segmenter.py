"""Stage ``train_segmenter@<name>``: train the U-Net or fit the band baseline, map val and test slices."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.io.digest import digest_paths
from ich.params import load_params
from ich.segmentation import PostProcess
from ich.train.loop import save_atomic
from ich.train.segment import (
    band_predictor,
    band_settings,
    fit_band,
    predict_split,
    segmentation_parts,
    train_unet,
    unet_predictor,
    unet_settings,
)

ROOT = "data/converted"
CHECKPOINTS = Path("data/checkpoints")
Fitted = tuple[Callable[[np.ndarray], np.ndarray], pd.DataFrame, dict]
"""What fitting a segmenter gives the stage: its slice -> map predictor, its curve, its metrics."""


def _unet(name: str, section: dict, parts: dict[str, pd.DataFrame], post: PostProcess, out: Path) -> Fitted:
    """Train the U-Net through the shared loop; keep its best weights in ``out/model.pt``."""
    spec, config = unet_settings(section, where=f"segment.{name}")
    model, result = train_unet(
        ROOT,
        parts,
        spec,
        config,
        post,
        checkpoint=CHECKPOINTS / f"segment_{name}.pt",
        inputs_digest=digest_paths([__file__, ROOT, "data/split"]),
    )
    save_atomic(model.state_dict(), out / "model.pt")
    metrics = {
        "kind": spec.kind,
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": config.epochs,
        "best_epoch": result.best_epoch,
        "best_val_jaccard": round(result.best_score, 6),
    }
    return unet_predictor(model, spec), pd.DataFrame(result.history).rename(columns={"val_score": "val_jaccard"}), metrics


def _band(name: str, section: dict, parts: dict[str, pd.DataFrame], post: PostProcess, out: Path) -> Fitted:
    """Grid-search the grey-level band on the training slices; keep it in ``out/band.json``."""
    spec = band_settings(section, where=f"segment.{name}")
    lo, hi, grid = fit_band(ROOT, parts["train"], spec, post)
    write_json(out / "band.json", {"lo": lo, "hi": hi, "channel": spec.channel})
    metrics = {"kind": spec.kind, "lo": lo, "hi": hi, f"train_{spec.objective}": round(float(grid["score"].max()), 6)}
    return band_predictor(lo, hi, spec), grid, metrics


KINDS = {"unet": _unet, "threshold_band": _band}


def main(name: str) -> None:
    params = load_params()
    section = params["segment"][name]
    if section.get("kind") not in KINDS:
        raise ValueError(f"params.yaml segment.{name}.kind must be one of {sorted(KINDS)}, got {section.get('kind')!r}")
    post = PostProcess(**params["segment"]["postprocess"])
    parts = segmentation_parts(pd.read_csv("data/converted/index.csv"), pd.read_csv("data/split/split.csv"))
    started = time.perf_counter()
    with atomic_dir(Path("data/segmenters") / name) as out:
        predict, curve, metrics = KINDS[section["kind"]](name, section, parts, post, out)
        write_csv(out / "predictions.csv", predict_split(predict, ROOT, parts, out))
    (CHECKPOINTS / f"segment_{name}.pt").unlink(missing_ok=True)  # for an interrupted run only
    seconds = time.perf_counter() - started
    # Wall time is not reproducible, so it stays out of DVC outputs and metrics: a log beside them.
    write_json(Path("data/logs") / f"segment_{name}.json", {"seconds": round(seconds, 1), "threads": torch.get_num_threads()})
    write_csv(Path("plots/segment") / f"{name}.csv", curve.round(6))
    write_json(Path("metrics/segment") / f"{name}.json", metrics)
    print(f"segmenter {name}: {metrics}; {seconds:.0f}s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main(sys.argv[1])

"""Stage ``train_segmenter@<name>``: train the U-Net or fit the band baseline, map val and test slices."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.io.digest import digest_paths
from ich.params import load_params
from ich.segmentation import PostProcess
from ich.train.segment_data import segmentation_parts
from ich.train.segmenters import fit_segmenter, predict_split

ROOT = "data/converted"


def main(name: str) -> None:
    params = load_params()
    post = PostProcess(**params["segment"]["postprocess"])
    parts = segmentation_parts(pd.read_csv(f"{ROOT}/index.csv"), pd.read_csv("data/split/split.csv"))
    checkpoint = Path("data/checkpoints") / f"segment_{name}.pt"
    started = time.perf_counter()
    with atomic_dir(Path("data/segmenters") / name) as out:
        fitted = fit_segmenter(
            name,
            params["segment"][name],
            ROOT,
            parts,
            post,
            out,
            checkpoint=checkpoint,
            inputs_digest=digest_paths([__file__, ROOT, "data/split"]),
        )
        write_csv(out / "predictions.csv", predict_split(fitted.predict, ROOT, parts, out))
    checkpoint.unlink(missing_ok=True)  # it resumes an interrupted run only, never a later one
    seconds = time.perf_counter() - started
    # Wall time is not reproducible, so it stays out of DVC outputs and metrics: a log beside them.
    write_json(
        Path("data/logs") / f"segment_{name}.json", {"seconds": round(seconds, 1), "threads": torch.get_num_threads()}
    )
    write_csv(Path("plots/segment") / f"{name}.csv", fitted.curve.round(6))
    write_json(Path("metrics/segment") / f"{name}.json", fitted.metrics)
    print(f"segmenter {name}: {fitted.metrics}; {seconds:.0f}s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main(sys.argv[1])

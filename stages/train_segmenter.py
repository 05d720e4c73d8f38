"""Stage ``train_segmenter@<name>``: train the U-Net or fit the band baseline, map val and test slices,
choose the operating threshold on the validation maps."""

from __future__ import annotations

import sys

import pandas as pd
import torch

from ich import layout
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.params import load_params
from ich.segmentation import post_process_candidates
from ich.train.resumable import ResumableRun
from ich.train.segmenter.data import segmentation_parts
from ich.train.segmenter.fit import choose_on_validation, fit_segmenter, predict_split


def main(name: str) -> None:
    params = load_params()
    candidates = post_process_candidates(params["segment"]["postprocess"])
    parts = segmentation_parts(pd.read_csv(layout.INDEX), pd.read_csv(layout.SPLIT))
    run = ResumableRun(f"segment_{name}", inputs=[__file__, layout.CONVERTED, layout.SPLIT_DIR])
    with atomic_dir(layout.SEGMENTERS / name) as out:
        fitted = fit_segmenter(
            name,
            params["segment"][name],
            params["segment"]["defaults"],
            layout.CONVERTED,
            parts,
            candidates,
            out,
            checkpoint=run.checkpoint,
            inputs_digest=run.inputs_digest,
        )
        predictions = predict_split(fitted.predict, layout.CONVERTED, parts, out)
        write_csv(out / "predictions.csv", predictions)
        post = choose_on_validation(layout.CONVERTED, parts["val"], predictions, out, candidates)
    seconds = run.finish()
    metrics = {**fitted.metrics, "threshold": post.threshold}
    write_csv(layout.PLOTS / "segment" / f"{name}.csv", fitted.curve.round(6))
    write_json(layout.METRICS / "segment" / f"{name}.json", metrics)
    print(f"segmenter {name}: {metrics}; {seconds:.0f}s on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main(sys.argv[1])

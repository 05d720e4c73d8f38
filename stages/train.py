"""Stage ``train@<model>``: train one classifier, keep its best epoch, predict val and test."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.io.digest import digest_paths
from ich.metrics import choose_operating_points
from ich.params import load_params
from ich.train.classify import parse_section, train_classifier
from ich.train.loop import is_main_process, save_atomic


def main(name: str) -> None:
    params = load_params()
    spec, config = parse_section(name, params["train"][name])
    index = pd.read_csv("data/converted/index.csv")
    split = pd.read_csv("data/split/split.csv")
    checkpoint = Path("data/checkpoints") / f"{name}.pt"
    started = time.perf_counter()
    model, result, predictions = train_classifier(
        index,
        split,
        "data/converted",
        spec,
        config,
        balance_policy=params["split"]["balance"],
        balance_ratio=params["split"]["balance_ratio"],
        checkpoint=checkpoint,
        inputs_digest=digest_paths([__file__, "data/converted", "data/split"]),
    )
    seconds = time.perf_counter() - started
    if not is_main_process():
        return  # under torchrun every rank trains; rank 0 writes
    with atomic_dir(Path("data/models") / name) as out:
        save_atomic(model.state_dict(), out / "model.pt")
        write_csv(out / "predictions.csv", predictions)
        write_json(out / "operating_points.json", choose_operating_points(predictions, index))
    checkpoint.unlink(missing_ok=True)  # it resumes an interrupted run only, never a later one
    # Wall time is not reproducible, so it stays out of DVC outputs and metrics: a log beside them.
    write_json(
        Path("data/logs") / f"train_{name}.json",
        {"train_seconds": round(seconds, 1), "threads": torch.get_num_threads()},
    )
    write_csv(Path("plots/train") / f"{name}.csv", pd.DataFrame(result.history))
    write_json(
        Path("metrics/train") / f"{name}.json",
        {
            "parameters": sum(p.numel() for p in model.parameters()),
            "best_epoch": result.best_epoch,
            "best_val_roc_auc": round(result.best_score, 6),
        },
    )
    print(
        f"{name}: best epoch {result.best_epoch}, val ROC-AUC {result.best_score:.4f}, {seconds:.0f}s on {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main(sys.argv[1])

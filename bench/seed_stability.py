"""How much a classifier's results depend on its training seed, and whether its outputs are usable.

For every model of ``params.yaml`` (or ``--models``), trains it with each training seed of
``--seeds`` on the current ``data/converted`` + ``data/split`` (exactly as ``train@<model>``
does, in this process) and prints per seed the best validation ROC-AUC, the test ROC-AUC and
the output check, then per model the test ROC-AUC range over seeds.

Output check ("not saturated", ``ich.metrics.output_check``): on the test slices, at most 90%
of probabilities within 0.01 of the same bound (0 or 1), and at the 0.5 threshold both
sensitivity and specificity at least 0.5: a model that calls everything positive, or
everything negative, fails it whatever its ranking.

    python bench/seed_stability.py [--models a,b] [--seeds 0,1,2] [--set resnet50.lr=0.003 ...]

Needs ``dvc repro split`` first. Not part of CI: it trains every model several times.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch
import yaml
from sklearn.metrics import roc_auc_score

from ich.metrics import output_check
from ich.params import load_params
from ich.train.classify import parse_section, train_classifier


def _override(sections: dict, assignments: list[str]) -> None:
    for item in assignments:
        key, value = item.split("=", 1)
        model, field = key.split(".", 1)
        sections[model][field] = yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated (default: params.yaml models)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", nargs="*", default=[], metavar="MODEL.KEY=VALUE", help="override a train param")
    args = parser.parse_args()
    params = load_params()
    sections = params["train"]
    _override(sections, args.set)
    models = args.models.split(",") if args.models else params["models"]
    seeds = [int(s) for s in args.seeds.split(",")]
    index = pd.read_csv("data/converted/index.csv")
    split = pd.read_csv("data/split/split.csv")
    truth = index.set_index("slice_id")["any"]
    rows = []
    for name in models:
        for seed in seeds:
            spec, training, config = parse_section(name, {**sections[name], "seed": seed})
            started = time.perf_counter()
            _, result, predictions = train_classifier(
                index, split, "data/converted", spec, config, training,
                balance_policy=params["split"]["balance"], balance_ratio=params["split"]["balance_ratio"],
            )  # fmt: skip
            test = predictions[predictions["set"] == "test"]
            labels = truth.loc[test["slice_id"]].to_numpy()
            check = output_check(labels, test["prob_any"].to_numpy())
            row = {
                "model": name,
                "seed": seed,
                "val_roc_auc": round(result.best_score, 4),
                "best_epoch": result.best_epoch,
                "test_roc_auc": round(float(roc_auc_score(labels, test["prob_any"])), 4),
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in check.items()},
                "seconds": round(time.perf_counter() - started, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby("model", sort=False).agg(
        val_min=("val_roc_auc", "min"),
        test_min=("test_roc_auc", "min"),
        test_max=("test_roc_auc", "max"),
        outputs_ok=("ok", "all"),
        seconds=("seconds", "mean"),
    )
    summary["test_range"] = summary["test_max"] - summary["test_min"]
    print(f"\nseeds {seeds}, {torch.get_num_threads()} threads\n")
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()

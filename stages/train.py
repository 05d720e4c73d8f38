"""Stage ``train@<model>``: train one classifier, keep its best epoch, predict val and test."""

from __future__ import annotations

import json
import sys

import pandas as pd
import torch

from ich import layout
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics import choose_operating_points
from ich.networks.classifier import write_network_spec
from ich.params import load_params
from ich.train.classify import parse_section, train_classifier, trained_on
from ich.train.loop import is_main_process, save_atomic
from ich.train.resumable import ResumableRun


def main(name: str) -> None:
    params = load_params()
    spec, training, config = parse_section(name, params["train"][name])
    index = pd.read_csv(layout.INDEX)
    run = ResumableRun(f"train_{name}", inputs=[__file__, layout.CONVERTED, layout.SPLIT_DIR])
    model, result, predictions = train_classifier(
        index,
        pd.read_csv(layout.SPLIT),
        layout.CONVERTED,
        spec,
        config,
        training,
        balance_policy=params["split"]["balance"],
        balance_ratio=params["split"]["balance_ratio"],
        checkpoint=run.checkpoint,
        inputs_digest=run.inputs_digest,
    )
    if not is_main_process():
        return  # under torchrun every rank trains; rank 0 writes
    with atomic_dir(layout.MODELS / name) as out:
        save_atomic(model.state_dict(), out / "model.pt")
        write_network_spec(out, spec, trained_on(json.loads(layout.SOURCE.read_text()), predictions, config.refit))
        write_csv(out / "predictions.csv", predictions)
        write_json(out / "operating_points.json", choose_operating_points(predictions, index))
    seconds = run.finish()
    write_csv(layout.PLOTS / "train" / f"{name}.csv", pd.DataFrame(result.history))
    write_json(
        layout.METRICS / "train" / f"{name}.json",
        {
            "parameters": sum(p.numel() for p in model.parameters()),
            "best_epoch": result.best_epoch,
            "best_val_roc_auc": round(result.best_score, 6),
            # the shipped network: trained again on training + validation patients for the chosen epochs
            **({"refit_epochs": result.best_epoch + 1} if config.refit else {}),
        },
    )
    print(
        f"{name}: best epoch {result.best_epoch}, val ROC-AUC {result.best_score:.4f}, {seconds:.0f}s on {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main(sys.argv[1])

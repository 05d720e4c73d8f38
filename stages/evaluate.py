"""Stage ``evaluate``: test-set metrics with patient-bootstrap CIs and curves for every model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ich.io.atomic import write_csv, write_json
from ich.metrics import calibration_table, confusion_rows, evaluate_predictions, pr_table, roc_table
from ich.params import load_params

PLOTS = Path("plots/evaluate")


def main() -> None:
    params = load_params()
    p = params["evaluate"]
    index = pd.read_csv("data/converted/index.csv")
    sources = {m: Path("data/models") / m / "predictions.csv" for m in params["models"]}
    sources["ensemble"] = Path("data/ensemble/predictions.csv")
    cohort = json.loads(Path("data/raw/source.json").read_text())
    results = {"cohort": cohort["name"], "synthetic": cohort["synthetic"], "models": {}}
    for name, path in sources.items():
        predictions = pd.read_csv(path)
        results["models"][name] = evaluate_predictions(
            predictions,
            index,
            thresholds=p["thresholds"],
            patient_fractions=p["patient_fractions"],
            n_boot=p["n_bootstrap"],
            seed=p["seed"],
        )
        test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "any"]], on="slice_id")
        y, prob = test["any"].to_numpy(), test["prob_any"].to_numpy()
        write_csv(PLOTS / "roc" / f"{name}.csv", roc_table(y, prob).round(6))
        write_csv(PLOTS / "pr" / f"{name}.csv", pr_table(y, prob).round(6))
        write_csv(PLOTS / "calibration" / f"{name}.csv", calibration_table(y, prob).round(6))
        write_csv(PLOTS / "confusion" / f"{name}.csv", confusion_rows(y, prob, p["thresholds"][0]))
    write_json("metrics/classification.json", results)
    for name, block in results["models"].items():
        auc = block["slice"]["roc_auc"]
        print(f"{name}: test ROC-AUC {auc['value']} (95% CI {auc['ci_low']}-{auc['ci_high']})")


if __name__ == "__main__":
    main()

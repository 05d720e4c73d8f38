"""Stage ``evaluate``: test-set metrics with patient-bootstrap CIs and curves for every model.

``metrics/classification/<model>.json`` holds the headline figures a reviewer decides on
(``ich.metrics.headline``); the full table (every threshold, patient rule, subtype and
statistic, and ``outputs``: whether the test probabilities are usable, ``ich.metrics.output_check``)
is the DVC output ``data/evaluation/classification.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ich.io.atomic import write_csv, write_json
from ich.metrics import (
    calibration_table,
    confusion_rows,
    evaluate_predictions,
    headline,
    output_check,
    pr_table,
    roc_table,
)
from ich.params import load_params

PLOTS = Path("plots/evaluate")


def main() -> None:
    params = load_params()
    p = params["evaluate"]
    index = pd.read_csv("data/converted/index.csv")
    sources = {m: Path("data/models") / m for m in params["models"]}
    sources["ensemble"] = Path("data/ensemble")
    cohort = json.loads(Path("data/raw/source.json").read_text())
    results = {"cohort": cohort["name"], "synthetic": cohort["synthetic"], "models": {}}
    headlines = {}
    for name, folder in sources.items():
        predictions = pd.read_csv(folder / "predictions.csv")
        results["models"][name] = evaluate_predictions(
            predictions,
            index,
            thresholds=p["thresholds"],
            patient_fractions=p["patient_fractions"],
            n_boot=p["n_bootstrap"],
            seed=p["seed"],
            operating_points=json.loads((folder / "operating_points.json").read_text()),
        )
        headlines[name] = headline(results["models"][name])
        write_json(Path("metrics/classification") / f"{name}.json", headlines[name])
        test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "any"]], on="slice_id")
        y, prob = test["any"].to_numpy(), test["prob_any"].to_numpy()
        check = output_check(y, prob)
        results["models"][name]["outputs"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in check.items()}
        write_csv(PLOTS / "roc" / f"{name}.csv", roc_table(y, prob).round(6))
        write_csv(PLOTS / "pr" / f"{name}.csv", pr_table(y, prob).round(6))
        write_csv(PLOTS / "calibration" / f"{name}.csv", calibration_table(y, prob).round(6))
        write_csv(PLOTS / "confusion" / f"{name}.csv", confusion_rows(y, prob, p["thresholds"][0]))
    write_json("data/evaluation/classification.json", results)
    for name, top in headlines.items():
        auc = top["slice_roc_auc"]
        print(
            f"{name}: test slice ROC-AUC {auc['value']} (95% CI {auc['ci_low']}-{auc['ci_high']}), "
            f"patient ROC-AUC {top['patient_roc_auc']['value']}, sensitivity {top['patient_sensitivity']}, "
            f"specificity {top['patient_specificity']} at the validation-chosen point; "
            f"outputs {'ok' if results['models'][name]['outputs']['ok'] else 'FAIL the output check'}"
        )


if __name__ == "__main__":
    main()

"""Stage ``evaluate``: test-set metrics with patient-bootstrap CIs and curves for every model.

``metrics/classification/<model>.json`` holds the headline figures a reviewer decides on; the
full table (every threshold, patient rule, subtype and statistic, and ``outputs``: whether the
test probabilities are usable, ``ich.metrics.output_check``) is the DVC output
``data/evaluation/classification.json`` (``ich.metrics.model_report``).
"""

from __future__ import annotations

import json

import pandas as pd

from ich import layout
from ich.io.atomic import write_csv, write_json
from ich.metrics.model_report import report_model
from ich.params import load_params


def main() -> None:
    params = load_params()
    p = params["evaluate"]
    index = pd.read_csv(layout.INDEX)
    folders = {m: layout.MODELS / m for m in params["models"]}
    folders["ensemble"] = layout.ENSEMBLE
    cohort = json.loads(layout.SOURCE.read_text())
    results = {"cohort": cohort["name"], "synthetic": cohort["synthetic"], "models": {}}
    for name, folder in folders.items():
        report = report_model(
            pd.read_csv(folder / "predictions.csv"),
            index,
            json.loads((folder / "operating_points.json").read_text()),
            thresholds=p["thresholds"],
            patient_fractions=p["patient_fractions"],
            n_boot=p["n_bootstrap"],
            seed=p["seed"],
        )
        results["models"][name] = report.table
        write_json(layout.METRICS / "classification" / f"{name}.json", report.headline)
        for curve, table in report.curves.items():
            write_csv(layout.PLOTS / "evaluate" / curve / f"{name}.csv", table)
        print(report.summary(name))
    write_json(layout.EVALUATION / "classification.json", results)


if __name__ == "__main__":
    main()

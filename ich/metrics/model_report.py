"""Everything the ``evaluate`` stage reports of one model: the full table, the headline, the curves.

One call per model (or the ensemble) on its stored predictions and the operating points its
validation chose: :func:`~ich.metrics.model_evaluation.evaluate_predictions` with the output
check of the test probabilities (``outputs``), the headline figures a reviewer decides on, and
the ROC, PR, calibration and confusion tables that DVC plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ich.metrics.classification import output_check
from ich.metrics.curves import calibration_table, confusion_rows, pr_table, roc_table
from ich.metrics.model_evaluation import JsonBlock, evaluate_predictions, headline
from ich.metrics.pooled_folds import cohort_summaries


@dataclass(frozen=True)
class ModelReport:
    """One model's test-set evaluation."""

    table: JsonBlock  # the full block of data/evaluation/classification.json
    headline: JsonBlock  # metrics/classification/<model>.json
    curves: dict[str, pd.DataFrame]  # plots/evaluate/<curve>/<model>.csv: roc, pr, calibration, confusion

    def summary(self, name: str) -> str:
        """One line for the log: the headline and whether the outputs are usable."""
        top, auc = self.headline, self.headline["slice_roc_auc"]
        return (
            f"{name}: test slice ROC-AUC {auc['value']} (95% CI {auc['ci_low']}-{auc['ci_high']}), "
            f"patient ROC-AUC {top['patient_roc_auc']['value']}, sensitivity {top['patient_sensitivity']}, "
            f"specificity {top['patient_specificity']} at the validation-chosen point; "
            f"outputs {'ok' if self.table['outputs']['ok'] else 'FAIL the output check'}"
        )


def report_model(
    predictions: pd.DataFrame,
    index: pd.DataFrame,
    operating_points: Mapping[str, Any],
    *,
    thresholds: Sequence[float],
    patient_fractions: Sequence[float],
    n_boot: int,
    seed: int,
) -> ModelReport:
    """The evaluation of ``predictions`` (one model's val and test rows) against the slice ``index``.

    An index of several cohorts (a combined source: hospitals trained together) also gets
    ``by_cohort``: each cohort's test patients apart (:func:`ich.metrics.pooled_folds.cohort_summaries`,
    the run's test set as one fold), since a figure pooled over hospitals hides how each fares.
    """
    table = evaluate_predictions(
        predictions,
        index,
        thresholds=thresholds,
        patient_fractions=patient_fractions,
        n_boot=n_boot,
        seed=seed,
        operating_points=dict(operating_points),
    )
    test = predictions[predictions["set"] == "test"].merge(index[["slice_id", "any"]], on="slice_id")
    y, prob = test["any"].to_numpy(), test["prob_any"].to_numpy()
    table["outputs"] = {k: round(v, 6) if isinstance(v, float) else v for k, v in output_check(y, prob).items()}
    if index["cohort"].nunique() > 1:
        labels = index[["slice_id", "patient_id", "any", "cohort"]]
        points = {0: dict(operating_points)}
        table["by_cohort"] = cohort_summaries({0: predictions}, points, labels, n_boot=n_boot, seed=seed)
    curves = {
        "roc": roc_table(y, prob).round(6),
        "pr": pr_table(y, prob).round(6),
        "calibration": calibration_table(y, prob).round(6),
        "confusion": confusion_rows(y, prob, thresholds[0]),
    }
    return ModelReport(table=table, headline=headline(table), curves=curves)


__all__ = ["ModelReport", "report_model"]

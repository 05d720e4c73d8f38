"""Stage ``external@<cohort>``: every trained model and the ensemble on an external cohort.

The cohort (params ``external.cohorts.<cohort>``) is read by its source adapter and each study is
classified as ``ich predict`` would (``ich.predict.external``), at the validation-chosen points.
``metrics/external/<cohort>/<model>.json`` holds each model's headline figures; the full figures
and the labelled per-slice predictions are the DVC output ``data/external/<cohort>``.
"""

from __future__ import annotations

import sys

from ich import layout
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.metrics.external import external_headline, external_table_rows
from ich.params import load_params
from ich.predict import load_artefacts
from ich.predict.bundle import open_bundle
from ich.predict.external import read_external_cohort, refuse_a_training_cohort, validate_external


def main(cohort: str) -> None:
    params = load_params()
    p = params["external"]
    refuse_a_training_cohort(cohort, p["cohorts"][cohort], params["download"])
    data = read_external_cohort(cohort, p["cohorts"][cohort])
    bundle = open_bundle(".")
    deciders = {m: load_artefacts(bundle=bundle, model=m, segmenter=None, subtypes=False) for m in bundle.deciders}
    local_point = bool(p["cohorts"][cohort].get("calibrate", False))  # a point chosen on half the cohort
    table, blocks, left_out = validate_external(
        data, deciders, n_boot=p["n_bootstrap"], seed=p["seed"], local_point=local_point
    )
    described = {
        "cohort": cohort,
        "source": data.source["name"],
        "synthetic": bool(data.source["synthetic"]),
        "unlabelled_studies": left_out,
        "unreadable_files": data.unreadable,
        "source_issues": data.source.get("issues", []),
    }
    with atomic_dir(layout.EXTERNAL / cohort) as tmp:
        write_csv(tmp / "predictions.csv", table)
        write_json(tmp / "evaluation.json", {**described, "models": blocks})
    with atomic_dir(layout.METRICS / "external" / cohort) as tmp:
        for model, block in blocks.items():
            write_json(tmp / f"{model}.json", external_headline(block))
    first = next(iter(blocks.values()))
    print(
        f"{cohort}: {first['n_studies']} studies ({first['n_positive_studies']} positive), "
        f"{first['label_level']}-level labels; 95% bootstrap intervals over studies"
    )
    if "note" in first["study"]:
        print(first["study"]["note"])
    print(external_table_rows(blocks).to_string(index=False))
    if left_out or data.unreadable:
        print(
            f"left out: {len(left_out)} studies without labels, {len(data.unreadable)} unreadable files "
            f"(listed in {layout.EXTERNAL / cohort / 'evaluation.json'})"
        )


if __name__ == "__main__":
    main(sys.argv[1])

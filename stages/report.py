"""Stage ``report``: ``ich predict`` reports on example test studies (the most and least confident of each class)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ich import layout
from ich.io.atomic import atomic_dir, write_csv
from ich.params import load_params
from ich.predict import load_artefacts, predict_study
from ich.predict.artefacts import decider_dir
from ich.predict.examples import example_cases, study_manifest_rows
from ich.predict.inputs import study_from_manifest

# The examples' SEG objects are dated by this fixed time (the reproducible-builds convention of
# SOURCE_DATE_EPOCH = 0), so a re-run writes the same bytes; `ich predict` dates them now.
CREATED = datetime.fromtimestamp(0, UTC)


def main() -> None:
    p = load_params()["report"]
    artefacts = load_artefacts(".", model=p["model"], segmenter=p["segmenter"])
    index = pd.read_csv(layout.INDEX)
    decider = Path(decider_dir(p["model"]))
    score = artefacts.operating_points["patient_youden"]["study_score"]
    cases = example_cases(pd.read_csv(decider / "predictions.csv"), index, p["cases"], score)
    manifest = pd.read_csv(layout.RAW / "manifest.csv", dtype=str, keep_default_na=False)
    convert = artefacts.convert
    with atomic_dir(layout.REPORTS) as out:
        for case in cases.to_dict("records"):
            rows = study_manifest_rows(manifest, index, str(layout.RAW), case["patient_id"])
            study = study_from_manifest(rows, layout.RAW, convert, name=case["patient_id"])
            report, _ = predict_study(
                study,
                out / case["case"],
                artefacts,
                flag_point=p["flag_point"],
                max_cams=p["max_cams"],
                created=CREATED,
            )
            print(f"{case['case']}: {case['patient_id']} (label {case['label']}): {report['decision']['finding']}")
        write_csv(out / "cases.csv", cases)


if __name__ == "__main__":
    main()

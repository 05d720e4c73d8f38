"""Stage ``split``: patient-level train/val/test sets and folds, checked for leakage."""

from __future__ import annotations

import pandas as pd

from ich import layout
from ich.data.split import assert_no_leakage, patient_labels, split_patients
from ich.io.atomic import write_csv, write_json
from ich.params import load_params


def main() -> None:
    p = load_params()["split"]
    index = pd.read_csv(layout.INDEX)
    split = split_patients(
        patient_labels(index),
        fractions=tuple(p["fractions"]),
        folds=p["folds"],
        mode=p["mode"],
        test_fold=p["test_fold"],
        seed=p["seed"],
    )
    assert_no_leakage(index, split)
    write_csv(layout.SPLIT, split)
    merged = index.merge(split, on="patient_id", suffixes=("", "_patient"))
    write_json(
        layout.METRICS / "split.json",
        {
            name: {
                "patients": int((split["set"] == name).sum()),
                "positive_patients": int(split.loc[split["set"] == name, "any"].sum()),
                "slices": int((merged["set"] == name).sum()),
                "positive_slices": int(merged.loc[merged["set"] == name, "any"].sum()),
            }
            for name in ("train", "val", "test")
        },
    )


if __name__ == "__main__":
    main()

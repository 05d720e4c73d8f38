"""Stage ``convert``: raw cohort -> windowed PNG slices, slice index and quarantine table."""

from __future__ import annotations

import json

from ich import layout
from ich.data.cohort_conversion import ConvertConfig, convert_cohort
from ich.io.atomic import atomic_dir, write_csv, write_json
from ich.params import load_params


def main() -> None:
    p = load_params()["convert"]
    config = ConvertConfig.from_params(p)
    with atomic_dir(layout.CONVERTED) as tmp:
        index, quarantine = convert_cohort(layout.RAW, tmp, config)
        write_csv(tmp / "index.csv", index)
        write_csv(tmp / "quarantine.csv", quarantine)
    source = json.loads(layout.SOURCE.read_text())
    write_json(
        layout.METRICS / "convert.json",
        {
            "cohort": source["name"],
            "synthetic": source["synthetic"],
            "slices": len(index),
            "patients": int(index["patient_id"].nunique()),
            "positive_slices": int(index["any"].sum()),
            "channels": index["channels"].value_counts().sort_index().to_dict(),  # which windows slices really have
            "quarantined_files": int((quarantine["kind"] == "file").sum()),
            "quarantined_labels": int((quarantine["kind"] == "label").sum()),
        },
    )
    if len(quarantine):
        print(f"quarantined {len(quarantine)} items; reasons in {layout.CONVERTED / 'quarantine.csv'}")


if __name__ == "__main__":
    main()

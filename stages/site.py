"""Stage ``site``: the split's test studies exported as another hospital would send them (data/site).

The demo's external cohort (``ich.data.site_export``): PNG for every source, DICOM without
FrameOfReferenceUID where the source has Hounsfield units. ``external@<cohort>`` stages read it back.
"""

from __future__ import annotations

import json

import pandas as pd

from ich import layout
from ich.data.site_export import ScannerProtocol, export_site, first_channel_window
from ich.data.site_shift import SiteShift
from ich.io.atomic import atomic_dir
from ich.params import load_params


def main() -> None:
    params = load_params()
    p = params["site"]
    index = pd.read_csv(layout.INDEX)
    split = pd.read_csv(layout.SPLIT)
    patients = split.loc[split["set"] == p["subset"], "patient_id"]
    source = json.loads(layout.SOURCE.read_text())
    shift = SiteShift(source_window=first_channel_window(source, params["convert"]["windows"]))
    with atomic_dir(layout.SITE) as tmp:
        written = export_site(
            index[index["patient_id"].isin(patients)],
            layout.CONVERTED,
            tmp,
            formats=tuple(p["formats"]),
            shift=shift,
            scanner=ScannerProtocol(),
            seed=p["seed"],
            origin={"name": f"{source['name']} {p['subset']} studies", "synthetic": source["synthetic"]},
        )
    print(", ".join(f"{n} {p['subset']} studies as {fmt}" for fmt, n in written.items()), f"-> {layout.SITE}")


if __name__ == "__main__":
    main()

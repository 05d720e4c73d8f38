"""How often does ``ich predict`` refuse a real head CT as "not a head CT"? Measured on three sites.

Every study goes through :func:`ich.predict.read_study` (the command's own reading, window
harmonisation and head-CT check, :mod:`ich.data.head_ct`) at the profile's conversion (256 px,
framed to the head): CT-ICH's patients (one folder of brain-window JPEGs each), PHE-SICH's
patients (one folder of PNGs each, linked into a scratch folder), and RSNA 2019's single slices
(each its own one-image study, as the slices come). Per site: studies read, refused as not a
head CT, refused for another reason; for one-image studies also by label, and each refused
slice's reason. Writes ``docs/results/head-ct-check.json``.

    python experiments/head_ct_check.py [--data ../shared/data] [--rsna-every 1] [--out docs/results/head-ct-check.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich.data.cohort_conversion import ConvertConfig  # noqa: E402
from ich.predict.inputs import StudyInputError, read_study  # noqa: E402

CONFIG = ConvertConfig(size=256, framing="head", workers=1)
NOT_HEAD = "not a head CT"


def _outcome(path: Path) -> str:
    try:
        read_study(path, CONFIG)
    except StudyInputError as error:
        return NOT_HEAD if NOT_HEAD in str(error) else "refused otherwise"
    return "read"


def _site(outcomes: list[str]) -> dict:
    counts = Counter(outcomes)
    return {
        "studies": len(outcomes),
        "read": counts["read"],
        "refused_not_a_head_ct": counts[NOT_HEAD],
        "refused_otherwise": counts["refused otherwise"],
        "share_refused_not_a_head_ct": round(counts[NOT_HEAD] / len(outcomes), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rsna-every", type=int, default=1, help="score every n-th RSNA slice")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "head-ct-check.json")
    args = parser.parse_args()
    results: dict = {
        "what": __doc__.splitlines()[0],
        "command": f"python experiments/head_ct_check.py --rsna-every {args.rsna_every}",
        "convert": {"size": CONFIG.size, "framing": CONFIG.framing},
    }

    patients = sorted((args.data / "ct-ich-jpg" / "Patients_CT").glob("*/brain"))
    results["ct_ich"] = _site([_outcome(p) for p in patients])
    print("ct_ich", results["ct_ich"], flush=True)

    labels = pd.read_csv(args.data / "phe-sich-ct" / "labels.csv")
    with tempfile.TemporaryDirectory() as scratch:
        outcomes = []
        for patient, rows in labels.groupby("patient_id"):
            folder = Path(scratch) / str(patient)
            folder.mkdir()
            for image in rows["image"]:
                (folder / Path(image).name).symlink_to(args.data / "phe-sich-ct" / image)
            outcomes.append(_outcome(folder))
    results["phe_sich"] = _site(outcomes)
    print("phe_sich", results["phe_sich"], flush=True)

    rsna = pd.read_csv(args.data / "rsna-ich-png" / "labels.csv").iloc[:: args.rsna_every]
    rsna["outcome"] = [_outcome(args.data / "rsna-ich-png" / image) for image in rsna["image"]]
    results["rsna_one_image_studies"] = {
        "all": _site(list(rsna["outcome"])),
        "normal": _site(list(rsna.loc[rsna["any"] == 0, "outcome"])),
        "bleeding": _site(list(rsna.loc[rsna["any"] == 1, "outcome"])),
    }
    print("rsna", results["rsna_one_image_studies"], flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

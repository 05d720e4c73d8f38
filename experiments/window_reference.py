"""Build the intracranial HU reference of the window estimator and measure the estimator's error.

The reference (``ich/data/intracranial_hu.json``, :mod:`ich.data.window_estimate`) is measured on
CT-ICH's approximate HU (brain and bone windows together, :mod:`ich.data.approximate_hu`) of the
even-numbered patients; the estimator's error is then measured on the odd-numbered ones, exported
at every named setting of :mod:`ich.data.exports` and at windows drawn from level 20-80 / width
80-400 HU, per single image and per study (all of a patient's slices fitted together). No label
is read: the reference is anatomy, not an outcome.

    python experiments/window_reference.py [--data ../shared/data/ct-ich-jpg] [--every 3]
        [--measure-every 6] [--drawn 4] [--reference ich/data/intracranial_hu.json] [--out docs/results/window-estimator.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich.data.approximate_hu import hu_from_windows  # noqa: E402
from ich.data.exports import NAMED_EXPORTS, ExportSetting, render_export  # noqa: E402
from ich.data.window_estimate import (  # noqa: E402
    REFERENCE_FILE,
    IntracranialReference,
    WindowEstimateError,
    estimate_window,
    reference_from_hu,
)
from ich.sources.images import ct_ich_slice_images  # noqa: E402

BRAIN, BONE = (-20.0, 100.0), (-900.0, 2300.0)  # CT-ICH's windows: L40/W120 and L700/W3200


def patient_slices(root: Path, patient: str, every: int) -> list[np.ndarray]:
    """Approximate HU of every ``every``-th slice of a CT-ICH patient that has both windows."""
    out = []
    for brain in ct_ich_slice_images((root / patient / "brain").glob("*.jpg"))[::every]:
        bone = root / patient / "bone" / brain.name
        if bone.is_file():
            out.append(hu_from_windows(cv2.imread(str(brain), 0), cv2.imread(str(bone), 0), BRAIN, BONE))
    return out


def errors(studies: dict[str, list[np.ndarray]], setting: ExportSetting, reference, seed: int) -> dict:
    """Level error and width ratio of the estimate, per image and per study, and the share refused."""
    rng = np.random.default_rng(seed)
    level = (setting.window[0] + setting.window[1]) / 2
    width = setting.window[1] - setting.window[0]
    per_image, per_study, refused_images, refused_studies, images = [], [], 0, 0, 0
    for slices in studies.values():
        greys = [render_export(hu, setting, rng) for hu in slices]
        for grey in greys:
            images += 1
            try:
                e = estimate_window([grey], reference)
                per_image.append((e.level - level, e.width / width))
            except WindowEstimateError:
                refused_images += 1
        try:
            e = estimate_window(greys, reference)
            per_study.append((e.level - level, e.width / width))
        except WindowEstimateError:
            refused_studies += 1

    def block(values: list, refused: int, n: int) -> dict:
        a = np.array(values).reshape(-1, 2)
        if not len(a):
            return {"n": n, "refused": refused}
        return {
            "n": n,
            "refused": refused,
            "level_abs_error_hu": {
                "median": round(float(np.median(abs(a[:, 0]))), 1),
                "p90": round(float(np.percentile(abs(a[:, 0]), 90)), 1),
            },
            "width_ratio": {
                "median": round(float(np.median(a[:, 1])), 3),
                "p10": round(float(np.percentile(a[:, 1], 10)), 3),
                "p90": round(float(np.percentile(a[:, 1], 90)), 3),
            },
        }

    return {"image": block(per_image, refused_images, images), "study": block(per_study, refused_studies, len(studies))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ct-ich-jpg"))
    parser.add_argument("--every", type=int, default=3, help="every n-th slice of a reference patient")
    parser.add_argument("--measure-every", type=int, default=6, help="every n-th slice of a held-out patient")
    parser.add_argument("--drawn", type=int, default=4, help="windows drawn at random beside the named exports")
    parser.add_argument("--reference", default=str(REFERENCE_FILE))
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "window-estimator.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.data) / "Patients_CT"
    patients = sorted(p.name for p in root.iterdir() if p.is_dir())
    fit = [hu for p in patients[0::2] for hu in patient_slices(root, p, args.every)]
    reference = reference_from_hu(fit, f"CT-ICH (Hssayeni et al. 2020), {len(patients[0::2])} even-numbered patients")
    reference.save(args.reference)
    reference = IntracranialReference.load(args.reference)
    print(f"reference: {reference.slices} slices -> {args.reference}")
    held_out = {p: patient_slices(root, p, args.measure_every) for p in patients[1::2]}
    rng = np.random.default_rng(args.seed)
    drawn = [
        ExportSetting((float(level - width / 2), float(level + width / 2)))
        for level, width in zip(rng.uniform(20, 80, args.drawn), rng.uniform(80, 400, args.drawn), strict=True)
    ]
    settings = {
        **NAMED_EXPORTS,
        **{f"drawn_L{s.window[0] / 2 + s.window[1] / 2:.0f}_W{s.window[1] - s.window[0]:.0f}": s for s in drawn},
    }
    results = {}
    for k, (name, setting) in enumerate(settings.items()):
        results[name] = errors(held_out, setting, reference, args.seed + k)
        s, i = results[name]["study"], results[name]["image"]
        print(
            f"{name:30s} study: level |err| {s.get('level_abs_error_hu')} width {s.get('width_ratio')} "
            f"refused {s['refused']}/{s['n']}; image: refused {i['refused']}/{i['n']} {i.get('width_ratio')}"
        )
    record = {
        "what": "window estimator error on CT-ICH's odd-numbered patients (approximate HU exported at each setting)",
        "command": "python experiments/window_reference.py",
        "reference": {"source": reference.source, "slices": reference.slices},
        "held_out_patients": len(held_out),
        "settings": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

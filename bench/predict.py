"""Seconds per study of ``ich predict`` with the trained demo pipeline, and where they go.

Writes a synthetic 32-slice head CT at 512 x 512 (DICOM, with a bleed), loads the pipeline once
(as a service would), then times ``--repeats`` predictions of the study, each split into read +
convert, classify, Grad-CAM, segment, SEG and render. Also prints the one-off costs of a fresh
command: Python imports and loading the models. Target (issue 10): at most 10 s per study on 2
CPU cores with the demo models.

    python bench/predict.py [--project .] [--model ensemble] [--slices 32] [--repeats 3]

Needs a project that `make repro` has run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

started = time.perf_counter()
import torch  # noqa: E402  (timed: the imports are part of a fresh command's cost)

from ich.predict import load_artefacts, predict_study, read_study  # noqa: E402
from ich.predict.infer import timed  # noqa: E402
from ich.synth import write_cohort  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_cohort(
            tmp / "raw", n_patients=1, slices_per_study=args.slices, matrix=512, positive_fraction=1.0, seed=102
        )
        source = tmp / "raw" / "dicom" / "SYN00000"
        start = time.perf_counter()
        artefacts = load_artefacts(args.project, model=args.model)
        load_seconds = time.perf_counter() - start
        print(f"{args.slices}-slice 512x512 DICOM study, model {args.model}, {torch.get_num_threads()} threads")
        print(f"one-off: imports {IMPORT_SECONDS:.2f} s, load and check the models {load_seconds:.2f} s")
        totals, steps = [], {}
        for k in range(args.repeats):
            timings: dict[str, float] = {}
            with timed(timings, "read+convert"):
                study = read_study(source, artefacts.convert)
            report, result = predict_study(study, tmp / f"out{k}", artefacts)
            timings.update(result.timings)
            totals.append(sum(timings.values()))
            for step, seconds in timings.items():
                steps.setdefault(step, []).append(seconds)
        print(
            f"per study: {statistics.median(totals):.2f} s (median of {args.repeats}; "
            f"{report['decision']['finding']}, {len(report['flagged_slices'])} slices flagged)"
        )
        print("  " + "  ".join(f"{step} {statistics.median(values):.2f} s" for step, values in steps.items()))


if __name__ == "__main__":
    main()

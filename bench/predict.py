"""Seconds of ``ich predict`` with the trained demo pipeline: a fresh command's start, and a study.

1. **Start-up**, as a user meets it, in fresh processes: ``ich --help``, a refused call (a bad
   input is refused before PyTorch and the networks load), and the whole command on a one-slice
   DICOM study (imports, loading and checking the models, the report).
2. **A 32-slice 512 x 512 study** (synthetic DICOM, with a bleed): the pipeline loaded once (as a
   service would), then ``--repeats`` predictions, each split into read + convert, classify,
   Grad-CAM, segment, SEG and mask, render.

Targets: ``ich --help`` <= 1 s, one slice <= 3 s, 32 slices <= 10 s per study, on 2 CPU cores.

    python bench/predict.py [--project .] [--model ensemble] [--slices 32] [--repeats 3]

Needs a project that `make repro` has run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _seconds(command: list[str], expect: int) -> float:
    """Median wall seconds of three fresh runs of ``command``."""
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        runs.append(time.perf_counter() - start)
        if done.returncode != expect:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ich.synth import write_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_cohort(tmp / "one", n_patients=1, slices_per_study=1, matrix=512, positive_fraction=1.0, seed=102)
        write_cohort(
            tmp / "raw", n_patients=1, slices_per_study=args.slices, matrix=512, positive_fraction=1.0, seed=102
        )
        command = [sys.executable, "-m", "ich"]
        one = [*command, "predict", str(tmp / "one/dicom/SYN00000"), "--project", str(args.project)]
        (tmp / "empty").mkdir()
        print("start-up, fresh processes (median of 3):")
        print(f"  ich --help {_seconds([*command, '--help'], 0):.2f} s")
        print(
            f"  refused input {_seconds([*command, 'predict', str(tmp / 'empty'), '--project', str(args.project)], 2):.2f} s"
        )
        print(f"  one-slice study {_seconds([*one, '--model', args.model, '--out', str(tmp / 'one-out')], 0):.2f} s")

        started = time.perf_counter()
        import torch

        from ich.predict import load_artefacts, predict_study, read_study
        from ich.predict.infer import timed

        import_seconds = time.perf_counter() - started
        start = time.perf_counter()
        artefacts = load_artefacts(args.project, model=args.model)
        load_seconds = time.perf_counter() - start
        print(f"{args.slices}-slice 512x512 DICOM study, model {args.model}, {torch.get_num_threads()} threads")
        print(f"one-off: imports {import_seconds:.2f} s, load and check the models {load_seconds:.2f} s")
        totals, steps = [], {}
        for k in range(args.repeats):
            timings: dict[str, float] = {}
            with timed(timings, "read+convert"):
                study = read_study(tmp / "raw" / "dicom" / "SYN00000", artefacts.convert)
            report, result = predict_study(study, tmp / f"out{k}", artefacts)
            timings.update(result.timings)
            totals.append(sum(timings.values()))
            for step, seconds in timings.items():
                steps.setdefault(step, []).append(seconds)
        print(
            f"per study: {statistics.median(totals):.2f} s (median of {args.repeats}; "
            f"{report['decision']['finding']}; {report['slices_summary']})"
        )
        print("  " + "  ".join(f"{step} {statistics.median(values):.2f} s" for step, values in steps.items()))


if __name__ == "__main__":
    main()

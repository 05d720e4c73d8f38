"""The ``ich`` command: ``ich predict PATH [--out DIR]`` (also ``python -m ich predict ...``).

Exit status 0 with a one-line summary on success; 2 with the reason on bad input or a project
whose artefacts are missing or stale; nothing is written for an input that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ich.predict import (
    ENSEMBLE,
    FLAG_POINTS,
    StaleArtefactError,
    StudyInputError,
    load_artefacts,
    predict_study,
    read_study,
)
from ich.predict.infer import timed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ich", description="Intracranial hemorrhage pipeline (research use only).")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="report on one CT study",
        description="Run the trained pipeline on one study: a DICOM folder or file, a NIfTI volume "
        "or a folder of pre-windowed images. Writes report.json, report.html and (DICOM input) seg.dcm.",
    )
    predict.add_argument("path", type=Path, help="the study: DICOM folder or file, .nii/.nii.gz, or image folder")
    predict.add_argument("--out", type=Path, default=None, help="output folder (default: ./ich-report-<name>)")
    predict.add_argument("--project", type=Path, default=Path("."), help="the pipeline checkout after `make repro`")
    predict.add_argument("--model", default=ENSEMBLE, help=f"deciding model: a trained model or {ENSEMBLE!r}")
    predict.add_argument("--segmenter", default="unet", help="U-Net section of params.yaml segment ('none': skip)")
    predict.add_argument("--flag-point", default="slice_youden", choices=FLAG_POINTS, help="slice flag threshold")
    predict.add_argument("--timings", action="store_true", help="print the seconds of each step")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = args.out or Path(f"ich-report-{args.path.resolve().name.split('.')[0] or 'study'}")
    try:
        artefacts = load_artefacts(
            args.project, model=args.model, segmenter=None if args.segmenter == "none" else args.segmenter
        )
        steps: dict[str, float] = {}
        with timed(steps, "read+convert"):
            study = read_study(args.path, artefacts.convert)
        report, result = predict_study(study, out, artefacts, flag_point=args.flag_point)
    except (StudyInputError, StaleArtefactError, ValueError, FileNotFoundError) as exc:
        print(f"ich predict: {exc}", file=sys.stderr)
        return 2
    decision, bleed = report["decision"], report["bleed"]
    volume = "" if not bleed or bleed["volume_ml"] is None else f", bleed {bleed['volume_ml']:.1f} mL"
    print(
        f"{decision['finding']} (score {decision['study_score']:.3f}, threshold "
        f"{decision['operating_point']['threshold']:.3f}, {decision['model']}); "
        f"{len(report['flagged_slices'])} of {report['input']['slices_used']} slices flagged{volume}"
    )
    skipped = report["input"]["slices_skipped"]
    if skipped:
        print(f"{len(skipped)} files skipped (listed in the report)")
    print(f"wrote {out / 'report.html'}")
    if args.timings:
        steps.update(result.timings)
        print("  ".join(f"{step} {seconds:.2f}s" for step, seconds in steps.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

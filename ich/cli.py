"""The ``ich`` command: ``ich predict PATH [PATH ...] [--each] [--out DIR] [--points FILE]`` and
``ich calibrate COHORT --out FILE`` (also ``python -m ich ...``).

Exit status 0 with a one-line summary per study on success; 2 with the reason on bad input or a
project whose artefacts are missing or stale. Everything that can be checked before the models
load is checked first (the input, the output place), and nothing is written for an input that
cannot be read. PyTorch and the models load only once the arguments are known to be usable, so
``ich --help`` and a refused call return at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ich import __version__
from ich.predict.names import ENSEMBLE, FLAG_POINTS, NOT_A_FINDING, OUTLINES


class OutputError(ValueError):
    """The output place cannot take the reports; the message names it."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ich", description="Intracranial hemorrhage pipeline (research use only).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="report on CT studies",
        description="Run the trained pipeline on CT studies: DICOM folders or files, NIfTI volumes or folders "
        "of pre-windowed images. Writes report.json and report.html per study, and, for input with geometry, "
        "mask.nii.gz and (DICOM with a FrameOfReferenceUID) seg.dcm. Several studies: one folder each under "
        "--out, and predictions.csv, one row per study.",
    )
    predict.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a study: DICOM folder or file, "
        ".nii/.nii.gz, or image folder; with --each, a folder whose entries are studies",
    )
    predict.add_argument("--each", action="store_true", help="every entry of each PATH folder is one study")
    predict.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: ./ich-report-<name> for one study, ./ich-reports for several)",
    )
    _model_arguments(predict)
    predict.add_argument("--segmenter", default="default", help="bleed segmenter (default: the bundle's; 'none': skip)")
    predict.add_argument("--flag-point", default="slice_youden", choices=FLAG_POINTS, help="slice flag threshold")
    predict.add_argument(
        "--outline",
        default="above_threshold",
        choices=OUTLINES,
        help="slices whose bleed mask is kept, drawn, written and measured (default: those at or above the slice "
        "threshold; every_slice keeps the segmenter's specks on slices the classifier reads as normal)",
    )
    predict.add_argument(
        "--subtypes",
        action="store_true",
        help="also report subtype probabilities (loads the multi-label model when it does not decide)",
    )
    predict.add_argument("--timings", action="store_true", help="print the seconds of each step")
    predict.add_argument(
        "--points",
        type=Path,
        default=None,
        help="decide at the operating points of this file (`ich calibrate`: chosen on your site's labelled studies)",
    )
    calibrate = commands.add_parser(
        "calibrate",
        help="choose operating points on your site's labelled studies",
        description="Classify a labelled cohort of your own (read as an external cohort: any source adapter) and "
        "write operating points chosen on it, with a half-split check of how well they hold; "
        "`ich predict --points FILE` then decides at them and names them in the report.",
    )
    calibrate.add_argument("path", type=Path, metavar="COHORT", help="the cohort's folder")
    calibrate.add_argument("--source", default="images", help="its source adapter (images, folder, cq500)")
    calibrate.add_argument("--layout", default=None, help="images: the layout (generic reads labels.csv)")
    calibrate.add_argument("--labels", default=None, help="folder: the labels CSV")
    calibrate.add_argument("--out", type=Path, required=True, help="the point file to write (JSON)")
    _model_arguments(calibrate)
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the half split and its bootstrap")
    return parser


def _model_arguments(command: argparse.ArgumentParser) -> None:
    """Where the trained pipeline comes from, and who decides."""
    command.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="a bundle folder (the `bundle` stage's data/bundle, handed over): it alone is read",
    )
    command.add_argument(
        "--project",
        type=Path,
        default=Path("."),
        help="without --bundle: the pipeline checkout whose data/bundle is read",
    )
    command.add_argument(
        "--model", default="default", help=f"deciding model: a trained model or {ENSEMBLE!r} (default: the bundle's)"
    )


def _studies(paths: Sequence[Path], each: bool) -> dict[str, Path]:
    """Study name -> path; names are unique (a repeated name gets its parent folder's in front)."""
    from ich.predict.inputs import StudyInputError

    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise StudyInputError(f"{path}: no such file or folder")
        if each:
            if not path.is_dir():
                raise StudyInputError(f"{path}: --each needs a folder whose entries are studies")
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            if not entries:
                raise StudyInputError(f"{path}: an empty folder, no study in it")
            found += entries
        else:
            found.append(path)
    names: dict[str, Path] = {}
    for path in found:
        stem = path.resolve().name.split(".")[0] or "study"
        name = stem if stem not in names else f"{path.resolve().parent.name}-{stem}"
        if name in names:
            raise StudyInputError(f"{path}: given twice")
        names[name] = path
    return names


def _check_output(out: Path, studies: dict[str, Path], single: bool) -> None:
    """Refuse an output place that cannot take the reports, before any work is done.

    Writability is tried, not inferred from permission bits (a read-only mount or a pseudo file
    system grants them and still refuses), where the report's working folder will go: inside
    ``out`` when it exists (a mount point is its own file system), else in its parent, whose
    missing folders are made for the try and removed again. Files a report would overwrite but
    that no earlier report there owns (the user's) are refused too
    (:func:`ich.predict.outputs.refuse_foreign_outputs`).
    """
    from ich.predict.outputs import refuse_foreign_outputs

    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    target = out.resolve()
    for path in studies.values():
        source = path.resolve()
        # a file's study is the file: its report may sit beside it
        if source.is_dir() and (target == source or source in target.parents):
            raise OutputError(
                f"--out {out}: inside the study {path}; the reports would become part of it. Write them beside it"
            )
    made: list[Path] = []
    try:
        for folder in reversed([target.parent, *target.parent.parents]):
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
        handle, probe = tempfile.mkstemp(
            prefix=".ich-predict-", suffix=".probe", dir=target if out.is_dir() else target.parent
        )
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    finally:
        for folder in reversed(made):
            folder.rmdir()
    for name in studies:
        try:
            refuse_foreign_outputs(out if single else out / name)
        except ValueError as exc:
            raise OutputError(f"--out {exc}") from None


def _summary(report: dict) -> str:
    """The headline and the slices in one line, as the page says them."""
    decision, bleed = report["decision"], report["bleed"]
    volume = ""
    if bleed and bleed["volume_ml"] is not None:
        ml = f"{bleed['volume_ml']:.1f} mL"
        volume = f", bleed {ml}" if decision["positive"] else f", the segmenter outlines {ml} ({NOT_A_FINDING})"
    unlike = len(report["input"]["unlike_training"])
    caution = f"UNLIKE THE TRAINING STUDIES ({unlike} {'way' if unlike == 1 else 'ways'}, below): " if unlike else ""
    return (
        f"{caution}{decision['finding']} (score {decision['study_score']:.3f}, threshold "
        f"{decision['operating_point']['threshold']:.3f}, {decision['model']}); {report['slices_summary']}{volume}"
    )


def _at_points(artefacts, points: Path | None):
    """``artefacts`` deciding at a site's point file (``--points``), said on the terminal."""
    if points is None:
        return artefacts
    from ich.predict.site_points import with_site_points

    artefacts = with_site_points(artefacts, points)
    print(f"deciding at the points of {points} ({artefacts.operating_points['chosen_on']})")
    return artefacts


def _say_input(inputs: dict, say) -> None:
    """What the terminal says of a study's input beside the headline: how it was read, and warnings."""
    for key in ("reformatted", "geometry", "window_estimate"):
        if inputs[key]:
            say(f"{key}: {inputs[key]}")
    for note in inputs["unlike_training"]:
        say(f"WARNING: unlike the training studies: {note}")
    for series in inputs["series_not_used"]:
        say(f"not read: {series['path']}: {series['reason']}")
    if inputs["slices_skipped"]:
        say(f"{len(inputs['slices_skipped'])} inputs skipped (listed in the report)")


def _predict(args: argparse.Namespace) -> int:
    from ich.predict.bundle import StaleArtefactError, open_bundle
    from ich.predict.inputs import StudyInputError, read_study
    from ich.predict.provenance import bundle_conversion

    studies = _studies(args.paths, args.each)
    single = len(studies) == 1 and not args.each
    out = args.out or Path(f"ich-report-{next(iter(studies))}" if single else "ich-reports")
    _check_output(out, studies, single)
    try:
        bundle = open_bundle(args.project, args.bundle)
        model, segmenter = bundle.check_choices(args.model, None if args.segmenter == "none" else args.segmenter)
    except (StaleArtefactError, ValueError, FileNotFoundError) as exc:
        print(f"ich predict: {exc}", file=sys.stderr)
        return 2
    steps: dict[str, float] = {}
    first = None
    if single:  # a bad study is refused before PyTorch and the networks load
        started = time.perf_counter()
        convert = bundle_conversion(bundle.manifest)[0]
        first = read_study(next(iter(studies.values())), convert, bundle.manifest["training"]["slice_thickness_mm"])
        steps["read+convert"] = time.perf_counter() - started
    from ich.predict import load_artefacts, predict_study
    from ich.predict.names import SYNTHETIC_WARNING

    try:
        artefacts = load_artefacts(bundle=bundle, model=model, segmenter=segmenter, subtypes=args.subtypes)
        artefacts = _at_points(artefacts, args.points)
    except (StaleArtefactError, ValueError, FileNotFoundError) as exc:
        print(f"ich predict: {exc}", file=sys.stderr)
        return 2
    if artefacts.training["synthetic"]:
        print(f"WARNING: {SYNTHETIC_WARNING}")
    rows, failed = [], 0
    if single:
        iterator, say = studies.items(), print
    else:
        from tqdm import tqdm

        iterator = tqdm(studies.items(), desc="studies", unit="study", file=sys.stderr)
        say = tqdm.write  # above the progress bar, not into it
    for name, path in iterator:
        where = out if single else out / name
        try:
            if first is None:
                started = time.perf_counter()
                study = read_study(path, artefacts.convert, artefacts.training["slice_thickness_mm"])
                steps["read+convert"] = time.perf_counter() - started
            else:
                study, first = first, None
            report, result = predict_study(study, where, artefacts, flag_point=args.flag_point, outline=args.outline)
        except (StudyInputError, ValueError) as exc:
            if single:
                print(f"ich predict: {exc}", file=sys.stderr)
                return 2
            failed += 1
            rows.append({"study": name, "path": str(path), "status": f"refused: {exc}"})
            continue
        say(("" if single else f"{name}: ") + _summary(report))
        _say_input(report["input"], say)
        if single:
            say(f"wrote {where / 'report.html'}")
        if args.timings:
            say("  ".join(f"{step} {seconds:.2f}s" for step, seconds in {**steps, **result.timings}.items()))
        rows.append(_row(name, path, report))
    if not single:
        import pandas as pd

        out.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(rows)
        counts = [c for c in COUNT_COLUMNS if c in table]  # a refused study's empty cells would make them floats
        table[counts] = table[counts].astype("Int64")
        table.to_csv(out / "predictions.csv", index=False)
        print(f"wrote {out / 'predictions.csv'} ({len(rows) - failed} studies reported, {failed} refused)")
    return 2 if failed else 0


COUNT_COLUMNS = ("slices", "flagged_slices")


def _row(name: str, path: Path, report: dict) -> dict:
    """One line of ``predictions.csv``."""
    decision = report["decision"]
    return {
        "study": name,
        "path": str(path),
        "status": "ok",
        "positive": decision["positive"],
        "study_score": decision["study_score"],
        "study_probability_calibrated": decision["study_probability_calibrated"],
        "threshold": decision["operating_point"]["threshold"],
        "slices": report["input"]["slices_used"],
        "flagged_slices": len(report["flagged_slices"]),
        "volume_ml": (report["bleed"] or {}).get("volume_ml"),
        "unlike_training": " | ".join(report["input"]["unlike_training"]),
        "report": str(Path(name) / "report.html"),
    }


def _calibrate(args: argparse.Namespace) -> int:
    from ich.io.atomic import write_json
    from ich.predict import StaleArtefactError, load_artefacts
    from ich.predict.site_points import calibrate_site

    if args.out.is_dir():
        raise OutputError(f"{args.out}: a folder; --out names the point file to write")
    cohort = {"source": args.source, "path": str(args.path)}
    cohort.update({k: v for k, v in (("layout", args.layout), ("labels", args.labels)) if v is not None})
    try:
        artefacts = load_artefacts(args.project, bundle=args.bundle, model=args.model, segmenter=None, subtypes=False)
        points = calibrate_site(artefacts, cohort, seed=args.seed)
    except (StaleArtefactError, ValueError, FileNotFoundError) as exc:
        print(f"ich calibrate: {exc}", file=sys.stderr)
        return 2
    write_json(args.out, points)
    for name in points["site"]["points_chosen"]:
        point = points[name]
        print(
            f"{name}: {point['threshold']:.4g} (sensitivity {point['val_sensitivity']:.2f}, "
            f"specificity {point['val_specificity']:.2f} on the site's own studies)"
        )
    check = points["half_split_check"]
    if "local" in check:
        local = check["local"]
        print(
            f"chosen on half the site's patients, on the other half: sensitivity {local['sensitivity']['value']:.2f}, "
            f"specificity {local['specificity']['value']:.2f} ({check['level']} level)"
        )
    else:
        print(f"not checked on held-out studies: {check['not_measured']}")
    print(f"wrote {args.out}; use it with `ich predict --points {args.out}`")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ich.predict.inputs import StudyInputError

    try:
        if args.command == "calibrate":
            return _calibrate(args)
        return _predict(args)
    except (StudyInputError, OutputError, FileNotFoundError) as exc:
        print(f"ich {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # each report is moved into place whole or not at all: nothing half-written
        print(f"ich {args.command}: interrupted; no report was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

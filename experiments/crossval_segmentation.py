"""Patient-level k-fold cross-validation of the segmenters (Hssayeni 2020's protocol), pooled over test folds.

For each test fold k the params profile runs with ``split.mode = kfold`` and
``split.test_fold = k`` (fold k tests, fold k+1 validates, the other three train, as in Hssayeni 2020)
through the real DAG up to ``evaluate_segmentation``, in one work copy of the repository (the
repository's own DVC state is never touched; download and convert run once). Every patient is
in exactly one test fold, so the per-slice tables of the k runs together cover the cohort once:
they are pooled per segmenter and summarised with the evaluation's own
:func:`ich.segmentation.map_evaluation.segmenter_metrics`, i.e. the mean over all test slices with
bleed of the whole cohort, which is how Hssayeni 2020 reports its 5-fold Dice and Jaccard. The per-fold
means are kept beside the pooled figures.

    python experiments/crossval_segmentation.py [params.yaml] [--folds 0,1,2,3,4]
                                          [--workdir /tmp/cv-seg] [--out experiments/out/crossval-segmentation-<profile>]

A fold whose tables are already in ``--out`` is not run again, so an interrupted run resumes.
Writes ``<out>/fold<k>/<segmenter>.csv`` (per-slice tables) and ``<out>/crossval.json``, and
prints a Markdown table. Pooled Dice and Jaccard over slices with bleed come with 95%
patient-bootstrap intervals. ``--publish`` also writes the pooled and per-fold figures, per
subtype and with the volume error, and the code version, to ``docs/results/<profile>-segmentation.json``
(``--variant NAME``: as ``<segmenter>[NAME]``, keeping the profile's own entries). (Alternatively, ``dvc exp run -S split.mode=kfold -S
split.test_fold=<k> evaluate_segmentation`` for k = 0..4 keeps each fold as a DVC experiment
to compare with ``dvc exp show``; this script adds the pooling.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crossval import REPO, prepare_workdir, profile_for_fold, run_command

from ich.metrics.ci import bootstrap_ci
from ich.segmentation.map_evaluation import segmenter_metrics
from tools.profile import resolve_profile  # crossval puts the repository on sys.path


def run_fold(workdir: Path, params: dict, out: Path) -> float:
    """``dvc repro evaluate_segmentation`` for one fold; copy each segmenter's per-slice table to ``out``."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.perf_counter()
    log = run_command(["dvc", "repro", "evaluate_segmentation"], workdir)
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    for name in params["segmenters"]:
        shutil.copy(workdir / "data" / "segmentation" / name / "per_slice.csv", out / f"{name}.csv")
    (out / "dvc-repro.log").write_text(log)
    return seconds


def pool(out: Path, folds: list[int], name: str) -> pd.DataFrame:
    """One segmenter's per-slice tables of all folds; checks that no patient is tested twice."""
    table = pd.concat([pd.read_csv(out / f"fold{k}" / f"{name}.csv") for k in folds], ignore_index=True)
    per_patient = table.groupby("patient_id")["fold"].nunique()
    if (per_patient > 1).any() or table.duplicated(["slice_id", "threshold"]).any():
        raise AssertionError(f"{name}: a patient or slice appears in more than one test fold")
    return table


def overlap_intervals(table: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Mean Dice and Jaccard over the slices with bleed at each fold's operating threshold, with
    95% patient-bootstrap intervals."""
    rows = table[table["operating"] & (table["ref_pixels"] > 0)]
    intervals = {}
    for name in ("dice", "jaccard"):

        def mean(values, weights):
            return (weights @ values) / weights.sum(axis=1)

        value, low, high = bootstrap_ci(
            mean, rows[name].to_numpy(float), groups=rows["patient_id"].to_numpy(), n_boot=n_boot, seed=seed
        )
        intervals[name] = {
            "value": round(float(value), 6),
            "ci_low": round(float(low), 6),
            "ci_high": round(float(high), 6),
        }
    intervals["n_slices_with_bleed"] = len(rows)
    intervals["n_patients_with_bleed"] = int(rows["patient_id"].nunique())
    return intervals


def markdown(results: dict) -> str:
    """Pooled Dice/Jaccard over slices with bleed, volume error and detection, per segmenter."""
    rows = [
        "| segmenter | folds | Dice (slices with bleed, 95% CI) | Jaccard (95% CI) | per-fold Dice | thresholds"
        " | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, block in results["segmenters"].items():
        ci, detection = block["intervals"], block["metrics"]["detection"]
        folds = ", ".join(f"{v:.2f}" if v is not None else "-" for v in block["per_fold_dice"].values())
        thresholds = ", ".join(f"{t:g}" for t in block["threshold_per_fold"].values())
        cell = {k: f"{ci[k]['value']:.3f} ({ci[k]['ci_low']:.3f}-{ci[k]['ci_high']:.3f})" for k in ("dice", "jaccard")}
        rows.append(
            f"| {name} | {','.join(map(str, block['folds']))} | {cell['dice']} | {cell['jaccard']} | {folds} | {thresholds}"
            f" | {detection['sensitivity']:.3f} | {detection['specificity']:.3f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "profile",
        type=Path,
        nargs="?",
        default=REPO / "params.yaml",
        help="a profile (an overlay on params.yaml) or a params file",
    )
    parser.add_argument("--folds", default="", help="comma-separated test folds (default: all)")
    parser.add_argument("--segmenters", default="", help="comma-separated subset of the profile's segmenters")
    parser.add_argument("--workdir", type=Path, default=None, help="work copy of the repo (default: a temporary one)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: experiments/out/crossval-segmentation-<profile>"
    )
    parser.add_argument(
        "--variant",
        default="",
        help="publish the entries as <segmenter>[<variant>], beside the profile's own (a run on other code or folds)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also write docs/results/<profile>-segmentation.json (segmenters published before and not run now are kept)",
    )
    args = parser.parse_args()

    profile = resolve_profile(args.profile)
    profile["split"]["mode"] = "kfold"
    chosen = [n for n in args.segmenters.split(",") if n]
    unknown = set(chosen) - set(profile["segmenters"])
    if unknown:
        raise SystemExit(f"segmenters {sorted(unknown)} are not in the profile's segmenters {profile['segmenters']}")
    profile["segmenters"] = chosen or profile["segmenters"]
    folds = [int(k) for k in args.folds.split(",")] if args.folds else list(range(profile["split"]["folds"]))
    out = args.out or REPO / "experiments" / "out" / f"crossval-segmentation-{args.profile.stem}"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ich-crossval-segmentation-"))

    prepare_workdir(workdir)
    runs = {}
    for k in folds:
        fold_dir = out / f"fold{k}"
        if all((fold_dir / f"{n}.csv").exists() for n in profile["segmenters"]):
            print(f"fold {k}: tables already in {fold_dir}")
            runs[k] = json.loads((fold_dir / "run.json").read_text())
            continue
        print(f"fold {k}: dvc repro evaluate_segmentation in {workdir} ...", flush=True)
        runs[k] = {"seconds": round(run_fold(workdir, profile_for_fold(profile, k, None), fold_dir), 1)}
        runs[k]["code"] = (workdir / "CODE_VERSION").read_text().strip()
        (fold_dir / "run.json").write_text(json.dumps(runs[k], indent=2) + "\n")
        print(f"fold {k}: {runs[k]['seconds']:.0f} s", flush=True)

    e = profile["evaluate"]
    results = {"profile": str(args.profile), "segmenters": {}}
    for name in profile["segmenters"]:
        table = pool(out, folds, name)
        results["segmenters"][name] = {
            "folds": folds,
            "code_per_fold": {k: r["code"] for k, r in runs.items()},
            "seconds_per_fold": {k: r["seconds"] for k, r in runs.items()},
            "settings": profile["segment"][name],
            "postprocess": profile["segment"]["postprocess"],
            "intervals": overlap_intervals(table, e["n_bootstrap"], e["seed"]),
            "per_fold_dice": {
                int(k): segmenter_metrics(part)["slice"]["with_bleed"]["dice"]["mean"]
                for k, part in table.groupby("fold")
            },
            "threshold_per_fold": {
                int(k): float(part.loc[part["operating"], "threshold"].iloc[0]) for k, part in table.groupby("fold")
            },
            "metrics": segmenter_metrics(table),
        }
    (out / "crossval.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.publish:
        published = REPO / "docs" / "results" / f"{args.profile.stem}-segmentation.json"
        earlier = json.loads(published.read_text())["segmenters"] if published.exists() else {}
        suffix = f"[{args.variant}]" if args.variant else ""
        mine = {f"{name}{suffix}": block for name, block in results["segmenters"].items()}
        merged = {**results, "segmenters": {**earlier, **mine}}
        published.write_text(json.dumps(merged, indent=2) + "\n")
        print(f"published: {published}")
    print(f"\npooled test slices of folds {folds}, each at its validation-chosen threshold\n")
    print(markdown(results))
    print(f"\nwritten: {out / 'crossval.json'}")


if __name__ == "__main__":
    main()

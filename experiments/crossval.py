"""Patient-level k-fold cross-validation of a params profile, pooled over the test folds.

For each test fold k, the profile runs with ``split.test_fold = k`` through the real DAG
(``dvc repro ensemble`` in one work copy of the repository, so the repository's own DVC state is never
touched; download and convert run once, split onwards once per fold). Every patient is in
exactly one test fold, so the test predictions of the k runs together cover the whole
cohort once. They are pooled per model and evaluated with
:func:`ich.metrics.evaluate_predictions`, whose patient-bootstrap intervals then resample all
patients of the cohort instead of one fold's. Pooling compares probabilities of k different
models (one per fold) on one scale; the per-fold ROC-AUCs are printed beside it so a fold that
calibrates differently shows.

    python experiments/crossval.py profiles/ct-ich-jpg.yaml [--folds 0,1,2,3,4] [--models wa2d_cnn1,...]
                             [--workdir /tmp/cv] [--out experiments/out/crossval-<profile>]
                             [--site-shift] [--external phe_sich] [--publish]
                             [--set train.lite0_paste.pretrained=none --variant scratch]

A fold whose predictions are already in ``--out`` is not run again, so an interrupted run
resumes (pass the same ``--workdir`` to keep DVC's cache too). Writes
``<out>/fold<k>/<model>.csv`` (test predictions; ``<model>.val.csv`` the validation ones),
``<out>/index.csv`` (the slice labels) and
``<out>/crossval.json`` (pooled metrics, per-fold ROC-AUC, timings, provenance), and prints a
Markdown table of the pooled metrics. Each fold's ``operating_points.json`` (thresholds and
calibration fitted on that fold's validation patients) is kept too, and :func:`ich.metrics.pooled_folds.summary`
pools the folds with them: slice ROC-AUC of the calibrated probabilities, patient ROC-AUC, and
patient sensitivity and specificity at each fold's own patient threshold, all with patient-bootstrap
CIs. ``--publish`` writes those figures, with the code version, to
``docs/results/<profile>-crossval.json``. ``--external`` scores cohorts of the profile's
``external.cohorts`` (PHE-SICH-CT-IDS, another hospital) with every fold's models, as the
``external@`` stage would: per fold at that fold's points, with a point chosen on half the cohort,
and as the folds' models' mean.
``--set`` changes profile values for an ablation without another profile file; ``--variant`` then
names the run, and its published entries are ``<model>[<variant>]`` beside the profile's own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich.data.site_shift import SiteShift, brain_window_of, slice_id_of, write_shifted_studies  # noqa: E402
from ich.metrics import choose_operating_points, evaluate_predictions  # noqa: E402
from ich.metrics.external import external_block  # noqa: E402
from ich.metrics.model_evaluation import slice_block  # noqa: E402
from ich.metrics.pooled_folds import cohort_summaries, summary  # noqa: E402
from ich.predict.artefacts import load_artefacts  # noqa: E402
from ich.predict.batch import classify_folders, predict_folders  # noqa: E402
from ich.predict.external import label_predictions, read_external_cohort, refuse_a_training_cohort  # noqa: E402
from ich.predict.pack import pack_networks  # noqa: E402
from tools.profile import resolve_profile  # noqa: E402
from tools.project import copy_project, project_differences  # noqa: E402


def profile_for_fold(profile: dict, fold: int, models: list[str] | None) -> dict:
    """The profile with ``split.test_fold = fold``, optionally restricted to ``models``.

    A relative ``download.path`` (and a combined source's cohort paths) is made absolute against
    the repository root, where the profile is documented to run from, because the DAG runs in a
    copy elsewhere.
    """
    params = json.loads(json.dumps(profile))  # deep copy
    if params["split"]["mode"] != "kfold":
        raise ValueError("cross-validation needs split.mode: kfold in the profile")
    if not 0 <= fold < params["split"]["folds"]:
        raise ValueError(f"fold {fold} outside 0..{params['split']['folds'] - 1}")
    params["split"]["test_fold"] = fold
    sections = [params["download"], *(params["download"].get("combined") or {}).get("cohorts", {}).values()]
    for section in sections:
        path = section.get("path")
        if path and not Path(path).is_absolute():
            section["path"] = str((REPO / path).resolve())
    if models:
        unknown = set(models) - set(params["train"])
        if unknown:
            raise ValueError(f"models {sorted(unknown)} have no train section in the profile")
        params["models"] = models
        params["ensemble"]["members"] = [m for m in params["ensemble"]["members"] if m in models]
    return params


def with_overrides(profile: dict, overrides: list[str]) -> dict:
    """The profile with each ``dotted.key=value`` of ``overrides`` set (the value read as YAML).

    Only keys the profile already has can be set, so a misspelt key is an error, not a new,
    silently unused parameter.
    """
    params = json.loads(json.dumps(profile))
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ValueError(f"--set {override!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        section = params
        for part in parents:
            if not isinstance(section.get(part), dict):
                raise ValueError(f"--set {override!r}: the profile has no section {part!r}")
            section = section[part]
        if leaf not in section:
            raise ValueError(f"--set {override!r}: the profile has no key {key!r}")
        section[leaf] = yaml.safe_load(value)
    return params


def run_command(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", GIT_OPTIONAL_LOCKS="0")  # read-only git here
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        (cwd / "failed.log").write_text(done.stdout + "\n" + done.stderr)
        raise RuntimeError(
            f"{' '.join(args)} failed in {cwd} (exit {done.returncode}; whole log in {cwd / 'failed.log'}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout + done.stderr


def _code_version() -> str:
    """``<commit>`` of the repository, ``+modified`` when tracked files differ from it."""
    head = run_command(["git", "rev-parse", "--short", "HEAD"], REPO).strip()
    dirty = run_command(["git", "status", "--porcelain", "--untracked-files=no"], REPO).strip()
    return head + ("+modified" if dirty else "")


def prepare_workdir(workdir: Path) -> None:
    """Copy the code and DAG into ``workdir`` and make it a git + DVC repository (once).

    An existing work copy is resumed only when its code is this checkout's: folds run on other
    code would be pooled as if they were one experiment.
    """
    if (workdir / "dvc.yaml").exists():
        differ = project_differences(REPO, workdir)
        if differ:
            raise SystemExit(
                f"--workdir {workdir} holds other code than this checkout ({len(differ)} files differ, "
                f"e.g. {', '.join(differ[:3])}; it ran {(workdir / 'CODE_VERSION').read_text().strip()}): "
                "resume it from that code, or give a new --workdir"
            )
        return
    copy_project(REPO, workdir)
    (workdir / "params.yaml").write_text("{}\n")
    (workdir / "CODE_VERSION").write_text(_code_version() + "\n")  # what every fold run here used
    run_command(["git", "init", "-q"], workdir)
    run_command(["git", "add", "-A"], workdir)
    run_command(
        ["git", "-c", "user.name=crossval", "-c", "user.email=crossval@localhost", "commit", "-qm", "crossval"], workdir
    )


def run_fold(workdir: Path, params: dict, out: Path) -> dict:
    """``dvc repro`` one fold; copy each model's and the ensemble's test predictions to ``out``."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.perf_counter()
    log = run_command(["dvc", "repro", "ensemble"], workdir)  # the stages the pooled predictions need
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    sources = {m: workdir / "data" / "models" / m for m in params["models"]}
    sources["ensemble"] = workdir / "data" / "ensemble"
    for name, folder in sources.items():
        predictions = pd.read_csv(folder / "predictions.csv")
        predictions[predictions["set"] == "test"].to_csv(out / f"{name}.csv", index=False)
        # what the fold chose its operating points on, for comparing choices without re-training
        predictions[predictions["set"] == "val"].to_csv(out / f"{name}.val.csv", index=False)
        shutil.copy(folder / "operating_points.json", out / f"{name}.operating_points.json")
    shutil.copy(workdir / "data" / "converted" / "index.csv", out.parent / "index.csv")
    timing = {
        "seconds": round(seconds, 1),
        "ensemble": json.loads((workdir / "metrics" / "ensemble.json").read_text()),
        "code": (workdir / "CODE_VERSION").read_text().strip()
        if (workdir / "CODE_VERSION").exists()
        else "not recorded",
    }
    (out / "run.json").write_text(json.dumps(timing, indent=2) + "\n")
    (out / "dvc-repro.log").write_text(log)
    return timing


SHIFTS = {"site_shift": "whole studies", "site_shift_single": "every slice alone, a one-slice study"}
"""How the shifted test studies are given to the models (``<name>.<key>.csv``)."""


def _fold_model(workdir: Path, name: str):
    """The fold's trained model ``name`` as ``ich predict`` reads it: from a bundle of it alone."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_artefacts(bundle=pack_networks(workdir, Path(tmp), [name]), segmenter=None, subtypes=False)


def site_shift_fold(workdir: Path, names: list[str], out: Path, seed: int) -> None:
    """Predict this fold's test studies, rendered as another site would (:mod:`ich.data.site_shift`),
    with each model of the fold through ``ich predict``'s code: as whole studies
    (``<out>/<name>.site_shift.csv``) and slice by slice, as a set of single images from another
    hospital arrives (``<name>.site_shift_single.csv``).

    The studies are rendered once per work copy (``<workdir>/site-shift``) from the converted
    slices, with protocols drawn from ``seed`` and the study id.
    """
    index = pd.read_csv(workdir / "data" / "converted" / "index.csv")
    shifted = workdir / "site-shift"
    if not (shifted / "done").exists():
        source = json.loads((workdir / "data" / "raw" / "source.json").read_text())
        shift = SiteShift(source_window=brain_window_of(source))
        write_shifted_studies(index, workdir / "data" / "converted", shifted, shift, seed=seed)
        (shifted / "done").write_text(f"seed {seed}\n")
    for name in names:
        test = pd.read_csv(out / f"{name}.csv")
        test_ids, fold = set(test["slice_id"]), test["fold"].iloc[0]
        studies = sorted(index.loc[index["slice_id"].isin(test_ids), "study_id"].unique())
        artefacts = _fold_model(workdir, name)
        single = {f.stem: f for s in studies for f in sorted((shifted / s).iterdir())}
        for key, inputs in (("site_shift", {s: shifted / s for s in studies}), ("site_shift_single", single)):
            table = predict_folders(artefacts, inputs)
            table["slice_id"] = table["source_path"].map(slice_id_of)
            table = table.merge(index[["slice_id", "patient_id"]], on="slice_id", validate="one_to_one")
            if set(table["slice_id"]) != test_ids:
                raise RuntimeError(f"{name}: {key} predictions do not cover the fold's test slices")
            study = ["prob_study"] if "prob_study" in table else []
            columns = ["slice_id", "patient_id", "set", "fold", "prob_any", *study]
            table.assign(set="test", fold=fold)[columns].to_csv(out / f"{name}.{key}.csv", index=False)


def external_fold(workdir: Path, names: list[str], out: Path, cohorts: dict[str, dict]) -> None:
    """Classify each external cohort (params ``external.cohorts``) with this fold's models, as the
    ``external@`` stage does: ``<out>/<name>.external-<cohort>.csv`` (study, source_path, prob_any, any)."""
    for cohort, section in cohorts.items():
        path = Path(section["path"])
        data = read_external_cohort(cohort, {**section, "path": str(path if path.is_absolute() else REPO / path)})
        for name in names:
            artefacts = _fold_model(workdir, name)
            table, _ = label_predictions(data, classify_folders({name: artefacts}, data.folders))
            columns = ["study", "source_path", "prob_any", "any", "label_level"]
            table[columns].to_csv(out / f"{name}.external-{cohort}.csv", index=False)


def external_summary(tables: dict[int, pd.DataFrame], points: dict[int, dict], *, n_boot: int, seed: int) -> dict:
    """One model's figures on an external cohort: each fold's model at its own validation points
    (:func:`ich.metrics.external.external_block`, with a point chosen on half the cohort), and the
    folds' models averaged slice by slice (their mean probability: slice ROC-AUC, study-bootstrap CI)."""
    per_fold = {
        k: external_block(table, points[k], n_boot=n_boot, seed=seed, local_point=True) for k, table in tables.items()
    }
    first = next(iter(tables.values()))
    if any(not t["source_path"].equals(first["source_path"]) for t in tables.values()):
        raise RuntimeError("the folds scored the external cohort's slices in different orders")
    mean = pd.concat([t["prob_any"].rename(k) for k, t in tables.items()], axis=1).mean(axis=1)
    pooled = slice_block(first["any"], mean, first["study"], thresholds=[0.5], n_boot=n_boot, seed=seed)
    return {
        "n_slices": len(first),
        "n_studies": int(first["study"].nunique()),
        # the headline: the folds' models together, none of which saw the cohort
        "slice_roc_auc": pooled["roc_auc"],
        "slice_roc_auc_per_fold": {k: b["slice"]["roc_auc"] for k, b in per_fold.items()},
        "per_fold": per_fold,
    }


PROVENANCE = (
    "profile",
    "overrides",
    "folds",
    "code_per_fold",
    "seconds_per_fold",
    "operating_points_chosen_again_with",
)
PER_MODEL = ("models", "validation_pooled", *SHIFTS, "external", "by_cohort")
"""The per-model blocks of a published file: test figures, pooled validation, the simulated sites,
other hospitals, and each cohort of a combined source apart."""


def publishable(results: dict, published: Path, names: list[str], variant: str = "") -> dict:
    """The published figures of this run, merged into those already at ``published``.

    This run's models replace their earlier entries; models published by an earlier run and not
    run now are kept, each block then naming the code and folds it came from (``runs``), so the
    file gains models without losing the ones it had. An ensemble is named by its members, and
    every entry of a ``variant`` run by ``<name>[<variant>]``.
    """
    this_run = {k: results[k] for k in PROVENANCE if k in results}
    members = {tuple(sorted(weights)) for weights in results["ensemble_weights_per_fold"].values()}
    if len(members) > 1:  # folds run with other --models: their ensembles are different models
        print(f"not published: the ensemble, whose members differ between folds ({sorted(members)})")
        names = [name for name in names if name != "ensemble"]
    ensemble = "ensemble(" + "+".join(next(iter(members))) + ")" if members else "ensemble"
    suffix = f"[{variant}]" if variant else ""
    rename = {name: (ensemble if name == "ensemble" else name) + suffix for name in names}
    earlier = json.loads(published.read_text()) if published.exists() else {}
    runs = earlier.get("runs", {})
    merged: dict = {"profile": earlier.get("profile", results["profile"]), "runs": runs}
    for block in PER_MODEL:
        source = "pooled_at_operating_points" if block == "models" else block
        kept = dict(earlier.get(block, {}))
        kept.update({rename[name]: figures for name, figures in results.get(source, {}).items() if name in rename})
        if kept:
            merged[block] = kept
    merged["runs"].update({rename[name]: this_run for name in names})
    return merged


def _cell(block: dict) -> str:
    return f"{block['value']:.3f} ({block['ci_low']:.3f}-{block['ci_high']:.3f})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def markdown(results: dict, thresholds: list[float], fractions: list[float]) -> str:
    """Slice-level and patient-level Markdown tables: pooled value (95% patient-bootstrap CI).

    Rates are at the first threshold (the patient rule: "positive if at least n% of the
    patient's slices reach it"); crossval.json holds every threshold.
    """
    t = f"threshold_{thresholds[0]:g}"
    slice_rows = []
    for name, block in results["models"].items():
        s, folds = block["slice"], list(results["per_fold_roc_auc"][name].values())
        slice_rows.append(
            [name, _cell(s["roc_auc"]), f"{np.mean(folds):.3f} ± {np.std(folds, ddof=1):.3f}", _cell(s["pr_auc"])]
            + [_cell(s[t][k]) for k in ("sensitivity", "specificity", "balanced_accuracy")]
        )
    slice_header = ["model", "ROC-AUC (pooled)", "ROC-AUC (mean ± sd of folds)", "PR-AUC"]
    slice_header += [f"{k} @ {thresholds[0]:g}" for k in ("sensitivity", "specificity", "balanced accuracy")]
    patient_rows = []
    for name, block in results["models"].items():
        for fraction in fractions:
            p = block["patient"][f"fraction_{fraction:g}"][t]
            rule = f">= {fraction:.0%} of slices >= {thresholds[0]:g}"
            patient_rows.append([name, rule] + [_cell(p[k]) for k in ("accuracy", "sensitivity", "specificity")])
    patient_header = ["model", "patient positive if", "accuracy", "sensitivity", "specificity"]
    return (
        f"Slice level\n\n{_table(slice_header, slice_rows)}\n\nPatient level\n\n{_table(patient_header, patient_rows)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "profile", type=Path, help="a profile (an overlay on params.yaml) or a params file, split.mode: kfold"
    )
    parser.add_argument("--folds", default="", help="comma-separated test folds (default: all)")
    parser.add_argument("--models", default="", help="comma-separated subset of the profile's models")
    parser.add_argument("--workdir", type=Path, default=None, help="work copy of the repo (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="default: experiments/out/crossval-<profile name>")
    parser.add_argument("--publish", action="store_true", help="also write docs/results/<profile>-crossval.json")
    parser.add_argument(
        "--repoint",
        action="store_true",
        help="choose every fold's operating points again from its saved validation predictions with this code "
        "(after a change to ich.metrics.operating_points or ich.metrics.calibration; no retraining)",
    )
    parser.add_argument(
        "--external",
        default="",
        help="comma-separated cohorts of the profile's external.cohorts to score with every fold's models",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a profile value for this run (dotted key, YAML value; repeatable); needs --variant",
    )
    parser.add_argument("--variant", default="", help="name of the --set run: out folder and published entries")
    parser.add_argument(
        "--site-shift",
        action="store_true",
        help="also test every fold's models on its test studies rendered as another site would (ich.data.site_shift)",
    )
    args = parser.parse_args()

    if bool(args.set) != bool(args.variant):
        parser.error("--set and --variant go together: a changed profile is published under its own name")
    profile = with_overrides(resolve_profile(args.profile), args.set)
    folds = [int(k) for k in args.folds.split(",")] if args.folds else list(range(profile["split"]["folds"]))
    models = [m for m in args.models.split(",") if m] or None
    out = args.out or REPO / "experiments" / "out" / (
        f"crossval-{args.profile.stem}" + (f"-{args.variant}" if args.variant else "")
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ich-crossval-"))
    names = [*(models or profile["models"]), "ensemble"]
    outputs = [".csv", ".operating_points.json", *([f".{key}.csv" for key in SHIFTS] if args.site_shift else [])]
    external = {c: profile["external"]["cohorts"][c] for c in args.external.split(",") if c}
    for cohort, section in external.items():
        try:
            refuse_a_training_cohort(cohort, section, profile["download"])
        except ValueError as exc:
            parser.error(f"--external {cohort}: {exc}")
    outputs += [f".external-{cohort}.csv" for cohort in external]

    prepare_workdir(workdir)
    timings = {}
    for k in folds:
        fold_dir = out / f"fold{k}"
        if all((fold_dir / f"{n}{suffix}").exists() for n in names for suffix in outputs):
            print(f"fold {k}: predictions already in {fold_dir}")
            timings[k] = json.loads((fold_dir / "run.json").read_text())
            continue
        print(f"fold {k}: dvc repro in {workdir} ...", flush=True)
        timings[k] = run_fold(workdir, profile_for_fold(profile, k, models), fold_dir)
        if args.site_shift:
            started = time.perf_counter()
            site_shift_fold(workdir, names, fold_dir, seed=profile["split"]["seed"])
            timings[k]["site_shift_seconds"] = round(time.perf_counter() - started, 1)
            (fold_dir / "run.json").write_text(json.dumps(timings[k], indent=2) + "\n")
        if external:
            started = time.perf_counter()
            external_fold(workdir, names, fold_dir, external)
            timings[k]["external_seconds"] = round(time.perf_counter() - started, 1)
            (fold_dir / "run.json").write_text(json.dumps(timings[k], indent=2) + "\n")
        print(
            f"fold {k}: {timings[k]['seconds']:.0f} s, ensemble weights {timings[k]['ensemble']['weights']}", flush=True
        )

    index = pd.read_csv(out / "index.csv")
    cohorts = index["cohort"].nunique() > 1 if "cohort" in index else False
    if args.repoint:
        for k in folds:
            for name in names:
                validation = pd.read_csv(out / f"fold{k}" / f"{name}.val.csv")
                path = out / f"fold{k}" / f"{name}.operating_points.json"
                path.write_text(json.dumps(choose_operating_points(validation, index), indent=2) + "\n")
        print(f"operating points of folds {folds} chosen again on their validation predictions with this code")
    e = profile["evaluate"]
    results = {
        "profile": str(args.profile),
        **({"overrides": args.set} if args.set else {}),
        "folds": folds,
        "code_per_fold": {k: t.get("code", "not recorded") for k, t in timings.items()},
        "seconds_per_fold": {k: t["seconds"] for k, t in timings.items()},
        "ensemble_weights_per_fold": {k: t["ensemble"]["weights"] for k, t in timings.items()},
        "per_fold_roc_auc": {},
        "models": {},
        "pooled_at_operating_points": {},
        "validation_pooled": {},
        **({key: {} for key in SHIFTS} if args.site_shift else {}),
        **({"external": {}} if external else {}),
        **({"by_cohort": {}} if cohorts else {}),
        **({"operating_points_chosen_again_with": _code_version()} if args.repoint else {}),
    }
    for name in names:
        tables = {k: pd.read_csv(out / f"fold{k}" / f"{name}.csv") for k in folds}
        points = {k: json.loads((out / f"fold{k}" / f"{name}.operating_points.json").read_text()) for k in folds}
        # summary first: it refuses a patient or slice found in two test folds
        pooled = summary(tables, points, index, n_boot=e["n_bootstrap"], seed=e["seed"])
        results["pooled_at_operating_points"][name] = pooled
        results["per_fold_roc_auc"][name] = pooled["slice_roc_auc_folds"]["per_fold"]
        # what variants are chosen on: every patient's out-of-fold validation prediction, pooled
        validation = {k: pd.read_csv(out / f"fold{k}" / f"{name}.val.csv") for k in folds}
        results["validation_pooled"][name] = summary(
            validation, points, index, n_boot=e["n_bootstrap"], seed=e["seed"], subset="val"
        )
        if cohorts:  # each hospital's patients apart: a cohort trained on is scored on its held-out folds
            results["by_cohort"][name] = {
                subset: cohort_summaries(
                    tables if subset == "test" else validation,
                    points,
                    index,
                    n_boot=e["n_bootstrap"],
                    seed=e["seed"],
                    subset=subset,
                )  # fmt: skip
                for subset in ("test", "val")
            }
        for key in SHIFTS if args.site_shift else ():  # the same folds' models and points, on shifted studies
            shifted = {k: pd.read_csv(out / f"fold{k}" / f"{name}.{key}.csv") for k in folds}
            results[key][name] = summary(shifted, points, index, n_boot=e["n_bootstrap"], seed=e["seed"])
        if external:  # each fold's model on cohorts from elsewhere, which no fold chose anything on
            results["external"][name] = {
                cohort: external_summary(
                    {k: pd.read_csv(out / f"fold{k}" / f"{name}.external-{cohort}.csv") for k in folds},
                    points,
                    n_boot=e["n_bootstrap"],
                    seed=e["seed"],
                )
                for cohort in external
            }
        results["models"][name] = evaluate_predictions(
            pd.concat(tables.values(), ignore_index=True),
            index,
            thresholds=e["thresholds"],
            patient_fractions=e["patient_fractions"],
            n_boot=e["n_bootstrap"],
            seed=e["seed"],
        )
    (out / "crossval.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.publish:
        published = REPO / "docs" / "results" / f"{args.profile.stem}-crossval.json"
        published.parent.mkdir(parents=True, exist_ok=True)
        published.write_text(json.dumps(publishable(results, published, names, args.variant), indent=2) + "\n")
        print(f"published: {published}")
    tested = pd.concat([pd.read_csv(out / f"fold{k}" / f"{names[0]}.csv") for k in folds])
    patients = tested["patient_id"].nunique()
    print(f"\n{len(tested)} test slices of {patients} patients; pooled test predictions of folds {folds}")
    print(f"value (95% patient-bootstrap CI, {e['n_bootstrap']} resamples of those {patients} patients)\n")
    print(markdown(results, e["thresholds"], e["patient_fractions"]))
    print(f"\nwritten: {out / 'crossval.json'}")


if __name__ == "__main__":
    main()

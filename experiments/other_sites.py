"""A trained CT-ICH project scored as other sites would send it: exports of its own test slices,
PHE-SICH (another hospital) and RSNA 2019's slices (many institutions), through ``ich predict``'s code.

For one trained split (a project folder after ``python -m tools.profile profiles/ct-ich-jpg.yaml &&
dvc repro train@<model> train_segmenter@<segmenter>``):

- ``original``: the release's test slices as the pipeline reads them (CT-ICH's brain window, one grey
  image per slice, each patient one study);
- ``exports``: the same slices exported at each setting of :data:`ich.data.exports.NAMED_EXPORTS`
  from their approximate HU (:mod:`ich.data.approximate_hu`), then read as ``ich predict`` reads a
  folder of images (window estimated and harmonised);
- ``phe_sich`` and ``rsna``: every slice of those sets that the project neither trained nor chose on
  (all of them for a CT-ICH-only project; the test-fold patients of a ``combined`` one). RSNA: each
  slice its own one-image study.

Each block gives ``slice_roc_auc`` (patient-bootstrap CI), ``normal_slices_flagged`` (share of normal
slices at or above the shipped slice flag point, ``slice_youden`` chosen on validation),
``sensitivity``/``specificity`` there, and for CT-ICH ``dice`` pooled over the bleeding slices
(every slice's mask, ungated, against the release's masks in the source geometry). Studies whose
window cannot be estimated are scored as sent and marked by ``ich predict`` (counted here:
``slices_scored_as_sent``); studies it refuses are counted too, never dropped silently.

    python experiments/other_sites.py --project ../fold0 --model lite0_paste --segmenter lite0_unet
        [--out docs/results/ct-ich-jpg-other-sites.json --name <entry>]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich import layout  # noqa: E402
from ich.data.approximate_hu import hu_from_windows  # noqa: E402
from ich.data.exports import NAMED_EXPORTS, ExportSetting, render_export  # noqa: E402
from ich.data.source_readers import read_mask_image  # noqa: E402
from ich.metrics import choose_operating_points  # noqa: E402
from ich.metrics.ci import bootstrap_ci  # noqa: E402
from ich.metrics.classification import weighted_ranking_metrics  # noqa: E402
from ich.predict.artefacts import load_artefacts  # noqa: E402
from ich.predict.infer import run_study  # noqa: E402
from ich.predict.inputs import StudyInputError, read_study  # noqa: E402
from ich.predict.pack import pack_networks  # noqa: E402
from ich.predict.seg import source_grid_masks  # noqa: E402
from ich.sources.images import CT_ICH_MASK_SUFFIX  # noqa: E402

DATA = REPO.parent / "shared" / "data"
BRAIN, BONE = (-20.0, 100.0), (-900.0, 2300.0)


def reference_mask(brain_path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The release's mask of a slice, read as ``convert`` reads it (the profile's 5 px median); ``None``
    for a slice without one (no bleed)."""
    path = brain_path.with_name(f"{brain_path.stem}{CT_ICH_MASK_SUFFIX}.jpg")
    return read_mask_image(path, shape, median=5) > 0 if path.is_file() else None


@cache
def approximate_hu(brain_path: Path) -> np.ndarray:
    """A CT-ICH slice's approximate HU from its brain and bone images, read once for every export."""
    brain = cv2.imread(str(brain_path), 0)
    bone_path = brain_path.parent.parent / "bone" / brain_path.name
    bone = cv2.imread(str(bone_path), 0) if bone_path.is_file() else brain  # 084/bone/36.jpg is missing
    return hu_from_windows(brain, bone, BRAIN, BONE)


def score_studies(artefacts, studies: dict[str, list[tuple[Path, np.ndarray]]], workdir: Path, segment: bool):
    """Write each study's images (``(name, grey)``) into a folder, read and score it as ``ich predict``
    does. Rows: study, file, prob, flag threshold, and the mask restored to the source geometry."""
    rows, refused = [], []
    for study_name, images in studies.items():
        folder = workdir / study_name
        folder.mkdir(parents=True, exist_ok=True)
        for k, (_, grey) in enumerate(images):
            cv2.imwrite(str(folder / f"{k:04d}.png"), grey)
        try:
            study = read_study(folder, artefacts.convert, artefacts.training["slice_thickness_mm"])
        except StudyInputError as error:
            refused.append({"study": study_name, "slices": len(images), "reason": str(error).split(": ", 1)[1][:160]})
            continue
        result = run_study(study, artefacts, max_cams=0, outline="every_slice")
        by_file = {Path(s.source_path).name: i for i, s in enumerate(study.slices)}
        on_source = source_grid_masks(study, result.masks) if segment and result.masks is not None else None
        for k, (source, _) in enumerate(images):
            i = by_file.get(f"{k:04d}.png")
            if i is None:
                continue
            mask = on_source[i] if on_source is not None else None
            rows.append(
                {
                    "study": study_name,
                    "source": str(source),
                    "prob": float(result.slice_probs[i]),
                    "flag": float(result.flag_threshold),
                    "mask": mask,
                    "window_estimated": study.window_estimate is not None,
                    "unlike_training": bool(result.unfamiliar),
                }
            )
    return rows, refused


def _roc_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return weighted_ranking_metrics(y, p, weights)["roc_auc"]


def block(rows: list[dict], labels: dict[str, int], refused: list[dict], seed: int, references=None) -> dict:
    """The figures of one scored set; refused studies' slices count as not flagged (sent back unread)."""
    table = pd.DataFrame(rows)
    table["label"] = table["source"].map(labels)
    y, p = table["label"].to_numpy(), table["prob"].to_numpy()
    flagged = p >= table["flag"].to_numpy()
    auc, lo, hi = (
        float(v) for v in bootstrap_ci(_roc_auc, y, p, groups=table["study"].to_numpy(), n_boot=1000, seed=seed)
    )
    out = {
        "slices": int(len(table)),
        "bleeding": int(y.sum()),
        "slice_roc_auc": round(auc, 4),
        "slice_roc_auc_ci": [round(lo, 4), round(hi, 4)],
        "flag_point": round(float(table["flag"].iloc[0]), 4),
        "sensitivity": round(float(flagged[y == 1].mean()), 4),
        "specificity": round(float(1 - flagged[y == 0].mean()), 4),
        "normal_slices_flagged": round(float(flagged[y == 0].mean()), 4),
        "normal_score_percentiles_10_50_90": [round(float(v), 3) for v in np.percentile(p[y == 0], [10, 50, 90])],
        "bleeding_score_percentiles_10_50_90": [round(float(v), 3) for v in np.percentile(p[y == 1], [10, 50, 90])],
        "slices_scored_as_sent": int((~table["window_estimated"]).sum()),
        "studies_marked_unlike_training": int(table.groupby("study")["unlike_training"].first().sum()),
        "studies": int(table["study"].nunique()),
        "refused_studies": len(refused),
        "refused_slices": int(sum(r["slices"] for r in refused)),
        "refused_reasons": sorted({r["reason"] for r in refused})[:3],
    }
    if references is not None:
        inter = total = 0
        for row in rows:
            if row["mask"] is None:
                continue
            ref = references.get(row["source"])  # None: a slice without bleed
            total += int(row["mask"].sum()) + (int(ref.sum()) if ref is not None else 0)
            inter += int((row["mask"] & ref).sum()) if ref is not None else 0
        out["dice"] = round(2 * inter / total, 4) if total else None
    return out


def seen_sources(project: Path) -> set[str]:
    """Source files of the project's training and validation patients: what its models learned from or
    chose on (a ``combined`` source trains on PHE-SICH and RSNA too; their test-fold patients stay unseen)."""
    index = pd.read_csv(project / layout.INDEX)
    split = pd.read_csv(project / layout.SPLIT)
    seen = index.merge(split[["patient_id", "set"]], on="patient_id")
    return {str(Path(p).resolve()) for p in seen.loc[seen["set"] != "test", "source_path"]}


def unseen(labels: pd.DataFrame, root: Path, seen: set[str]) -> pd.DataFrame:
    """The rows of a generic ``labels.csv`` whose patient has no image among ``seen`` (a patient's
    slices that ``convert`` quarantined, blank ones, go with the patient)."""
    seen_patients = {
        p for p, f in zip(labels["patient_id"], labels["image"], strict=True) if str((root / f).resolve()) in seen
    }
    return labels[~labels["patient_id"].isin(seen_patients)]


def ct_ich_test(project: Path) -> pd.DataFrame:
    """The test slices of the project's split, with their release files."""
    index = pd.read_csv(project / layout.INDEX)
    split = pd.read_csv(project / layout.SPLIT)
    table = index.merge(split[["patient_id", "set"]], on="patient_id")
    return table[table["set"] == "test"].sort_values(["study_id", "slice_order"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--model", default="lite0_paste")
    parser.add_argument("--segmenter", default="lite0_unet", help="'' : classification only (no dice)")
    parser.add_argument(
        "--rechoose-points",
        action="store_true",
        help="choose the operating points again from the model's validation predictions with this checkout's "
        "code (e.g. site-balanced points for a model trained before them)",
    )
    parser.add_argument("--settings", default=",".join(NAMED_EXPORTS), help="comma-separated export names")
    parser.add_argument("--sets", default="original,exports,phe_sich,rsna")
    parser.add_argument("--out", default="")
    parser.add_argument("--name", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    project = Path(args.project).resolve()
    segmenter = args.segmenter or None
    with tempfile.TemporaryDirectory() as tmp:  # the trained networks as ich predict reads them
        artefacts = load_artefacts(
            bundle=pack_networks(project, Path(tmp), [args.model], segmenter), segmenter=segmenter
        )
    if args.rechoose_points:
        predictions = pd.read_csv(project / layout.MODELS / args.model / "predictions.csv")
        points = choose_operating_points(predictions, pd.read_csv(project / layout.INDEX))
        artefacts = dataclasses.replace(artefacts, operating_points=points)
    classify_only = dataclasses.replace(artefacts, segmenter=None)
    sets = args.sets.split(",")
    seen = seen_sources(project)
    test = ct_ich_test(project)
    if "cohort" in test:
        test = test[test["cohort"].isin(["ct_ich", "ct-ich-jpg"])]
    sources = [Path(p) for p in test["source_path"]]
    labels = {str(p): int(a) for p, a in zip(sources, test["any"], strict=True)}
    references = {str(p): reference_mask(p, cv2.imread(str(p), 0).shape) for p in sources}
    result: dict = {
        "model": args.model,
        "segmenter": args.segmenter or None,
        "project_split_test_fold": int(test["fold"].iloc[0]) if "fold" in test else None,
    }
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        by_study = {sid: [Path(p) for p in rows["source_path"]] for sid, rows in test.groupby("study_id", sort=True)}

        def ct_ich_studies(render) -> dict:
            return {sid: [(p, render(p)) for p in paths] for sid, paths in by_study.items()}

        if "original" in sets:
            rows, refused = score_studies(
                artefacts, ct_ich_studies(lambda p: cv2.imread(str(p), 0)), tmp / "orig", True
            )
            result["original"] = block(rows, labels, refused, args.seed, references)
            print("original", result["original"], flush=True)
        if "exports" in sets:
            result["exports"] = {}
            for k, name in enumerate(args.settings.split(",")):
                setting: ExportSetting = NAMED_EXPORTS[name]
                rng = np.random.default_rng([args.seed, k])

                def export(p: Path, setting=setting, rng=rng) -> np.ndarray:
                    return render_export(approximate_hu(p), setting, rng)

                rows, refused = score_studies(artefacts, ct_ich_studies(export), tmp / name, True)
                result["exports"][name] = {
                    "setting": dataclasses.asdict(setting),
                    **block(rows, labels, refused, args.seed, references),
                }
                print(name, result["exports"][name], flush=True)
        if "phe_sich" in sets:
            root = DATA / "phe-sich-ct"
            table = unseen(pd.read_csv(root / "labels.csv").sort_values(["patient_id", "z"]), root, seen)
            studies = {
                str(pid): [(root / f, cv2.imread(str(root / f), 0)) for f in rows["image"]]
                for pid, rows in table.groupby("patient_id")
            }
            phe_labels = {str(root / f): int(a) for f, a in zip(table["image"], table["any"], strict=True)}
            rows, refused = score_studies(classify_only, studies, tmp / "phe", False)
            result["phe_sich"] = block(rows, phe_labels, refused, args.seed)
            print("phe_sich", result["phe_sich"], flush=True)
        if "rsna" in sets:
            root = DATA / "rsna-ich-png"
            table = unseen(pd.read_csv(root / "labels.csv"), root, seen)
            studies = {f"s{k:05d}": [(root / f, cv2.imread(str(root / f), 0))] for k, f in enumerate(table["image"])}
            rsna_labels = {str(root / f): int(a) for f, a in zip(table["image"], table["any"], strict=True)}
            rows, refused = score_studies(classify_only, studies, tmp / "rsna", False)
            result["rsna"] = block(rows, rsna_labels, refused, args.seed)
            print("rsna", result["rsna"], flush=True)
    result["seconds"] = round(time.time() - started)
    if args.out:
        out = Path(args.out)
        record = json.loads(out.read_text()) if out.is_file() else {}
        record[args.name or args.model] = result
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out} [{args.name or args.model}]")


if __name__ == "__main__":
    main()

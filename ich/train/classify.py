"""Train one classifier of the zoo on the split and predict its validation and test slices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

from ich.data.datasets import SliceDataset, StudyDataset
from ich.data.sampling import balance
from ich.data.transforms import BatchPreparation, Rewindow
from ich.io.digest import digest_values
from ich.labels import LABELS
from ich.models import MAP_MODELS, STUDY_MODELS, build
from ich.params import check_known_keys
from ich.train.bleedmap import MapLoss, MapSupervision
from ich.train.loop import FitResult, TrainConfig, default_device, fit, seed_everything
from ich.train.study import StudyLoss, predict_studies


@dataclass(frozen=True)
class ClassifierSpec:
    """Which network and how it sees the data (one ``train.<model>`` params section)."""

    arch: str
    input_size: int = 128
    outputs: str = "any"  # any | all (any + five subtypes, the multi-label variant)
    grey: bool = False  # single brain-window channel (the thesis CNN)
    pretrained: str = "none"
    augment: bool = True
    cache_images: bool = True  # decoded slices kept in RAM (turn off for RSNA-scale data)
    context: int = 0  # neighbouring slices on each side stacked as channels (ich.data.context)
    window_dropout: float = 0.0  # training images shown as brain window only (ich.data.transforms)
    intensity: float = 0.0  # random gamma, contrast and brightness when training (ich.data.transforms)
    rewindow: dict[str, Any] | None = None  # training images re-windowed (ich.data.transforms.Rewindow keys)
    paste: float = 0.0  # share of normal training slices given a real bleed (ich.data.bleed_paste); map models
    map_weight: float = 1.0  # weight of the bleed-map loss beside the slice loss (ich.train.bleedmap); map models
    options: dict[str, Any] = field(default_factory=dict)  # architecture keywords (e.g. batch_norm)

    def __post_init__(self) -> None:
        if (self.rewindow or self.paste) and not self.augment:
            raise ValueError("rewindow and paste are augmentations: they need augment: true")
        if self.paste and not self.uses_masks:
            raise ValueError(f"paste labels the pasted bleed's mask: it needs a bleed-map model {sorted(MAP_MODELS)}")
        if self.paste and self.per_study:
            raise ValueError("paste works on single slices, not on whole studies")
        if self.window_dropout and not self.augment:
            raise ValueError("window_dropout is an augmentation: it needs augment: true")
        if self.window_dropout and self.grey:
            raise ValueError("window_dropout needs the three windows; a grey model has one")
        if self.intensity and not self.augment:
            raise ValueError("intensity is an augmentation: it needs augment: true")

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Targets in output order."""
        if self.outputs == "any":
            return ("any",)
        if self.outputs == "all":
            return LABELS
        raise ValueError(f"outputs must be 'any' or 'all', got {self.outputs!r}")

    @property
    def slice_channels(self) -> int:
        """Channels of one slice: its windows, or the brain window alone."""
        return 1 if self.grey else 3

    @property
    def per_study(self) -> bool:
        """Whether the network reads whole studies (:data:`ich.models.STUDY_MODELS`) rather than slices."""
        return self.arch in STUDY_MODELS

    @property
    def uses_masks(self) -> bool:
        """Whether the network learns from the bleed masks too (:data:`ich.models.MAP_MODELS`)."""
        return self.arch in MAP_MODELS

    @property
    def stack(self) -> int:
        """Slices per input: the slice and ``context`` neighbours on each side."""
        return 2 * self.context + 1

    def preparation(self, augment: bool, training: bool = False) -> BatchPreparation:
        """The batch preparation this network's inputs get (augmentation only if ``augment``);
        ``training``: of the training inputs, which carry the mask for a map model."""
        return BatchPreparation(
            self.slice_channels,
            augment=augment,
            slices=self.stack,
            window_dropout=self.window_dropout,
            intensity=self.intensity,
            rewindow=Rewindow(**{k: tuple(v) for k, v in self.rewindow.items()}) if self.rewindow else None,
            masks=training and self.uses_masks,
        )

    def dataset(self, table: pd.DataFrame, root: str | Path, training: bool = False) -> SliceDataset | StudyDataset:
        """The rows of ``table`` as this network sees them: slices, or whole studies for a study model.

        ``training``: the training set, whose items carry the mask (and pasted bleeds) for a map model.
        """
        masks = training and self.uses_masks
        slices = SliceDataset(
            table,
            root,
            input_size=self.input_size,
            label_columns=self.label_columns,
            grey=self.grey,
            cache=self.cache_images,
            context=self.context,
            masks=masks,
            paste=self.paste if masks else 0.0,
        )
        return StudyDataset(slices, table) if self.per_study else slices


def parse_section(name: str, section: dict) -> tuple[ClassifierSpec, TrainConfig]:
    """Split a ``train.<name>`` params section into the network spec and the optimisation config."""
    check_known_keys(section, ClassifierSpec, TrainConfig, where=f"train.{name}")
    spec_keys, config_keys = {f.name for f in fields(ClassifierSpec)}, {f.name for f in fields(TrainConfig)}
    return (
        ClassifierSpec(**{k: v for k, v in section.items() if k in spec_keys}),
        TrainConfig(**{k: v for k, v in section.items() if k in config_keys}),
    )


def build_classifier(spec: ClassifierSpec, weights: str | Path | None = None) -> nn.Module:
    """The network of ``spec``; with ``weights``, the trained state dict loaded safely."""
    return build(
        spec.arch,
        in_channels=spec.slice_channels * spec.stack,
        num_outputs=len(spec.label_columns),
        input_size=spec.input_size,
        pretrained=str(weights) if weights is not None else spec.pretrained,
        **spec.options,
    )


@torch.no_grad()
def predict_probs(model: nn.Module, loader: DataLoader, device: torch.device, prepare: nn.Module) -> np.ndarray:
    """Sigmoid probabilities ``(N, outputs)`` in loader order (``prepare`` without augmentation)."""
    model.eval()
    prepare = prepare.to(device).eval()
    chunks = [torch.sigmoid(model(prepare(x.to(device))).float()).cpu() for x, _ in loader]
    return torch.cat(chunks).numpy()


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def train_classifier(
    index: pd.DataFrame,
    split: pd.DataFrame,
    image_root: str | Path,
    spec: ClassifierSpec,
    config: TrainConfig,
    *,
    balance_policy: str = "none",
    balance_ratio: float = 1.0,
    checkpoint: Path | None = None,
    inputs_digest: str = "",
) -> tuple[nn.Module, FitResult, pd.DataFrame]:
    """Train ``spec`` on the training patients, select the epoch on validation, predict val and test.

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
    eval_prepare = spec.preparation(augment=False)

    def predict(m: nn.Module, data: SliceDataset | StudyDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """Slice probabilities, and for a study model the study probability of each slice."""
        if isinstance(data, StudyDataset):
            return predict_studies(m, data, device, eval_prepare)
        loader = DataLoader(data, batch_size=config.batch_size, num_workers=config.num_workers)
        return predict_probs(m, loader, device, eval_prepare), None

    train_set = spec.dataset(parts["train"], image_root, training=True)
    labels = train_set.labels() if isinstance(train_set, StudyDataset) else parts["train"]["any"].to_numpy()
    plan = balance(labels, balance_policy, ratio=balance_ratio, seed=config.seed)

    model = build_classifier(spec)
    pos_weight = torch.full((len(columns),), plan.pos_weight).to(device) if plan.pos_weight else None
    if spec.per_study:
        loss_fn: nn.Module = StudyLoss(pos_weight)
    elif spec.uses_masks:
        loss_fn = MapLoss(pos_weight, map_weight=spec.map_weight)
    else:
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    # a map model trains through a view that splits the mask channel off its inputs
    trained = MapSupervision(model) if spec.uses_masks else model
    val_set = spec.dataset(parts["val"], image_root)
    val_targets = parts["val"]["any"].to_numpy(dtype=float)

    def validate(m: nn.Module) -> tuple[float, float]:
        probs, _ = predict(m.network if isinstance(m, MapSupervision) else m, val_set)
        targets = torch.from_numpy(np.array(parts["val"][list(columns)].astype(float).fillna(0), dtype=np.float32))
        logits = torch.logit(torch.as_tensor(probs).clamp(1e-6, 1 - 1e-6))
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, targets))
        return loss, _auc(val_targets, probs[:, 0])

    stamp = digest_values(
        asdict(spec),
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
        fingerprint=stamp,
        device=device,
        prepare=spec.preparation(augment=spec.augment, training=True),
    )
    rows = []
    for name in ("val", "test"):
        if parts[name].empty:
            continue
        probs, study_probs = predict(model, val_set if name == "val" else spec.dataset(parts[name], image_root))
        frame = parts[name][["slice_id", "patient_id", "set", "fold"]].copy()
        for j, label in enumerate(columns):
            frame[f"prob_{label}"] = probs[:, j]
        if study_probs is not None:
            frame["prob_study"] = study_probs
        rows.append(frame)
    return model, result, pd.concat(rows, ignore_index=True)

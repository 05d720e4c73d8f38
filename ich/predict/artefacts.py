"""The trained pipeline ``ich predict`` runs: networks, operating points, segmenter, and their versions.

Everything comes from a bundle (:mod:`ich.predict.bundle`): a project's ``data/bundle``, which the
``bundle`` stage packs after the networks are trained, or a bundle folder handed over on its own.
:func:`load_artefacts` reads its manifest and the networks it names, each file checked against its
md5, and nothing else: no ``params.yaml``, ``dvc.lock`` entry of another stage or training image.
The versions reported are the ``dvc.lock`` md5s the packed folders had in the project that
trained them. :attr:`Artefacts.training` says where the networks come from (the training cohort's
source, whether it is synthetic, its patients and slices per set), so that every report can say
what its models know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ich import layout
from ich.data.cohort_conversion import ConvertConfig
from ich.data.transforms import BatchPreparation
from ich.networks import default_device
from ich.networks.classifier import ClassifierSpec, build_classifier, read_network_spec
from ich.networks.segmenter import build_unet, read_segmenter_spec, unet_predictor
from ich.predict.bundle import DEFAULT, Bundle, open_bundle
from ich.predict.names import ENSEMBLE
from ich.predict.provenance import bundle_conversion
from ich.segmentation import PostProcess, read_post_process


def decider_dir(model: str) -> str:
    """Where the deciding model's predictions and operating points are, relative to the project."""
    return (layout.ENSEMBLE if model == ENSEMBLE else layout.MODELS / model).as_posix()


@dataclass(frozen=True)
class Classifier:
    """A trained classifier ready for inference."""

    name: str
    spec: ClassifierSpec
    model: nn.Module
    prepare: BatchPreparation


@dataclass(frozen=True)
class Segmenter:
    """The trained U-Net (as a slice -> probability map predictor) and the post-processing its maps get."""

    name: str
    predict: Callable[[np.ndarray], np.ndarray]
    post: PostProcess
    brain_window_only: bool = False  # reads the brain window alone (ich.networks.segmenter.segmenter_view)


@dataclass(frozen=True)
class Artefacts:
    """What one prediction needs; :func:`load_artefacts` builds it once for many studies."""

    bundle_md5: str  # its manifest's md5: the bundle's identity
    convert: ConvertConfig  # how a study is rendered: the convert stage's, windowed as the training slices were
    decider: str  # a model name or "ensemble"
    weights: dict[str, float]  # deciding members and their weights (one model: weight 1)
    classifiers: dict[str, Classifier]  # the deciding members, and the subtype model if another
    operating_points: dict[str, Any]  # of the decider, chosen on validation
    subtype_model: str | None  # a multi-label (subtypes: true) model, for per-subtype probabilities
    segmenter: Segmenter | None
    versions: dict[str, str]  # artefact folder -> dvc.lock md5
    device: torch.device
    training: dict[str, Any]  # the training cohort (:func:`training_cohort`)
    windows_note: str  # how a study with HU is windowed for these networks, and why (:func:`study_conversion`)
    reference: dict[str, list[float]]  # what the training studies look like (:mod:`ich.predict.familiarity`)

    @property
    def reads_brain_window_only(self) -> bool:
        """Whether every network here reads the brain window alone (the channel policy): then a study's
        other channels, or their absence, change nothing the networks see."""
        segmenter = self.segmenter is None or self.segmenter.brain_window_only
        return segmenter and all(c.spec.brain_window_only for c in self.classifiers.values())

    @property
    def cam_model(self) -> str | None:
        """Whose Grad-CAM is shown: the decider, or the ensemble member with the largest weight;
        slice models only (a study model's logit depends on every slice at once)."""
        slice_models = [m for m in self.weights if not self.classifiers[m].spec.per_study]
        return max(slice_models, key=lambda m: (self.weights[m], m)) if slice_models else None


def _classifier(bundle: Bundle, name: str, device: torch.device) -> Classifier:
    folder = bundle.folder(bundle.manifest["classifiers"][name]["folder"])
    spec = read_network_spec(folder)
    model = build_classifier(spec, folder / "model.pt").to(device).eval()
    return Classifier(name, spec, model, spec.preparation().to(device).eval())


def _segmenter(bundle: Bundle, name: str, device: torch.device) -> Segmenter:
    folder = bundle.folder(bundle.manifest["segmenters"][name]["folder"])
    spec = read_segmenter_spec(folder)
    net = build_unet(spec, folder / "model.pt")
    return Segmenter(
        name, unet_predictor(net.to(device).eval(), spec), read_post_process(folder), spec.brain_window_only
    )


def load_artefacts(
    project: str | Path = ".",
    *,
    bundle: str | Path | Bundle | None = None,
    model: str = DEFAULT,
    segmenter: str | None = DEFAULT,
    subtypes: bool = True,
    device: torch.device | None = None,
) -> Artefacts:
    """Load the trained pipeline of the bundle ``bundle``, or of ``project``'s ``data/bundle``
    (checked against ``dvc.lock``); ``model`` decides (a trained model or ``ensemble``).

    ``model`` and ``segmenter`` :data:`~ich.predict.bundle.DEFAULT`: the bundle's defaults; ``segmenter=None``:
    no bleed masks or volume. ``subtypes=False`` leaves out a multi-label model that does not decide (no subtype
    probabilities).
    """
    opened = open_bundle(project, bundle)
    manifest = opened.manifest
    model, segmenter = opened.check_choices(model, segmenter)
    device = device or default_device()
    decider = manifest["deciders"][model]
    weights = {m: float(w) for m, w in decider["members"].items()}
    multi_label = [m for m, c in manifest["classifiers"].items() if c["subtypes"]]
    subtype_model = next((m for m in weights if m in multi_label), multi_label[0] if multi_label and subtypes else None)
    names = sorted({*weights, *([subtype_model] if subtype_model else [])})
    folders = [layout.MODELS / name for name in names]
    if model == ENSEMBLE:
        folders.insert(0, layout.ENSEMBLE)
    if segmenter is not None:
        folders.append(layout.SEGMENTERS / segmenter)
    convert, windows_note = bundle_conversion(manifest)
    return Artefacts(
        bundle_md5=opened.md5,
        convert=convert,
        decider=model,
        weights=weights,
        classifiers={name: _classifier(opened, name, device) for name in names},
        operating_points=decider["operating_points"],
        subtype_model=subtype_model,
        segmenter=None if segmenter is None else _segmenter(opened, segmenter, device),
        versions={folder.as_posix(): manifest["versions"][folder.as_posix()] for folder in folders},
        device=device,
        training=manifest["training"],
        windows_note=windows_note,
        reference=manifest["familiarity_reference"],
    )


__all__ = ["Artefacts", "Classifier", "Segmenter", "decider_dir", "load_artefacts"]

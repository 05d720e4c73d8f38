"""The trained pipeline ``ich predict`` runs: networks, operating points, segmenter, and their versions.

Everything comes from a project that ``dvc repro`` has run: ``params.yaml`` says how each network
sees its input, ``data/models``, ``data/ensemble`` and ``data/segmenters`` hold what was trained,
and ``dvc.lock`` records which parameters and which outputs belong together. A prediction must
not mix them up, so loading refuses (:class:`StaleArtefactError`) when

- ``dvc.lock`` has no entry for a stage it needs (the pipeline never ran that far),
- a section of ``params.yaml`` differs from the one the stage ran with (edited since), or
- an artefact folder's content is not what ``dvc.lock`` records (changed or half-written).

The versions reported are the ``dvc.lock`` md5s of the artefact folders, which the check has
just recomputed from the files. :attr:`Artefacts.training` says where the networks come from
(the training cohort's source, whether it is synthetic, its patients and slices per set), so that
every report can say what its models know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from ich import layout
from ich.data.cohort_conversion import ConvertConfig
from ich.data.transforms import BatchPreparation
from ich.io.digest import dvc_md5
from ich.networks import default_device
from ich.networks.classifier import ClassifierSpec, build_classifier, read_network_spec
from ich.networks.segmenter import NETWORK_METHODS, build_unet, read_segmenter_spec, unet_predictor
from ich.params import SAFE_LOADER, read_params_file, with_train_defaults
from ich.predict.familiarity import training_reference
from ich.predict.names import ENSEMBLE
from ich.predict.provenance import check_choices, study_conversion, training_cohort
from ich.segmentation import PostProcess, read_post_process


def decider_dir(model: str) -> str:
    """Where the deciding model's predictions and operating points are, relative to the project."""
    return (layout.ENSEMBLE if model == ENSEMBLE else layout.MODELS / model).as_posix()


class StaleArtefactError(RuntimeError):
    """The trained artefacts do not match ``params.yaml``/``dvc.lock``; the message says what to run."""


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

    project: Path
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


class _Lock:
    """The parts of ``dvc.lock`` and ``params.yaml`` the check compares."""

    def __init__(self, project: Path, params: dict[str, Any]) -> None:
        lock_path = project / "dvc.lock"
        if not lock_path.is_file():
            raise StaleArtefactError(f"{project}: no dvc.lock, the pipeline has not run; run `make repro` first")
        self.project, self.params = project, params
        self.stages = yaml.load(lock_path.read_text(), Loader=SAFE_LOADER)["stages"]

    def _current(self, dotted: str) -> Any:
        node: Any = self.params
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def check(self, stage: str, out: Path | None) -> str:
        """Verify stage ``stage`` ran with today's params and ``out`` is what it wrote; its md5
        (``out=None``: the params only, for ``convert``, whose outputs a prediction does not read)."""
        entry = self.stages.get(stage)
        if entry is None:
            raise StaleArtefactError(f"dvc.lock has no stage {stage!r}: run `dvc repro` first")
        for key, value in entry.get("params", {}).get("params.yaml", {}).items():
            if self._current(key) != value:
                raise StaleArtefactError(
                    f"params.yaml {key} changed since stage {stage!r} ran (dvc.lock has {value!r}, params.yaml "
                    f"{self._current(key)!r}): run `dvc repro` first"
                )
        if out is None:
            return ""
        recorded = next((o["md5"] for o in entry.get("outs", []) if o["path"] == out.as_posix()), None)
        if recorded is None:
            raise StaleArtefactError(f"dvc.lock stage {stage!r} has no output {out}")
        path = self.project / out
        if not path.exists():
            raise StaleArtefactError(f"{path} is missing: run `dvc checkout` or `dvc repro`")
        actual = dvc_md5(path)
        if actual != recorded:
            raise StaleArtefactError(
                f"{path} is not what dvc.lock records (md5 {actual}, dvc.lock {recorded}): run `dvc repro`"
            )
        return recorded


def _classifier(project: Path, params: dict[str, Any], name: str, device: torch.device) -> Classifier:
    if name not in params.get("train", {}):
        raise ValueError(f"model {name!r} is not in params.yaml train; trained models: {sorted(params['train'])}")
    folder = project / layout.MODELS / name
    spec = read_network_spec(folder)
    model = build_classifier(spec, folder / "model.pt").to(device).eval()
    return Classifier(name, spec, model, spec.preparation().to(device).eval())


def load_artefacts(
    project: str | Path = ".",
    *,
    model: str = ENSEMBLE,
    segmenter: str | None = "unet",
    subtypes: bool = True,
    device: torch.device | None = None,
) -> Artefacts:
    """Load and check the trained pipeline of ``project``; ``model`` decides (a trained model or ``ensemble``).

    ``segmenter`` names a network section (``method: unet`` or ``lite0_unet``) of ``segment`` (``None``: no bleed masks or volume);
    ``subtypes=False`` leaves out a multi-label model that does not decide (no subtype probabilities).
    """
    project = Path(project)
    device = device or default_device()
    written = read_params_file(project / "params.yaml")
    params = with_train_defaults(written)
    lock = _Lock(project, written)
    lock.check("convert", None)  # the conversion a study gets is the one the networks were trained on
    versions = {}
    check_choices(params, model, segmenter)
    trained = list(params["models"])
    folder = project / decider_dir(model)
    if model == ENSEMBLE:
        versions[layout.ENSEMBLE.as_posix()] = lock.check("ensemble", layout.ENSEMBLE)
        weights = {m: float(w) for m, w in json.loads((folder / "weights.json").read_text()).items() if w > 0}
    else:
        weights = {model: 1.0}
    points = json.loads((folder / "operating_points.json").read_text())
    multi_label = [m for m in trained if params["train"][m].get("subtypes", False)]
    subtype_model = next((m for m in weights if m in multi_label), multi_label[0] if multi_label and subtypes else None)
    classifiers = {}
    for name in sorted({*weights, *([subtype_model] if subtype_model else [])}):
        out = layout.MODELS / name
        versions[out.as_posix()] = lock.check(f"train@{name}", out)
        classifiers[name] = _classifier(project, params, name, device)
    unet = None
    if segmenter is not None:
        section = params["segment"].get(segmenter)
        if section is None or section.get("method") not in NETWORK_METHODS:
            raise ValueError(
                f"segmenter {segmenter!r} is not a network section (method: {' or '.join(NETWORK_METHODS)}) "
                "of params.yaml segment"
            )
        out = layout.SEGMENTERS / segmenter
        versions[out.as_posix()] = lock.check(f"train_segmenter@{segmenter}", out)
        spec = read_segmenter_spec(project / layout.SEGMENTERS / segmenter)
        net = build_unet(spec, project / layout.SEGMENTERS / segmenter / "model.pt")
        post = read_post_process(project / layout.SEGMENTERS / segmenter)
        unet = Segmenter(segmenter, unet_predictor(net.to(device).eval(), spec), post, spec.brain_window_only)
    training = {**training_cohort(project), "split_md5": lock.check("split", layout.SPLIT_DIR)}
    convert, windows_note = study_conversion(ConvertConfig.from_params(params["convert"]), training)
    return Artefacts(
        project=project,
        convert=convert,
        decider=model,
        weights=weights,
        classifiers=classifiers,
        operating_points=points,
        subtype_model=subtype_model,
        segmenter=unet,
        versions=versions,
        device=device,
        training=training,
        windows_note=windows_note,
        reference=training_reference(
            project / layout.CONVERTED,
            pd.read_csv(project / layout.INDEX),
            pd.read_csv(project / layout.SPLIT),
        ),
    )

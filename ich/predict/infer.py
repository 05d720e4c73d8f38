"""Run the trained pipeline over one study: slice and study probabilities, Grad-CAM, bleed masks.

The deciding model is one classifier or the weighted ensemble (:class:`~ich.predict.artefacts.Artefacts`).
Its operating points were chosen on the validation set (:mod:`ich.metrics.operating_points`):

- the **study** is positive when its score reaches the ``patient_youden`` threshold; the score
  is the one ``evaluate`` uses, chosen on validation: the maximum slice probability, the mean of
  the three highest, or a study model's own study probability when that model decides alone;
- a **slice** is flagged when its probability reaches the ``flag_point`` slice threshold
  (``slice_youden`` by default, or ``slice_sensitivity``, the screening point) *and* the study is
  positive: one story per report. In a negative study such slices are "above the slice
  threshold, below the study decision", never "flagged".

The study probability is also shown calibrated by the validation Platt scaling, so that 0.8
means about 80% across models; decisions use the raw scores the thresholds were chosen on.
Slices go through the networks in batches; every slice is segmented, but by default only the
slices at or above the slice threshold keep their mask (``outline="above_threshold"``): with its
map threshold chosen on validation, the CT-ICH segmenter marks specks on 28% of the normal
slices, and a volume that summed them would grow with the number of normal slices. The volume
over every slice's mask is reported beside it. Grad-CAM is computed for the slices shown: the
most suspicious ones, highest first.
A thin series reformatted into slabs (:attr:`ich.predict.inputs.Study.slabs`) is classified,
explained and segmented slab by slab; each slab's probability and mask then apply to its source
slices, the study score pools the slabs, and a slab is shown through its middle slice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from ich.data.context import neighbour_rows
from ich.data.datasets import network_image
from ich.ensemble import weighted_average
from ich.labels import SUBTYPES
from ich.metrics.calibration import calibrate
from ich.metrics.operating_points import STUDY_PROBABILITY, pool_slice_probabilities
from ich.metrics.segmentation import voxel_volume_ml
from ich.models.sequence import split_study_output
from ich.networks.classifier import predict_probs
from ich.predict.artefacts import Artefacts, Classifier
from ich.predict.familiarity import study_statistics, unfamiliar
from ich.predict.inputs import Study
from ich.predict.names import FLAG_POINTS, OUTLINES


@dataclass
class StudyResult:
    """What the pipeline found in one study (arrays follow ``study.slices``)."""

    slice_probs: np.ndarray  # (N,) deciding model's "any" probability
    subtype_probs: dict[str, np.ndarray]  # per subtype (N,), from the multi-label model; {} without one
    study_score: float  # slice probabilities pooled as validation chose, or a study model's own probability
    study_probability: float  # the score calibrated by the validation Platt scaling
    positive: bool
    threshold: float  # the patient threshold the decision used
    flag_threshold: float
    above_threshold: list[int]  # slice positions at or above the flag threshold, highest probability first
    flagged: list[int]  # ``above_threshold`` when the study is positive, else none
    shown: list[int]  # the most suspicious slices, highest probability first (the report's panels)
    cams: dict[int, np.ndarray]  # Grad-CAM (H, W) in [0, 1] per shown slice
    masks: np.ndarray | None  # (N, size, size) uint8 0/1 bleed masks of the outlined slices; None without a segmenter
    volume_ml: float | None  # of ``masks``; None without a segmenter or without spacing
    volume_note: str
    outline: str  # which slices keep their mask (:data:`ich.predict.names.OUTLINES`)
    volume_every_slice_ml: float | None  # the segmenter's masks on every slice, whatever ``outline`` kept
    statistics: dict[str, float]  # the study's image statistics (:mod:`ich.predict.familiarity`)
    unfamiliar: list[str]  # how it lies far outside the training studies; empty when it does not
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (not reproducible: not in reports)


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[step]``."""
    start = time.perf_counter()
    yield
    timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def network_inputs(study: Study, classifier: Classifier) -> torch.Tensor:
    """The uint8 inputs ``(N, C, H, W)`` of ``classifier`` for every network image (slice or slab),
    neighbours stacked as in training."""
    spec = classifier.spec
    images = np.stack([network_image(image, spec.input_size, spec.brain_window_only) for image in study.network_images])
    per_slice = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    if spec.per_study:
        return per_slice[None]  # one study (1, T, C, H, W)
    if spec.context == 0:
        return per_slice
    table = pd.DataFrame({"study_id": "study", "slice_order": np.arange(len(images))})
    stacks = torch.from_numpy(neighbour_rows(table, spec.context))
    return per_slice[stacks].flatten(1, 2)


def _probabilities(
    classifier: Classifier, inputs: torch.Tensor, device: torch.device, batch: int = 64
) -> tuple[np.ndarray, float | None]:
    """Slice probabilities ``(N, outputs)``, and a study model's own study probability ("any")."""
    loader = DataLoader(TensorDataset(inputs, torch.zeros(len(inputs))), batch_size=batch)
    probs = predict_probs(classifier.model, loader, device, classifier.prepare)
    if classifier.spec.per_study:
        slices, study = split_study_output(probs[0])
        return slices, float(study[0])
    return probs, None


def _segment(study: Study, artefacts: Artefacts) -> np.ndarray:
    """Bleed masks of the network images (slices or slabs)."""
    seg = artefacts.segmenter
    return np.stack([seg.post.mask(seg.predict(image)) for image in study.network_images]).astype(np.uint8)


def _representative(study: Study, k: int) -> int:
    """The slice that stands for network image ``k``: itself, or its slab's middle slice."""
    return study.slabs[k].members[len(study.slabs[k].members) // 2] if study.slabs else k


def _volume(study: Study, masks: np.ndarray) -> tuple[float | None, str]:
    if not study.has_hu:
        return None, "no volume: pre-windowed images carry no pixel or slice spacing"
    spacing = study.slice_spacing_mm
    rows = np.array([s.spacing_row_mm for s in study.slices])
    cols = np.array([s.spacing_col_mm for s in study.slices])
    if not np.isfinite(spacing) or not np.all(np.isfinite(rows * cols)):
        return None, "no volume: the study lacks pixel spacing or has a single slice (no slice spacing)"
    per_slice = masks.reshape(len(masks), -1).sum(axis=1) * voxel_volume_ml(rows, cols, spacing) * study.voxel_scale
    note = f"mask voxels x pixel spacing x slice spacing ({spacing:g} mm)"
    if study.voxel_scale != 1.0:
        note += f" x {study.voxel_scale:.4g}, the affine's voxel volume over that product (a sheared or oblique grid)"
    return float(per_slice.sum()), note


def run_study(
    study: Study,
    artefacts: Artefacts,
    *,
    flag_point: str = "slice_youden",
    max_cams: int = 8,
    outline: str = "above_threshold",
) -> StudyResult:
    """Classify, explain and segment ``study`` with ``artefacts``; ``outline`` says which slices keep their mask."""
    if flag_point not in FLAG_POINTS:
        raise ValueError(f"flag_point must be one of {FLAG_POINTS}, got {flag_point!r}")
    if outline not in OUTLINES:
        raise ValueError(f"outline must be one of {tuple(OUTLINES)}, got {outline!r}")
    timings: dict[str, float] = {}
    inputs: dict[str, torch.Tensor] = {}
    probs: dict[str, np.ndarray] = {}
    study_probs: dict[str, float | None] = {}
    with timed(timings, "classify"):
        for name, classifier in artefacts.classifiers.items():
            inputs[name] = network_inputs(study, classifier)
            probs[name], study_probs[name] = _probabilities(classifier, inputs[name], artefacts.device)
        network_probs = weighted_average({m: probs[m][:, 0] for m in artefacts.weights}, artefacts.weights)
    slab_of = study.slab_of_slice
    slice_probs = network_probs[slab_of]
    subtypes = {}
    if artefacts.subtype_model is not None:
        columns = artefacts.classifiers[artefacts.subtype_model].spec.label_columns
        subtypes = {label: probs[artefacts.subtype_model][slab_of, columns.index(label)] for label in SUBTYPES}
    points = artefacts.operating_points
    # the score the patient threshold was chosen on (ich.metrics.choose_study_score)
    own = study_probs.get(artefacts.decider)
    chosen = points["patient_youden"]["study_score"]
    score = own if chosen == STUDY_PROBABILITY else pool_slice_probabilities(network_probs, chosen)
    if score is None:
        raise ValueError(f"the operating points of {artefacts.decider} use a study output it does not have")
    threshold = float(points["patient_youden"]["threshold"])
    flag_threshold = float(points[flag_point]["threshold"])
    order = [int(i) for i in np.argsort(-slice_probs, kind="stable")]
    above = [i for i in order if slice_probs[i] >= flag_threshold]
    positive = bool(score >= threshold)
    shown_images = [int(k) for k in np.argsort(-network_probs, kind="stable")][: max(max_cams, 1)]
    shown = [_representative(study, k) for k in shown_images]
    cams: dict[int, np.ndarray] = {}
    with timed(timings, "cam"):
        if max_cams > 0 and artefacts.cam_model is not None:
            cam = artefacts.classifiers[artefacts.cam_model]
            chosen_inputs = inputs[artefacts.cam_model][shown_images].to(artefacts.device)
            from ich.explain.gradcam import gradcam_maps  # with pytorch-grad-cam and matplotlib: only when drawn

            cams = dict(zip(shown, gradcam_maps(cam.model, chosen_inputs, cam.prepare), strict=True))
    statistics = study_statistics(study.network_images)
    masks, volume, every_slice, note = None, None, None, "no segmenter loaded"
    if artefacts.segmenter is not None:
        with timed(timings, "segment"):
            masks = _segment(study, artefacts)[slab_of]
            volume, note = _volume(study, masks)
            every_slice = volume
            if outline == "above_threshold":
                below = np.ones(len(masks), dtype=bool)
                below[above] = False
                masks[below] = 0
                volume, note = _volume(study, masks)
    return StudyResult(
        slice_probs=slice_probs,
        subtype_probs=subtypes,
        study_score=score,
        study_probability=float(calibrate(np.array([score]), points["calibration"])[0]),
        positive=positive,
        threshold=threshold,
        flag_threshold=flag_threshold,
        above_threshold=above,
        flagged=above if positive else [],
        shown=shown,
        cams=cams,
        masks=masks,
        volume_ml=volume,
        volume_note=note,
        outline=outline,
        volume_every_slice_ml=every_slice,
        statistics=statistics,
        unfamiliar=[
            *study.window_warnings,
            *unfamiliar(
                statistics, artefacts.reference, ignore=("channel_spread",) if artefacts.reads_brain_window_only else ()
            ),
        ],
        timings=timings,
    )

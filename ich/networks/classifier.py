"""A classifier of the zoo as its ``train.<model>`` section (and then its ``network.json``) describes it:
spec, network, probabilities."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ich.data.datasets import SliceDataset, StudyDataset
from ich.data.transforms import BatchPreparation
from ich.labels import LABELS
from ich.models import available, build, capabilities
from ich.networks import NETWORK_FILE

if TYPE_CHECKING:  # an export augmentation is handed in: these modules never build one
    from ich.data.exports import ExportAugmentation


@dataclass(frozen=True)
class ClassifierSpec:
    """What a classifier is and how it reads slices: all that building and running it needs.

    The network part of a ``train.<model>`` section; how it is trained (initial weights,
    augmentation, pasted bleeds, the map loss) is training's (:class:`ich.train.classify.ClassifierTraining`).
    Training writes it beside the weights (:data:`NETWORK_FILE`), and inference builds from there.
    The defaults are ``params.yaml``'s ``train.defaults`` (``tests/test_params.py`` holds them equal).
    """

    arch: str
    input_size: int = 64
    subtypes: bool = False  # true: "any" and the five subtypes (a multi-label network)
    brain_window_only: bool = False  # one channel: the brain window alone (the thesis CNN; the CT-ICH profile)
    context: int = 0  # neighbouring slices on each side stacked as channels (ich.data.context)
    arch_options: dict[str, Any] = field(
        default_factory=dict
    )  # keywords of the architecture's builder (e.g. batch_norm)

    def __post_init__(self) -> None:
        if capabilities(self.arch).segments:
            raise ValueError(
                f"{self.arch!r} is a segmentation network: name it as a segment.<name> method, not a classifier's arch "
                f"(classifiers: {', '.join(available())})"
            )

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Targets in output order."""
        return LABELS if self.subtypes else ("any",)

    @property
    def slice_channels(self) -> int:
        """Channels of one slice: its windows, or the brain window alone."""
        return 1 if self.brain_window_only else 3

    @property
    def per_study(self) -> bool:
        """Whether the network reads whole studies rather than slices (its registered capabilities)."""
        return capabilities(self.arch).reads_studies

    @property
    def uses_masks(self) -> bool:
        """Whether the network learns from the bleed masks too (a bleed-map head: its registered capabilities)."""
        return capabilities(self.arch).bleed_map

    @property
    def stack(self) -> int:
        """Slices per input: the slice and ``context`` neighbours on each side."""
        return 2 * self.context + 1

    def preparation(self) -> BatchPreparation:
        """The batch preparation of this network's inputs: scaling and normalisation, no augmentation."""
        return BatchPreparation(self.slice_channels, augment=False, slices=self.stack)

    def dataset(
        self,
        table: pd.DataFrame,
        root: str | Path,
        *,
        cache: bool = True,
        masks: bool = False,
        paste: float = 0.0,
        exports: ExportAugmentation | None = None,
    ) -> SliceDataset | StudyDataset:
        """The rows of ``table`` as this network reads them: slices, or whole studies for a study model.

        ``cache``, ``masks``, ``paste`` and ``exports`` are :class:`ich.data.datasets.SliceDataset`'s:
        training asks a map model's items to carry their masks (and pasted bleeds).
        """
        slices = SliceDataset(
            table,
            root,
            input_size=self.input_size,
            label_columns=self.label_columns,
            grey=self.brain_window_only,
            cache=cache,
            context=self.context,
            masks=masks,
            paste=paste,
            exports=exports,
        )
        return StudyDataset(slices, table) if self.per_study else slices


def classifier_spec(section: Mapping[str, Any]) -> ClassifierSpec:
    """The network part of a ``train.<model>`` section (the other keys are training's:
    :func:`ich.train.classify.parse_section` checks the whole section)."""
    keys = {f.name for f in fields(ClassifierSpec)}
    return ClassifierSpec(**{k: v for k, v in section.items() if k in keys})


def write_network_spec(folder: str | Path, spec: ClassifierSpec, trained_on: Mapping[str, Any]) -> None:
    """Describe the network of ``folder/model.pt`` in ``folder/network.json``: the spec, what it
    reads (channels, normalisation) and ``trained_on`` (the cohort), as nnU-Net keeps its plans."""
    prepare = spec.preparation()
    record = {
        "spec": asdict(spec),
        "input": {
            "channels": spec.slice_channels * spec.stack,
            "windows": "brain window only" if spec.brain_window_only else "three windows (R, G, B)",
            "slices": spec.stack,
            "side_px": spec.input_size,
            "mean": [round(float(v), 6) for v in prepare.mean.flatten()],
            "std": [round(float(v), 6) for v in prepare.std.flatten()],
        },
        "outputs": list(spec.label_columns),
        "trained_on": dict(trained_on),
    }
    (Path(folder) / NETWORK_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_network_spec(folder: str | Path) -> ClassifierSpec:
    """The spec a trained network's folder describes (:func:`write_network_spec`)."""
    path = Path(folder) / NETWORK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the model was trained by an older version; run `dvc repro`")
    return ClassifierSpec(**json.loads(path.read_text())["spec"])


def build_classifier(
    spec: ClassifierSpec, state_dict: str | Path | None = None, *, pretrained: str = "none"
) -> nn.Module:
    """The network of ``spec``: with ``state_dict`` (a trained ``model.pt``) its weights loaded safely,
    else initialised as ``pretrained`` says (:func:`ich.models.build`)."""
    return build(
        spec.arch,
        in_channels=spec.slice_channels * spec.stack,
        num_outputs=len(spec.label_columns),
        input_size=spec.input_size,
        pretrained=str(state_dict) if state_dict is not None else pretrained,
        **spec.arch_options,
    )


@torch.no_grad()
def predict_probs(model: nn.Module, loader: DataLoader, device: torch.device, prepare: nn.Module) -> np.ndarray:
    """Sigmoid probabilities ``(N, outputs)`` in loader order (``prepare`` without augmentation)."""
    model.eval()
    prepare = prepare.to(device).eval()
    chunks = [torch.sigmoid(model(prepare(x.to(device))).float()).cpu() for x, _ in loader]
    return torch.cat(chunks).numpy()


__all__ = [
    "NETWORK_FILE",
    "ClassifierSpec",
    "build_classifier",
    "classifier_spec",
    "predict_probs",
    "read_network_spec",
    "write_network_spec",
]

"""A segmenter network as its ``segment.<name>`` section (and then its ``network.json``) describes it:
spec, build, predictor.

A section's ``method`` names a segmentation network of the registry
(``ich.models.available(segments=True)``: the U-Net of Hssayeni 2020, the EfficientNet-Lite0 U-Net,
and any network a file in ``ich/models`` registers with ``segments=True``); this module keeps no
list of them and no branch per network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ich.data.windowing import Window, recut_window
from ich.models import available, build, refuse_options
from ich.networks import NETWORK_FILE
from ich.segmentation.inference import predict_prob_map


def segmentation_networks() -> list[str]:
    """The ``segment.<name>.method`` values that are networks (weights in ``model.pt``), all described
    by :class:`UNetSpec`: the registry's segmenters."""
    return available(segments=True)


@dataclass(frozen=True)
class DerivedWindows:
    """Input channels 2 and 3 of a network that reads the brain window alone: two narrower HU windows
    re-cut from the brain window's grey levels (:func:`ich.data.windowing.recut_window`).

    ``source`` is the HU window the brain window shows (the training slices' first window, which
    ``ich predict`` harmonises every grey study to; :func:`check_derived_source`). HU windows as
    channels (Cortes-Ferre 2023, Alqnatri 2021) need the HU a grey export no longer has; a grey export carries one, and inside it a blood
    window (acute blood 50-90 HU against brain's 20-40) and a saturation window (bone, 100 HU and
    above, white) are still exact. They give the bleed and the skull, both bright in the brain
    window, channels of their own, as the bone window of a release's blue channel did.
    """

    source: Window
    windows: tuple[Window, Window]

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> DerivedWindows:
        """From a ``derived_windows: {source: [lo, hi], windows: [[lo, hi], [lo, hi]]}`` mapping."""
        if set(values) != {"source", "windows"} or len(values["windows"]) != 2:
            raise ValueError(
                f"derived_windows must be {{source: [lo, hi], windows: [[lo, hi], [lo, hi]]}} (two windows for "
                f"input channels 2 and 3), got {dict(values)}"
            )
        source = (float(values["source"][0]), float(values["source"][1]))
        windows = tuple((float(lo), float(hi)) for lo, hi in values["windows"])
        for lo, hi in (source, *windows):
            if not hi > lo:
                raise ValueError(f"derived_windows: window [{lo:g}, {hi:g}] HU must have hi > lo")
        return cls(source, windows)  # type: ignore[arg-type]


@dataclass(frozen=True)
class UNetSpec:
    """What a segmentation network is and how it reads a slice (the network part of a
    ``segment.<name>`` section; how it is trained is :class:`ich.train.segmenter.settings.UNetTraining`).

    ``crop``/``stride`` default to Hssayeni 2020's 160/80 (at 640 px); ``crop`` must be a multiple of 16.
    ``inference_batch`` is how many crops go through the network at once when predicting.
    ``brain_window_only`` is the classifiers' channel policy (``train.<model>.brain_window_only``):
    the network reads the brain window alone, in all three of its input channels
    (:func:`segmenter_view`), in training, validation and prediction alike; a site that sends one
    grey window then gives it what it learned from. ``derived_windows`` (with it) fills channels 2
    and 3 with narrower windows cut from that brain window instead of repeating it
    (:class:`DerivedWindows`).
    """

    method: str  # a registered segmenter (ich.models.available(segments=True)); no default: a name lives in ich/models
    base_width: int = 64
    batch_norm: bool = (
        False  # BatchNorm in every block (ich.models.unet; not in Hssayeni 2020): an option of that builder
    )
    crop: int = 160
    stride: int = 80
    inference_batch: int = 64
    brain_window_only: bool = False  # the channel policy: read the brain window alone (segmenter_view)
    derived_windows: DerivedWindows | None = None  # channels 2 and 3 re-cut from the brain window

    def __post_init__(self) -> None:
        if self.derived_windows is not None and not self.brain_window_only:
            raise ValueError(
                "derived_windows are cut from the brain window: they need brain_window_only: true (a network "
                "reading a release's own channels has no free channel for them)"
            )


def segmenter_view(image: np.ndarray, spec: UNetSpec) -> np.ndarray:
    """A converted RGB slice ``(H, W, 3)`` as ``spec``'s network reads it: as it is, or (``brain_window_only``)
    its first channel, the brain window, in all three.

    A pre-windowed site sends one grey window, which reads as R = G = B (:mod:`ich.io.image_files`);
    a network that learned a bone window from one release's blue channel marks nothing on such a
    slice, so the policy shows it that grey image in training too.
    """
    if not spec.brain_window_only:
        return image
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) slice, got shape {image.shape}")
    if spec.derived_windows is None:
        return np.ascontiguousarray(np.repeat(image[..., :1], 3, axis=2))
    brain = image[..., 0]
    derived = spec.derived_windows
    return np.stack([brain, *(recut_window(brain, derived.source, window) for window in derived.windows)], axis=2)


def check_derived_source(spec: UNetSpec, brain_window: Window, name: str) -> None:
    """Refuse a segmenter whose derived windows assume another brain window than ``brain_window``, the HU
    window its slices show (the training slices' first window, to which ``ich predict`` renders and
    harmonises every study): its channels 2 and 3 would show other HU than it learned."""
    if spec.derived_windows is None:
        return
    source = spec.derived_windows.source
    if tuple(map(float, source)) != tuple(map(float, brain_window)):
        raise ValueError(
            f"segmenter {name}: derived_windows.source is [{source[0]:g}, {source[1]:g}] HU but its slices show the "
            f"brain window [{brain_window[0]:g}, {brain_window[1]:g}] HU; set segment.{name}.derived_windows.source to it"
        )


def unet_spec(section: Mapping[str, Any]) -> UNetSpec:
    """The network part of a ``method: unet`` section (the other keys are training's:
    :func:`ich.train.segmenter.settings.unet_settings` checks the whole section)."""
    if section.get("method") not in segmentation_networks():
        raise ValueError(
            f"segmenter method must be one of {', '.join(segmentation_networks())}, got {section.get('method')!r}"
        )
    keys = {f.name for f in fields(UNetSpec)}
    spec = _spec({k: v for k, v in section.items() if k in keys})
    refuse_options(spec.method, _options(spec))  # before anything trains
    return spec


def _spec(values: Mapping[str, Any]) -> UNetSpec:
    """A spec from plain values (a params section's or ``network.json``'s)."""
    derived = values.get("derived_windows")
    return UNetSpec(**{**values, "derived_windows": DerivedWindows.from_values(derived) if derived else None})


def _options(spec: UNetSpec) -> dict[str, object]:
    """The builder options beyond the shared keywords; BatchNorm only when asked for (EfficientNet's
    is in every layer, and its builder takes no such option)."""
    return {"batch_norm": True} if spec.batch_norm else {}


def write_segmenter_spec(folder: str | Path, spec: UNetSpec) -> None:
    """Describe the network of ``folder/model.pt`` in ``folder/network.json`` (as classifiers do)."""
    (Path(folder) / NETWORK_FILE).write_text(json.dumps({"spec": asdict(spec)}, indent=2) + "\n")


def read_segmenter_spec(folder: str | Path) -> UNetSpec:
    """The spec a trained segmenter's folder describes (:func:`write_segmenter_spec`)."""
    path = Path(folder) / NETWORK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the segmenter was trained by an older version; run `dvc repro`")
    return _spec(json.loads(path.read_text())["spec"])


def build_unet(spec: UNetSpec, state_dict: str | Path | None = None, *, pretrained: str = "none") -> nn.Module:
    """The U-Net of ``spec``: with ``state_dict`` (a trained ``model.pt``) its weights loaded safely, else
    initialised as ``pretrained`` says (``none``, ``imagenet`` for ``lite0_unet``, or a checkpoint path)."""
    pretrained = str(state_dict) if state_dict is not None else pretrained
    return build(
        spec.method,
        in_channels=3,
        num_outputs=1,
        input_size=spec.crop,
        base_width=spec.base_width,
        pretrained=pretrained,
        **_options(spec),
    )


def unet_predictor(model: nn.Module, spec: UNetSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Slice -> probability map with the trained U-Net, on the device it sits on."""
    device = next(model.parameters()).device
    return lambda image: predict_prob_map(
        model, segmenter_view(image, spec), spec.crop, spec.stride, device, spec.inference_batch
    )


__all__ = [
    "DerivedWindows",
    "UNetSpec",
    "build_unet",
    "check_derived_source",
    "read_segmenter_spec",
    "segmentation_networks",
    "segmenter_view",
    "unet_predictor",
    "unet_spec",
    "write_segmenter_spec",
]

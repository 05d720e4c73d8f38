"""Read ``params.yaml`` (the single source of every stage's parameters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole parameter file as a dict."""
    with open(path) as f:
        return yaml.safe_load(f)

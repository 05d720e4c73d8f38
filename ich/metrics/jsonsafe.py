"""Metric values as JSON holds them: NaN as ``null``, numpy scalars as Python, floats rounded.

Rounding to 6 decimals keeps ``dvc metrics diff`` free of last-bit noise; JSON has no NaN, and
an undefined metric must stay visibly undefined (``null``), never become 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def json_ready(value: Any) -> Any:
    """``value`` with every float rounded (NaN -> ``None``), numpy scalars converted, recursively."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else round(float(value), 6)
    return value

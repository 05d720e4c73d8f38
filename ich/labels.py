"""Label vocabulary shared by every stage (RSNA 2019 naming)."""

from __future__ import annotations

SUBTYPES: tuple[str, ...] = (
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
)
"""The five ICH subtypes, in the RSNA column order."""

LABELS: tuple[str, ...] = ("any", *SUBTYPES)
"""All six RSNA targets: "any" first, then the subtypes."""

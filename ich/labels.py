"""Label vocabulary shared by every stage (RSNA 2019 naming)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every command imports this module; pandas only where a table is passed in
    import pandas as pd

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


def has_mask_file(table: pd.DataFrame) -> pd.Series:
    """Whether each slice row of the index has a bleed-mask file (``mask_path`` set)."""
    return table["mask_path"].fillna("").astype(str) != ""


def mask_is_known(table: pd.DataFrame) -> pd.Series:
    """Whether each slice's bleed mask is known: it has a mask file, or its label says "no bleed".

    A slice labelled negative has an empty mask whether or not a file says so (CT-ICH ships masks
    for its 318 bleeding slices only); a positive slice without a mask file has an unknown one.
    """
    return has_mask_file(table) | (table["any"] == 0)

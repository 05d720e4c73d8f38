"""Where a project's networks come from, and how a study must be rendered for them; no PyTorch here.

The ``bundle`` stage settles both once (:mod:`ich.predict.pack`); ``ich predict`` reads them back
from the bundle's manifest with :func:`bundle_conversion` before any network loads, so that a bad
input is refused at once, and :func:`ich.predict.artefacts.load_artefacts` uses the same function,
so the study is rendered exactly as the loaded networks need.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ich import layout
from ich.data.cohort_conversion import ConvertConfig


def training_cohort(project: Path) -> dict[str, Any]:
    """The cohort the networks learned from: source name and citation, ``synthetic``, the patients
    and slices of each set of the split, the channels its slices have, the windows it records and
    the thickness of its slices (``slice_thickness_mm``)."""
    source_file = project / layout.SOURCE
    if not source_file.is_file():
        raise FileNotFoundError(f"{source_file} is missing: run `make repro` (or `dvc checkout`) first")
    source = json.loads(source_file.read_text(encoding="utf-8"))
    sets = pd.read_csv(project / layout.SPLIT).set_index("patient_id")["set"]
    index = pd.read_csv(project / layout.INDEX, usecols=["patient_id", "channels", "slice_spacing_mm"])
    slices = index["patient_id"].map(sets)
    spacing = index.loc[slices == "train", "slice_spacing_mm"].dropna()
    return {
        "source": source["name"],
        "synthetic": bool(source["synthetic"]),
        "citation": source.get("citation", ""),
        "patients": {str(k): int(v) for k, v in sets.value_counts().sort_index().items()},
        "slices": {str(k): int(v) for k, v in slices.value_counts().sort_index().items()},
        "channels": str(index["channels"].mode().iloc[0]),
        "windows": source.get("windows"),
        # what a thin series is reformatted to (ich.data.slabs): the training slices' spacing, or
        # the thickness a pre-windowed release records; None: unknown, nothing is reformatted
        "slice_thickness_mm": float(spacing.median()) if len(spacing) else source.get("slice_thickness_mm"),
    }


def study_conversion(convert: ConvertConfig, training: dict[str, Any]) -> tuple[ConvertConfig, str]:
    """How a study with Hounsfield units (DICOM, NIfTI) is windowed for these networks, and why.

    Networks trained on HU sources saw ``convert.windows``. Networks trained on a pre-windowed
    release saw that release's windows, which its ``source.json`` records (level and width): the
    brain window in R and G and the bone window in B (``brain+bone``), or the brain window alone
    (``grey``). A study is windowed the same way; when the release records no windows that is
    impossible, and the reason says so.
    """
    if training["channels"] == "hu":
        return convert, "convert.windows, as the training slices"
    windows = training.get("windows") or {}

    def hu(name: str) -> tuple[float, float]:
        level, width = float(windows[name]["level"]), float(windows[name]["width"])
        return level - width / 2, level + width / 2

    if training["channels"] == "brain+bone" and {"brain", "bone"} <= set(windows):
        chosen = (hu("brain"), hu("brain"), hu("bone"))
    elif training["channels"] == "grey" and "brain" in windows:
        chosen = (hu("brain"),) * 3
    else:
        return convert, (
            f"convert.windows: the training images ({training['channels']}) record no windows to match, "
            "so the networks may see another contrast than they learned"
        )
    described = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in chosen)
    return replace(convert, windows=chosen), f"the training release's windows {described} (source.json)"


def bundle_conversion(manifest: dict[str, Any]) -> tuple[ConvertConfig, str]:
    """How a bundle's networks need a study rendered (as :func:`study_conversion` settled it when the
    bundle was packed), and why; the slab thickness is its ``training["slice_thickness_mm"]``."""
    recorded = manifest["input"]["convert"]
    convert = ConvertConfig(**{**recorded, "windows": tuple(tuple(w) for w in recorded["windows"])})
    return convert, manifest["input"]["windows_note"]

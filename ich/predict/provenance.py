"""Where a project's networks come from, and how a study must be rendered for them; no PyTorch here.

``ich predict`` reads the study with :func:`input_conversion` before any network loads, so that
a bad input is refused at once; :func:`ich.predict.artefacts.load_artefacts` uses the same
functions, so the study is rendered exactly as the loaded networks need.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from ich import layout
from ich.data.cohort_conversion import ConvertConfig
from ich.params import load_params
from ich.predict.names import ENSEMBLE


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


def project_params(project: str | Path) -> dict[str, Any]:
    """``project``'s ``params.yaml``; ``FileNotFoundError`` naming ``--project`` when it has none."""
    project = Path(project)
    if not (project / "params.yaml").is_file():
        raise FileNotFoundError(f"{project}: no params.yaml; --project names the pipeline checkout")
    return load_params(project / "params.yaml")


def input_conversion(project: str | Path) -> tuple[ConvertConfig, float | None]:
    """How ``project``'s networks need a study rendered (:func:`study_conversion`) and the slab
    thickness a thin series is reformatted to, from its ``params.yaml`` and training cohort;
    ``FileNotFoundError`` when the pipeline has not run."""
    project = Path(project)
    convert = ConvertConfig.from_params(project_params(project)["convert"])
    training = training_cohort(project)
    return study_conversion(convert, training)[0], training["slice_thickness_mm"]


def check_choices(params: dict[str, Any], model: str, segmenter: str | None) -> None:
    """Refuse a deciding ``model`` or a ``segmenter`` that a project's ``params`` do not name
    (``ValueError`` listing the choices), before anything slow is read or loaded."""
    trained = [*params["models"], ENSEMBLE]
    if model not in trained:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(trained)}")
    sections = [
        name for name, section in params["segment"].items() if isinstance(section, dict) and "method" in section
    ]
    if segmenter is not None and segmenter not in sections:
        raise ValueError(f"unknown segmenter {segmenter!r}: choose one of {', '.join(sections)} or none")

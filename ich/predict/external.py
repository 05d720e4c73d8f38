"""External validation: a labelled cohort from elsewhere, classified exactly as ``ich predict`` would.

A cohort is read by a source adapter (:mod:`ich.sources`: ``cq500`` with the readers' majority
vote, ``folder`` with a labels CSV, ``images`` with a labels file, ``rsna``), which says which
files form which study and what each is labelled. Each study's folder then goes through
:func:`ich.predict.batch.classify_folders`, the code of ``ich predict``, for every deciding model
at the operating points its validation chose; :func:`ich.metrics.external.external_block`
measures them. Nothing is chosen on an external cohort.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ich.io.raw_cohort import cohort_description, read_raw_cohort
from ich.labels import LABELS
from ich.metrics.external import external_block
from ich.predict.artefacts import Artefacts
from ich.predict.batch import classify_folders
from ich.sources import materialise, source_options
from ich.sources.dicomtree import scan_dicom_tree


@dataclass(frozen=True)
class ExternalCohort:
    """The studies of a cohort and their labels, as its source adapter reads them."""

    name: str
    root: Path  # paths in the outputs are relative to it
    folders: dict[str, Path]  # study name (its folder relative to the root) -> folder
    slice_labels: pd.DataFrame  # index: slice key (SOPInstanceUID, or the image's slice_key); LABELS columns
    study_labels: pd.DataFrame  # index: study key (StudyInstanceUID, or the image study_id)
    image_keys: pd.DataFrame  # images only: index source path -> slice_key, study_id
    source: dict[str, Any]  # the adapter's source.json
    unreadable: list[dict[str, str]]  # files the adapter listed whose header cannot be read: {path, reason}


def _absolute(path: str, base: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path


def _study_folders(root: Path, study_of: pd.Series) -> dict[str, Path]:
    """One folder per study: the deepest folder holding all its files, and no other study's."""
    folders = {}
    for study, paths in study_of.groupby(study_of, sort=True).groups.items():
        folder = Path(os.path.commonpath([str(Path(p).parent) for p in paths]))
        folders[str(study)] = folder
    by_folder: dict[Path, list[str]] = {}
    for study, folder in folders.items():
        by_folder.setdefault(folder, []).append(study)
    for study, folder in folders.items():
        inside = [s for f, ss in by_folder.items() if f == folder or folder in f.parents for s in ss if s != study]
        if inside:
            raise ValueError(
                f"{folder}: holds files of studies {[study, *inside][:4]}; ich predict reads one study per folder, "
                "so an external cohort needs one folder per study"
            )
    names = {}
    for folder in folders.values():
        try:
            relative = folder.relative_to(root).as_posix()
            names[folder.name if relative == "." else relative] = folder
        except ValueError:
            names[str(folder)] = folder
    return names


def refuse_a_training_cohort(name: str, section: Mapping[str, Any], download: Mapping[str, Any]) -> None:
    """Refuse external cohort ``name`` when the training source (params ``download``) reads the same folder:
    its patients trained the models, so it is not external (a combined source's held-out patients
    of that cohort are scored by ``evaluate``'s ``by_cohort`` instead)."""
    source, options = source_options(download)
    trained = [c.get("path") for c in options["cohorts"].values()] if source == "combined" else [options["path"]]
    own = Path(str(section.get("path", ""))).resolve()
    if any(path and Path(str(path)).resolve() == own for path in trained):
        raise ValueError(
            f"external cohort {name!r} ({section.get('path')}) is a cohort the models were trained on "
            "(params download): it is not external; its held-out patients are in evaluate's by_cohort figures"
        )


def read_external_cohort(name: str, section: Mapping[str, Any]) -> ExternalCohort:
    """The cohort ``name`` of params ``external.cohorts``: ``source`` (an adapter), ``path`` and the
    adapter's own options (those of ``download.<source>``). A ``cohort.json`` in the cohort's folder
    overrides what the adapter says of its name and whether it is synthetic."""
    options = {k: v for k, v in section.items() if k not in ("source", "calibrate")}
    if "source" not in section or not options.get("path"):
        raise ValueError(f"external cohort {name!r} needs a source and a path, got {dict(section)}")
    root = Path(options["path"]).resolve()
    with tempfile.TemporaryDirectory(prefix=f"ich-external-{name}-") as tmp:
        materialise(str(section["source"]), options, tmp)
        manifest, labels, source = read_raw_cohort(tmp)
        manifest["path"] = [str(_absolute(p, Path(tmp))) for p in manifest["path"]]
    if manifest.empty:
        raise ValueError(f"external cohort {name!r}: its source found no image under {root}")
    # outputs name files relative to the cohort, so that they do not depend on where it lies
    source["issues"] = [{**issue, "path": _relative(issue["path"], root)} for issue in source.get("issues", [])]
    source.update(cohort_description(root))
    values = labels.set_index("key")[list(LABELS)].replace("", np.nan).astype(float)
    slice_labels = values[(labels["level"] == "slice").to_numpy()]
    study_labels = values[(labels["level"] == "study").to_numpy()]
    if (manifest["format"] == "dicom").all():
        records = scan_dicom_tree([Path(p) for p in manifest["path"]])
        bad = records["error"] != ""
        unreadable = [
            {"path": _relative(r["path"], root), "reason": r["error"]} for r in records[bad].to_dict("records")
        ]
        study_of = pd.Series(records.loc[~bad, "study_uid"].to_numpy(), index=records.loc[~bad, "path"])
        image_keys = pd.DataFrame(columns=["slice_key", "study_id"])
    elif (manifest["format"] == "image").all():
        study_of = pd.Series(manifest["study_id"].to_numpy(), index=manifest["path"])
        image_keys = manifest.set_index("path")[["slice_key", "study_id"]]
        unreadable = []
    else:
        raise ValueError(
            f"external cohort {name!r}: one format per cohort (DICOM or images), got {sorted(set(manifest['format']))}"
        )
    return ExternalCohort(
        name=name,
        root=root,
        folders=_study_folders(root, study_of),
        slice_labels=slice_labels,
        study_labels=study_labels,
        image_keys=image_keys,
        source=source,
        unreadable=unreadable,
    )


def label_predictions(cohort: ExternalCohort, table: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``table`` (from :func:`classify_folders`) with each slice's labels and ``label_level``, and the
    studies left out because some of their slices have no label of their own or of their study
    (each ``{study, slices, reason}``: listed, never dropped silently)."""
    if len(cohort.image_keys):
        keys = cohort.image_keys.reindex(table["source_path"])
        slice_key, study_key = keys["slice_key"].to_numpy(), keys["study_id"].to_numpy()
    else:
        slice_key, study_key = table["sop_uid"].to_numpy(), table["study_uid"].to_numpy()
    own = cohort.slice_labels.reindex(slice_key)
    inherited = cohort.study_labels.reindex(study_key)
    by_slice = own["any"].notna().to_numpy()
    values = np.where(by_slice[:, None], own.to_numpy(), inherited.to_numpy())
    labelled = table.assign(**{label: values[:, i] for i, label in enumerate(LABELS)})
    labelled["label_level"] = np.where(by_slice, "slice", "study")
    labelled["source_path"] = [_relative(p, cohort.root) for p in labelled["source_path"]]
    missing = labelled.loc[labelled["any"].isna()].drop_duplicates(["study", "source_path"])
    left_out = [
        {
            "study": study,
            "slices": len(rows),
            "reason": f"no label for {len(rows)} of its slices, e.g. {rows['source_path'].iloc[0]}",
        }
        for study, rows in missing.groupby("study", sort=True)
    ]
    kept = labelled[~labelled["study"].isin(missing["study"])]
    if kept.empty:
        raise ValueError(f"external cohort {cohort.name!r}: no study has labels for its slices ({left_out[:3]})")
    return kept.reset_index(drop=True), left_out


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


def validate_external(
    cohort: ExternalCohort, deciders: Mapping[str, Artefacts], *, n_boot: int, seed: int, local_point: bool = False
) -> tuple[pd.DataFrame, dict[str, Any], list[dict[str, Any]]]:
    """Classify the cohort with every decider: the labelled predictions, the figures per model (with
    ``local_point``, a point chosen on half the cohort's patients as well), and the studies left out
    for want of labels (:func:`label_predictions`)."""
    table, left_out = label_predictions(cohort, classify_folders(deciders, cohort.folders))
    blocks = {
        model: external_block(
            table[table["model"] == model],
            deciders[model].operating_points,
            n_boot=n_boot,
            seed=seed,
            local_point=local_point,
        )
        for model in deciders
    }
    return table, blocks, left_out

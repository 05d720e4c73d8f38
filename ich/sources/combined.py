"""Source ``combined``: several cohorts (hospitals) as one raw cohort, each slice tagged with its cohort.

Parameters (``params.yaml`` -> ``download.combined``):

``cohorts``  a mapping ``name -> section``; each section names its ``source`` (any other source
             of :mod:`ich.sources`) and that source's own options, e.g.
             ``phe_sich: {source: images, layout: generic, path: ../shared/data/phe-sich-ct}``.

Each cohort is materialised by its own adapter into ``<out>/<name>/``, and the tables are
joined: the manifest gains a ``cohort`` column (``convert`` carries it into the index), so the
split can give every cohort its own folds (:func:`ich.data.split.split_patients`) and the
evaluation can report each hospital apart. Ids and slice keys are kept as each source gives
them, so a cohort's patients, slices and folds are the same as when it is the only source; a
patient id or slice key found in two cohorts is refused rather than merged, since nothing could
tell whether they are one patient. ``source.json`` lists each cohort's own description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.raw_cohort import read_raw_cohort, write_raw_cohort
from ich.sources.common import SourceError


def _joined_path(value: str, cohort: str) -> str:
    """A manifest path of a cohort materialised in ``<out>/<cohort>``, as seen from ``<out>``."""
    return value if value == "" or Path(value).is_absolute() else f"{cohort}/{value}"


def _refuse_shared(tables: dict[str, pd.DataFrame], column: str, what: str) -> None:
    """Refuse a value of ``column`` in two cohorts (empty ones, e.g. DICOM ids read later from
    headers, are checked by :func:`ich.data.split.patient_labels` once converted)."""
    seen: dict[str, str] = {}
    for name, table in tables.items():
        for value in table.loc[table[column] != "", column].unique():
            if value in seen:
                raise SourceError(
                    f"source 'combined': {what} {value!r} is in cohorts {seen[value]!r} and {name!r}; "
                    "ids must tell the cohorts' patients apart"
                )
            seen[value] = name


def materialise(params: dict[str, Any], out_dir: Path) -> None:
    from ich.sources import materialise as materialise_source  # the registry of sources imports this module

    cohorts = params.get("cohorts") or {}
    if len(cohorts) < 2 or not all(isinstance(s, dict) and s.get("source") for s in cohorts.values()):
        raise SourceError(
            "source 'combined': download.combined.cohorts must map two or more names to sections "
            f"with a `source` (got {cohorts!r})"
        )
    manifests, labels, sources, issues = {}, {}, {}, []
    for name, section in cohorts.items():
        if section["source"] == "combined":
            raise SourceError(f"source 'combined': cohort {name!r} cannot itself be combined")
        options = {k: v for k, v in section.items() if k != "source"}
        materialise_source(section["source"], options, out_dir / name)
        manifest, label_rows, source = read_raw_cohort(out_dir / name)
        manifests[name] = manifest.assign(cohort=name)
        labels[name], sources[name] = label_rows, source
        issues += [{"path": i["path"], "reason": f"{name}: {i['reason']}"} for i in source.get("issues", [])]
    _refuse_shared(manifests, "patient_id", "patient id")
    _refuse_shared(labels, "key", "label key")
    manifest = pd.concat(manifests.values(), ignore_index=True).fillna("")  # a column one source lacks: empty
    for column in ("path", "mask_path", "bone_path"):
        if column in manifest:
            manifest[column] = [_joined_path(v, c) for v, c in zip(manifest[column], manifest["cohort"], strict=True)]
    write_raw_cohort(
        out_dir,
        manifest,
        pd.concat(labels.values(), ignore_index=True).fillna(""),
        {
            "name": " + ".join(s["name"] for s in sources.values()),
            "synthetic": any(bool(s["synthetic"]) for s in sources.values()),
            "has_hu": all(bool(s["has_hu"]) for s in sources.values()),
            "citation": "; ".join(s["citation"] for s in sources.values() if s["citation"]),
            "single_slice_studies": all(bool(s.get("single_slice_studies")) for s in sources.values()),
            "cohorts": {name: {k: v for k, v in s.items() if k != "issues"} for name, s in sources.items()},
        },
        issues,
    )

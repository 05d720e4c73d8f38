"""``ich calibrate``: operating points chosen on a site's own labelled studies, as a file ``ich predict``
uses (``--points``) and names in its report.

A threshold chosen on the training hospital's validation patients does not keep its specificity
elsewhere (docs/real-data.md, "Other sites' exports"); ranking travels better. A site that labels
some of its studies gets points of its own: the cohort is read by a source adapter exactly as an
``external`` cohort is (:func:`ich.predict.external.read_external_cohort`), classified as
``ich predict`` classifies (:func:`ich.predict.batch.classify_folders`), and the points are chosen
on all of it (:func:`ich.metrics.site_calibration.site_points`). Beside them the file carries the
half-split check the ``external@`` stage reports (:func:`ich.metrics.site_calibration.site_calibration`:
chosen on half the patients, measured on the other half), which says how well a point chosen on so
few studies is known. The file names the model and the ``dvc.lock`` md5 of every artefact it was
chosen with; ``ich predict --points`` refuses it for any other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ich.metrics.site_calibration import site_calibration, site_points
from ich.predict.artefacts import Artefacts
from ich.predict.batch import classify_folders
from ich.predict.external import label_predictions, read_external_cohort

POINT_FILE_FORMAT = "ich-site-points/1"


class SitePointsError(ValueError):
    """A point file that does not belong to the artefacts it is used with; the message says why."""


def calibrate_site(artefacts: Artefacts, cohort: Mapping[str, Any], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """The point file of ``artefacts``' deciding model for the labelled cohort ``cohort`` (an
    ``external.cohorts`` section: ``source``, ``path`` and the adapter's options)."""
    site = read_external_cohort("site", cohort)
    table, left_out = label_predictions(site, classify_folders({artefacts.decider: artefacts}, site.folders))
    rows = table.drop(columns="model").rename(columns={"study": "patient_id"})
    points = site_points(rows, artefacts.operating_points, cohort=str(site.root))
    try:
        check: dict[str, Any] = site_calibration(rows, artefacts.operating_points, n_boot=n_boot, seed=seed)
    except ValueError as error:  # too few studies for two halves: the points stand, unchecked
        check = {"not_measured": str(error)}
    return {
        "format": POINT_FILE_FORMAT,
        "model": artefacts.decider,
        "versions": artefacts.versions,
        "cohort": {
            "path": str(site.root),
            "source": dict(cohort),
            "studies": len(site.folders),
            "left_out": left_out,
            "unreadable": site.unreadable,
        },
        **points,
        "half_split_check": check,
    }


def with_site_points(artefacts: Artefacts, path: str | Path) -> Artefacts:
    """``artefacts`` deciding at the points of the file ``path`` (written by ``ich calibrate``)."""
    path = Path(path)
    try:
        points = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SitePointsError(f"{path}: not a readable point file ({error})") from error
    if points.get("format") != POINT_FILE_FORMAT:
        raise SitePointsError(f"{path}: not an `ich calibrate` point file (format {points.get('format')!r})")
    if points["model"] != artefacts.decider:
        raise SitePointsError(f"{path}: points of model {points['model']!r}, not of {artefacts.decider!r} (--model)")
    changed = sorted(k for k, md5 in points["versions"].items() if artefacts.versions.get(k) != md5)
    if changed:
        raise SitePointsError(
            f"{path}: chosen with other artefacts than these ({', '.join(changed)} differ): run `ich calibrate` again"
        )
    return replace(artefacts, operating_points={**points, "chosen_on": f"{points['chosen_on']} (point file {path})"})


__all__ = ["POINT_FILE_FORMAT", "SitePointsError", "calibrate_site", "with_site_points"]

"""Source adapters: materialise a raw cohort (docs/contracts.md, "Raw cohort") in ``out_dir``.

Each adapter writes ``manifest.csv``, ``labels.csv`` and ``source.json``:

=============  ===============================================================
``synthetic``  the embedded demo cohort (:func:`ich.synth.write_cohort`)
``ct-ich``     PhysioNet CT-ICH 1.3.1 NIfTI (:mod:`ich.sources.ct_ich`)
``rsna``       RSNA 2019 ICH detection DICOM (:mod:`ich.sources.rsna`)
``cq500``      qure.ai CQ500 DICOM + reads (:mod:`ich.sources.cq500`)
``folder``     any DICOM tree + labels CSV (:mod:`ich.sources.folder`)
``images``     pre-windowed images, e.g. CT-ICH JPG (:mod:`ich.sources.images`)
``combined``   several of the above as one cohort (:mod:`ich.sources.combined`)
=============  ===============================================================

Local datasets are referenced by absolute path, never copied; downloads land inside
``out_dir`` and are referenced relative to it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ich.io.raw_cohort import SourceError

SOURCES: dict[str, str] = {
    "synthetic": "ich.synth",
    "ct-ich": "ich.sources.ct_ich",
    "rsna": "ich.sources.rsna",
    "cq500": "ich.sources.cq500",
    "folder": "ich.sources.folder",
    "images": "ich.sources.images",
    "combined": "ich.sources.combined",
}


def source_options(download: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The source named by ``params.download`` and its options.

    The options are the source's own section (``download.<source>``, dashes as underscores);
    its ``path`` is that section's, or else the shared ``download.path``. When both are given
    and differ, which one was meant is unknowable: an error names both.
    """
    source = str(download["source"])
    section_key = source.strip().lower().replace("-", "_")
    options = dict(download.get(section_key) or {})
    own, shared = str(options.get("path") or ""), str(download.get("path") or "")
    if own and shared and Path(own).expanduser().resolve() != Path(shared).expanduser().resolve():
        raise SourceError(
            f"download.path ({shared!r}) and download.{section_key}.path ({own!r}) disagree: set only one of them"
        )
    options["path"] = own or shared
    return source, options


def materialise(source: str, params: Mapping[str, Any] | None, out_dir: str | Path) -> None:
    """Write the raw cohort of ``source`` (configured by ``params``) into ``out_dir``."""
    name = str(source).strip().lower().replace("_", "-")
    if name not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(params or {})
    if options.get("path") in ("", None):
        options.pop("path", None)  # an empty shared download.path means "not given"
    if name == "synthetic":
        from ich.synth import write_cohort

        write_cohort(out, **options)
        return
    module = importlib.import_module(SOURCES[name])
    module.materialise(options, out)


__all__ = ["SOURCES", "materialise", "source_options"]

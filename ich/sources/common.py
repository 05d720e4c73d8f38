"""Helpers the source adapters share: parameters, CSV tables, 0/1 flags, file walks, paths.

The raw-cohort tables the adapters write (manifest, labels, source.json) are
:mod:`ich.io.raw_cohort`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ich.io.raw_cohort import SourceError

NON_DICOM_SUFFIXES: frozenset[str] = frozenset(
    {
        ".csv",
        ".txt",
        ".json",
        ".md",
        ".xml",
        ".html",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".tar",
        ".7z",
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".nii",
        ".py",
        ".log",
        ".yaml",
        ".yml",
        ".xlsx",
        ".xls",
        ".db",
        ".ini",
        ".exe",
        ".bat",
        ".sh",
    }
)
"""File suffixes never treated as DICOM when walking a tree (DICOM files often have none)."""


def require_path(params: Mapping[str, Any], source: str, key: str = "path") -> Path:
    """The absolute local path ``params[key]``, which must exist."""
    value = params.get(key)
    if value in (None, ""):
        raise SourceError(f"source {source!r}: parameter {key!r} (a local folder) is required")
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise SourceError(f"source {source!r}: {key} {str(path)!r} does not exist")
    return path.resolve()


def read_csv_table(path: Path, *, required: Sequence[str] = (), what: str = "CSV") -> pd.DataFrame:
    """Read a CSV as strings (UTF-8 with or without BOM, any line endings); check columns."""
    if not path.is_file():
        raise SourceError(f"{what} not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SourceError(f"{what} {path} lacks columns {missing}; it has {list(frame.columns)}")
    return frame


def natural_key(text: str) -> list[Any]:
    """Sort key that orders "2" before "10"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def iter_files(root: Path, *, suffixes: Iterable[str] | None = None) -> list[Path]:
    """Regular files under ``root`` (no hidden files/folders), sorted naturally.

    ``suffixes``: keep only these (lower-case, with dot); ``None``: keep anything that might
    be DICOM (no suffix or a suffix outside :data:`NON_DICOM_SUFFIXES`).
    """
    wanted = {s.lower() for s in suffixes} if suffixes is not None else None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            suffix = Path(name).suffix.lower()
            if wanted is not None:
                if suffix not in wanted:
                    continue
            elif suffix in NON_DICOM_SUFFIXES or name.lower().endswith(".nii.gz"):
                continue
            path = Path(dirpath) / name
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: natural_key(str(p)))


def relative_or_absolute(path: Path, out_dir: Path) -> str:
    """Path relative to ``out_dir`` when inside it (downloaded data), else absolute (local data)."""
    path = path.resolve()
    try:
        return path.relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return str(path)

"""The pipeline as files: what a ``dvc repro`` of this project needs from a checkout.

Work copies of the project (the end-to-end test's tiny configuration, the cross-validation
bench's one DAG run per fold) are made from this list, so that a DVC run there never touches
the checkout's own DVC state.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PIPELINE_FILES = ("ich", "stages", "tools", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore", "pyproject.toml")
"""Code, DAG, workflow tools and DVC configuration; ``params.yaml`` is the copy's own."""


def copy_project(source: str | Path, dest: str | Path) -> None:
    """Copy the :data:`PIPELINE_FILES` of the checkout at ``source`` into ``dest`` (interpreter caches left out)."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
        else:
            raise FileNotFoundError(f"{src} is missing: not a checkout of this project")


def _files(root: Path) -> dict[str, bytes]:
    """The :data:`PIPELINE_FILES` under ``root``, relative path -> bytes (interpreter caches left out)."""
    found: dict[str, bytes] = {}
    for name in PIPELINE_FILES:
        top = root / name
        paths = sorted(top.rglob("*")) if top.is_dir() else [top] if top.exists() else []
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def project_differences(source: str | Path, dest: str | Path) -> list[str]:
    """The pipeline files that differ between two copies, or exist in one only (sorted)."""
    a, b = _files(Path(source)), _files(Path(dest))
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))

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

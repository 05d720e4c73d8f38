"""Atomic writes: an interrupted stage leaves either the old output or none, never half of one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a sibling temporary folder that replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a sibling temporary path to write; it replaces ``path`` only if the block succeeds.

    On an exception the temporary file is removed and ``path`` keeps its old content (or stays
    absent), so readers never see half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: object, *, sort_keys: bool = True) -> None:
    """Write ``data`` as indented JSON, atomically; NaN is an error. Keys are sorted (stable diffs)
    unless ``sort_keys=False`` keeps an order chosen for a reader."""
    write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV without its index, atomically."""
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index=False)

"""Content digests of files, folders and values: what a result or a checkpoint was made from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20

IGNORED_PARTS = frozenset({"__pycache__", ".pytest_cache"})
"""Folder names whose files never count as inputs (interpreter caches)."""


def _file_digest(path: str | Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    return _file_digest(path, "sha256")


def digest_values(*values: object) -> str:
    """Short digest of JSON-serialisable values (dict keys sorted, other objects by ``str``)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"cannot digest {path}: no such file or folder")
    return sorted(
        p for p in path.rglob("*") if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(path).parts)
    )


def digest_paths(paths: Iterable[str | Path]) -> str:
    """Digest of the names and bytes of every file under ``paths`` (files or folders).

    Like the md5 DVC records for a stage's deps, it changes when any byte, file name or the
    set of files changes, and not when only timestamps or the folders' locations do. A missing path is an error, so a
    typo cannot silently digest nothing.
    """
    digest = hashlib.sha256()
    for position, root in enumerate(map(Path, paths)):
        for file in _files(root):
            name = file.relative_to(root).as_posix() if root.is_dir() else root.name
            digest.update(f"{position}:{name}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()[:16]


def code_digest() -> str:
    """Digest of the ``ich`` package's source files, wherever the package lies."""
    return digest_paths([Path(__file__).resolve().parents[1]])


def md5_file(path: str | Path) -> str:
    """Hex md5 of a file's bytes, read in chunks (the digest DVC records for a file)."""
    return _file_digest(path, "md5")


def dvc_md5(path: str | Path) -> str:
    """The md5 ``dvc.lock`` records for ``path``: the file's md5, or for a folder DVC's ``.dir`` hash
    (the md5 of the JSON list of its files' md5s and relative paths, sorted by path)."""
    path = Path(path)
    if path.is_file():
        return md5_file(path)
    entries = sorted(
        ({"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()} for p in _files(path)),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries).encode()).hexdigest() + ".dir"

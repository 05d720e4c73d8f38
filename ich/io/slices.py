"""Where converted slice PNGs live, and how to read them back: loose files or packed archives.

The slice index's ``image_path``/``mask_path`` hold a *reference* relative to the converted
folder, in one of two forms:

* ``images/3f/3f01c2....png``: one PNG file per slice (``convert.shard_size: 0``);
* ``images/000012.zip/3f01c2....png``: member ``3f01c2....png`` of the uncompressed zip archive
  ``images/000012.zip`` (``convert.shard_size: N``, N slices per archive).

Packing exists for DVC: it hashes, caches and re-checks every file of an output, which takes
minutes per ``dvc status`` at RSNA's 752,803 slices when each is a file, and about a second
when they are packed into a few hundred archives (``docs/scaling.md``). Members are stored
uncompressed (the PNGs are compressed already) with a fixed timestamp, so the same slices give
byte-identical archives and DVC sees an unchanged output.

:func:`read_slice` (``converted folder / reference``) reads either form. Open archives are
cached per process; a ``DataLoader`` worker forked from a parent that had one open re-opens
its own, since a shared file offset would interleave reads.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

ARCHIVE_SUFFIX = ".zip"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip epoch: archives do not depend on when they were written
_OPEN_ARCHIVES_PER_PROCESS = 64


def packed_ref(archive: str, member: str) -> str:
    """The reference of ``member`` inside ``archive`` (both relative, ``archive`` ends in .zip)."""
    return f"{archive}/{member}"


def split_ref(ref: str) -> tuple[str, str | None]:
    """``(archive, member)`` for a packed reference, ``(ref, None)`` for a loose file."""
    head, sep, member = ref.partition(ARCHIVE_SUFFIX + "/")
    return (head + ARCHIVE_SUFFIX, member) if sep else (ref, None)


def member_info(name: str) -> zipfile.ZipInfo:
    """A stored (uncompressed), fixed-time, world-readable zip entry for ``name``."""
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


_archives: OrderedDict[tuple[int, str], zipfile.ZipFile] = OrderedDict()


def _archive(path: Path) -> zipfile.ZipFile:
    key = (os.getpid(), str(path))
    if key in _archives:
        _archives.move_to_end(key)
        return _archives[key]
    for stale in [k for k in _archives if k[0] != key[0]]:
        _archives.pop(stale).close()  # inherited through fork: reading would move the parent's offset
    while len(_archives) >= _OPEN_ARCHIVES_PER_PROCESS:
        _archives.popitem(last=False)[1].close()
    _archives[key] = zipfile.ZipFile(path)
    return _archives[key]


def read_slice_bytes(path: str | Path) -> bytes:
    """The encoded PNG at ``path`` = converted folder / index reference (either form)."""
    archive, member = split_ref(str(path))
    if member is None:
        return Path(path).read_bytes()
    try:
        return _archive(Path(archive)).read(member)
    except KeyError:
        raise FileNotFoundError(f"{member} is not in {archive}") from None


def read_slice(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode the slice PNG at ``path`` (either form): a drop-in for ``cv2.imread(str(path), flags)``
    (BGR for colour) that raises instead of returning None."""
    image = cv2.imdecode(np.frombuffer(read_slice_bytes(path), np.uint8), flags)
    if image is None:
        raise ValueError(f"cannot decode slice image {path}")
    return image


def remove_slices(root: str | Path, refs: Iterable[str]) -> None:
    """Delete slice files, or rewrite archives without the given members (an emptied archive
    is deleted), so the converted folder holds exactly what the index lists."""
    root = Path(root)
    members: dict[str, set[str]] = {}
    for ref in refs:
        archive, member = split_ref(ref)
        if member is None:
            (root / ref).unlink(missing_ok=True)
        else:
            members.setdefault(archive, set()).add(member)
    for archive, drop in members.items():
        path = root / archive
        tmp = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp, "w") as target:
            kept = [info for info in source.infolist() if info.filename not in drop]
            for info in kept:
                target.writestr(member_info(info.filename), source.read(info))
        if kept:
            os.replace(tmp, path)
        else:
            tmp.unlink()
            path.unlink()


__all__ = [
    "ARCHIVE_SUFFIX",
    "member_info",
    "packed_ref",
    "read_slice",
    "read_slice_bytes",
    "remove_slices",
    "split_ref",
]

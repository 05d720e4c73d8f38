"""Where converted slice PNGs live, how they are written and read back: loose files or packed archives.

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
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from ich.io.atomic import atomic_file

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


def read_mask(root: str | Path, mask_path: str | float, shape: tuple[int, int]) -> np.ndarray:
    """The boolean ``shape`` mask of an index row: its ``mask_path`` under ``root``, all False when
    the row has none (a slice whose mask is known to be empty, see :func:`ich.labels.mask_is_known`)."""
    if not isinstance(mask_path, str) or not mask_path:
        return np.zeros(shape, dtype=bool)
    mask = read_slice(Path(root) / mask_path, cv2.IMREAD_GRAYSCALE)
    if mask.shape != tuple(shape):
        raise ValueError(f"{mask_path}: mask {mask.shape} and its slice {tuple(shape)} differ in size")
    return mask > 0


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
        with zipfile.ZipFile(path) as source:
            kept = [info for info in source.infolist() if info.filename not in drop]
            if not kept:
                path.unlink()
                continue
            with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w") as target:
                for info in kept:
                    target.writestr(member_info(info.filename), source.read(info))


# ----------------------------------------------------------------------------- writers


_PNG_FILTER = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
"""No PNG row filter: on noisy CT slices the adaptive filters cost twice the encoding time and
make files larger (256 px slices at level 1: 1.2 ms and 29 kB unfiltered, 2.5 ms and 33 kB adaptive)."""


def output_path(folder: str, slice_id: str) -> str:
    """Where a slice's PNG file lives, relative to the output folder (256 prefix folders)."""
    return f"{folder}/{slice_id[:2]}/{slice_id}.png"


class SliceFiles:
    """Writes one PNG file per slice at :func:`output_path`.

    Two source files with one key (a duplicate SOPInstanceUID) would write the same name, in
    any order across workers. The name is claimed exclusively: the loser writes under a name
    unique to its source file (``tag(source_name)``), and the converter later puts the first
    file in manifest order at the canonical name, whichever process won.
    """

    def __init__(self, out_dir: Path, tag: Callable[[str], str]) -> None:
        self.out_dir, self.tag = out_dir, tag

    def put(self, folder: str, slice_id: str, source_name: str, png: bytes) -> str:
        rel = output_path(folder, slice_id)
        try:
            self._create(self.out_dir / rel, png)
        except FileExistsError:
            rel = f"{folder}/{slice_id[:2]}/{slice_id}.{self.tag(source_name)}.png"
            self._create(self.out_dir / rel, png)
        return rel

    @staticmethod
    def _create(path: Path, png: bytes) -> None:
        """Create ``path``, never overwrite; its folder is made on first use only, because a
        mkdir per file costs as much as encoding the PNG."""
        try:
            with open(path, "xb") as f:
                f.write(png)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as f:
                f.write(png)

    def close(self) -> None:
        """Nothing is held open."""


class SliceArchive:
    """Writes one unit's slices into ``<folder>/<shard>.zip`` (one archive per folder, opened
    on first use); a duplicate key inside the archive gets a name unique to its source file
    (``tag(source_name)``)."""

    def __init__(self, out_dir: Path, shard: int, tag: Callable[[str], str]) -> None:
        self.out_dir, self.name, self.tag = out_dir, f"{shard:06d}.zip", tag
        self.archives: dict[str, tuple[zipfile.ZipFile, set[str]]] = {}

    def put(self, folder: str, slice_id: str, source_name: str, png: bytes) -> str:
        if folder not in self.archives:
            (self.out_dir / folder).mkdir(parents=True, exist_ok=True)
            self.archives[folder] = zipfile.ZipFile(self.out_dir / folder / self.name, "x"), set()
        archive, names = self.archives[folder]
        member = f"{slice_id}.png"
        if member in names:
            member = f"{slice_id}.{self.tag(source_name)}.png"
        names.add(member)
        archive.writestr(member_info(member), png)
        return packed_ref(f"{folder}/{self.name}", member)

    def close(self) -> None:
        for archive, _ in self.archives.values():
            archive.close()


def encode_png(image: np.ndarray, compression: int) -> bytes:
    """PNG bytes of ``image`` at zlib level ``compression``, without row filters."""
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression, *_PNG_FILTER])
    if not ok:
        raise OSError(f"could not encode a PNG of shape {image.shape}")
    return encoded.tobytes()


__all__ = [
    "ARCHIVE_SUFFIX",
    "SliceArchive",
    "SliceFiles",
    "encode_png",
    "member_info",
    "output_path",
    "packed_ref",
    "read_slice",
    "read_slice_bytes",
    "remove_slices",
    "split_ref",
]

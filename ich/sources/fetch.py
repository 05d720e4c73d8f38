"""Downloads for the real sources: checksum verification, safe extraction, credentials.

* **Checksums**: PhysioNet publishes ``SHA256SUMS.txt`` (``<sha256>  <relative path>`` per
  line, the ``sha256sum`` format); :func:`verify_checksums` checks every listed file.
* **Archives**: :func:`safe_extract` unpacks zip and tar (gz/bz2/xz) archives but refuses
  any member that would land outside the target folder (absolute paths, ``..``, links whose
  target resolves outside, device files); nothing is written if any member is refused.
* **Credentials** come from the environment only and are never logged or written:
  PhysioNet ``PHYSIONET_USERNAME``/``PHYSIONET_PASSWORD``; Kaggle ``KAGGLE_USERNAME``/
  ``KAGGLE_KEY`` or ``~/.kaggle/kaggle.json`` (read by the ``kaggle`` package itself).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit, urlunsplit

from ich.io.atomic import atomic_file
from ich.io.digest import sha256_file

PHYSIONET_BASE = "https://physionet.org/files"
CT_ICH_PROJECT = "ct-ich"
CT_ICH_VERSION = "1.3.1"
RSNA_COMPETITION = "rsna-intracranial-hemorrhage-detection"
CHUNK = 1 << 20

_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(.+)$")


class FetchError(RuntimeError):
    """A download, verification or extraction problem (message safe to log)."""


class ChecksumError(FetchError):
    """Files whose sha256 differs from the published one (or that are missing)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        listed = "; ".join(f"{p}: {r}" for p, r in list(self.problems.items())[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} file(s) failed sha256 verification: {listed}{more}")


class UnsafeArchiveError(FetchError):
    """An archive member would be written outside the target folder."""


# ----------------------------------------------------------------------------- checksums


def parse_sha256sums(text: str) -> dict[str, str]:
    """``{relative path: lower-case sha256}`` from ``sha256sum``/PhysioNet SHA256SUMS text."""
    sums: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        match = _SUM_LINE.match(line)
        if not match:
            raise FetchError(f"SHA256SUMS line {number} is not '<sha256> <path>': {line[:80]!r}")
        digest, name = match.group(1).lower(), match.group(2).strip()
        name = name[2:] if name.startswith("./") else name
        _check_relative(name)
        if name in sums and sums[name] != digest:
            raise FetchError(f"SHA256SUMS lists {name!r} twice with different digests")
        sums[name] = digest
    return sums


def _check_relative(name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
        raise FetchError(f"unsafe path in checksum list: {name!r}")


def verify_checksums(root: str | Path, sums: Mapping[str, str], *, only: Iterable[str] | None = None) -> None:
    """Raise :class:`ChecksumError` unless every listed file (or ``only``) matches."""
    root = Path(root)
    names = list(only) if only is not None else list(sums)
    problems: dict[str, str] = {}
    for name in names:
        if name not in sums:
            problems[name] = "not listed in the checksum file"
            continue
        path = root / name
        if not path.is_file():
            problems[name] = "missing"
            continue
        actual = sha256_file(path)
        if actual != sums[name]:
            problems[name] = f"sha256 {actual[:12]}... expected {sums[name][:12]}..."
    if problems:
        raise ChecksumError(problems)


# ----------------------------------------------------------------------------- extraction


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def _member_target(root: Path, name: str) -> Path:
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in PurePosixPath(clean).parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target folder")
    target = Path(os.path.normpath(root / clean))
    if not _inside(root, target):
        raise UnsafeArchiveError(f"archive member {name!r} points outside the target folder")
    return target


def _check_tar(root: Path, members: list[tarfile.TarInfo]) -> None:
    for member in members:
        target = _member_target(root, member.name)
        if member.isdev() or member.isfifo():
            raise UnsafeArchiveError(f"archive member {member.name!r} is a device or fifo")
        if member.issym():
            link = member.linkname
            if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
                raise UnsafeArchiveError(f"symlink {member.name!r} -> {link!r} is absolute")
            resolved = Path(os.path.normpath(target.parent / link))
            if not _inside(root, resolved):
                raise UnsafeArchiveError(f"symlink {member.name!r} -> {link!r} points outside the target folder")
        elif member.islnk():
            _member_target(root, member.linkname)  # hard link targets are archive-relative


def _check_zip(root: Path, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        _member_target(root, info.filename)
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"archive member {info.filename!r} is a symlink (refused in zip archives)")


def safe_extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` after checking every member; return files."""
    archive, root = Path(archive), Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_zip(root, infos)
            for info in infos:
                target = _member_target(root, info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written.append(target)
        return written
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            _check_tar(root, members)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(root, members=members, **kwargs)
            written = [root / m.name for m in members if m.isfile()]
        return written
    raise FetchError(f"{archive.name}: not a zip or tar archive")


# ----------------------------------------------------------------------------- credentials


def physionet_credentials() -> tuple[str, str] | None:
    """(username, password) from PHYSIONET_USERNAME/PHYSIONET_PASSWORD, or None."""
    user = os.environ.get("PHYSIONET_USERNAME", "").strip()
    password = os.environ.get("PHYSIONET_PASSWORD", "")
    if user and password:
        return user, password
    return None


def kaggle_credentials_available() -> bool:
    """True if the ``kaggle`` package will find credentials (env or kaggle.json)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR")
    candidates = [Path(config_dir) / "kaggle.json"] if config_dir else []
    candidates.append(Path.home() / ".kaggle" / "kaggle.json")
    return any(p.is_file() for p in candidates)


def redact_url(url: str) -> str:
    """The URL without any user:password part (for messages)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


# ----------------------------------------------------------------------------- downloads


def physionet_url(project: str, version: str, path: str = "") -> str:
    """``https://physionet.org/files/<project>/<version>/<path>`` with the path quoted."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", project):
        raise FetchError(f"invalid PhysioNet project name {project!r}")
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise FetchError(f"invalid PhysioNet version {version!r}")
    if path:
        _check_relative(path)
    return f"{PHYSIONET_BASE}/{project}/{version}/" + quote(path.lstrip("/"), safe="/")


def download_file(
    url: str,
    dest: str | Path,
    *,
    auth: tuple[str, str] | None = None,
    expected_sha256: str | None = None,
    session=None,
    timeout: float = 60.0,
    denied_hint: str = "check your credentials and that you accepted the data licence",
) -> Path:
    """Stream ``url`` to ``dest`` atomically; verify sha256 when given. Needs ``requests``."""
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    getter = session or requests
    shown = redact_url(url)
    try:
        response = getter.get(url, auth=auth, stream=True, timeout=timeout)
    except requests.RequestException as exc:
        raise FetchError(f"download failed: {shown} ({type(exc).__name__})") from None
    with response, atomic_file(dest) as tmp:
        if response.status_code in (401, 403):
            raise FetchError(f"access denied ({response.status_code}) for {shown}: {denied_hint}")
        if response.status_code != 200:
            raise FetchError(f"download failed: HTTP {response.status_code} for {shown}")
        digest = hashlib.sha256()
        with open(tmp, "wb") as f:
            for block in response.iter_content(CHUNK):
                f.write(block)
                digest.update(block)
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256.lower():
            raise ChecksumError({dest.name: f"sha256 {actual[:12]}... expected {expected_sha256.lower()[:12]}..."})
    return dest


def physionet_download(
    project: str,
    version: str,
    dest: str | Path,
    *,
    include: Callable[[str], bool] | None = None,
    session=None,
    sums_name: str = "SHA256SUMS.txt",
) -> Path:
    """Download a PhysioNet project version into ``dest`` and verify every file by sha256.

    Files already present with the right digest are not downloaded again. ``include``
    filters the relative paths listed in the checksum file.
    """
    dest = Path(dest)
    auth = physionet_credentials()
    hint = (
        "set PHYSIONET_USERNAME and PHYSIONET_PASSWORD and accept the project's data use agreement "
        f"on https://physionet.org/content/{project}/{version}/"
    )
    sums_path = download_file(
        physionet_url(project, version, sums_name), dest / sums_name, auth=auth, session=session, denied_hint=hint
    )
    sums = parse_sha256sums(sums_path.read_text(encoding="utf-8"))
    names = [n for n in sums if include is None or include(n)]
    if not names:
        raise FetchError(f"{sums_name} of {project} {version} lists no files to download")
    for name in names:
        target = dest / Path(*PurePosixPath(name).parts)
        if target.is_file() and sha256_file(target) == sums[name]:
            continue
        download_file(
            physionet_url(project, version, name),
            target,
            auth=auth,
            expected_sha256=sums[name],
            session=session,
            denied_hint=hint,
        )
    verify_checksums(dest, sums, only=names)
    return dest


def kaggle_competition_download(competition: str, dest: str | Path) -> list[Path]:
    """Download and safely extract a Kaggle competition's files with the ``kaggle`` package."""
    if not kaggle_credentials_available():
        raise FetchError(
            "Kaggle credentials not found: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json "
            "in ~/.kaggle/ (and accept the competition rules on kaggle.com)"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise FetchError("the Kaggle download needs the kaggle package: pip install kaggle") from None
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    api = KaggleApi()
    try:
        api.authenticate()
        api.competition_download_files(competition, path=str(dest), quiet=False)
    except Exception as exc:  # kaggle raises its own ApiException types
        raise FetchError(f"Kaggle download of {competition!r} failed ({type(exc).__name__})") from None
    files: list[Path] = []
    for archive in sorted(dest.glob("*.zip")):
        files += safe_extract(archive, dest)
        archive.unlink()
    return files


__all__ = [
    "CT_ICH_PROJECT",
    "CT_ICH_VERSION",
    "ChecksumError",
    "FetchError",
    "RSNA_COMPETITION",
    "UnsafeArchiveError",
    "download_file",
    "kaggle_competition_download",
    "kaggle_credentials_available",
    "parse_sha256sums",
    "physionet_credentials",
    "physionet_download",
    "physionet_url",
    "redact_url",
    "safe_extract",
    "verify_checksums",
]

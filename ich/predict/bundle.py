"""A trained pipeline as a folder that can be handed over: what ``ich predict`` reads, and nothing else.

The layout follows MONAI Bundle's where it fits (``configs/metadata.json``, ``docs/README.md``,
networks under ``models/``), beside a manifest that says everything a prediction decides with::

    manifest.json                  format, deciders (members, weights, operating points), input
                                   conversion, training cohort, familiarity reference, versions,
                                   packages, and every other file's md5 and size
    configs/metadata.json          MONAI Bundle metadata names (task, network_data_format, ...)
    docs/README.md                 for a person: what it is, how to run it, what it learned from
    models/<classifier>/           network.json, model.pt
    segmenters/<segmenter>/        network.json, model.pt, postprocess.json

:class:`Bundle` opens one: the manifest must be of a known format and every file it lists present
with its size; a file is checked against its md5 when a prediction reads it (:meth:`Bundle.path`),
so a half-copied or altered bundle is refused, naming the file, and a bundle never pays for hashing
networks it does not load. In a project, :func:`open_bundle` also compares the bundle with the
md5 ``dvc.lock`` records for it; whether the bundle is stale against ``params.yaml`` and the
trained folders is DVC's business (the ``bundle`` stage depends on all it packs).

No PyTorch here: ``ich predict`` reads the manifest to refuse a bad input or an unknown model
before any network loads. The bundle is written by :mod:`ich.predict.pack`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ich import layout
from ich.io.digest import md5_file
from ich.params import SAFE_LOADER

BUNDLE_FORMAT = "ich-bundle/1"
MANIFEST = "manifest.json"
BUNDLE_STAGE = "bundle"
DEFAULT = "default"
"""The model or segmenter the bundle names as its default (``params.yaml`` ``bundle``)."""


class StaleArtefactError(RuntimeError):
    """The trained artefacts are missing, altered or not what ``dvc.lock`` records; the message says what to do."""


@dataclass(frozen=True)
class Bundle:
    """An opened bundle: its folder, its manifest and the manifest file's md5 (the bundle's identity)."""

    root: Path
    manifest: dict[str, Any]
    md5: str

    @classmethod
    def open(cls, root: str | Path) -> Bundle:
        """Read ``root``'s manifest and check that every file it lists is there with its size."""
        root = Path(root)
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{root}: no {MANIFEST}; a bundle is the folder the `bundle` stage writes (data/bundle)"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StaleArtefactError(f"{manifest_path}: not a readable manifest ({error})") from error
        if manifest.get("format") != BUNDLE_FORMAT:
            raise StaleArtefactError(
                f"{manifest_path}: format {manifest.get('format')!r}; this ich reads {BUNDLE_FORMAT!r} bundles"
            )
        for relpath, entry in manifest["files"].items():
            path = root / relpath
            if not path.is_file():
                raise StaleArtefactError(
                    f"{path}: missing from the bundle (its manifest lists it); copy the bundle again"
                )
            if path.stat().st_size != entry["size"]:
                raise StaleArtefactError(
                    f"{path}: {path.stat().st_size} bytes, the manifest records {entry['size']}: the bundle was altered "
                    "or half-copied; copy it again"
                )
        return cls(root, manifest, md5_file(manifest_path))

    def path(self, relpath: str) -> Path:
        """The file ``relpath`` of the bundle, after checking its md5 against the manifest."""
        entry = self.manifest["files"].get(relpath)
        if entry is None:
            raise StaleArtefactError(f"{self.root}: the manifest lists no {relpath}")
        path = self.root / relpath
        actual = md5_file(path)
        if actual != entry["md5"]:
            raise StaleArtefactError(
                f"{path}: md5 {actual}, the manifest records {entry['md5']}: the bundle was altered; copy it again"
            )
        return path

    def folder(self, relpath: str) -> Path:
        """The folder ``relpath`` of the bundle, after checking the md5 of every file the manifest lists in it."""
        prefix = relpath.rstrip("/") + "/"
        for name in self.manifest["files"]:
            if name.startswith(prefix):
                self.path(name)
        return self.root / relpath

    def dvc_md5(self) -> str:
        """The md5 DVC records for the bundle folder (:func:`ich.io.digest.dvc_md5`), from the manifest's
        file md5s and the manifest's own, without hashing the networks again."""
        entries = [{"md5": e["md5"], "relpath": name} for name, e in self.manifest["files"].items()]
        entries.append({"md5": self.md5, "relpath": MANIFEST})
        listing = json.dumps(sorted(entries, key=lambda e: e["relpath"]))
        return hashlib.md5(listing.encode()).hexdigest() + ".dir"

    @property
    def deciders(self) -> list[str]:
        """The models that can decide: every classifier, and ``ensemble``."""
        return list(self.manifest["deciders"])

    @property
    def segmenters(self) -> list[str]:
        """The bleed segmenters packed."""
        return list(self.manifest["segmenters"])

    def check_choices(self, model: str = DEFAULT, segmenter: str | None = DEFAULT) -> tuple[str, str | None]:
        """``model`` and ``segmenter`` as chosen (:data:`DEFAULT`: the bundle's; segmenter ``None``: none),
        refused with ``ValueError`` listing the choices when the bundle has no such one."""
        defaults = self.manifest["defaults"]
        model = defaults["model"] if model == DEFAULT else model
        if model not in self.deciders:
            raise ValueError(f"unknown model {model!r}: choose one of {', '.join(self.deciders)}")
        segmenter = defaults["segmenter"] if segmenter == DEFAULT else segmenter
        if segmenter is not None and segmenter not in self.segmenters:
            raise ValueError(f"unknown segmenter {segmenter!r}: choose one of {', '.join([*self.segmenters, 'none'])}")
        return model, segmenter


def open_bundle(project: str | Path = ".", bundle: str | Path | Bundle | None = None) -> Bundle:
    """The bundle ``bundle``, read alone (an opened one as it is); or, without it, ``project``'s
    ``data/bundle``, refused with :class:`StaleArtefactError` when ``dvc.lock`` records another one there."""
    if isinstance(bundle, Bundle):
        return bundle
    if bundle is not None:
        return Bundle.open(bundle)
    project = Path(project)
    lock_path = project / "dvc.lock"
    if not lock_path.is_file():
        raise FileNotFoundError(
            f"{project}: no dvc.lock, the pipeline has not run there; run `make repro` first, or name a bundle (--bundle)"
        )
    root = project / layout.BUNDLE
    if not (root / MANIFEST).is_file():
        raise FileNotFoundError(f"{root}: no bundle; run `dvc repro` (or `dvc checkout`) in {project}")
    opened = Bundle.open(root)
    entry = yaml.load(lock_path.read_text(), Loader=SAFE_LOADER)["stages"].get(BUNDLE_STAGE)
    recorded = next((o["md5"] for o in (entry or {}).get("outs", []) if o["path"] == layout.BUNDLE.as_posix()), None)
    if recorded != opened.dvc_md5():
        raise StaleArtefactError(
            f"{root} is not what dvc.lock records (md5 {opened.dvc_md5()}, dvc.lock {recorded}): run `dvc repro`, "
            "or `dvc checkout` to bring back the recorded one"
        )
    return opened


__all__ = ["BUNDLE_FORMAT", "DEFAULT", "MANIFEST", "Bundle", "StaleArtefactError", "open_bundle"]

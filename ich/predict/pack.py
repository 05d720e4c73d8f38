"""Write a project's trained pipeline as a bundle (:mod:`ich.predict.bundle`): the ``bundle`` stage.

Everything ``ich predict`` used to gather from the workspace at start-up is settled here once:
the deciders (every classifier at its validation-chosen points, and the ensemble with its
weights), how a study is converted for these networks (:func:`ich.predict.provenance.study_conversion`),
the training cohort's summary, and what its studies look like as numbers
(:func:`ich.predict.familiarity.training_reference`), so that the bundle needs no training image,
``params.yaml``, ``dvc.lock`` or ``data/`` folder. ``versions`` keeps the md5 each packed folder
has in the project (what ``dvc.lock`` records for it), which every report quotes.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ich import __version__, layout
from ich.data.cohort_conversion import ConvertConfig
from ich.io.atomic import write_json, write_text
from ich.io.digest import dvc_md5, md5_file
from ich.labels import SUBTYPES
from ich.networks import NETWORK_FILE
from ich.networks.segmenter import check_derived_source, read_segmenter_spec, segmentation_networks
from ich.params import load_params
from ich.predict.bundle import BUNDLE_FORMAT, MANIFEST
from ich.predict.familiarity import training_reference
from ich.predict.names import DISCLAIMER, ENSEMBLE
from ich.predict.provenance import study_conversion, training_cohort
from ich.segmentation.maps import POST_PROCESS_FILE

WEIGHTS_FILE = "model.pt"
PACKAGES = ("torch", "torchvision", "timm", "numpy", "opencv-python-headless", "pydicom", "nibabel", "highdicom")
"""Whose versions the manifest records: what the networks and the reading of a study depend on."""


def _copy(source: Path, out: Path, relpath: str) -> None:
    (out / relpath).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / relpath)


def _points(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "operating_points.json").read_text())


def _deciders(project: Path, models: list[str], ensemble: bool) -> dict[str, dict[str, Any]]:
    deciders = {m: {"members": {m: 1.0}, "operating_points": _points(project / layout.MODELS / m)} for m in models}
    if not ensemble:
        return deciders
    weights = json.loads((project / layout.ENSEMBLE / "weights.json").read_text())
    deciders[ENSEMBLE] = {
        "members": {m: float(w) for m, w in weights.items() if w > 0},
        "operating_points": _points(project / layout.ENSEMBLE),
        "chosen_by": "the ensemble stage's grid search on validation predictions",
    }
    return deciders


def _network_segmenters(params: dict[str, Any]) -> list[str]:
    return [name for name in params["segmenters"] if params["segment"][name].get("method") in segmentation_networks()]


def _metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    """MONAI Bundle's ``configs/metadata.json`` names, for what this bundle takes and gives."""
    training = manifest["training"]
    convert = manifest["input"]["convert"]
    return {
        "version": __version__,
        "changelog": {__version__: "written by the ich pipeline's bundle stage"},
        "pytorch_version": manifest["packages"]["torch"],
        "numpy_version": manifest["packages"]["numpy"],
        "required_packages_version": {k: v for k, v in manifest["packages"].items() if k not in ("torch", "numpy")},
        "task": "Intracranial hemorrhage detection (study, slice and subtype probabilities) and bleed segmentation on head CT",
        "description": "Deciders: " + ", ".join(manifest["deciders"]) + "; run with `ich predict STUDY --bundle DIR`",
        "authors": "the ich pipeline's contributors",
        "copyright": "see the project's LICENSE",
        "data_source": f"{training['source']}: {training['citation']}".rstrip(": "),
        "data_type": "DICOM series, NIfTI volumes, or pre-windowed PNG/JPEG slices",
        "intended_use": DISCLAIMER,
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": len(convert["windows"]),
                    "spatial_shape": [convert["size"], convert["size"]],
                    "dtype": "uint8",
                    "value_range": [0, 255],
                    "is_patch_data": False,
                    "channel_def": {
                        str(i): f"window {lo:g}..{hi:g} HU" for i, (lo, hi) in enumerate(convert["windows"])
                    },
                }
            },
            "outputs": {
                "pred": {
                    "type": "probabilities",
                    "format": "classes",
                    "num_channels": 1 + len(SUBTYPES),
                    "spatial_shape": [1],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {str(i): name for i, name in enumerate(["any", *SUBTYPES])},
                },
                "seg": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": 1,
                    "spatial_shape": [convert["size"], convert["size"]],
                    "dtype": "uint8",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "bleed"},
                },
            },
        },
    }


def _readme(manifest: dict[str, Any]) -> str:
    training, defaults = manifest["training"], manifest["defaults"]
    lines = [
        "# An ich pipeline bundle",
        "",
        "A trained intracranial hemorrhage pipeline as one folder: `ich predict` needs nothing else.",
        "",
        "    ich predict STUDY --bundle THIS_FOLDER --out report/",
        "",
        f"Deciding by default: `{defaults['model']}`; bleed outlines by `{defaults['segmenter']}`. Deciders "
        f"(`--model`): {', '.join(manifest['deciders'])}. Segmenters (`--segmenter`): "
        f"{', '.join([*manifest['segmenters'], 'none'])}.",
        "",
        f"Trained on {training['source']}{' (SYNTHETIC: a demo, not a model)' if training['synthetic'] else ''}; "
        f"patients: {', '.join(f'{n} {s}' for s, n in training['patients'].items())}. {training['citation']}",
        "",
        f"Studies with Hounsfield units are windowed as {manifest['input']['windows_note']}.",
        "",
        "`manifest.json` lists every file with its md5; `ich predict` refuses a bundle with a missing or altered "
        "file. `configs/metadata.json` describes input and output in MONAI Bundle's terms.",
        "",
        DISCLAIMER,
        "",
    ]
    return "\n".join(lines)


def pack_bundle(
    project: str | Path, params: dict[str, Any], out: str | Path, *, ensemble: bool = True
) -> dict[str, Any]:
    """Write the bundle of ``project`` (whose pipeline has run, with ``params`` merged as
    :func:`ich.params.load_params` gives them) into the empty folder ``out``; its manifest.
    ``ensemble=False`` packs the networks alone (a project that trained some models only)."""
    project, out = Path(project), Path(out)
    models = list(params["models"])
    segmenters = _network_segmenters(params)
    defaults = params["bundle"]
    if defaults["model"] not in [*models, *([ENSEMBLE] if ensemble else [])]:
        raise ValueError(f"bundle.model {defaults['model']!r} is neither a trained model nor {ENSEMBLE}")
    if defaults["segmenter"] not in [*segmenters, None]:
        raise ValueError(f"bundle.segmenter {defaults['segmenter']!r} is not a network section of segment (or null)")
    training = {**training_cohort(project), "split_md5": dvc_md5(project / layout.SPLIT_DIR)}
    convert, windows_note = study_conversion(ConvertConfig.from_params(params["convert"]), training)
    versions = {layout.ENSEMBLE.as_posix(): dvc_md5(project / layout.ENSEMBLE)} if ensemble else {}
    for name in models:
        folder = project / layout.MODELS / name
        versions[(layout.MODELS / name).as_posix()] = dvc_md5(folder)
        for file in (NETWORK_FILE, WEIGHTS_FILE):
            _copy(folder / file, out, f"models/{name}/{file}")
    for name in segmenters:
        folder = project / layout.SEGMENTERS / name
        check_derived_source(read_segmenter_spec(folder), convert.windows[0], name)
        versions[(layout.SEGMENTERS / name).as_posix()] = dvc_md5(folder)
        for file in (NETWORK_FILE, WEIGHTS_FILE, POST_PROCESS_FILE):
            _copy(folder / file, out, f"segmenters/{name}/{file}")
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "defaults": {"model": defaults["model"], "segmenter": defaults["segmenter"]},
        "deciders": _deciders(project, models, ensemble),
        "classifiers": {
            m: {"folder": f"models/{m}", "subtypes": bool(params["train"][m].get("subtypes", False))} for m in models
        },
        "segmenters": {s: {"folder": f"segmenters/{s}", "method": params["segment"][s]["method"]} for s in segmenters},
        "input": {
            "convert": {**asdict(convert), "windows": [list(w) for w in convert.windows]},
            "windows_note": windows_note,
            "slice_thickness_mm": training["slice_thickness_mm"],
        },
        "training": training,
        "familiarity_reference": training_reference(
            project / layout.CONVERTED, pd.read_csv(project / layout.INDEX), pd.read_csv(project / layout.SPLIT)
        ),
        "versions": versions,
        # Python's minor version only: a bundle's bytes must not depend on the machine that packs it
        "packages": {"ich": __version__, "python": ".".join(platform.python_version_tuple()[:2])}
        | {name: metadata.version(name) for name in PACKAGES},
    }
    write_json(out / "configs/metadata.json", _metadata(manifest))
    write_text(out / "docs/README.md", _readme(manifest))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest["files"] = {p.relative_to(out).as_posix(): {"md5": md5_file(p), "size": p.stat().st_size} for p in files}
    write_json(out / MANIFEST, manifest, sort_keys=False)  # the classifiers' order picks the subtype model
    return manifest


def pack_networks(project: str | Path, out: str | Path, models: list[str], segmenter: str | None = None) -> Path:
    """``out``: a bundle of some of ``project``'s trained networks, without the ensemble, deciding by
    ``models[0]``; for experiments that train one model of a split (``dvc repro train@<model>``)."""
    params = load_params(Path(project) / "params.yaml")
    chosen = {
        **params,
        "models": list(models),
        "segmenters": [segmenter] if segmenter else [],
        "bundle": {"model": models[0], "segmenter": segmenter},
    }
    pack_bundle(project, chosen, out, ensemble=False)
    return Path(out)


__all__ = ["pack_bundle", "pack_networks"]

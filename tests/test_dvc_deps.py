"""``dvc.yaml`` deps cover the whole ``ich`` import closure of every stage script.

DVC re-runs a stage only when a listed dep changes, so a module that a stage imports (directly,
through another module, inside a function, or by name through ``importlib`` as
:mod:`ich.sources` does) but that its deps miss would make ``dvc repro`` keep stale results.
The closure is computed statically from the source, so a new import fails here before it can
fail a user.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

MODULE_NAME = re.compile(r"ich(\.\w+)*")


def module_file(module: str, root: Path = REPO) -> Path | None:
    """The file that defines ``module`` (package ``__init__`` or plain module), if it exists."""
    path = root.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, root: Path = REPO) -> set[str]:
    """Every ``ich`` module name that ``path`` imports anywhere, or names as a string constant.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule); relative imports are
    resolved against the file's package; a string constant that is a dotted ``ich`` name is an
    ``importlib`` target (e.g. the registry of :data:`ich.sources.SOURCES`).
    """
    parts = path.relative_to(root).with_suffix("").parts
    package = list(parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            names.add(node.value)
    return {n for n in names if n == "ich" or n.startswith("ich.")}


def import_closure(script: Path, root: Path = REPO) -> set[Path]:
    """``script`` and every ``ich`` file it loads, transitively (a module loads its packages too)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, root):
            pieces = module.split(".")
            for depth in range(1, len(pieces) + 1):
                found = module_file(".".join(pieces[:depth]), root)
                if found is not None:
                    todo.append(found)
    return seen


def stage_scripts(dvc: dict) -> dict[str, tuple[Path, list[str]]]:
    """``{stage: (script, deps)}`` of every stage of a parsed ``dvc.yaml`` (``foreach`` bodies too)."""
    stages = {}
    for name, stage in dvc["stages"].items():
        body = stage.get("do", stage)
        match = re.search(r"stages/\w+\.py", body["cmd"])
        assert match, f"stage {name}: no stages/<script>.py in its cmd {body['cmd']!r}"
        stages[name] = (REPO / match.group(0), list(body.get("deps", [])))
    return stages


def _covers(dep: str, file: str) -> bool:
    """Whether the dep ``dep`` (a file or a folder) holds ``file`` (both relative to the repository)."""
    folder = dep.rstrip("/")
    return file == folder or file.startswith(folder + "/")


def missing_deps(dvc: dict, root: Path = REPO) -> list[str]:
    """``"<stage>: <file>"`` for every file of a stage's import closure that no dep covers."""
    problems = []
    for name, (script, deps) in stage_scripts(dvc).items():
        for file in sorted(import_closure(script, root)):
            rel = file.relative_to(root).as_posix()
            if not any(_covers(d, rel) for d in deps):
                problems.append(f"{name}: {rel}")
    return problems


def needless_deps(dvc: dict, root: Path = REPO) -> list[str]:
    """``"<stage>: <dep>"`` for every ``ich`` dep that holds no file of the stage's import closure
    (a change there would re-run the stage for nothing). A data file of the package (not ``.py``,
    such as ``ich/data/intracranial_hu.json``) is needed when a module beside it is imported."""
    problems = []
    for name, (script, deps) in stage_scripts(dvc).items():
        closure = [f.relative_to(root).as_posix() for f in import_closure(script, root)]
        folders = {Path(f).parent.as_posix() for f in closure}
        for dep in deps:
            package_data = Path(dep).suffix not in ("", ".py") and Path(dep).parent.as_posix() in folders
            if dep.startswith("ich") and not package_data and not any(_covers(dep, f) for f in closure):
                problems.append(f"{name}: {dep}")
    return problems


@pytest.fixture(scope="module")
def dvc() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_depends_on_its_whole_import_closure(dvc):
    missing = missing_deps(dvc)
    assert not missing, "dvc.yaml deps miss files their stage imports:\n" + "\n".join(missing)


def test_no_stage_depends_on_code_it_does_not_import(dvc):
    needless = needless_deps(dvc)
    assert not needless, "dvc.yaml deps that their stage never imports (it would re-run for nothing):\n" + "\n".join(
        needless
    )
    edited = copy.deepcopy(dvc)
    edited["stages"]["explain"]["deps"].append("ich/train/classify.py")
    assert needless_deps(edited) == ["explain: ich/train/classify.py"]


def test_the_check_names_the_stage_and_the_file_when_a_dep_is_removed(dvc):
    dvc["stages"]["evaluate"]["deps"].remove("ich/metrics")
    missing = missing_deps(dvc)
    assert "evaluate: ich/metrics/ci.py" in missing
    assert all(line.startswith("evaluate: ich/metrics/") for line in missing)


def test_the_closure_follows_function_level_and_importlib_imports():
    download = import_closure(REPO / "stages" / "download.py")
    # ich.sources imports these by name (importlib), the synthetic source inside a function
    for module in ("ich/sources/rsna.py", "ich/sources/images.py", "ich/synth/__init__.py", "ich/io/dicom.py"):
        assert REPO / module in download, module


RUN_CACHE_BLIND_KEYS = {"size", "nfiles"}
"""DVC builds its run-cache key with every dict key of these names dropped (they are meant
for output metadata), parameters included: a change of a parameter so named would be served
the cached outputs of the old value."""


def _keys(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, str(key))
            yield from _keys(value, (*path, str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value, path)


@pytest.mark.parametrize(
    "path", ["params.yaml", *sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("profiles/*.yaml"))]
)
def test_no_parameter_is_invisible_to_the_run_cache(path):
    blind = [".".join(k) for k in _keys(yaml.safe_load((REPO / path).read_text())) if k[-1] in RUN_CACHE_BLIND_KEYS]
    assert not blind, f"{path}: DVC's run-cache ignores parameters named {sorted(RUN_CACHE_BLIND_KEYS)}: {blind}"


def _dvc_paths(node) -> set[str]:
    """Every deps/outs/metrics/plots path named in ``dvc.yaml`` (with ``${item}`` left as is)."""
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("deps", "outs", "metrics", "plots"):
                for entry in value:
                    paths.update(entry if isinstance(entry, dict) else [entry])
            else:
                paths |= _dvc_paths(value)
    return paths


def test_the_layout_names_paths_that_dvc_yaml_tracks(dvc):
    from pathlib import PurePosixPath

    from ich import layout

    tracked = {PurePosixPath(p) for p in _dvc_paths(dvc["stages"])}
    untracked = {layout.CHECKPOINTS, layout.LOGS}  # a killed run's checkpoints, wall times: no stage's output
    named = {
        name: PurePosixPath(value.as_posix())
        for name, value in vars(layout).items()
        if name.isupper() and value not in untracked
    }
    assert len(named) > 10
    for name, path in named.items():
        assert any(t == path or path in t.parents or t in path.parents for t in tracked), (
            f"ich.layout.{name} = {path}: dvc.yaml tracks nothing there"
        )

"""A tiny copy of the project for tests that run the real ``dvc``: configuration and commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO
from tools.project import copy_project


def tiny_params(params: dict) -> dict:
    """``params`` cut down so that the whole DAG runs in about a minute on one core."""
    params["download"]["synthetic"].update(n_patients=10, slices_per_study=6, workers=1)
    params["convert"].update(image_size=32, workers=1)
    params["models"] = ["wa2d_cnn3", "wa2d_cnn1"]
    params["train"] = {
        "defaults": {**params["train"]["defaults"], "input_size": 32, "epochs": 1},
        **{name: {"arch": name} for name in params["models"]},
    }
    params["ensemble"]["members"] = params["models"]
    params["ensemble"]["grid"] = [0.0, 0.5, 1.0]
    params["evaluate"]["n_bootstrap"] = 50
    params["explain"] = {"models": ["wa2d_cnn3"], "n_cases": 2}
    params["segment"]["unet"].update(base_width=4, crop=16, stride=8, epochs=1, batch_size=16)
    params["evaluate_segmentation"]["overlay_size"] = 64
    return params


def run(args: list[str], cwd: Path, expect: int = 0) -> str:
    """Run a command in ``cwd`` with this interpreter's tools first on PATH; return stdout + stderr."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd))
    env.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == expect, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout + done.stderr


def stages_run(output: str) -> set[str]:
    """The stages a ``dvc repro`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_param(root: Path, section: list[str], value) -> None:
    """Set one key of ``root/params.yaml``, e.g. ``["train", "wa2d_cnn1", "lr"]``."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    node = params
    for key in section[:-1]:
        node = node[key]
    node[section[-1]] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def git_commit(root: Path, message: str) -> None:
    """Commit everything in ``root`` (a throwaway identity; the tests' repos are never pushed)."""
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], root)


def make_tiny_project(root: Path, edit=None) -> Path:
    """A git repository at ``root`` holding the pipeline with ``tiny_params`` (then ``edit(params)``)."""
    copy_project(REPO, root)
    params = tiny_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    if edit is not None:
        edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], root)
    git_commit(root, "tiny")
    return root


def add_in_one_file(root: Path, name: str, source: str, edit, targets: tuple[str, ...] = ()) -> None:
    """Add the network ``name`` to the tiny project ``root`` as a user would: its file in ``ich/models``
    and ``edit(params)``; assert git sees nothing else, commit, and ``dvc repro`` (``targets``: those
    stages and what they need; none: the whole pipeline)."""
    (root / "ich" / "models" / f"{name}.py").write_text(source)
    params = yaml.safe_load((root / "params.yaml").read_text())
    edit(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    assert sorted(line[3:] for line in changed.splitlines()) == [f"ich/models/{name}.py", "params.yaml"]
    git_commit(root, f"a new network, {name}: its file and its params section")
    run(["dvc", "repro", *targets], root)

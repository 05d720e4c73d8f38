"""The review loop around DVC, for real: a shared remote with the run-cache, and ``make review``.

Clone A runs the tiny pipeline and shares outputs and run-cache with a local-directory remote
(standing in for S3, GCS or SSH: DVC treats them alike) through ``tools.share``, which adds to
``dvc push --run-cache`` the outputs that DVC leaves behind (see its docstring). Fresh clones then pull instead of
re-running, and a review of a branch lists what the branch changed and nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.tiny_project import git_commit, make_tiny_project, run, set_param, stages_run

pytestmark = pytest.mark.slow

CHANGED = ["train", "wa2d_cnn1", "lr"]
NEW_LR = 0.003


def _only_cnn3_in_the_ensemble(params: dict) -> None:
    # so that wa2d_cnn1's learning rate reaches its own metrics only
    params["ensemble"]["members"] = ["wa2d_cnn3"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """Clone A on ``main`` after ``dvc repro`` and ``make share`` (``dvc push --run-cache`` and more)."""
    tmp = tmp_path_factory.mktemp("review")
    remote = tmp / "remote"
    a = make_tiny_project(tmp / "a", _only_cnn3_in_the_ensemble)
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], a)
    run(["dvc", "repro"], a)
    git_commit(a, "repro")
    run([sys.executable, "-m", "tools.share"], a)
    return {"tmp": tmp, "a": a, "remote": remote}


@pytest.fixture(scope="module")
def branch(shared) -> Path:
    """Clone A on a branch that changes one model's learning rate, reproduced, committed and pushed."""
    a = shared["a"]
    run(["git", "checkout", "-q", "-b", "faster-cnn1"], a)
    set_param(a, CHANGED, NEW_LR)
    ran = stages_run(run(["dvc", "repro"], a))
    assert "train@wa2d_cnn1" in ran and "evaluate" in ran
    git_commit(a, "wa2d_cnn1: higher learning rate")
    shared_output = run([sys.executable, "-m", "tools.share"], a)
    assert re.search(r"then [1-9]\d* outputs of earlier runs", shared_output), shared_output
    return a


def _clone(shared: dict[str, Path], name: str) -> Path:
    target = shared["tmp"] / name
    run(["git", "clone", "-q", "-b", "main", str(shared["a"]), str(target)], shared["tmp"])
    return target


def test_a_fresh_clone_pulls_everything_and_runs_no_stage(shared):
    b = _clone(shared, "b")
    assert not (b / "data").exists()
    run(["dvc", "pull", "--run-cache"], b)
    assert (b / "data" / "models" / "wa2d_cnn1" / "model.pt").is_file()
    assert stages_run(run(["dvc", "repro"], b)) == set()
    assert "up to date" in run(["dvc", "status"], b)


def test_the_run_cache_serves_a_configuration_run_in_another_clone(shared, branch):
    c = _clone(shared, "c")
    set_param(c, CHANGED, NEW_LR)  # what the branch ran, reached independently
    run(["dvc", "pull", "--run-cache"], c)  # main's outputs, and every run the remote knows
    output = run(["dvc", "repro", "--pull"], c)  # --pull: a run-cache hit fetches its outputs
    assert stages_run(output) == set(), output
    assert "Stage 'train@wa2d_cnn1' is cached - skipping run" in output
    for path in ("metrics/classification/wa2d_cnn1.json", "metrics/train/wa2d_cnn1.json"):
        assert (c / path).read_text() == (branch / path).read_text()


def _table_rows(markdown: str, section: str) -> list[list[str]]:
    """Body rows of the markdown table under the ``## <section>`` heading."""
    block = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")] for line in block.splitlines() if line.startswith("|")
    ]
    return [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]  # header and rule dropped


def test_review_lists_the_changed_parameter_and_only_that_models_metrics(branch):
    out = branch / "review"
    printed = run([sys.executable, "-m", "tools.review", "--base", "main", "--out", str(out)], branch)
    markdown = (out / "review.md").read_text()
    assert markdown in printed
    assert markdown.index("Parameters changed") < markdown.index("Metrics changed")
    params = _table_rows(markdown, "Parameters changed")
    # the model's section had no lr of its own (it took train.defaults.lr): dvc params diff says "-"
    assert [row[:4] for row in params] == [["params.yaml", "train.wa2d_cnn1.lr", "-", str(NEW_LR)]]
    metrics = _table_rows(markdown, "Metrics changed")
    assert metrics, markdown
    external = {f"metrics/external/{cohort}/wa2d_cnn1.json" for cohort in ("site_dicom", "site_png")}
    assert {row[0] for row in metrics} <= {
        "metrics/classification/wa2d_cnn1.json",
        "metrics/train/wa2d_cnn1.json",
    } | external
    assert "metrics/classification/wa2d_cnn1.json" in {row[0] for row in metrics}
    page = (out / "plots.html").read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http", page), "the page must need no network"
    assert 'id = "plots_train_wa2d_cnn1_csv"' in page and '<script type="module">' in page
    assert "data:image/png;base64," in page  # the Grad-CAM figure, embedded


def test_make_review_and_share_run_the_tools_they_name():
    dry = subprocess.run(["make", "-n", "review", "share", "BASE=feature"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    commands = [line.split("python", 1)[1].split() for line in dry.splitlines() if "python -m tools." in line]
    assert ["-m", "tools.review", "--base", "feature", "--out", "review"] in commands
    assert ["-m", "tools.share"] in commands
    for module in ("tools.review", "tools.share"):  # and they are there to run
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0 and "usage" in done.stdout, done.stderr


def test_the_ci_workflow_reviews_pull_requests_and_pushes_the_cache_from_main():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "dvc-review.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push"} and triggers["push"]["branches"] == ["main"]
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    commands = [step.get("run", "") for step in steps]

    def first(fragment: str) -> int:
        return next(i for i, command in enumerate(commands) if fragment in command)

    assert first("make setup") < first("dvc repro --pull") < first("make review") < first("gh pr comment")
    plugins = commands[first("pip install -e '.[s3]'")]  # core DVC cannot reach s3://, gs:// or ssh://
    assert first("make setup") < first("pip install -e '.[s3]'") < first("dvc pull --run-cache")
    assert all(f"pip install -e '.[{extra}]'" in plugins for extra in ("s3", "gs", "ssh"))
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"s3", "gs", "ssh"} <= set(extras)
    assert "review/review.md" in commands[first("gh pr comment")]
    assert "pull_request" in steps[first("gh pr comment")]["if"]
    push = steps[first("make share")]
    assert "push" in push["if"] and "main" in push["if"]
    assert json.dumps(workflow).count("secrets.") >= 1, "the remote comes from a secret, never from the repo"

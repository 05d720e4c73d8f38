"""Share what this clone computed with a DVC remote so that no other clone computes it again.

``make share`` (``python -m tools.share [--remote NAME]``) runs ``dvc push --run-cache`` and then
uploads the outputs that the run entries refer to but that push leaves behind.

Why the second step: DVC 3.67's ``dvc push --run-cache`` uploads every run entry (which stage
ran with which code, data and params, and what it produced) but only the objects of the
*current* ``dvc.lock``'s cached outputs. Two kinds of outputs stay local: those of any other run
(a branch's earlier state, an experiment), and, for every run, the ``cache: false`` outputs,
which here are ``metrics/`` and ``plots/`` (git-tracked so that reviews can diff them; DVC still
stores them in the cache for the run-cache). A clone that pulls the entries then finds the run
but not its outputs, prints "Some of the cache files do not exist neither locally nor on
remote" and runs the stage again. ``tests/test_review_loop.py`` shows it, and shows that after
this command the same clone runs nothing.
"""

from __future__ import annotations

import argparse
import os

from dvc.repo import Repo


def run_entries(repo: Repo) -> list[tuple[str, str]]:
    """Every run entry of the local run-cache as ``(key, value)`` (``.dvc/cache/runs/xx/key/value``)."""
    root = repo.stage_cache.cache_dir
    if not os.path.isdir(root):
        return []
    return [
        (key, value)
        for prefix in sorted(os.listdir(root))
        for key in sorted(os.listdir(os.path.join(root, prefix)))
        for value in sorted(os.listdir(os.path.join(root, prefix, key)))
    ]


def push_run_outputs(repo: Repo, remote: str | None = None) -> int:
    """Upload every object the local run entries refer to; return how many were transferred."""
    transferred = 0
    for odb, objects in repo.stage_cache.get_used_objs(run_entries(repo)).items():
        result = repo.cloud.push(objects, remote=remote, odb=odb)
        if result.failed:
            raise RuntimeError(
                f"{len(result.failed)} run outputs could not be pushed, e.g. {next(iter(result.failed))}"
            )
        transferred += len(result.transferred)
    return transferred


def share(remote: str | None = None, root: str = ".") -> tuple[int, int]:
    """``dvc push --run-cache`` then :func:`push_run_outputs`: ``(objects pushed, run outputs pushed)``."""
    with Repo(root) as repo:
        pushed = repo.push(run_cache=True, remote=remote)
        return pushed, push_run_outputs(repo, remote)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remote", help="DVC remote name (default: the default remote)")
    args = parser.parse_args()
    pushed, outputs = share(args.remote)
    print(f"pushed {pushed} files and run entries, then {outputs} outputs of earlier runs")


if __name__ == "__main__":
    main()

"""The remote users name works: ``make share`` to S3, then ``dvc pull --run-cache`` in a fresh clone.

A real S3 API on the loopback (moto's server, started here) stands in for the bucket; DVC talks
to it through ``dvc-s3``, the extra a team installs with ``pip install -e '.[s3]'``. The local
remote of ``tests/test_review_loop.py`` cannot show that the S3 plugin is there and works.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator

import pytest

from tests.tiny_project import git_commit, make_tiny_project, run, stages_run

pytestmark = pytest.mark.slow

BUCKET = "ich-cache"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """The endpoint of an S3 server on the loopback holding an empty bucket; AWS credentials set for it."""
    server_module = pytest.importorskip("moto.server", reason="moto[server] is a test extra: pip install -e '.[test]'")
    pytest.importorskip("dvc_s3", reason="dvc-s3 is the s3 extra: pip install -e '.[s3]'")
    import boto3

    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(key, value)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


def test_share_to_s3_then_a_fresh_clone_pulls_and_runs_nothing(s3, tmp_path):
    a = make_tiny_project(tmp_path / "a")
    run(["dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/store"], a)
    run(["dvc", "remote", "modify", "team", "endpointurl", s3], a)
    run(["dvc", "repro", "split"], a)
    git_commit(a, "split, shared on S3")
    shared = run([sys.executable, "-m", "tools.share"], a)  # what `make share` runs
    assert re.search(r"pushed [1-9]\d* files and run entries", shared), shared

    b = tmp_path / "b"
    run(["git", "clone", "-q", str(a), str(b)], tmp_path)
    assert not (b / "data").exists()
    run(["dvc", "pull", "--run-cache", "--with-deps", "split"], b)  # what clone a ran: split and its upstream
    assert (b / "data/split/split.csv").read_bytes() == (a / "data/split/split.csv").read_bytes()
    assert stages_run(run(["dvc", "repro", "split"], b)) == set()  # every stage from the bucket's run-cache

"""The one home of file digests and atomic writes (ich.io.digest, ich.io.atomic)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ich
from ich.io.atomic import atomic_file, write_json, write_text
from ich.io.digest import code_digest, digest_paths, digest_values, sha256_file


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(path) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_digest_paths_follows_content_and_names_not_timestamps_or_location(tmp_path):
    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "a.png").write_bytes(b"pixels")
        (root / "b.csv").write_text("id\n1\n")
    one, two = tmp_path / "one", tmp_path / "two"
    reference = digest_paths([one])
    assert digest_paths([two]) == reference  # same files elsewhere
    os.utime(one / "b.csv", (1, 1))
    assert digest_paths([one]) == reference  # a timestamp is not content
    (one / "__pycache__").mkdir()
    (one / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert digest_paths([one]) == reference  # interpreter caches are not inputs
    (one / "sub" / "a.png").write_bytes(b"pixelz")
    changed = digest_paths([one])
    assert changed != reference
    (one / "sub" / "a.png").rename(one / "sub" / "c.png")
    assert digest_paths([one]) not in (reference, changed)
    assert digest_paths([one / "b.csv", two]) != digest_paths([two, one / "b.csv"])


def test_digest_paths_refuses_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        digest_paths([tmp_path / "nothing"])


def test_digest_values_and_code_digest_are_stable():
    assert digest_values({"b": 1, "a": 2}) == digest_values({"a": 2, "b": 1})
    assert digest_values(1) != digest_values(2)
    assert code_digest() == digest_paths([Path(ich.__file__).parent]) and len(code_digest()) == 16


def test_the_code_digest_moves_with_a_source_file_and_nothing_else(tmp_path):
    (tmp_path / "ich" / "io").mkdir(parents=True)
    (tmp_path / "ich" / "io" / "module.py").write_text("x = 1\n")
    before = digest_paths([tmp_path / "ich"])
    os.utime(tmp_path / "ich" / "io" / "module.py", (0, 0))
    assert digest_paths([tmp_path / "ich"]) == before
    (tmp_path / "ich" / "io" / "module.py").write_text("x = 2\n")
    assert digest_paths([tmp_path / "ich"]) != before


def test_atomic_file_keeps_the_old_content_when_the_writer_fails(tmp_path):
    path = tmp_path / "deep" / "out.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]
    write_text(path, "new")
    assert path.read_text() == "new"


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()

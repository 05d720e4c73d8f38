"""The same bits on every x86-64 CPU: a training stage under other instruction sets and thread counts.

Another CPU is imitated by capping each math library's instruction set (what an AVX-512 server
and an AVX2 desktop would pick). With the pins of :mod:`ich.reproducible` the stage writes the
same bytes under any cap and thread count; left as given, the caps change them (the control:
the check can see a difference).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ich.io.digest import digest_paths
from ich.reproducible import AS_GIVEN, PINNED_ENVIRONMENT
from tests.tiny_project import make_tiny_project, run

pytestmark = pytest.mark.slow

AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    return set(flags.split(":", 1)[-1].split())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if "avx2" not in _cpu_flags():
        pytest.skip("this CPU has no AVX2 (or no /proc/cpuinfo says so): the pinned AVX2 paths cannot run here")
    root = make_tiny_project(tmp_path_factory.mktemp("reproducible"))
    run(["dvc", "repro", "split"], root)
    return root


def _train(root: Path, env: dict[str, str], threads: int) -> str:
    """The digest of what ``train@wa2d_cnn3`` writes, run under ``env`` with ``threads`` intra-op threads."""
    full = {k: v for k, v in os.environ.items() if k not in {*PINNED_ENVIRONMENT, AS_GIVEN}}
    full.update(env, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(root))
    subprocess.run(
        [sys.executable, "stages/train.py", "wa2d_cnn3"], cwd=root, env=full, check=True, capture_output=True
    )
    return digest_paths([root / "data/models/wa2d_cnn3"])


def test_a_training_stage_writes_the_same_bytes_on_any_cpu_and_thread_count(project):
    pinned = {
        "1 thread": _train(project, {}, 1),
        "2 threads": _train(project, {}, 2),
        "AVX-512 caps, 2 threads": _train(project, AVX512, 2),
        "AVX2 caps, 1 thread": _train(project, AVX2, 1),
    }
    assert len(set(pinned.values())) == 1, pinned
    # the pins are the AVX2 paths: an AVX2-only CPU left as given writes the same bytes
    assert _train(project, {**AVX2, AS_GIVEN: "as-given"}, 2) == pinned["1 thread"]
    if "avx512f" not in _cpu_flags():
        pytest.skip("no AVX-512 here: the control (other bytes on the AVX-512 paths) needs it")
    assert _train(project, {**AVX512, AS_GIVEN: "as-given"}, 2) != pinned["1 thread"]

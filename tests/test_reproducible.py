"""The same bits on every x86-64 CPU: every network the demo trains, under other instruction sets and core counts.

Another CPU is imitated by capping each math library's instruction set (what an AVX-512 server
and an AVX2 desktop would pick) and by the thread count PyTorch would take from its cores. With
the pins of :mod:`ich.reproducible` each training stage writes the same bytes under any of them;
left as given, the thread count alone changes EffClass's bytes on any CPU (the control: the
check can see a difference), and on an AVX-512 CPU the instruction set changes them too.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ich import layout
from ich.io.digest import digest_paths
from ich.reproducible import AS_GIVEN, PINNED_ENVIRONMENT
from tests.conftest import REPO
from tests.tiny_project import make_tiny_project, run

pytestmark = pytest.mark.slow

AVX512 = {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
DEMO = yaml.safe_load((REPO / "params.yaml").read_text())
CLASSIFIERS: list[str] = DEMO["models"]
SEGMENTERS: list[str] = [name for name in DEMO["segmenters"] if "epochs" in DEMO["segment"][name]]
"""The networks ``make repro`` trains: every classifier and every segmenter that trains a network."""


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
    params = yaml.safe_load((root / "params.yaml").read_text())
    tiny = params["train"]["defaults"]
    for name in CLASSIFIERS:  # each demo classifier as the demo builds it, on the tiny cohort for one epoch
        own = {**DEMO["train"][name], "epochs": 1}
        if own.get("input_size", tiny["input_size"]) % 128:  # effclass keeps its multiple of 128
            own["input_size"] = tiny["input_size"]
        params["train"][name] = own
    params["models"] = CLASSIFIERS
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "split"], root)
    return root


def _digest(root: Path, network: str, env: dict[str, str], threads: int) -> str:
    """:func:`_train`'s digest, trained once per setting in this module (the control reuses the others' runs)."""
    return _train(root, network, tuple(sorted(env.items())), threads)


@functools.cache
def _train(root: Path, network: str, env: tuple[tuple[str, str], ...], threads: int) -> str:
    """The digest of what ``network``'s training stage writes, run under ``env`` as a machine with ``threads`` cores."""
    full = {k: v for k, v in os.environ.items() if k not in {*PINNED_ENVIRONMENT, AS_GIVEN}}
    full.update(env, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(root))
    stage, out = ("train", layout.MODELS) if network in CLASSIFIERS else ("train_segmenter", layout.SEGMENTERS)
    subprocess.run([sys.executable, f"stages/{stage}.py", network], cwd=root, env=full, check=True, capture_output=True)
    return digest_paths([root / out / network])


@pytest.mark.parametrize("network", CLASSIFIERS + SEGMENTERS)
def test_every_demo_network_trains_to_the_same_bytes_on_any_cpu_and_core_count(project, network):
    server = _digest(project, network, AVX512, 4)  # an AVX-512 server with four cores
    desktop = _digest(project, network, AVX2, 1)  # an AVX2-only machine with one
    assert server == desktop


def test_the_check_sees_what_the_pins_remove(project):
    pinned = _digest(project, "effclass", AVX2, 1)
    # an AVX2 machine as given: PyTorch takes its cores, and oneDNN sums EffClass's convolutions in another order
    one_core = _digest(project, "effclass", {**AVX2, AS_GIVEN: "as-given"}, 1)
    two_cores = _digest(project, "effclass", {**AVX2, AS_GIVEN: "as-given"}, 2)
    assert one_core != two_cores
    assert two_cores == pinned  # the pins are two threads on the AVX2 paths
    if "avx512f" not in _cpu_flags():
        pytest.skip("no AVX-512 here: the instruction-set half of the control needs it")
    as_given = _digest(project, "wa2d_cnn3", {**AVX512, AS_GIVEN: "as-given"}, 2)
    assert as_given != _digest(project, "wa2d_cnn3", AVX512, 4)

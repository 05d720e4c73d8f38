"""Shared fixtures: a tiny seeded synthetic cohort, generated and converted once per session."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def load_script(path: str) -> ModuleType:
    """A script of the repository (``stages/<name>.py``, ``experiments/<name>.py``) as a module: they are
    not a package, and ``ich`` never imports them."""
    spec = importlib.util.spec_from_file_location(path.removesuffix(".py").replace("/", "_"), REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one intra-op thread while inside: two threads on two busy cores oversubscribe
    (OpenMP spin-waits) and run several times slower. For fixtures of any scope."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Train on one thread (:func:`one_torch_thread`)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> dict:
    """12 patients x 8 slices at 256, converted to 64 px: the raw folder, the converted folder and the index."""
    from ich.data.cohort_conversion import ConvertConfig, convert_cohort
    from ich.synth import write_cohort

    root = tmp_path_factory.mktemp("cohort")
    write_cohort(root / "raw", n_patients=12, slices_per_study=8, matrix=256, positive_fraction=0.5, seed=1)
    index, quarantine = convert_cohort(root / "raw", root / "converted", ConvertConfig(size=64, workers=1))
    return {
        "root": root,
        "raw": root / "raw",
        "converted": root / "converted",
        "index": index,
        "quarantine": quarantine,
    }


@pytest.fixture(scope="session")
def tiny_split(tiny_cohort) -> pd.DataFrame:
    from ich.data.split import patient_labels, split_patients

    return split_patients(patient_labels(tiny_cohort["index"]), fractions=(0.5, 0.25, 0.25), folds=3, seed=0)

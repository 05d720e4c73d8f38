"""The same bits on every x86-64 machine: the math libraries' code paths, pinned for every run.

The kernels PyTorch and NumPy call pick their code at run time from the CPU: PyTorch's own
kernels (ATen), oneDNN (convolutions) and MKL (matrix products) use AVX-512 where the CPU has it
and AVX2 elsewhere, MKL takes other
paths on AMD than on Intel, and OpenBLAS (NumPy) chooses among its kernels by CPU model. Each
path rounds differently in the last bits, and training amplifies the difference into other
weights, other best epochs and other figures. Pinned to the AVX2 paths, which every x86-64 CPU
of the last decade runs, a stage writes the same bytes on all of them
(``bench/determinism.py`` measures it; README, "Re-runs you can trust").

:func:`pin_environment` runs when the ``ich`` package is first imported, before PyTorch or
NumPy is, so every stage, ``ich predict`` and every test get it, whether started by
``make repro``, ``dvc repro`` or CI. ``ICH_ENVIRONMENT=as-given`` leaves the environment as it
is (for measuring what the pins change).
"""

from __future__ import annotations

import os

PINNED_ENVIRONMENT: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels (elementwise ops, reductions)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: the AVX2 kernels, also on AVX-512 CPUs
    "MKL_CBWR": "AVX2,STRICT",  # MKL: the AVX2 path on Intel and AMD alike; STRICT: whatever the thread count
    "OMP_NUM_THREADS": "2",  # PyTorch's intra-op threads (OpenMP) where PyTorch starts after ich: PINNED_THREADS
}
"""Environment variables read by the math libraries when they start."""

PINNED_THREADS = 2
"""PyTorch's intra-op threads in every run: the two cores the project is built for. More cores
would train faster and write other bytes; ``ICH_ENVIRONMENT=as-given`` trades the bytes for them."""

AS_GIVEN = "ICH_ENVIRONMENT"
"""Set to ``as-given`` to leave the environment unpinned."""


def pin_environment() -> None:
    """Set :data:`PINNED_ENVIRONMENT` in this process (and so in its children), unless ``ICH_ENVIRONMENT=as-given``."""
    if os.environ.get(AS_GIVEN) == "as-given":
        return
    os.environ.update(PINNED_ENVIRONMENT)


def pin_threads() -> None:
    """Run PyTorch on :data:`PINNED_THREADS` intra-op threads, unless ``ICH_ENVIRONMENT=as-given``.

    Called where networks train or run (:func:`ich.train.loop.seed_everything`,
    :func:`ich.networks.default_device`): the OpenMP runtime reads ``OMP_NUM_THREADS`` once, when
    PyTorch loads, which a stage importing PyTorch before ``ich`` does first.
    """
    if os.environ.get(AS_GIVEN) == "as-given":
        return
    import torch

    torch.set_num_threads(PINNED_THREADS)

"""A training stage's run around its outputs: the checkpoint it may resume from, and its epilogue.

Both training stages (``train@<model>``, ``train_segmenter@<name>``) checkpoint every epoch so
that a killed run resumes where it stopped, under a fingerprint of everything it read
(:func:`ich.io.digest.digest_paths`); once their outputs are written the checkpoint is deleted,
since it must resume an interrupted run only, never a later one, and the wall time goes to a
log beside the outputs (not reproducible, so neither an output nor a metric).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from ich import layout
from ich.io.atomic import write_json
from ich.io.digest import digest_paths


@dataclass
class ResumableRun:
    """One run of a training stage named ``name`` (the checkpoint's and the log's file name)."""

    name: str
    inputs: Sequence[str | Path]  # what the run reads: the stage script and its data
    started: float = field(default_factory=time.perf_counter)

    @property
    def checkpoint(self) -> Path:
        return layout.CHECKPOINTS / f"{self.name}.pt"

    @cached_property
    def inputs_digest(self) -> str:
        """The fingerprint of everything the run reads (it hashes the data: computed once)."""
        return digest_paths(list(self.inputs))

    def finish(self) -> float:
        """Delete the checkpoint and log the wall time; return the seconds."""
        self.checkpoint.unlink(missing_ok=True)
        seconds = time.perf_counter() - self.started
        write_json(
            layout.LOGS / f"{self.name}.json", {"seconds": round(seconds, 1), "threads": torch.get_num_threads()}
        )
        return seconds

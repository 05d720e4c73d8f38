"""Bleed-probability maps: what every segmenter writes and how a map becomes a mask.

Every segmenter (the U-Net, the grey-level band) ends in one probability map per slice at the
slice's resolution, so that one evaluation treats them all alike. Maps are stored as 16-bit
PNGs of ``round(p * PROB_SCALE)``: lossless enough (a step of 1.5e-5, far below any threshold
one would compare) at a fraction of the size of floats, and viewable. One
:class:`PostProcess` turns a map into a mask wherever that happens (U-Net validation, the
band's grid search, the evaluation, ``ich predict``), so a segmenter is tuned for exactly what is
evaluated. Its probability threshold is chosen on the validation slices from the candidates of
``segment.postprocess.thresholds`` (:func:`choose_post_process`) and stored beside the
segmenter (:func:`write_post_process`): a network trained on a few hundred bleeding slices is
under-confident, and 0.5 missed half of CT-ICH's bleeding slices outright.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ich.metrics.segmentation import overlap_counts
from ich.segmentation.postprocess import segment_slice

PROB_SCALE = 65535
"""Stored value of probability 1 (the 16-bit maximum)."""

POST_PROCESS_FILE = "postprocess.json"
"""The operating post-processing, in every segmenter's folder."""


@dataclass(frozen=True)
class PostProcess:
    """Probability map -> bleed mask: threshold, then closing, then opening (Hssayeni 2020).

    Attributes:
        threshold: the operating probability threshold (pixels with ``p >= threshold``).
        close_kernel: closing disc diameter in pixels (0 or 1: no closing).
        open_kernel: opening disc diameter in pixels (0 or 1: no opening).
    """

    threshold: float = 0.5
    close_kernel: int = 5
    open_kernel: int = 5

    def mask(self, prob: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """The 0/1 uint8 mask of ``prob`` at ``threshold`` (default: the operating threshold)."""
        cut = self.threshold if threshold is None else threshold
        return segment_slice(prob, cut, self.close_kernel, self.open_kernel)


def post_process_candidates(section: Mapping[str, Any]) -> list[PostProcess]:
    """One :class:`PostProcess` per threshold of ``segment.postprocess`` (``thresholds``, kernels)."""
    thresholds = section.get("thresholds")
    if not thresholds or not all(0.0 < float(t) <= 1.0 for t in thresholds):
        raise ValueError(
            f"params.yaml segment.postprocess.thresholds must list probabilities in (0, 1], got {thresholds!r}"
        )
    kernels = {k: int(section[k]) for k in ("close_kernel", "open_kernel")}
    return [PostProcess(float(t), **kernels) for t in sorted({float(t) for t in thresholds})]


def overlap_score(rows: Sequence[Mapping[str, float]]) -> float:
    """Mean Jaccard over the slices with reference bleed (Hssayeni 2020's figure); over all if none has bleed."""
    with_bleed = [r["jaccard"] for r in rows if r["ref_pixels"] > 0]
    return float(np.mean(with_bleed or [r["jaccard"] for r in rows]))


def score_candidates(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], candidates: Sequence[PostProcess]
) -> dict[float, float]:
    """:func:`overlap_score` of each candidate's masks over ``(probability map, reference mask)`` pairs."""
    rows: dict[float, list[dict[str, float]]] = {c.threshold: [] for c in candidates}
    for prob, ref in pairs:
        for c in candidates:
            rows[c.threshold].append(overlap_counts(c.mask(prob), ref))
    if not any(rows.values()):
        raise ValueError("no validation slice to choose the segmentation threshold on")
    return {t: overlap_score(r) for t, r in rows.items()}


def choose_post_process(scores: Mapping[float, float], candidates: Sequence[PostProcess]) -> PostProcess:
    """The candidate with the best validation score; on a tie the highest threshold (fewer false specks)."""
    best = max(scores.values())
    return replace(candidates[0], threshold=max(t for t, s in scores.items() if s == best))


def write_post_process(folder: str | Path, post: PostProcess, scores: Mapping[float, float]) -> None:
    """Store the chosen post-processing and every candidate's validation score in ``folder``."""
    record = {**asdict(post), "validation_jaccard": {f"{t:g}": round(s, 6) for t, s in sorted(scores.items())}}
    (Path(folder) / POST_PROCESS_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_post_process(folder: str | Path) -> PostProcess:
    """The post-processing a segmenter was validated with (:func:`write_post_process`)."""
    path = Path(folder) / POST_PROCESS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: re-run `dvc repro train_segmenter` for this segmenter")
    record = json.loads(path.read_text())
    return PostProcess(float(record["threshold"]), int(record["close_kernel"]), int(record["open_kernel"]))


def write_prob_map(path: str | Path, prob: np.ndarray) -> None:
    """Store a probability map (values clipped to [0, 1]) as a 16-bit PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quantised = np.rint(np.clip(prob, 0.0, 1.0) * PROB_SCALE).astype(np.uint16)
    if not cv2.imwrite(str(path), quantised):
        raise OSError(f"cannot write probability map {path}")


def read_prob_map(path: str | Path) -> np.ndarray:
    """A map written by :func:`write_prob_map`, as float64 in [0, 1]."""
    quantised = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if quantised is None:
        raise FileNotFoundError(f"cannot read probability map {path}")
    if quantised.dtype != np.uint16 or quantised.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit single-channel probability map")
    return quantised.astype(np.float64) / PROB_SCALE

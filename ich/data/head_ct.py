"""Does an image show a head CT? Brain enclosed by skull, with air around the head.

The networks assess what they learned from: axial head CT in a brain window. Anything else (a
photograph, a screenshot, an inverted display, a radiograph, a scan of the abdomen) still gets
a confident score from them, and a verdict on it would read as a finding. Three properties of a
head CT slice in any brain-like window, read from its first window (grey levels 0-255), tell
them apart:

- **bone encloses the brain**: the largest bright component (bone saturates a brain window; a
  wider export leaves it merely brighter than brain, so several levels are tried) bounds a cavity
  (:func:`ich.data.window_estimate.intracranial_mask`: its convex hull, so that foramina, a thin
  temporal bone or a craniotomy still enclose it), and bone lies around that cavity in most
  directions (:data:`MIN_ENCLOSURE` of :data:`ENCLOSURE_SECTORS` sectors around its centre);
- **the cavity holds soft tissue**: most of it lies between air and bone (brain, CSF, blood);
- **air around the head**: the frame's edge is mostly dark. An inverted display, a screenshot
  or a photograph fails here whatever lies inside.

Skull-base, face and vertex slices of a real head CT often fail the first test (the bone does
not enclose a brain there), so a study is read as a head CT when at least
:data:`MIN_HEAD_SLICE_SHARE` of its slices pass, and a one-image study when its image does.
Measured on 4,500 real slices (``docs/real-data.md``, "Inputs that are not a head CT").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ich.data.window_estimate import intracranial_mask

MIN_SIDE = 128
"""Slices are judged at this side or more (a 32 px slice has a skull one pixel wide)."""
BONE_LEVELS = (250, 200, 140)
"""Grey levels tried as the bone threshold, brightest first."""
MIN_SOFT_SHARE = 0.6
"""Share of the cavity between air and bone."""
SOFT_FLOOR = 5
"""Grey levels below this inside the cavity are air (or CSF at 0 HU, which a brain window draws as air)."""
ENCLOSURE_SECTORS = 36
MIN_ENCLOSURE = 0.75
"""Share of the sectors around the cavity's centre that hold bone (any bright pixel at the level)."""
MIN_CAVITY_SHARE = 0.01
"""Smallest cavity, as a share of the frame, that counts as brain (a vertex slice's is small)."""
AIR_LEVEL = 25
MIN_AIR_BORDER = 0.5
"""Share of the frame's edge (its outer 2%) darker than :data:`AIR_LEVEL`."""
MIN_HEAD_SLICE_SHARE = 0.25
"""Share of a study's slices that must show brain enclosed by skull."""


@dataclass(frozen=True)
class HeadEvidence:
    """What one slice shows: the enclosed soft-tissue cavity and the air at the frame's edge."""

    cavity_share: float  # of the frame; 0 where no bone encloses soft tissue
    air_border: float  # share of the frame's edge that is dark

    @property
    def dark_surround(self) -> bool:
        return self.air_border >= MIN_AIR_BORDER

    @property
    def shows_brain(self) -> bool:
        return self.dark_surround and self.cavity_share >= MIN_CAVITY_SHARE


def _enclosure(bone: np.ndarray, cavity: np.ndarray) -> float:
    """Share of the sectors around the cavity's centre in which bone lies (any bone: a skull broken by
    a craniotomy, or a blurred export's ring that dips below the level, still surrounds the brain)."""
    ys, xs = np.nonzero(cavity)
    by, bx = np.nonzero(bone)
    angles = np.arctan2(by - ys.mean(), bx - xs.mean())
    sectors = np.floor((angles + math.pi) / (2 * math.pi) * ENCLOSURE_SECTORS).astype(int) % ENCLOSURE_SECTORS
    return len(np.unique(sectors)) / ENCLOSURE_SECTORS


def head_evidence(grey: np.ndarray) -> HeadEvidence:
    """The evidence of one slice's first window (uint8 ``(H, W)``, 0-255).

    A slice smaller than :data:`MIN_SIDE` is enlarged (nearest neighbour: grey levels kept) first,
    so that the band the cavity keeps from the bone is no wider than at the sizes it was measured at.
    """
    if max(grey.shape) < MIN_SIDE:
        factor = -(-MIN_SIDE // max(grey.shape))
        grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    edge = max(1, max(grey.shape) // 50)
    border = np.concatenate(
        [grey[:edge].ravel(), grey[-edge:].ravel(), grey[:, :edge].ravel(), grey[:, -edge:].ravel()]
    )
    best = 0.0
    for level in BONE_LEVELS:
        bright = grey >= level
        cavity = intracranial_mask(bright)
        if cavity is None:
            continue
        inside = grey[cavity]
        if ((inside >= SOFT_FLOOR) & (inside < level)).mean() < MIN_SOFT_SHARE:
            continue
        if _enclosure(bright, cavity) >= MIN_ENCLOSURE:
            best = max(best, float(cavity.mean()))
    return HeadEvidence(cavity_share=best, air_border=float((border < AIR_LEVEL).mean()))


def not_a_head_ct(evidence: Sequence[HeadEvidence]) -> str:
    """Why a study's slices do not show a head CT; empty when they do."""
    n = len(evidence)
    brain = sum(e.shows_brain for e in evidence)
    needed = max(1, math.ceil(MIN_HEAD_SLICE_SHARE * n))
    if brain >= needed:
        return ""
    bright_edge = sum(not e.dark_surround for e in evidence)
    no_cavity = sum(e.dark_surround and not e.shows_brain for e in evidence)
    seen = []
    if bright_edge:
        seen.append(
            f"{bright_edge} with a bright frame edge where a head CT has air (an inverted display, a photograph?)"
        )
    if no_cavity:
        seen.append(
            f"{no_cavity} with no bone enclosing soft tissue (not a head, or only skull-base or vertex slices?)"
        )
    return (
        f"{brain} of its {n} slices show brain enclosed by skull with air around the head, "
        f"{needed} needed to read it as a head CT; of the others, {'; '.join(seen)}"
    )

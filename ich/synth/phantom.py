"""Synthetic head-CT slices in Hounsfield units with subtype-faithful hemorrhages.

A numerical phantom, not a simulation of a scanner: an elliptical skull (> 700 HU) around
brain parenchyma (20-45 HU, with smooth grey/white-matter texture), CSF ventricles and
sulci (0-15 HU), and air outside. Each hemorrhage subtype has the geometry a radiologist
recognises it by:

- epidural: a biconvex lens against the inner table of the skull;
- subdural: a crescent following the inner table over a wide arc;
- intraparenchymal: an irregular blob inside brain tissue;
- intraventricular: blood layering in the dependent part of a ventricle;
- subarachnoid: thin bright lines filling sulci near the cortex.

All geometry is computed in millimetres in the patient frame, so the same patient renders
consistently at 256 or 512 matrices. Every random choice comes from a ``numpy.random.Generator``
passed in, so a cohort is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ich.labels import SUBTYPES

FIELD_OF_VIEW_MM = 230.0
AIR_HU = -1000.0
BLOOD_HU = (50.0, 90.0)


@dataclass(frozen=True)
class Lesion:
    """One hemorrhage: its subtype, the slices it spans and its shape parameters (radians, extent)."""

    subtype: str
    first_slice: int
    last_slice: int
    angle: float  # where around the head (epi/subdural, SAH) or blob direction
    # at the central slice: mm for epidural (thickness), subdural (width) and intraparenchymal
    # (radius); the filled share of the ventricles (0-1) for intraventricular; unused for subarachnoid
    extent: float
    radial: float  # 0..1, how far from the head centre (parenchymal blobs)
    density_hu: float
    shape_seed: int

    def profile(self, k: int) -> float:
        """Relative size on slice ``k``: 1 at the centre of the span, tapering at its ends."""
        if not self.first_slice <= k <= self.last_slice:
            return 0.0
        centre = 0.5 * (self.first_slice + self.last_slice)
        half = 0.5 * (self.last_slice - self.first_slice) + 1.0
        return float(np.sqrt(max(0.0, 1.0 - ((k - centre) / half) ** 2)))


@dataclass(frozen=True)
class Head:
    """Per-patient anatomy: size, position, rotation, noise and the lesions it carries."""

    semi_axes_mm: tuple[float, float]  # left-right, anterior-posterior at the widest slice
    centre_mm: tuple[float, float]
    rotation: float  # radians
    skull_mm: float
    brain_hu: float
    noise_hu: float
    ventricle_scale: float
    texture_seed: int
    lesions: tuple[Lesion, ...] = field(default_factory=tuple)


def random_head(rng: np.random.Generator, n_slices: int, subtypes: tuple[str, ...]) -> Head:
    """Draw a patient's anatomy and one lesion per requested subtype."""
    lesions = []
    for subtype in subtypes:
        span = int(rng.integers(2, max(3, n_slices // 2) + 1))
        first = int(rng.integers(1, max(2, n_slices - span)))
        last = min(n_slices - 2, first + span - 1)
        size = {
            "epidural": rng.uniform(8, 16),
            "subdural": rng.uniform(4, 8),
            "intraparenchymal": rng.uniform(6, 16),
            "intraventricular": rng.uniform(0.3, 0.7),
            "subarachnoid": rng.uniform(1.0, 2.0),
        }[subtype]
        lesions.append(
            Lesion(
                subtype=subtype,
                first_slice=first,
                last_slice=max(first, last),
                angle=float(rng.uniform(0, 2 * np.pi)),
                extent=float(size),
                radial=float(rng.uniform(0.2, 0.55)),
                density_hu=float(rng.uniform(*BLOOD_HU)),
                shape_seed=int(rng.integers(2**31)),
            )
        )
    return Head(
        semi_axes_mm=(float(rng.uniform(64, 76)), float(rng.uniform(80, 92))),
        centre_mm=(float(rng.normal(0, 5)), float(rng.normal(0, 5))),
        rotation=float(np.deg2rad(rng.uniform(-10, 10))),
        skull_mm=float(rng.uniform(5, 8)),
        brain_hu=float(rng.uniform(28, 38)),
        noise_hu=float(rng.uniform(3, 7)),
        ventricle_scale=float(rng.uniform(0.8, 1.25)),
        texture_seed=int(rng.integers(2**31)),
        lesions=tuple(lesions),
    )


def _slice_scale(k: int, n_slices: int) -> float:
    """Head cross-section shrinks towards the vertex and skull base (a spheroid)."""
    t = (k - 0.45 * (n_slices - 1)) / (0.75 * n_slices)
    return float(np.sqrt(max(0.15, 1.0 - t * t)))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    noise = rng.standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma_px)
    return noise / (noise.std() + 1e-6)


def render_slice(
    head: Head, k: int, n_slices: int, matrix: int, seed: int | list[int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render slice ``k`` of ``head``.

    Returns:
        ``(hu, masks)``: a float32 ``(matrix, matrix)`` image in HU and one boolean mask per
        subtype present on this slice (absent subtypes are left out).
    """
    rng = np.random.default_rng(seed)
    spacing = FIELD_OF_VIEW_MM / matrix
    coords = (np.arange(matrix, dtype=np.float32) - matrix / 2 + 0.5) * spacing
    xx, yy = np.meshgrid(coords, coords)
    cos, sin = np.cos(head.rotation), np.sin(head.rotation)
    x = cos * (xx - head.centre_mm[0]) + sin * (yy - head.centre_mm[1])
    y = -sin * (xx - head.centre_mm[0]) + cos * (yy - head.centre_mm[1])

    scale = _slice_scale(k, n_slices)
    a, b = head.semi_axes_mm[0] * scale, head.semi_axes_mm[1] * scale
    outer = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    ai, bi = a - head.skull_mm, b - head.skull_mm
    rho = np.sqrt((x / ai) ** 2 + (y / bi) ** 2)  # 1 on the inner table
    inner = rho <= 1.0
    theta = np.arctan2(y / bi, x / ai)

    hu = np.full((matrix, matrix), AIR_HU, dtype=np.float32)
    hu[outer] = 1000.0 + 400.0 * _smooth_noise(rng, hu.shape, 3.0)[outer] * 0.3
    texture = _smooth_noise(np.random.default_rng(head.texture_seed + k), hu.shape, 6.0 / spacing)
    brain = head.brain_hu + 4.0 * texture
    hu[inner] = brain[inner]

    # Sulci: short radial CSF clefts just inside the inner table.
    step = 2 * np.pi / 28
    angular_gap = np.abs(np.mod(theta - 0.11 * k + step / 2, step) - step / 2)
    sulci = inner & (rho > 0.80) & (angular_gap * rho * 0.5 * (ai + bi) < 0.9)
    hu[sulci] = 8.0

    ventricles = np.zeros_like(inner)
    if 0.2 * n_slices <= k <= 0.75 * n_slices:
        for side in (-1.0, 1.0):
            vx = (x - side * 9.0 * head.ventricle_scale) / (5.0 * head.ventricle_scale * scale)
            vy = (y + 4.0) / (24.0 * head.ventricle_scale * scale)
            ventricles |= vx**2 + vy**2 <= 1.0
        hu[ventricles] = 6.0

    masks: dict[str, np.ndarray] = {}
    for lesion in head.lesions:
        p = lesion.profile(k)
        if p <= 0.0:
            continue
        mask = _lesion_mask(lesion, p, x, y, rho, theta, inner, ventricles, sulci, ai, bi)
        if mask.any():
            hu[mask] = lesion.density_hu + 3.0 * texture[mask]
            masks[lesion.subtype] = masks.get(lesion.subtype, np.zeros_like(mask)) | mask

    # Partial-volume blur, then quantum noise, as a scanner would.
    hu = cv2.GaussianBlur(hu, (0, 0), 0.6)
    hu += rng.normal(0.0, head.noise_hu, hu.shape).astype(np.float32)
    return hu, masks


def _lesion_mask(
    lesion: Lesion,
    p: float,
    x: np.ndarray,
    y: np.ndarray,
    rho: np.ndarray,
    theta: np.ndarray,
    inner: np.ndarray,
    ventricles: np.ndarray,
    sulci: np.ndarray,
    ai: float,
    bi: float,
) -> np.ndarray:
    """Boolean mask of ``lesion`` on one slice, ``p`` being its relative size there."""
    # Point on the inner table in the lesion's direction, and the inward normal there.
    bx, by = ai * np.cos(lesion.angle), bi * np.sin(lesion.angle)
    normal = np.array([bx / ai**2, by / bi**2])
    normal /= np.linalg.norm(normal)
    if lesion.subtype == "epidural":
        # Lens: skull interior cut by a large disk centred outside the skull.
        thickness = lesion.extent * p
        radius = 3.0 * lesion.extent
        cx, cy = bx + normal[0] * (radius - thickness), by + normal[1] * (radius - thickness)
        return inner & ((x - cx) ** 2 + (y - cy) ** 2 <= radius**2)
    if lesion.subtype == "subdural":
        # Crescent: between the inner table and a shifted, shrunk copy of it, over a wide arc.
        width = lesion.extent * (0.4 + 0.6 * p)
        shifted = np.sqrt(
            ((x + normal[0] * width) / (ai - 0.5 * width)) ** 2 + ((y + normal[1] * width) / (bi - 0.5 * width)) ** 2
        )
        arc = np.abs(np.angle(np.exp(1j * (theta - lesion.angle)))) < 1.1
        return inner & (shifted > 1.0) & arc
    if lesion.subtype == "intraparenchymal":
        cx = lesion.radial * ai * np.cos(lesion.angle)
        cy = lesion.radial * bi * np.sin(lesion.angle)
        phase = np.random.default_rng(lesion.shape_seed).uniform(0, 2 * np.pi, 3)
        phi = np.arctan2(y - cy, x - cx)
        wobble = 1.0 + 0.18 * sum(np.sin((i + 2) * phi + phase[i]) for i in range(3))
        r = lesion.extent * (0.3 + 0.7 * p) * wobble
        return inner & ~ventricles & ((x - cx) ** 2 + (y - cy) ** 2 <= r**2)
    if lesion.subtype == "intraventricular":
        # Blood sinks: the posterior (dependent, supine patient) fraction of the ventricles.
        if not ventricles.any():
            return np.zeros_like(inner)
        ys = y[ventricles]
        cut = np.quantile(ys, 1.0 - lesion.extent * (0.5 + 0.5 * p))
        return ventricles & (y >= cut)
    if lesion.subtype == "subarachnoid":
        near = np.abs(np.angle(np.exp(1j * (theta - lesion.angle)))) < 0.6 + 0.4 * p
        widened = cv2.dilate(sulci.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        return widened & inner & near & (rho > 0.78)
    raise ValueError(f"unknown subtype {lesion.subtype!r}; expected one of {SUBTYPES}")

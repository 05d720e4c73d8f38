"""Another hospital's pre-windowed images, simulated from this cohort's: a stress test for robustness.

A model trained on one release meets other images at another site. What a release fixes varies
elsewhere: one grey window instead of several, another field of view (the head fills more or
less of the frame, off centre, or the export is cropped tightly to the head, slice by slice, so
heads of many sizes all fill the frame), non-square matrices of other sizes, another brain
window (where the source window is known: width 80 shows blood as white as bone), other
brightness, contrast and display gamma, and another JPEG quality. :class:`SiteShift` draws one such "site protocol"
per study (a scanner and export setting applies to a whole study) and renders every slice of
the study with it, from the converted slice (``data/converted``), so it works for any source.

The ranges are fixed in advance and moderate, not fitted to any external set: the point is to
see whether a channel policy or an augmentation makes a model hold up when the input drifts,
which no within-release test fold can show (``experiments/crossval.py --site-shift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ich.data.framing import head_box
from ich.data.transforms import change_display
from ich.data.windowing import rewindow
from ich.io.digest import digest_values
from ich.io.slices import read_slice


@dataclass(frozen=True)
class SiteProtocol:
    """One drawn protocol: how every slice of one study is displayed and exported."""

    height: int  # output rows
    width: int  # output columns
    zoom: float  # head size relative to fitting the source frame into the output
    shift_row: float  # head offset as a fraction of the output height
    shift_col: float
    gamma: float  # display gamma on [0, 1] grey levels
    contrast: float  # about mid-grey
    brightness: float  # added, fraction of full scale
    jpeg_quality: int
    tight: bool = False  # each slice cropped to its head, which then fills ``zoom`` of the frame
    window: tuple[float, float] | None = None  # [lo, hi] HU the site windows at (None: the source's)


@dataclass(frozen=True)
class SiteShift:
    """Ranges the protocols are drawn from (uniform; ``gamma`` log-uniform within ``(1 + gamma) ** +/-1``).

    ``tight``: the share of studies exported cropped to the head, the head then filling
    ``fill`` of the frame's shorter side (in place of ``zoom`` and ``offset``). ``source_window``:
    the ``[lo, hi]`` HU window of the converted slices' first channel, when known (pre-windowed
    releases record it); the site then windows at a level and width drawn from ``level`` and
    ``width`` (:func:`ich.data.windowing.rewindow`). ``None``: the source's window is kept.
    """

    height: tuple[int, int] = (256, 768)
    aspect: tuple[float, float] = (0.75, 1.33)  # width / height of the exported matrix
    zoom: tuple[float, float] = (0.8, 1.2)
    offset: float = 0.08
    gamma: float = 0.3
    contrast: float = 0.2
    brightness: float = 0.08
    jpeg_quality: tuple[int, int] = (60, 95)
    tight: float = 0.5
    fill: tuple[float, float] = (0.9, 1.0)
    source_window: tuple[float, float] | None = None
    level: tuple[float, float] = (30.0, 50.0)
    width: tuple[float, float] = (70.0, 160.0)

    def draw(self, rng: np.random.Generator) -> SiteProtocol:
        """One study's protocol."""
        height = int(rng.integers(self.height[0], self.height[1] + 1))
        tight = bool(rng.uniform() < self.tight)
        zoom = float(rng.uniform(*(self.fill if tight else self.zoom)))
        offset = 0.0 if tight else self.offset  # a tight crop is centred on the head
        window = None
        if self.source_window is not None:
            level, width = rng.uniform(*self.level), rng.uniform(*self.width)
            window = (float(level - width / 2), float(level + width / 2))
        return SiteProtocol(
            height=height,
            width=int(round(height * rng.uniform(*self.aspect))),
            zoom=zoom,
            shift_row=float(rng.uniform(-offset, offset)),
            shift_col=float(rng.uniform(-offset, offset)),
            gamma=float((1 + self.gamma) ** rng.uniform(-1, 1)),
            contrast=float(1 + rng.uniform(-self.contrast, self.contrast)),
            brightness=float(rng.uniform(-self.brightness, self.brightness)),
            jpeg_quality=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)),
            tight=tight,
            window=window,
        )


def brain_window_of(source: dict) -> tuple[float, float] | None:
    """The ``[lo, hi]`` HU brain window a pre-windowed release records in its ``source.json``
    (``windows.brain``: level and width), or ``None`` when it records none (DICOM sources: the
    converted slices' windows are ``convert.windows``, and a site re-windowing them is not simulated)."""
    brain = (source.get("windows") or {}).get("brain")
    if not brain:
        return None
    level, width = float(brain["level"]), float(brain["width"])
    return level - width / 2, level + width / 2


def render(image: np.ndarray, protocol: SiteProtocol, source_window: tuple[float, float] | None = None) -> np.ndarray:
    """The slice as the other site exports it: its first window alone, grey ``(height, width)`` uint8.

    ``image``: a converted slice (H, W, 3) whose first channel is the brain window, or a grey
    (H, W) one; ``source_window`` its window, needed when the protocol windows anew. The JPEG
    round trip is included, so the result is what a reader decodes.
    """
    grey = image[..., 0] if image.ndim == 3 else image
    if protocol.window is not None:
        if source_window is None:
            raise ValueError("this protocol re-windows: render needs the source window of the slices")
        levels = rewindow(grey.astype(np.float32) / 255.0, source_window, *protocol.window)
        grey = np.rint(levels * 255.0).astype(np.uint8)
    if protocol.tight and (grey > 20).any():
        top, bottom, left, right = head_box(grey)
        grey = grey[top:bottom, left:right]
    rows, cols = grey.shape
    out_h, out_w = protocol.height, protocol.width
    scale = protocol.zoom * min(out_h / rows, out_w / cols)
    # source centre -> output centre, displaced by the offset
    matrix = np.array(
        [
            [scale, 0.0, out_w / 2 + protocol.shift_col * out_h - scale * cols / 2],
            [0.0, scale, out_h / 2 + protocol.shift_row * out_h - scale * rows / 2],
        ]
    )
    placed = cv2.warpAffine(grey, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    levels = change_display(placed.astype(np.float32) / 255.0, protocol.gamma, protocol.contrast, protocol.brightness)
    display = np.rint(levels * 255.0).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", display, [cv2.IMWRITE_JPEG_QUALITY, protocol.jpeg_quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the shifted slice")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def write_shifted_studies(
    index: pd.DataFrame, image_root: str | Path, out: str | Path, shift: SiteShift, *, seed: int
) -> dict[str, Path]:
    """Render every study of ``index`` (converted slices under ``image_root``) as another site would.

    One folder per study under ``out``, its slices as ``<slice_order>_<slice_id>.png`` (natural
    file order is slice order, and the name gives the slice back); one protocol per study, drawn
    from ``seed`` and the study id, so a study looks the same whichever subset is rendered.
    Returns ``{study_id: folder}``.
    """
    if index.empty:
        raise ValueError("no slices to render")
    out = Path(out)
    folders = {}
    for study_id, rows in index.sort_values("slice_order").groupby("study_id", sort=True):
        rng = np.random.default_rng([seed, int(digest_values(str(study_id)), 16) % 2**32])
        protocol = shift.draw(rng)
        folder = out / str(study_id)
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows.itertuples():
            # a file or a member of a packed archive (convert.shard_size); BGR, so R is last
            image = read_slice(Path(image_root) / row.image_path, cv2.IMREAD_COLOR)[..., ::-1]
            shifted = render(image, protocol, shift.source_window)
            cv2.imwrite(str(folder / f"{row.slice_order:04d}_{row.slice_id}.png"), shifted)
        folders[str(study_id)] = folder
    return folders


def slice_id_of(path: str | Path) -> str:
    """The slice id in a file name written by :func:`write_shifted_studies`."""
    return Path(path).stem.split("_", 1)[1]

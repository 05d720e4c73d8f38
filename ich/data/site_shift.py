"""Another hospital's pre-windowed images, simulated from this cohort's: a stress test for robustness.

A model trained on one release meets other images at another site. What a release fixes varies
elsewhere: one grey window instead of several, another field of view (the head fills more or
less of the frame, off centre), non-square matrices of other sizes, other brightness, contrast
and display gamma, and another JPEG quality. :class:`SiteShift` draws one such "site protocol"
per study (a scanner and export setting applies to a whole study) and renders every slice of
the study with it, from the converted slice (``data/converted``), so it works for any source.

The ranges are fixed in advance and moderate, not fitted to any external set: the point is to
see whether a channel policy or an augmentation makes a model hold up when the input drifts,
which no within-release test fold can show (``bench/crossval.py --site-shift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ich.data.transforms import change_display
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


@dataclass(frozen=True)
class SiteShift:
    """Ranges the protocols are drawn from (uniform; ``gamma`` log-uniform within ``(1 + gamma) ** +/-1``)."""

    height: tuple[int, int] = (256, 768)
    aspect: tuple[float, float] = (0.75, 1.33)  # width / height of the exported matrix
    zoom: tuple[float, float] = (0.8, 1.2)
    offset: float = 0.08
    gamma: float = 0.3
    contrast: float = 0.2
    brightness: float = 0.08
    jpeg_quality: tuple[int, int] = (60, 95)

    def draw(self, rng: np.random.Generator) -> SiteProtocol:
        """One study's protocol."""
        height = int(rng.integers(self.height[0], self.height[1] + 1))
        return SiteProtocol(
            height=height,
            width=int(round(height * rng.uniform(*self.aspect))),
            zoom=float(rng.uniform(*self.zoom)),
            shift_row=float(rng.uniform(-self.offset, self.offset)),
            shift_col=float(rng.uniform(-self.offset, self.offset)),
            gamma=float((1 + self.gamma) ** rng.uniform(-1, 1)),
            contrast=float(1 + rng.uniform(-self.contrast, self.contrast)),
            brightness=float(rng.uniform(-self.brightness, self.brightness)),
            jpeg_quality=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)),
        )


def render(image: np.ndarray, protocol: SiteProtocol) -> np.ndarray:
    """The slice as the other site exports it: its first window alone, grey ``(height, width)`` uint8.

    ``image``: a converted slice (H, W, 3) whose first channel is the brain window, or a grey
    (H, W) one. The JPEG round trip is included, so the result is what a reader decodes.
    """
    grey = image[..., 0] if image.ndim == 3 else image
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
            cv2.imwrite(str(folder / f"{row.slice_order:04d}_{row.slice_id}.png"), render(image, protocol))
        folders[str(study_id)] = folder
    return folders


def slice_id_of(path: str | Path) -> str:
    """The slice id in a file name written by :func:`write_shifted_studies`."""
    return Path(path).stem.split("_", 1)[1]

"""Studies that are not a head CT, built fresh: what a user may point ``ich predict`` at by mistake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from pydicom.uid import generate_uid

from tests.dicom_fixtures import UID_ROOT, make_ct_dataset, phantom_grey, save

SIDE = 256


def _pngs(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for k, image in enumerate(images):
        cv2.imwrite(str(folder / f"{k}.png"), image)
    return folder


def colour_photograph(folder: Path) -> Path:
    """Five colour photographs of noise and filled shapes."""
    rng = np.random.default_rng(1)
    images = []
    for _ in range(5):
        image = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        for _ in range(6):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            centre = tuple(int(c) for c in rng.integers(40, SIDE - 40, 2))
            if rng.random() < 0.5:
                cv2.circle(image, centre, int(rng.integers(10, 60)), colour, -1)
            else:
                cv2.rectangle(image, centre, (centre[0] + 50, centre[1] + 30), colour, -1)
        images.append(image)
    return _pngs(folder, images)


def _text(inverted: bool) -> np.ndarray:
    image = np.zeros((SIDE, SIDE), np.uint8)
    for row, line in enumerate(("ich predict --help", "usage: ich predict PATH", "report.json written", "O O O")):
        cv2.putText(image, line, (8, 40 + 50 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
    return 255 - image if inverted else image


def text_screenshot(folder: Path) -> Path:
    """A screenshot of white text on black."""
    return _pngs(folder, [_text(False)])


def inverted_text_screenshot(folder: Path) -> Path:
    """The same screenshot inverted: black text on white."""
    return _pngs(folder, [_text(True)])


def radiograph(folder: Path) -> Path:
    """A chest-radiograph-like gradient on black, framed as radiographs are: a trunk brighter towards
    the abdomen filling the frame below the shoulders, two dark lungs, black above the shoulders."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    trunk = ((yy - 300) / 280.0) ** 2 + ((xx - 128) / 170.0) ** 2 < 1
    image = np.where(trunk, 90 + 130 * yy / SIDE, 0)
    for cx in (85, 171):
        image[((yy - 130) / 70.0) ** 2 + ((xx - cx) / 32.0) ** 2 < 1] *= 0.45
    return _pngs(folder, [np.round(image).astype(np.uint8)])


def inverted_head(folder: Path) -> Path:
    """A head CT study exported with its grey levels inverted (255 - x)."""
    return _pngs(folder, [255 - phantom_grey(SIDE, SIDE, seed=k) for k in range(6)])


def abdomen_hu(seed: int) -> np.ndarray:
    """An abdomen at 1.5 mm pixels: body ellipse, fat, organs, a vertebra at 700 HU, gas, a table."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    hu = np.full((SIDE, SIDE), -1000.0)
    body = ((yy - 120) / 90.0) ** 2 + ((xx - 128) / 118.0) ** 2
    hu[body < 1] = -100.0  # subcutaneous fat
    hu[body < 0.8] = 40.0  # muscle and organs
    for cy, cx in ((90, 100), (100, 160), (125, 130)):  # bowel gas
        hu[np.hypot(yy - cy, xx - cx) < 9] = -900.0
    vertebra = np.hypot(yy - 170, xx - 128)
    hu[vertebra < 16] = 700.0
    hu[(vertebra >= 13) & (vertebra < 16)] = 1000.0  # its cortex
    hu[(np.abs(yy - 222 - ((xx - 128) / 60.0) ** 2) < 3) & (np.abs(xx - 128) < 120)] = 300.0  # the table
    return hu + rng.normal(0.0, 5.0, hu.shape)


def abdomen_dicom(folder: Path) -> Path:
    """Five axial slices of :func:`abdomen_hu` as a CT series with a head CT's headers."""
    study_uid, series_uid = generate_uid(UID_ROOT), generate_uid(UID_ROOT)
    for k in range(5):
        ds = make_ct_dataset(
            hu=abdomen_hu(k),
            study_uid=study_uid,
            series_uid=series_uid,
            z=5.0 * k,
            instance_number=k + 1,
            pixel_spacing=(1.5, 1.5),
        )
        save(ds, folder / f"{k:04d}.dcm")
    return folder


NOT_HEAD_CT: dict[str, Callable[[Path], Path]] = {
    "colour-photograph": colour_photograph,
    "text-screenshot": text_screenshot,
    "inverted-text-screenshot": inverted_text_screenshot,
    "radiograph": radiograph,
    "inverted-head-ct": inverted_head,
    "abdomen-dicom": abdomen_dicom,
}
"""Each builder writes its study into the folder it is given and returns the path to pass to ``ich predict``."""

"""Framing before the resize: aspect ratio kept, optional crop to the head (``ich.data.framing``)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ich.data.cohort_conversion import ConvertConfig, convert_cohort
from ich.data.framing import frame_for, head_box
from ich.sources import materialise
from ich.sources.images import ct_ich_slice_images
from tests.conftest import SHARED_DATA

CT_ICH = Path(os.environ.get("ICH_CT_ICH_JPG", str(SHARED_DATA / "ct-ich-jpg")))


def scene(rows: int = 300, cols: int = 420) -> np.ndarray:
    """A grey 'head' (a disc of radius 60 at row 120, column 260) and a bright table bar below it."""
    image = np.zeros((rows, cols), np.uint8)
    cv2.circle(image, (260, 120), 60, 180, thickness=-1)
    image[250:262, 20:400] = 120  # the table: wide, thin, separate
    image[181:250, 258:261] = 90  # a thin headrest joining them
    return image


def test_pad_keeps_a_square_image_as_it_is_and_a_disc_round():
    square = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    frame = frame_for(square, "pad")
    assert np.array_equal(frame.apply(square), square)
    framed = frame_for(scene(), "pad").apply(scene())
    assert framed.shape == (420, 420)
    disc = (cv2.resize(framed, (105, 105), interpolation=cv2.INTER_AREA) > 150).astype(np.uint8)
    _, _, width, height, _ = cv2.connectedComponentsWithStats(disc)[2][1]
    assert abs(int(width) - int(height)) <= 1  # squashing 420 x 300 would make it 1.4 times taller than wide


def test_head_crop_finds_the_head_and_leaves_the_table_out():
    top, bottom, left, right = head_box(scene())
    assert top <= 60 and bottom >= 181 and left <= 200 and right >= 321  # the whole disc
    assert bottom < 250  # not the table under it, despite the headrest
    assert (right - left) < 150 and (bottom - top) < 150  # tight: margin 4%
    frame = frame_for(scene(), "head")
    framed = frame.apply(scene())
    assert framed.shape[0] == framed.shape[1] == frame.side
    with pytest.raises(ValueError, match="nothing to crop to"):
        head_box(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="framing must be one of"):
        frame_for(scene(), "squash")


def test_convert_frames_images_masks_and_spacing_alike(tmp_path):
    """A non-square pre-windowed image with a mask: same frame for both, the head fills the output."""
    root = tmp_path / "site"
    root.mkdir()
    image = scene()
    mask = np.zeros_like(image)
    cv2.circle(mask, (280, 110), 15, 255, thickness=-1)
    cv2.imwrite(str(root / "a.png"), image)
    cv2.imwrite(str(root / "a_mask.png"), mask)
    pd.DataFrame({"image": ["a.png"], "patient_id": ["p"], "any": [1], "mask": ["a_mask.png"]}).to_csv(
        root / "labels.csv", index=False
    )
    raw = tmp_path / "raw"
    materialise("images", {"path": str(root)}, raw)
    outputs = {}
    for framing in ("pad", "head"):
        out = tmp_path / framing
        index, _ = convert_cohort(raw, out, ConvertConfig(size=64, framing=framing, workers=1))
        converted = cv2.imread(str(out / index.at[0, "image_path"]), cv2.IMREAD_GRAYSCALE)
        converted_mask = cv2.imread(str(out / index.at[0, "mask_path"]), cv2.IMREAD_GRAYSCALE)
        outputs[framing] = ((converted > 100).mean(), (converted_mask > 0).mean())
        inside = converted[converted_mask > 0]
        assert inside.min() > 100  # the mask still lies on the head after framing
    assert outputs["head"][0] > 2.5 * outputs["pad"][0]  # the head fills far more of the frame
    assert outputs["head"][1] / outputs["head"][0] == pytest.approx(outputs["pad"][1] / outputs["pad"][0], rel=0.25)


@pytest.mark.skipif(
    not (CT_ICH / "hemorrhage_diagnosis.csv").is_file(), reason=f"CT-ICH JPG release not found at {CT_ICH}"
)
def test_head_crop_on_real_ct_ich_slices_keeps_the_head():
    """Three real patients: the crop keeps at least 99% of the bright pixels and is never larger than the image."""
    kept = []
    for patient in ("049", "070", "100"):
        for path in ct_ich_slice_images((CT_ICH / "Patients_CT" / patient / "brain").glob("*.jpg"))[::6]:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if not (image > 20).any():
                continue
            top, bottom, left, right = head_box(image)
            bright = image > 20
            kept.append(bright[top:bottom, left:right].sum() / bright.sum())
            assert 0 <= top < bottom <= image.shape[0] and 0 <= left < right <= image.shape[1]
    assert len(kept) >= 10
    assert np.median(kept) >= 0.99 and min(kept) >= 0.9, kept

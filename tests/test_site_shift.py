"""The simulated other site (ich.data.site_shift): geometry, display and files, on images of known content."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from ich.data.site_shift import SiteProtocol, SiteShift, brain_window_of, render, slice_id_of, write_shifted_studies

PLAIN = SiteProtocol(
    height=200, width=200, zoom=1.0, shift_row=0.0, shift_col=0.0, gamma=1.0, contrast=1.0, brightness=0.0,
    jpeg_quality=100,
)  # fmt: skip


def disc_slice(size: int = 100, radius: int = 30, bone: int = 255) -> np.ndarray:
    """A converted slice: a grey disc (brain window, R and G) and a different bone window (B)."""
    brain = np.zeros((size, size), np.uint8)
    cv2.circle(brain, (size // 2, size // 2), radius, 160, -1)
    return np.dstack([brain, brain, np.full_like(brain, bone)])


def disc(image: np.ndarray) -> tuple[float, float, float]:
    """Centre row, centre column and radius of the bright region."""
    rows, cols = np.nonzero(image > 80)
    return rows.mean(), cols.mean(), np.sqrt(len(rows) / np.pi)


def test_a_plain_protocol_keeps_the_brain_window_only_and_scales_to_the_matrix():
    out = render(disc_slice(), PLAIN)
    assert out.shape == (200, 200) and out.dtype == np.uint8  # one grey window: the bone channel is gone
    row, col, radius = disc(out)
    assert (row, col) == pytest.approx((99.5, 99.5), abs=1)
    assert radius == pytest.approx(60, abs=1.5)  # 100 px -> 200 px
    assert abs(int(out[100, 100]) - 160) <= 2 and out[5, 5] <= 2  # grey levels kept (JPEG quality 100)


def test_geometry_zoom_offset_and_a_non_square_matrix():
    protocol = replace(PLAIN, height=300, width=400, zoom=0.5, shift_row=0.1, shift_col=-0.2)
    out = render(disc_slice(), protocol)
    assert out.shape == (300, 400)
    row, col, radius = disc(out)
    # the source fits the shorter side (3x), then zoom 0.5: radius 30 -> 45 px; offsets in output heights
    assert radius == pytest.approx(45, abs=1.5)
    assert row == pytest.approx(150 + 0.1 * 300, abs=1.5)
    assert col == pytest.approx(200 - 0.2 * 300, abs=1.5)


def test_display_gamma_contrast_brightness():
    out = render(disc_slice(), replace(PLAIN, gamma=2.0, contrast=1.0, brightness=0.1))
    expected = ((160 / 255) ** 2 + 0.1) * 255  # gamma, then the shift; air becomes 0.1 grey
    assert int(out[100, 100]) == pytest.approx(expected, abs=2)
    assert int(out[5, 5]) == pytest.approx(0.1 * 255, abs=2)
    darker = render(disc_slice(), replace(PLAIN, contrast=0.5))
    assert int(darker[100, 100]) == pytest.approx(((160 / 255 - 0.5) * 0.5 + 0.5) * 255, abs=2)


def test_a_tight_export_fills_the_frame_with_the_head_whatever_its_size():
    for radius in (15, 40):
        out = render(disc_slice(radius=radius), replace(PLAIN, tight=True, zoom=0.95))
        rows, cols = np.nonzero(out > 80)
        assert (rows.max() - rows.min()) / 200 == pytest.approx(0.95 / 1.08, abs=0.04)  # head box margin 4% a side
        assert disc(out)[:2] == pytest.approx((99.5, 99.5), abs=3)  # centred (a source pixel is 6 here)


def test_another_window_shows_the_same_hu_with_other_grey_levels():
    slice_ = disc_slice()  # grey 160 in a [-20, 100] window: 55.3 HU
    out = render(slice_, replace(PLAIN, window=(0.0, 80.0)), source_window=(-20, 100))
    assert int(out[100, 100]) == pytest.approx((160 / 255 * 120 - 20) / 80 * 255, abs=2)
    with pytest.raises(ValueError, match="source window"):
        render(slice_, replace(PLAIN, window=(0.0, 80.0)))


def test_protocols_are_drawn_within_their_ranges_and_reproducibly():
    shift = SiteShift(source_window=(-20, 100))
    draws = [shift.draw(np.random.default_rng(k)) for k in range(200)]
    assert all(256 <= d.height <= 768 and 60 <= d.jpeg_quality <= 95 for d in draws)
    assert all(0.74 <= d.width / d.height <= 1.34 for d in draws)
    assert all(0.9 <= d.zoom <= 1.0 and d.shift_row == 0 for d in draws if d.tight)
    assert all(0.8 <= d.zoom <= 1.2 for d in draws if not d.tight)
    assert 60 < sum(d.tight for d in draws) < 140
    widths = [d.window[1] - d.window[0] for d in draws]
    assert min(widths) >= 70 and max(widths) <= 160 and all(30 <= sum(d.window) / 2 <= 50 for d in draws)
    assert SiteShift().draw(np.random.default_rng(0)).window is None  # no source window: none drawn
    assert all(1 / 1.3 - 1e-9 <= d.gamma <= 1.3 + 1e-9 and abs(d.brightness) <= 0.08 for d in draws)
    assert len({(d.height, d.width) for d in draws}) > 100  # varied, not one setting
    assert shift.draw(np.random.default_rng(7)) == draws[7]


def test_studies_are_written_in_slice_order_one_protocol_each(tmp_path):
    rows = []
    for study, radius in (("S1", 20), ("S2", 35)):
        for order in (2, 0, 1):  # rows out of order
            slice_id = f"{study}-{order}"
            path = f"images/{slice_id}.png"
            (tmp_path / "images").mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / path), disc_slice(radius=radius + 5 * order)[..., ::-1])
            rows.append({"slice_id": slice_id, "study_id": study, "slice_order": order, "image_path": path})
    index = pd.DataFrame(rows)
    folders = write_shifted_studies(index, tmp_path, tmp_path / "out", SiteShift(), seed=3)
    assert set(folders) == {"S1", "S2"}
    files = sorted(folders["S2"].iterdir())
    assert [slice_id_of(f) for f in files] == ["S2-0", "S2-1", "S2-2"]
    shapes = {cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape for f in files}
    assert len(shapes) == 1 and len(next(iter(shapes))) == 2  # one protocol per study; grey files
    radii = [disc(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))[2] for f in files]
    assert radii == sorted(radii)  # the slices' own content, in slice order
    again = write_shifted_studies(index[index["study_id"] == "S2"], tmp_path, tmp_path / "again", SiteShift(), seed=3)
    assert (again["S2"] / files[0].name).read_bytes() == files[0].read_bytes()  # per study, not per subset
    (tmp_path / "images" / "S1-1.png").unlink()
    with pytest.raises(FileNotFoundError, match="S1-1.png"):
        write_shifted_studies(index, tmp_path, tmp_path / "bad", SiteShift(), seed=3)
    with pytest.raises(ValueError, match="no slices"):
        write_shifted_studies(index.iloc[:0], tmp_path, tmp_path / "none", SiteShift(), seed=3)


def test_the_brain_window_of_a_pre_windowed_release():
    source = {"windows": {"brain": {"level": 40, "width": 120}, "bone": {"level": 700, "width": 3200}}}
    assert brain_window_of(source) == (-20.0, 100.0)
    assert brain_window_of({"name": "synthetic"}) is None

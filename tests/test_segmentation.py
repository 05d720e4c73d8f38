"""Tests for ich.segmentation: crops/stitching, undersampling, augmentation, post-processing and
the intensity-threshold baseline."""

from __future__ import annotations

import numpy as np
import pytest

from ich.segmentation import (
    AffineRanges,
    augment_pair,
    binarize,
    close_then_open,
    crop_grid,
    extract_crops,
    fit_threshold_band,
    inclusive_grid,
    positive_crops,
    predict_threshold_band,
    random_affine_matrix,
    sample_crops,
    segment_slice,
    stitch,
    undersample,
)


def _disc(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2).astype(np.uint8)


# --- crops -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "n_crops"), [(640, 49), (512, 36), (256, 9), (160, 1), (100, 1)])
def test_crop_grid_counts_and_bounds(size: int, n_crops: int) -> None:
    coords = crop_grid(size, size, crop=160, stride=80)
    assert len(coords) == n_crops
    assert len(set(coords)) == n_crops
    for y, x in coords:
        assert 0 <= y and 0 <= x
        assert y + 160 <= max(size, 160) and x + 160 <= max(size, 160)


def test_crop_grid_640_matches_paper_stride() -> None:
    starts = sorted({y for y, _ in crop_grid(640, 640)})
    assert starts == [0, 80, 160, 240, 320, 400, 480]


def test_crop_grid_adds_flush_last_crop() -> None:
    starts = sorted({x for _, x in crop_grid(512, 512)})
    assert starts == [0, 80, 160, 240, 320, 352]  # 352 + 160 = 512


@pytest.mark.parametrize("shape", [(640, 640), (512, 512), (256, 256), (300, 420), (100, 120)])
def test_crop_stitch_round_trip_is_exact(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=shape).astype(np.float64)
    coords = crop_grid(*shape)
    crops = extract_crops(image, coords, 160)
    assert crops.shape == (len(coords), 160, 160)
    np.testing.assert_array_equal(stitch(crops, coords, shape), image)
    floats = rng.random(shape)
    np.testing.assert_allclose(stitch(extract_crops(floats, coords), coords, shape), floats)


def test_extract_crops_keeps_channels_and_pads_small_slices() -> None:
    image = np.full((100, 120, 3), 7, dtype=np.uint8)
    crops = extract_crops(image, crop_grid(100, 120), 160)
    assert crops.shape == (1, 160, 160, 3)
    assert (crops[0, :100, :120] == 7).all()
    assert (crops[0, 100:] == 0).all() and (crops[0, :, 120:] == 0).all()


def test_stitch_rejects_uncovered_pixels() -> None:
    coords = crop_grid(256, 256)
    crops = np.zeros((len(coords) - 1, 160, 160))
    with pytest.raises(ValueError, match="cover"):
        stitch(crops, coords[:-1], (256, 256))


def test_positive_crops_single_pixel() -> None:
    mask = np.zeros((256, 256), dtype=np.uint8)
    mask[0, 0] = 255
    coords = crop_grid(256, 256)
    assert positive_crops(mask, coords).tolist() == [True] + [False] * 8


@pytest.mark.parametrize("ratio", [0.0, 1.0, 2.0, 1.5])
def test_undersample_keeps_all_positives_and_ratio(ratio: float) -> None:
    is_positive = np.zeros(200, dtype=bool)
    is_positive[[3, 50, 51, 120]] = True
    kept = undersample(is_positive, ratio, np.random.default_rng(1))
    assert set(np.flatnonzero(is_positive)) <= set(kept.tolist())
    assert (~is_positive[kept]).sum() == round(ratio * 4)
    assert np.array_equal(kept, np.sort(kept)) and len(set(kept.tolist())) == len(kept)


def test_undersample_is_seeded_and_capped() -> None:
    is_positive = np.array([True] + [False] * 30)
    first = undersample(is_positive, 3.0, np.random.default_rng(7))
    again = undersample(is_positive, 3.0, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert len(undersample(is_positive, 100.0, np.random.default_rng(7))) == 31
    with pytest.raises(ValueError):
        undersample(is_positive, -1.0, np.random.default_rng(7))


def test_sample_crops_on_a_slice() -> None:
    mask = _disc((640, 640), (320, 320), 30)  # touches the 4 central crops' neighbourhood
    coords = crop_grid(640, 640)
    positives = [c for c, p in zip(coords, positive_crops(mask, coords), strict=True) if p]
    chosen = sample_crops(mask, coords, 1.0, np.random.default_rng(3))
    assert set(positives) <= set(chosen)
    assert len(chosen) == 2 * len(positives)
    assert sample_crops(np.zeros_like(mask), coords, 1.0, np.random.default_rng(3)) == []


# --- augmentation ------------------------------------------------------------------------------


def test_zero_ranges_give_the_identity() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 80, 3)).astype(np.uint8)
    mask = rng.random((64, 80)) > 0.7
    ranges = AffineRanges(rotation_deg=0.0, shift=0.0, shear=0.0, zoom=0.0)
    out_image, out_mask = augment_pair(image, mask, ranges, rng)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_mask, mask)
    assert out_mask.dtype == bool


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    """The mask, copied into an image channel, lands where the mask lands."""
    rng = np.random.default_rng(5)
    mask = np.zeros((160, 160), dtype=np.uint8)
    mask[40:90, 50:120] = 1
    mask |= _disc((160, 160), (110, 60), 18)
    noise = rng.integers(0, 256, size=(160, 160), dtype=np.uint8)
    image = np.stack([noise, mask * 255, noise], axis=-1).astype(np.uint8)
    for seed in range(10):
        out_image, out_mask = augment_pair(image, mask, AffineRanges(), np.random.default_rng(seed))
        assert out_image.shape == image.shape and out_image.dtype == np.uint8
        assert set(np.unique(out_mask)) <= {0, 1}
        from_image = out_image[..., 1] >= 128
        disagree = np.count_nonzero(from_image != out_mask.astype(bool))
        # bilinear vs nearest may differ only on boundary pixels, never by a shift
        assert disagree <= 0.03 * out_mask.sum()
        ys, xs = np.nonzero(out_mask)
        yi, xi = np.nonzero(from_image)
        assert abs(ys.mean() - yi.mean()) < 0.5 and abs(xs.mean() - xi.mean()) < 0.5


def test_augmentation_is_seeded_and_varies() -> None:
    image = np.random.default_rng(0).random((96, 96)).astype(np.float32)
    mask = (image > 0.5).astype(np.uint8)
    a = augment_pair(image, mask, AffineRanges(), np.random.default_rng(11))
    b = augment_pair(image, mask, AffineRanges(), np.random.default_rng(11))
    c = augment_pair(image, mask, AffineRanges(), np.random.default_rng(12))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_random_matrix_is_never_a_flip_and_stays_in_range() -> None:
    rng = np.random.default_rng(2)
    ranges = AffineRanges()
    for _ in range(200):
        matrix = random_affine_matrix(200, 300, ranges, rng)
        linear = matrix[:, :2]
        assert np.linalg.det(linear) > 0  # orientation preserved: no flip
        assert 0.8**2 * 0.99 <= np.linalg.det(linear) <= 1.2**2 * 1.01
        centre = matrix @ np.array([149.5, 99.5, 1.0])
        assert abs(centre[0] - 149.5) <= 0.1 * 300 + 1e-9
        assert abs(centre[1] - 99.5) <= 0.1 * 200 + 1e-9


def test_single_channel_axis_is_kept() -> None:
    image = np.ones((50, 50, 1), dtype=np.float32)
    mask = np.zeros((50, 50), np.uint8)
    out, _ = augment_pair(image, mask, AffineRanges(), np.random.default_rng(0))
    assert out.shape == (50, 50, 1)


# --- post-processing ---------------------------------------------------------------------------


def test_binarize_is_inclusive() -> None:
    prob = np.array([[0.49, 0.5], [0.51, 1.0]])
    np.testing.assert_array_equal(binarize(prob, 0.5), [[0, 1], [1, 1]])
    assert binarize(prob, 0.5).dtype == np.uint8


def test_close_then_open_fills_hole_removes_speck_keeps_blob() -> None:
    blob = _disc((128, 128), (64, 64), 25)
    mask = blob.copy()
    mask[62:64, 62:64] = 0  # a small hole inside the blob
    mask[10:12, 110:112] = 1  # an isolated speck
    out = close_then_open(mask * 255, close_kernel=5, open_kernel=5)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}
    assert out[62:64, 62:64].all()
    assert not out[5:20, 100:120].any()
    assert np.count_nonzero(out & blob) >= 0.98 * blob.sum()
    assert np.count_nonzero(out & ~blob.astype(bool)) <= 0.02 * blob.sum()


@pytest.mark.parametrize("size", [0, 1])
def test_kernel_zero_or_one_is_a_no_op(size: int) -> None:
    mask = (np.random.default_rng(0).random((40, 40)) > 0.6).astype(np.uint8)
    np.testing.assert_array_equal(close_then_open(mask, size, size), mask)


def test_segment_slice_thresholds_then_cleans() -> None:
    prob = _disc((100, 100), (50, 50), 15) * 0.9
    prob[5, 5] = 0.95  # a confident lone pixel: removed by the opening
    out = segment_slice(prob, 0.5, 3, 3)
    assert out[50, 50] == 1 and out[5, 5] == 0
    assert segment_slice(prob, 0.92, 3, 3).sum() == 0


# --- intensity-threshold baseline --------------------------------------------------------------


def _synthetic_slice(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grey 60 background, tissue at 120, bleed blob at 180, 'bone' at 250; uniform noise +-8.

    Channel 0 carries the grey levels (as the brain window of our PNGs); 1 and 2 are noise.
    """
    grey = np.full((96, 96), 60.0)
    grey[10:30, 10:86] = 120
    grey[86:96, :] = 250
    centre = (int(rng.integers(40, 60)), int(rng.integers(30, 66)))
    blob = _disc((96, 96), centre, float(rng.integers(6, 12)))
    grey[blob == 1] = 180
    grey = np.clip(grey + rng.uniform(-8, 8, grey.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, size=(96, 96, 2), dtype=np.uint8)
    return np.dstack([grey, noise]), blob * 255


def test_inclusive_grid() -> None:
    np.testing.assert_allclose(inclusive_grid(100, 210, 10), np.arange(100, 211, 10))
    assert inclusive_grid(0.0, 0.3, 0.1)[-1] == pytest.approx(0.3)
    assert len(inclusive_grid(0.0, 0.3, 0.1)) == 4


def test_threshold_band_grid_search_recovers_the_band() -> None:
    rng = np.random.default_rng(4)
    slices = [_synthetic_slice(rng) for _ in range(6)]
    negatives = [(np.zeros((96, 96, 3), np.uint8), np.zeros((96, 96), np.uint8))]
    images = [s[0] for s in slices + negatives]
    masks = [s[1] for s in slices + negatives]
    lo, hi, table = fit_threshold_band(images, masks, inclusive_grid(100, 210, 10), inclusive_grid(210, 255, 5), 3, 3)
    # the band must exclude tissue (<=128) and bone (>=242) and include the bleed (172-188)
    assert 128 < lo <= 172 and 188 <= hi < 242
    assert (lo, hi) == (130.0, 210.0)  # ties go to the first pair in grid order
    assert table["score"].max() == pytest.approx(1.0)
    assert list(table.columns) == ["lo", "hi", "score"]
    assert (table["lo"] <= table["hi"]).all()
    image, mask = _synthetic_slice(rng)
    np.testing.assert_array_equal(predict_threshold_band(image, lo, hi, 3, 3), mask // 255)


def test_threshold_band_on_a_2d_image_and_errors() -> None:
    grey = np.array([[10, 50, 90], [50, 50, 200]], dtype=np.int16)  # e.g. HU
    np.testing.assert_array_equal(predict_threshold_band(grey, 40, 95), [[0, 1, 1], [1, 1, 0]])
    empty = [np.zeros((4, 4), np.uint8)]
    with pytest.raises(ValueError, match="no training slice"):
        fit_threshold_band([np.zeros((4, 4))], empty, [1], [2])


def test_threshold_band_objective_jaccard() -> None:
    rng = np.random.default_rng(9)
    image, mask = _synthetic_slice(rng)
    lo, hi, table = fit_threshold_band([image], [mask], [150, 230], [240], objective="jaccard")
    assert (lo, hi) == (150.0, 240.0)
    assert table["score"].tolist() == pytest.approx([1.0, 0.0])

"""Thin slices into slabs of the training thickness (ich.data.slabs)."""

from __future__ import annotations

import numpy as np
import pytest

from ich.data.slabs import mean_slab, needs_slabs, slab_members


def test_thin_series_fall_into_slabs_of_the_training_thickness():
    z = np.arange(64) * 0.625 + 12.0
    shuffled = np.random.default_rng(0).permutation(64)
    groups = slab_members(z[shuffled], 5.0)
    assert [len(g) for g in groups] == [8] * 8
    assert [sorted(z[shuffled][g].tolist()) for g in groups] == [z[8 * k : 8 * k + 8].tolist() for k in range(8)]
    assert sorted(np.concatenate(groups).tolist()) == list(range(64))  # each slice in exactly one slab


def test_a_gap_leaves_no_empty_slab_and_a_short_end_keeps_its_slices():
    z = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 15.0, 16.0, 21.0])
    assert [g.tolist() for g in slab_members(z, 5.0)] == [[0, 1, 2, 3, 4], [5, 6], [7]]
    with pytest.raises(ValueError, match="positive"):
        slab_members(z, 0.0)
    with pytest.raises(ValueError, match="no slices"):
        slab_members(np.array([]), 5.0)


def test_only_series_clearly_thinner_than_training_are_reformatted():
    assert needs_slabs(0.625, 5.0) and needs_slabs(2.5, 5.0) and needs_slabs(3.0, 5.0)
    assert not needs_slabs(4.0, 5.0) and not needs_slabs(5.0, 5.0) and not needs_slabs(10.0, 5.0)
    assert not needs_slabs(0.625, None)  # training thickness unknown: nothing is done
    assert not needs_slabs(float("nan"), 5.0)


def test_a_slab_is_the_mean_hu_and_averages_the_noise_away():
    rng = np.random.default_rng(1)
    truth = np.full((32, 32), 40.0, dtype=np.float32)
    thin = [truth + rng.normal(0, 24, truth.shape).astype(np.float32) for _ in range(8)]
    slab = mean_slab(thin)
    assert slab.dtype == np.float32 and np.allclose(slab, np.mean(thin, axis=0))
    assert slab.std() < np.std(thin[0]) / 2.5  # about 1 / sqrt(8)
    with pytest.raises(ValueError, match="share a shape"):
        mean_slab([truth, truth[:16]])

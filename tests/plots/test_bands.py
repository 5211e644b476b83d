"""Mean ± sample-std bands over seeds, including seeds that stop early."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifoldwalk.plots.bands import count_changes, seed_band


@given(
    n_seeds=st.integers(2, 6),
    n_points=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_band_on_a_shared_grid_is_numpys_mean_and_sample_std(n_seeds, n_points, seed):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(1, 50, size=n_points)).astype(float)
    ys = rng.normal(size=(n_seeds, n_points)) * 10
    band = seed_band([x] * n_seeds, list(ys))
    np.testing.assert_array_equal(band.x, x)
    np.testing.assert_allclose(band.mean, ys.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(band.std, ys.std(axis=0, ddof=1), rtol=1e-10, atol=1e-12)
    assert (band.count == n_seeds).all()


@given(
    stops=st.lists(st.integers(1, 20), min_size=2, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_seeds_that_stop_early_leave_the_band_where_they_stop(stops, seed):
    rng = np.random.default_rng(seed)
    full = np.arange(0, 50 * 21, 50, dtype=float)  # records every 50 steps, up to 1000
    xs = [full[: k + 1] for k in stops]
    ys = [rng.normal(size=len(x)) for x in xs]
    band = seed_band(xs, ys)
    np.testing.assert_array_equal(band.x, full[: max(stops) + 1])
    for i in range(len(band.x)):
        running = [y[i] for x, y in zip(xs, ys, strict=True) if len(x) > i]
        assert band.count[i] == len(running)
        assert band.mean[i] == pytest.approx(np.mean(running), abs=1e-12)
        if len(running) > 1:
            assert band.std[i] == pytest.approx(np.std(running, ddof=1), abs=1e-12)
        else:
            assert np.isnan(band.std[i])
    expected = [
        (float(full[i]), int(band.count[i]))
        for i in range(1, len(band.x))
        if band.count[i] != band.count[i - 1]
    ]
    assert count_changes(band) == expected
    assert len(expected) == len(set(stops) - {max(stops)})


def test_unaligned_records_are_interpolated_within_each_seeds_span():
    band = seed_band(
        [np.array([0.0, 10.0]), np.array([0.0, 5.0, 20.0])],
        [np.array([0.0, 10.0]), np.array([2.0, 4.0, 10.0])],
    )
    np.testing.assert_array_equal(band.x, [0, 5, 10, 20])
    # seed 0 at 5 is 5 (interpolated); seed 1 at 10 is 4 + (10-4)·5/15 = 6; at 20 only seed 1
    np.testing.assert_allclose(band.mean, [1.0, 4.5, 8.0, 10.0])
    np.testing.assert_allclose(band.std[:3], [np.sqrt(2), np.std([5, 4], ddof=1), np.sqrt(8)])
    assert np.isnan(band.std[3]) and list(band.count) == [2, 2, 2, 1]


def test_nan_records_are_skipped_and_bad_input_is_named():
    band = seed_band([np.array([0.0, 1.0, 2.0])] * 2, [np.array([1.0, np.nan, 3.0])] * 2)
    np.testing.assert_allclose(band.mean, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must increase"):
        seed_band([np.array([1.0, 0.0])], [np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="2 x series but 1 y"):
        seed_band([np.zeros(1)] * 2, [np.zeros(1)])

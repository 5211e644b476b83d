"""Planes through a weight vector: exact properties of the projection, the filter
normalisation and the square grid."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from manifoldwalk.plots.planes import filter_normalize, filter_plane, random_plane, square_axes

shapes = st.lists(
    st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), min_size=1, max_size=4
).filter(lambda ss: any(len(s) >= 2 for s in ss))


@settings(max_examples=40)
@given(shapes=shapes, seed=st.integers(0, 2**32 - 1), axis=st.sampled_from([0, -1]))
def test_each_filter_gets_the_centres_filter_norm(shapes, seed, axis):
    rng = np.random.default_rng(seed)
    n = sum(int(np.prod(s)) for s in shapes)
    center, direction = rng.normal(size=n), rng.normal(size=n)
    out = filter_normalize(direction, center, shapes, axis)
    start = 0
    for s in shapes:
        size = int(np.prod(s))
        d, w = out[start : start + size], center[start : start + size]
        if len(s) < 2:
            assert not d.any()
        else:
            d, w = np.moveaxis(d.reshape(s), axis, 0), np.moveaxis(w.reshape(s), axis, 0)
            for f in range(d.shape[0]):
                norm_d, norm_w = np.linalg.norm(d[f]), np.linalg.norm(w[f])
                assert abs(norm_d - norm_w) <= 1e-12 * norm_w
                # the filter keeps its direction: a positive multiple of the random one
                raw = np.moveaxis(direction[start : start + size].reshape(s), axis, 0)[f]
                assert np.allclose(d[f] * np.linalg.norm(raw), raw * np.linalg.norm(d[f]))
        start += size


@settings(max_examples=40)
@given(
    p=st.integers(3, 40),
    seed=st.integers(0, 2**32 - 1),
    coords=st.lists(st.floats(-5, 5), min_size=2, max_size=2),
)
def test_projecting_a_point_of_the_plane_gives_its_coordinates(p, seed, coords):
    rng = np.random.default_rng(seed)
    center = rng.normal(size=p)
    planes = [random_plane(center, rng)]
    if p >= 4:
        planes.append(filter_plane(center, [(2, p // 2), (p - 2 * (p // 2),)], rng))
    for plane in planes:
        c = np.array(coords)
        back = plane.project(plane.points(c[None]))[0]
        np.testing.assert_allclose(back, c, atol=1e-9 * (1 + np.abs(c).max()))
        # a vector orthogonal to the plane projects to 0
        q, _ = np.linalg.qr(np.column_stack([plane.directions.T, rng.normal(size=p)]))
        np.testing.assert_allclose(plane.project(center + q[:, 2]), 0.0, atol=1e-9)


def test_random_directions_are_orthogonal_and_as_long_as_the_centre():
    center = np.arange(1.0, 11.0)
    d = random_plane(center, np.random.default_rng(0)).directions
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), np.linalg.norm(center), rtol=1e-14)
    assert abs(d[0] @ d[1]) < 1e-12 * (d[0] @ d[0])
    unit = random_plane(np.zeros(3), np.random.default_rng(0)).directions
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-14)


@given(
    points=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=20),
    n=st.integers(2, 30),
)
def test_the_grid_is_square_and_covers_the_points(points, n):
    pts = np.array(points)
    a, b = square_axes(pts, n)
    assert len(a) == len(b) == n
    assert np.isclose(a[-1] - a[0], b[-1] - b[0])
    assert a[0] <= pts[:, 0].min() and a[-1] >= pts[:, 0].max()
    assert b[0] <= pts[:, 1].min() and b[-1] >= pts[:, 1].max()
